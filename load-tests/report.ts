/**
 * What the load run makes of its runs: the table rows (printed as the runs go), the memory table,
 * the ratios between targets, the aims and whether they were met, the checks that fail a run, and
 * the results file. Every line and every field here is read by someone else (bench/README.md
 * quotes the table, CI reads the exit status, past results files are compared with new ones), so
 * formats change here only on purpose.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeResults } from '../bench/report.js';
import type { ClusterMemory } from './cluster.js';
import type { DriverResult } from './driver.js';
import { median, type RedisBenchmark, type Run, type WrkRun } from './measure.js';
import type { Memory } from './memory.js';
import type { Options } from './options.js';
import { type ScenarioTable, type Target, targetsDriven } from './scenarios.js';

type Log = (s: string) => void;

/** The aim on our layout's bytes per person in Redis, and on the cluster's. */
const BYTES_PER_PERSON_AIM = 150;

/** Share of the answers that were 200 (a bid) among 200 and 204 (no bid). */
function bidShare(r: DriverResult): number {
  const bid = r.statuses['200'] ?? 0;
  const noBid = r.statuses['204'] ?? 0;
  return bid + noBid === 0 ? 0 : bid / (bid + noBid);
}

// ---- the table, row by row ---------------------------------------------------------------------

export function startLine(opt: Options): string {
  return `load run${opt.quick ? ' (quick)' : ''}: ${opt.profiles} people, ${opt.workers} worker(s), ${opt.connections} connections, ${opt.durationS} s runs, ${availableParallelism()} cpus`;
}

export const RUN_HEADER = `${'target'.padEnd(14)}${'scenario'.padEnd(28)}${'load'.padEnd(25)}${'req/s'.padStart(9)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'p99.9'.padStart(8)}${'err'.padStart(6)}${'cpu µs/req'.padStart(11)}${'kernel'.padStart(8)}${'redis µs'.padStart(9)}`;

export function runLine(run: Run): string {
  const { target, result } = run;
  const f = (x: number | null, d = 1) => (x === null ? '-' : x.toFixed(d));
  return `${target.padEnd(14)}${run.scenario.slice(0, 27).padEnd(28)}${run.mode.slice(0, 24).padEnd(25)}${Math.round(result.rps).toString().padStart(9)}${f(result.latencyMs.p50, 2).padStart(8)}${f(result.latencyMs.p99, 2).padStart(8)}${f(result.latencyMs.p999, 2).padStart(8)}${String(result.errors + result.non2xx + result.timeouts).padStart(6)}${f(run.serverCpuUsPerReq).padStart(11)}${f(run.serverKernelUsPerReq).padStart(8)}${f(run.redisCpuUsPerReq).padStart(9)}${target === 'openrtb' ? `  bid ${(bidShare(result) * 100).toFixed(0)}%` : ''}`;
}

export function redisBenchmarkLine(bench: RedisBenchmark): string {
  return `${'redis GET'.padEnd(14)}${'redis-benchmark'.padEnd(28)}${'max (closed loop)'.padEnd(25)}${Math.round(bench.rps).toString().padStart(9)}${bench.latencyMs.p50.toFixed(2).padStart(8)}${bench.latencyMs.p99.toFixed(2).padStart(8)}${'-'.padStart(8)}${'-'.padStart(6)}${'-'.padStart(11)}${'-'.padStart(8)}${(bench.redisCpuUsPerReq ?? 0).toFixed(1).padStart(9)}`;
}

export function wrkLine(run: WrkRun): string {
  return `${`wrk ${run.target}`.padEnd(42)}${'max, one person'.padEnd(25)}${Math.round(run.rps).toString().padStart(9)}${'-'.padStart(8)}${(run.p99Ms ?? 0).toFixed(2).padStart(8)}`;
}

// ---- memory ------------------------------------------------------------------------------------

function printMemory(memory: Memory, log: Log): void {
  const { ours, json, hash, aliases, counters } = memory;
  const row = (label: string, bytes: number, detail: string) =>
    log(`  ${label.padEnd(64)}${bytes.toFixed(0).padStart(6)}  ${detail}`);
  log(
    `\nmemory in Redis, bytes per person (INFO used_memory deltas; MEMORY USAGE and STRLEN of 200 sampled keys)`,
  );
  row(
    `ours, ${memory.people} people: p:{pid}, dictionary, funnel counts`,
    ours.bytesPerPerson,
    `${ours.profileKeyBytes.toFixed(0)} per key, ${ours.valueBytes.toFixed(1)} bytes of value; dictionary: ${ours.dictionary.strings} strings, ${ours.dictionary.bytes} bytes`,
  );
  row(
    `JSON string per person, ${memory.people} people`,
    json.bytesPerPerson,
    `${json.keyBytes.toFixed(0)} per key`,
  );
  row(
    `Redis hash per person, ${hash.people} people`,
    hash.bytesPerPerson,
    `${hash.keyBytes.toFixed(0)} per key`,
  );
  row(
    `aliases, ${aliases.aliasesPerPerson.toFixed(2)} per person, ${aliases.people} people`,
    aliases.bytesPerPerson,
    `${aliases.bytesPerAlias.toFixed(0)} per alias`,
  );
  row(
    `frequency counters, 5 impressions in 2 campaigns, ${counters.people} people`,
    counters.bytesPerPerson,
    '',
  );
}

/** `--memory-only`: the memory table and its one aim. */
export function printMemoryOnly(memory: Memory, log: Log): void {
  printMemory(memory, log);
  const met = memory.ours.bytesPerPerson <= BYTES_PER_PERSON_AIM;
  log(
    `\naim: ${met ? 'met' : 'MISSED'}: <= 150 bytes per person in Redis: ${memory.ours.bytesPerPerson.toFixed(1)}`,
  );
}

// ---- ratios and aims ---------------------------------------------------------------------------

const MAX = 'max (closed loop)';

const div = (a: number | null | undefined, c: number | null | undefined) =>
  a === null || a === undefined || c === null || c === undefined || c === 0 ? null : a / c;

/** Each figure against its reference (null when either side was not run). */
export function ratiosOf(runs: readonly Run[], table: ScenarioTable, redisBench: RedisBenchmark) {
  const { hot, uniform, ortbUniform } = table;
  const find = (target: Target, scenario: string, mode: string) =>
    runs.find((r) => r.target === target && r.scenario === scenario && r.mode === mode);
  const dU = find('decide', uniform.name, MAX);
  const dH = find('decide', hot.name, MAX);
  const b = find('bare-uws', hot.name, MAX);
  const plane = find('data plane', hot.name, MAX);
  const tU = find('typical-stack', uniform.name, MAX);
  const tH = find('typical-stack', hot.name, MAX);
  // Every run at the same rate (the 50% row and the repeats), for the median p99.
  const sameRate = (target: Target, scenario: string, mode: string) =>
    runs.filter(
      (r) =>
        r.target === target && r.scenario === scenario && (r.mode === mode || r.mode.startsWith(`${mode} #`)),
    );
  const medianP99 = (rs: Run[]) => median(rs.map((x) => x.result.latencyMs.p99));
  const dU50runs = sameRate('decide', uniform.name, '50% of max');
  const bU50runs = sameRate('bare-uws', hot.name, '= decide uniform 50%');
  const dH50 = find('decide', hot.name, '50% of max');
  const bH50 = find('bare-uws', hot.name, '= decide hot 50%');
  const oH = find('openrtb', table.openrtb[0]!.name, MAX);
  const oU = find('openrtb', ortbUniform.name, MAX);
  const oU50 = find('openrtb', ortbUniform.name, '50% of max');
  const bO50 = find('bare-uws', hot.name, '= openrtb uniform 50%');
  const oHot = table.openrtb.length > 1 ? oH : undefined;
  const cU = find('decide cluster', uniform.name, MAX);
  const ciU = find('decide cluster ioredis', uniform.name, MAX);
  return {
    'decide uniform / bare uWS, throughput': div(dU?.result.rps, b?.result.rps),
    'decide hot / bare uWS, throughput': div(dH?.result.rps, b?.result.rps),
    'decide uniform / bare uWS, CPU per request': div(dU?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'decide hot / bare uWS, CPU per request': div(dH?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'decide uniform / typical stack uniform, throughput': div(dU?.result.rps, tU?.result.rps),
    'decide hot / typical stack hot, throughput': div(dH?.result.rps, tH?.result.rps),
    'decide uniform / typical stack uniform, CPU per request': div(
      dU?.serverCpuUsPerReq,
      tU?.serverCpuUsPerReq,
    ),
    'decide hot / typical stack hot, CPU per request': div(dH?.serverCpuUsPerReq, tH?.serverCpuUsPerReq),
    'decide uniform p99 / bare uWS p99, same offered rate (50% of decide max), medians of the repeats': div(
      medianP99(dU50runs),
      medianP99(bU50runs),
    ),
    'decide hot p99 / bare uWS p99, same offered rate (50% of decide max)': div(
      dH50?.result.latencyMs.p99,
      bH50?.result.latencyMs.p99,
    ),
    'openrtb uniform / bare uWS, throughput': div(oU?.result.rps, b?.result.rps),
    'openrtb hot / bare uWS, throughput': div(oHot?.result.rps, b?.result.rps),
    'openrtb uniform / bare uWS, CPU per request': div(oU?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'openrtb hot / bare uWS, CPU per request': div(oHot?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'openrtb uniform p99 / bare uWS p99, same offered rate (50% of openrtb max)': div(
      oU50?.result.latencyMs.p99,
      bO50?.result.latencyMs.p99,
    ),
    'data plane alone (a fixed decision) / bare uWS, CPU per request': div(
      plane?.serverCpuUsPerReq,
      b?.serverCpuUsPerReq,
    ),
    'decide hot / data plane alone, CPU per request': div(dH?.serverCpuUsPerReq, plane?.serverCpuUsPerReq),
    'openrtb uniform / data plane alone, CPU per request': div(
      oU?.serverCpuUsPerReq,
      plane?.serverCpuUsPerReq,
    ),
    'openrtb uniform / decide uniform, throughput': div(oU?.result.rps, dU?.result.rps),
    'openrtb uniform / decide uniform, CPU per request': div(oU?.serverCpuUsPerReq, dU?.serverCpuUsPerReq),
    'decide uniform / Redis GET (redis-benchmark), throughput': div(dU?.result.rps, redisBench.rps),
    'decide uniform on a 3-master cluster / on one Redis, CPU per request': div(
      cU?.serverCpuUsPerReq,
      dU?.serverCpuUsPerReq,
    ),
    'decide uniform on the cluster through ioredis / through lean reads, CPU per request': div(
      ciU?.serverCpuUsPerReq,
      cU?.serverCpuUsPerReq,
    ),
    'decide uniform on the cluster / on one Redis, throughput': div(cU?.result.rps, dU?.result.rps),
    'decide uniform on the cluster, Redis CPU per request (all masters) / one Redis': div(
      cU?.redisCpuUsPerReq,
      dU?.redisCpuUsPerReq,
    ),
  };
}

export type Ratios = ReturnType<typeof ratiosOf>;

export interface Aim {
  aim: string;
  measured: number;
  met: boolean;
}

/** The aims of decide on one Redis, and on the cluster when it was run. */
export function aimsOf(ratios: Ratios, memory: Memory, clusterMemory: ClusterMemory | null): Aim[] {
  const r = (k: keyof Ratios) => ratios[k] ?? Number.NaN;
  const decideAims = [
    {
      aim: 'uniform decisions throughput >= 40% of bare uWS',
      measured: r('decide uniform / bare uWS, throughput'),
      met: r('decide uniform / bare uWS, throughput') >= 0.4,
    },
    {
      aim: 'uniform decisions throughput >= 3x the typical stack',
      measured: r('decide uniform / typical stack uniform, throughput'),
      met: r('decide uniform / typical stack uniform, throughput') >= 3,
    },
    {
      aim: 'CPU per uniform decision <= 2.5x bare uWS CPU per request',
      measured: r('decide uniform / bare uWS, CPU per request'),
      met: r('decide uniform / bare uWS, CPU per request') <= 2.5,
    },
    {
      aim: "CPU per uniform decision <= 1/4 of the typical stack's",
      measured: r('decide uniform / typical stack uniform, CPU per request'),
      met: r('decide uniform / typical stack uniform, CPU per request') <= 0.25,
    },
    {
      aim: 'p99 at 50% of max (uniform) <= 2x bare uWS p99 at the same offered rate',
      measured: r(
        'decide uniform p99 / bare uWS p99, same offered rate (50% of decide max), medians of the repeats',
      ),
      met:
        r(
          'decide uniform p99 / bare uWS p99, same offered rate (50% of decide max), medians of the repeats',
        ) <= 2,
    },
    {
      aim: '<= 150 bytes per person in Redis (profile and stages)',
      measured: memory.ours.bytesPerPerson,
      met: memory.ours.bytesPerPerson <= BYTES_PER_PERSON_AIM,
    },
  ];
  const clusterAims =
    clusterMemory === null
      ? []
      : [
          {
            aim: 'CPU per uniform decision on a 3-master cluster <= 1.2x on one Redis (same run)',
            measured: r('decide uniform on a 3-master cluster / on one Redis, CPU per request'),
            met: r('decide uniform on a 3-master cluster / on one Redis, CPU per request') <= 1.2,
          },
          {
            aim: '<= 150 bytes per person on the cluster (summed over the masters)',
            measured: clusterMemory.bytesPerPerson,
            met: clusterMemory.bytesPerPerson <= BYTES_PER_PERSON_AIM,
          },
        ];
  return [...decideAims, ...clusterAims];
}

/** After the table: memory, the cluster's memory, the ratios, the aims, the server's degraded counts. */
export function printSummary(
  s: {
    memory: Memory;
    clusterMemory: ClusterMemory | null;
    ratios: Ratios;
    aims: readonly Aim[];
    degraded: readonly string[];
  },
  log: Log,
): void {
  printMemory(s.memory, log);
  if (s.clusterMemory !== null)
    log(
      `  on the 3-master cluster: ${s.clusterMemory.bytesPerPerson.toFixed(1)} bytes per person (${s.clusterMemory.people} people in ${s.clusterMemory.loadS.toFixed(1)} s)`,
    );
  log('\nratios');
  for (const [k, v] of Object.entries(s.ratios))
    log(`  ${k.padEnd(76)}${v === null ? '-' : v.toFixed(2).padStart(8)}`);
  log('\naims');
  for (const a of s.aims) log(`  ${a.met ? 'met    ' : 'MISSED '} ${a.aim}: ${a.measured.toFixed(2)}`);
  if (s.degraded.length > 0) log(`\nserver: ${s.degraded.join('; ')}`);
}

// ---- checks (every mode) and the results file --------------------------------------------------

/**
 * What fails a run, whatever the figures: a target that answered nothing, a decision answered
 * with an error, an OpenRTB answer other than 200 or 204 (or no bid at all), no Redis ceiling.
 */
export function problemsOf(
  runs: readonly Run[],
  opt: Pick<Options, 'openrtbOnly' | 'cluster'>,
  redisBench: RedisBenchmark,
): string[] {
  const problems: string[] = [];
  for (const target of targetsDriven(opt)) {
    if (!runs.some((x) => x.target === target && x.result.requests > 0))
      problems.push(`${target} answered no request`);
  }
  for (const x of runs.filter((x) => x.target.startsWith('decide'))) {
    const bad = x.result.errors + x.result.non2xx + x.result.timeouts;
    if (x.result.requests === 0 || bad > 0)
      problems.push(`decide ${x.scenario} ${x.mode}: ${x.result.requests} requests, ${bad} errors`);
  }
  for (const x of runs.filter((x) => x.target === 'openrtb')) {
    const bad = x.result.errors + x.result.non2xx + x.result.timeouts;
    const other = Object.entries(x.result.statuses)
      .filter(([code, n]) => code !== '200' && code !== '204' && n > 0)
      .map(([code, n]) => `${n} x ${code}`);
    if (x.result.requests === 0 || bad > 0 || other.length > 0)
      problems.push(
        `openrtb ${x.scenario} ${x.mode}: ${x.result.requests} requests, ${bad} errors${other.length > 0 ? `, ${other.join(', ')}` : ''}`,
      );
    // Three requests in four carry a category a campaign bids on: no bid at all is a set-up fault.
    if (x.result.requests > 0 && bidShare(x.result) === 0)
      problems.push(`openrtb ${x.scenario} ${x.mode}: no bids at all (is the OpenRTB rule set active?)`);
  }
  if (!opt.openrtbOnly && !(redisBench.rps > 0)) problems.push('redis-benchmark reported no throughput');
  return problems;
}

/** Everything the results file holds but the machine's description and the elapsed time. */
export interface Results {
  options: Options;
  answerBytes: number;
  memory: Memory;
  clusterMemory: ClusterMemory | null;
  runs: readonly Run[];
  redisBenchmark: RedisBenchmark;
  wrk: readonly WrkRun[];
  serverDegraded: readonly string[];
  ratios: Ratios;
  aims: readonly Aim[];
  problems: readonly string[];
}

/**
 * Writes the results: bench/results/load-<date>.json and load-latest.json (load-openrtb-… with
 * `--openrtb-only`), or in quick mode one file under the temp folder; then the elapsed time.
 */
export function writeResultsFile(r: Results, startedMs: number, log: Log): void {
  const opt = r.options;
  const date = new Date();
  const out = {
    date: date.toISOString(),
    quick: opt.quick,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? null,
    options: opt,
    answerBytes: r.answerBytes,
    memory: r.memory,
    clusterMemory: r.clusterMemory,
    runs: r.runs,
    redisBenchmark: r.redisBenchmark,
    wrk: r.wrk,
    serverDegraded: r.serverDegraded,
    ratios: r.ratios,
    aims: r.aims,
    problems: r.problems,
    elapsedS: (Date.now() - startedMs) / 1000,
  };
  const json = `${JSON.stringify(out, null, 2)}\n`;
  if (opt.quick) {
    const file = join(tmpdir(), 'mindshare-load-quick.json');
    writeFileSync(file, json);
    log(`\nwrote ${file}`);
  } else {
    writeResults(opt.openrtbOnly ? 'load-openrtb' : 'load', out);
  }
  log(`elapsed ${out.elapsedS.toFixed(0)} s`);
}
