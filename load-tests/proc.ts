/** CPU time of a process from /proc/<pid>/stat (Linux), and small helpers of the load run. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface CpuTicks {
  /** user-mode time, clock ticks */
  utime: number;
  /** kernel-mode time, clock ticks */
  stime: number;
}

/**
 * utime and stime from the text of /proc/<pid>/stat. The command name (field 2) is in
 * parentheses and may hold spaces and parentheses itself, so fields are counted from the last ')'.
 */
export function parseProcStat(text: string): CpuTicks {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  // After ')': field 3 (state) onwards; utime is field 14, stime field 15.
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('no utime/stime in the stat line');
  return { utime, stime };
}

let ticksPerSecond: number | undefined;

/** Clock ticks per second (getconf CLK_TCK; 100 on Linux when getconf is missing). */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU seconds a process (all its threads) has used so far. */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** User-mode and kernel-mode CPU seconds a process (all its threads) has used so far. */
export function cpuTimes(pid: number): { user: number; system: number } {
  const t = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const hz = clockTicks();
  return { user: t.utime / hz, system: t.stime / hz };
}

/** Microseconds of CPU per request, from CPU seconds before and after and the requests served. */
export function cpuPerRequestUs(before: number, after: number, requests: number): number | null {
  return requests > 0 ? ((after - before) * 1e6) / requests : null;
}
