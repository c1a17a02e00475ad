/**
 * The whole-server load run: `npm run load -- [--quick] [--memory-only] [--openrtb-only]
 * [--no-cluster] [--no-wrk] [--profiles N] [--workers W] [--duration S] [--connections C]`.
 *
 * 1. Starts a private redis-server on a free port and loads N synthetic people (server/demo) with
 *    the pipelined store path (putProfiles), then the same people as JSON strings (for the typical
 *    stack) and, for a sample, as a Redis hash per person and their aliases (each of those two
 *    in a database of its own); bytes per person from INFO memory.
 * 2. Starts the real server (dist/server/main.js), the same server again with a rule set whose
 *    campaigns bid (test/openrtb/ruleset.yaml) for POST /openrtb2/bid, a bare uWebSockets.js
 *    endpoint (the HTTP ceiling), the server's data plane answering a fixed decision (the HTTP
 *    layer and the request's JSON alone) and a typical Node stack (Hono + ioredis +
 *    json-rules-engine), each its own process.
 * 3. Drives each from a separate process (driver.ts, autocannon): per scenario a closed-loop
 *    maximum with fixed connections, then fixed offered rates at fractions of that maximum. Server
 *    CPU per request from /proc/<pid>/stat. redis-benchmark GET is the Redis ceiling; wrk, when
 *    installed, cross-checks the maxima.
 * 3b. Unless `--no-cluster` (or `--openrtb-only`): a local Redis Cluster of 3 masters on this
 *    machine, the same people loaded into it (bytes per person summed over the masters), and the
 *    server on it twice, with its own lean decision reads (routed by slot) and with reads through
 *    ioredis' Cluster client, uniform decisions each: CPU per decision against single Redis in
 *    the same run.
 * 4. Prints one table, the ratios and the aims; writes bench/results/load-<date>.json and
 *    load-latest.json (quick mode: a file under the temp folder). The run exits 1 (in every mode)
 *    when a target did not answer, or when the server answered any request with an error (for
 *    OpenRTB: with anything but 200 or 204). `--openrtb-only` runs the OpenRTB scenarios, the
 *    bare endpoint and the data plane alone only (no decide, typical stack, redis-benchmark or
 *    wrk runs). `--memory-only` runs step 1 and prints the memory per person, nothing else.
 *
 * This file is only the order of those steps. What is run (the scenarios, the targets and what
 * they need) is scenarios.ts; how a run is measured (processes, the driver, CPU, the ceilings)
 * is measure.ts; step 1 is memory.ts (and cluster.ts for 3b); what is printed, checked and
 * written is report.ts; the command line is options.ts.
 */
import {
  degradedCounts,
  NO_REDIS_BENCHMARK,
  type RedisBenchmark,
  Runs,
  redisGetCeiling,
  type WrkRun,
  wrkMaxima,
} from './measure.js';
import { loadPeople } from './memory.js';
import { type Options, options } from './options.js';
import { type RedisHandle, startRedis } from './redis.js';
import {
  aimsOf,
  printMemoryOnly,
  printSummary,
  problemsOf,
  RUN_HEADER,
  ratiosOf,
  redisBenchmarkLine,
  runLine,
  startLine,
  writeResultsFile,
  wrkLine,
} from './report.js';
import {
  driveOnCluster,
  driveOnOneRedis,
  loadOpenrtbPeople,
  type OneRedis,
  scenarioTable,
  startOnOneRedis,
  stopOnOneRedis,
  wrkEndpoints,
} from './scenarios.js';

async function main(): Promise<void> {
  const opt = options(process.argv.slice(2));
  const started = Date.now();
  const log = (s: string) => console.log(s);
  log(startLine(opt));

  // 1. The people, and what they take in Redis.
  const redis = await startRedis();
  log(`redis-server on ${redis.url} (pid ${redis.pid})`);
  const memory = await loadPeople(redis.url, opt.profiles, log);
  if (opt.memoryOnly) {
    printMemoryOnly(memory, log);
    await redis.stop();
    process.exit(0);
  }
  await loadOpenrtbPeople(redis.url, opt.profiles);

  // 2, 3. The targets on one Redis, each driven through the scenarios.
  const table = scenarioTable(opt);
  const oneRedis = await startOnOneRedis(redis, opt.workers, log);
  log(RUN_HEADER);
  const runs = new Runs(
    {
      connections: opt.connections,
      durationS: opt.durationS,
      warmUpS: opt.quick ? 1 : 2,
      fractions: opt.fractions,
    },
    (run) => log(runLine(run)),
  );
  await driveOnOneRedis(runs, oneRedis, table, opt);

  // 3b. The same uniform decisions on a Redis Cluster (started and stopped there).
  const clusterMemory = opt.cluster ? await driveOnCluster(runs, table.uniform, opt, log) : null;

  // 4. The ceilings, and the server's own count of degraded answers; then everything stops.
  const { redisBench, wrkRuns } = ceilings(redis, oneRedis, memory.ours.valueBytes, opt, log);
  const degraded = await degradedCounts(oneRedis.decideAdminPort);
  await stopOnOneRedis(oneRedis);
  await redis.stop();

  // 5. The report.
  const ratios = ratiosOf(runs.all, table, redisBench);
  const aims = opt.openrtbOnly ? [] : aimsOf(ratios, memory, clusterMemory);
  printSummary({ memory, clusterMemory, ratios, aims, degraded }, log);
  const problems = problemsOf(runs.all, opt, redisBench);
  writeResultsFile(
    {
      options: opt,
      answerBytes: oneRedis.answerBytes,
      memory,
      clusterMemory,
      runs: runs.all,
      redisBenchmark: redisBench,
      wrk: wrkRuns,
      serverDegraded: degraded,
      ratios,
      aims,
      problems,
    },
    started,
    log,
  );
  if (problems.length > 0) {
    console.error(`load run: FAILED\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  process.exit(0);
}

/** redis-benchmark GET (not with `--openrtb-only`) and, when installed, wrk; each prints its row. */
function ceilings(
  redis: RedisHandle,
  oneRedis: OneRedis,
  valueBytes: number,
  opt: Options,
  log: (s: string) => void,
): { redisBench: RedisBenchmark; wrkRuns: WrkRun[] } {
  let redisBench = NO_REDIS_BENCHMARK;
  if (!opt.openrtbOnly) {
    redisBench = redisGetCeiling(redis, valueBytes, opt.connections, opt.quick);
    log(redisBenchmarkLine(redisBench));
  }
  const { endpoints, body } = wrkEndpoints(oneRedis);
  const wrkRuns = opt.wrk
    ? wrkMaxima(endpoints, body, opt.connections, opt.durationS, (w) => log(wrkLine(w)))
    : [];
  return { redisBench, wrkRuns };
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
