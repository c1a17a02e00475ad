/**
 * How the load run measures: child processes started and stopped, each run driven from a process
 * of its own (driver.ts) while the target's CPU (and its Redis's) is read from /proc, the Redis
 * and wrk ceilings, and the server's own count of degraded answers. It knows nothing of which
 * scenarios are run (scenarios.ts) nor of how figures are printed (report.ts): a finished run is
 * handed to a callback, so the table can be printed row by row as the runs go. The other load
 * tools (freshness.ts, chaos.ts, compare.ts) take their process helpers from here too.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DriverConfig, DriverResult } from './driver.js';
import { cpuPerRequestUs, cpuSeconds, cpuTimes } from './proc.js';
import { track } from './redis.js';
import type { Scenario, Target } from './scenarios.js';

const here = dirname(fileURLToPath(import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The median of some numbers; null for none. */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// ---- processes ---------------------------------------------------------------------------------

/**
 * Starts `node dist/<script>` with `env` added; its stderr goes to ours, each chunk led by `[name]`.
 * With LOAD_CPU_PROFILE=<dir> in our environment, it runs under V8's CPU profiler and writes its
 * profile (one per thread) into <dir>/<name> when it exits.
 */
export function startNode(script: string, env: Record<string, string>, name: string): ChildProcess {
  const profileDir = process.env.LOAD_CPU_PROFILE;
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, name)}`] : [];
  const child = spawn(process.execPath, [...profile, join(here, '..', script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  track(child);
  child.stderr?.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
  return child;
}

/** Resolves when a POST of `body` (or a GET) answers one of `statuses`, within 30 s. */
export async function waitReady(url: string, body?: string, statuses: number[] = [200]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(
        url,
        body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body },
      );
      await res.arrayBuffer();
      if (statuses.includes(res.status)) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready within 30 s`);
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the child has exited. */
export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// ---- driven runs -------------------------------------------------------------------------------

/** One run of the driver process: its last line of output is the result. */
export function drive(cfg: DriverConfig): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'driver.js'), JSON.stringify(cfg)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    track(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // Bounded: the run's own duration plus a margin.
    const t = setTimeout(() => child.kill('SIGKILL'), (cfg.durationS + 30) * 1000);
    child.once('exit', (code) => {
      clearTimeout(t);
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as DriverResult);
      } catch {
        reject(new Error(`driver exited with ${code} and no result: ${out.slice(-500)}`));
      }
    });
  });
}

/** What is driven: a listening target, its process, and the Redis processes behind it. */
export interface Endpoint {
  target: Target;
  url: string;
  pid: number;
  /** Whose CPU counts as Redis's: none for bare uWS and the data plane alone, every master for a cluster. */
  redisPids: readonly number[];
}

/** One measured run, as the results file keeps it. */
export interface Run {
  target: Target;
  scenario: string;
  /** null: closed loop, as fast as answered */
  offeredRps: number | null;
  /** why this rate: `max`, `25% of max`, or `= decide uniform 50%` */
  mode: string;
  result: DriverResult;
  serverCpuUsPerReq: number | null;
  /**
   * The part of serverCpuUsPerReq spent in the kernel (system time: the sockets' system calls and
   * the network stack); the rest is the process's own code.
   */
  serverKernelUsPerReq: number | null;
  redisCpuUsPerReq: number | null;
}

export interface DriveSettings {
  connections: number;
  durationS: number;
  /** Length of the warm-up run before each series. */
  warmUpS: number;
  /** Offered rates after a closed-loop maximum, as fractions of it. */
  fractions: readonly number[];
}

/** A run's figures: the driver's result and CPU microseconds per request (server, Redis). */
async function driveAndSample(
  endpoint: Endpoint,
  sc: Scenario,
  rate: number | null,
  connections: number,
  durationS: number,
): Promise<Pick<Run, 'result' | 'serverCpuUsPerReq' | 'serverKernelUsPerReq' | 'redisCpuUsPerReq'>> {
  const cfg: DriverConfig = {
    url: endpoint.url,
    connections,
    durationS,
    format: sc.format,
    placements: sc.placements,
    people: sc.people,
    ...(sc.openrtb ? { openrtb: true } : {}),
    ...(rate === null ? {} : { rate: Math.max(1, Math.round(rate)) }),
  };
  const redisCpu = () => endpoint.redisPids.reduce((s, pid) => s + cpuSeconds(pid), 0);
  const c0 = cpuTimes(endpoint.pid);
  const r0 = redisCpu();
  const result = await drive(cfg);
  const c1 = cpuTimes(endpoint.pid);
  const r1 = redisCpu();
  return {
    result,
    serverCpuUsPerReq: cpuPerRequestUs(c0.user + c0.system, c1.user + c1.system, result.requests),
    serverKernelUsPerReq: cpuPerRequestUs(c0.system, c1.system, result.requests),
    redisCpuUsPerReq: endpoint.redisPids.length === 0 ? null : cpuPerRequestUs(r0, r1, result.requests),
  };
}

/** The runs of one load run, in the order they were made; each is handed to `onRun` when done. */
export class Runs {
  readonly all: Run[] = [];

  constructor(
    private readonly settings: DriveSettings,
    private readonly onRun: (run: Run) => void,
  ) {}

  /** One run at a fixed offered rate (null: closed loop), recorded as `mode`. */
  async at(endpoint: Endpoint, sc: Scenario, rate: number | null, mode: string): Promise<Run> {
    const { connections, durationS } = this.settings;
    const figures = await driveAndSample(endpoint, sc, rate, connections, durationS);
    const run: Run = {
      target: endpoint.target,
      scenario: sc.name,
      offeredRps: rate === null ? null : Math.round(rate),
      mode,
      ...figures,
    };
    this.all.push(run);
    this.onRun(run);
    return run;
  }

  /** A warm-up (not recorded), then the closed-loop maximum. */
  async maximum(endpoint: Endpoint, sc: Scenario): Promise<Run> {
    await driveAndSample(endpoint, sc, null, this.settings.connections, this.settings.warmUpS);
    return this.at(endpoint, sc, null, 'max (closed loop)');
  }

  /** A warm-up (not recorded), the closed-loop maximum, then the fractions of it; returns the maximum. */
  async series(endpoint: Endpoint, sc: Scenario): Promise<Run> {
    const max = await this.maximum(endpoint, sc);
    for (const fr of this.settings.fractions)
      await this.at(endpoint, sc, max.result.rps * fr, `${fr * 100}% of max`);
    return max;
  }
}

// ---- ceilings and the server's own figures -----------------------------------------------------

export interface RedisBenchmark {
  requests: number;
  rps: number;
  latencyMs: { avg: number; p50: number; p99: number; max: number };
  redisCpuUsPerReq: number | null;
}

/** What the results file holds when redis-benchmark was not run (`--openrtb-only`). */
export const NO_REDIS_BENCHMARK: RedisBenchmark = {
  requests: 0,
  rps: Number.NaN,
  latencyMs: { avg: 0, p50: 0, p99: 0, max: 0 },
  redisCpuUsPerReq: null,
};

/**
 * The Redis ceiling: redis-benchmark GET of values `valueBytes` long (the size of a stored
 * profile) with the runs' connections, after a SET pass that writes them.
 */
export function redisGetCeiling(
  redis: { port: number; pid: number },
  valueBytes: number,
  connections: number,
  quick: boolean,
): RedisBenchmark {
  const rbRequests = quick ? 50_000 : 1_000_000;
  const rbArgs = [
    '-h',
    '127.0.0.1',
    '-p',
    String(redis.port),
    '-c',
    String(connections),
    '-r',
    '100000',
    '-d',
    String(Math.round(valueBytes)),
    '--csv',
  ];
  execFileSync('redis-benchmark', [...rbArgs, '-t', 'set', '-n', quick ? '20000' : '100000'], {
    stdio: 'ignore',
    timeout: 120_000,
  });
  const rc0 = cpuSeconds(redis.pid);
  const rbOut = execFileSync('redis-benchmark', [...rbArgs, '-t', 'get', '-n', String(rbRequests)], {
    timeout: 120_000,
  }).toString();
  const rc1 = cpuSeconds(redis.pid);
  const rbLine =
    rbOut
      .trim()
      .split('\n')
      .find((l) => l.startsWith('"GET"'))
      ?.replace(/"/g, '')
      .split(',') ?? [];
  return {
    requests: rbRequests,
    rps: Number(rbLine[1]),
    latencyMs: {
      avg: Number(rbLine[2]),
      p50: Number(rbLine[4]),
      p99: Number(rbLine[6]),
      max: Number(rbLine[7]),
    },
    redisCpuUsPerReq: cpuPerRequestUs(rc0, rc1, rbRequests),
  };
}

export interface WrkRun {
  target: Target;
  rps: number;
  p99Ms: number | null;
}

/** wrk's closed-loop maximum of each endpoint, one fixed `body` for all requests. */
export function wrkMaxima(
  endpoints: readonly Endpoint[],
  body: string,
  connections: number,
  durationS: number,
  onRun: (run: WrkRun) => void,
): WrkRun[] {
  const script = join(tmpdir(), `mindshare-wrk-${process.pid}.lua`);
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const runs: WrkRun[] = [];
  for (const { target, url } of endpoints) {
    const out = execFileSync(
      'wrk',
      ['-t1', `-c${connections}`, `-d${durationS}s`, '--latency', '-s', script, url],
      {
        timeout: (durationS + 30) * 1000,
      },
    ).toString();
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
    const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
    const p99Ms =
      p99 === null ? null : Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1);
    const run = { target, rps, p99Ms };
    runs.push(run);
    onRun(run);
  }
  return runs;
}

/** The server's `mindshare_decisions_degraded_total` lines from its admin port; none if unread. */
export async function degradedCounts(adminPort: number): Promise<string[]> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return text.split('\n').filter((l) => l.startsWith('mindshare_decisions_degraded_total'));
  } catch {
    // metrics are context only
    return [];
  }
}
