import { describe, expect, it } from 'vitest';
import { cpuPerRequestUs, cpuSeconds, cpuTimes, parseProcStat } from '../load-tests/proc.js';

describe('parseProcStat', () => {
  it('reads utime and stime, counting fields after the command name', () => {
    const line =
      '4242 (node (main) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
    expect(parseProcStat(line)).toEqual({ utime: 1234, stime: 567 });
  });

  it('refuses text that is not a stat line', () => {
    expect(() => parseProcStat('nothing here')).toThrow();
  });
});

describe('cpuPerRequestUs', () => {
  it('divides the CPU used by the requests served', () => {
    expect(cpuPerRequestUs(1, 1.5, 10_000)).toBeCloseTo(50);
    expect(cpuPerRequestUs(1, 2, 0)).toBeNull();
  });
});

describe('cpuTimes', () => {
  it("splits this process's CPU into user and kernel time that add up to cpuSeconds", () => {
    // 60 ms of work in user mode: the user part moves by several clock ticks, the kernel part hardly.
    const before = cpuTimes(process.pid);
    const until = performance.now() + 60;
    let x = 0;
    while (performance.now() < until) x += Math.sqrt(x + 1);
    const after = cpuTimes(process.pid);
    expect(x).toBeGreaterThan(0);
    expect(after.user).toBeGreaterThan(before.user);
    expect(after.system).toBeGreaterThanOrEqual(before.system);
    const total = cpuSeconds(process.pid);
    expect(total).toBeGreaterThanOrEqual(after.user + after.system);
    expect(total - (after.user + after.system)).toBeLessThan(1);
  });
});
