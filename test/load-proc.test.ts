import { describe, expect, it } from 'vitest';
import { cpuPerRequestUs, parseProcStat } from '../load-tests/proc.js';

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
