/**
 * What metrics cost on the hot path: a decision in process (DecisionService on an EmbeddedStore
 * behind a warm CachedStore, the demo rule set) with and without its metrics recorded, the
 * recording calls alone, and prom-client's own labelled children for comparison. Also the cost
 * AsyncLocalStorage would have on a decision that waits for the store (the reason request ids
 * are passed along rather than kept in one), and of one scrape. Prints a table and writes every figure to
 * bench/results/metrics-<date>.json and bench/results/metrics-latest.json.
 * Run with `npm run bench:metrics`.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { do_not_optimize, measure } from 'mitata';
import { Counter, Histogram, Registry } from 'prom-client';
import { DEMO_RULESET } from '../server/config.js';
import type { DecideInput } from '../server/decision/request.js';
import { type DecisionOutcome, DecisionService } from '../server/decision/service.js';
import { demoAliases, demoProfile } from '../server/demo/profiles.js';
import { DECISION_BUCKETS, HotCounter, HotHistogram, Metrics } from '../server/metrics.js';
import { loadRuleSetFile } from '../server/ruleset-file.js';
import { CachedStore } from '../server/store/cached.js';
import { EmbeddedStore } from '../server/store/embedded.js';
import { writeResults } from './report.js';
import { type PerCall, perCall } from './timing.js';

/** 24 November 2026, noon in Shanghai: the demo campaigns are in flight. */
const NOW = Date.parse('2026-11-24T04:00:00.000Z');
const PEOPLE = 1_000;
const POOL = 256;
const PER_CALL_SAMPLES = 20_000;
const ROUNDS = 5;

interface Row {
  name: string;
  /** mitata: median of samples, ns (for fast functions a sample is the mean of a batch) */
  medianNs: number;
  p99Ns: number;
  /** one call timed at a time, ns (includes the timer's own cost, about 100 ns) */
  perCall: PerCall;
}

const rows: Row[] = [];

async function bench(name: string, fn: () => unknown, samples = PER_CALL_SAMPLES): Promise<Row> {
  const stats = await measure(fn);
  const row: Row = { name, medianNs: stats.p50, p99Ns: stats.p99, perCall: await perCall(fn, samples) };
  rows.push(row);
  console.log(line(row));
  return row;
}

function time(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(1)} ns`;
}
const HEAD = `${'benchmark'.padEnd(70)}${'median'.padStart(11)}${'p99'.padStart(11)}${'call p50'.padStart(11)}${'call p99'.padStart(11)}`;
function line(r: Row): string {
  return `${r.name.padEnd(70)}${time(r.medianNs).padStart(11)}${time(r.p99Ns).padStart(11)}${time(r.perCall.p50Ns).padStart(11)}${time(r.perCall.p99Ns).padStart(11)}`;
}

async function main(): Promise<void> {
  // ---- workload: the demo rule set, demo people in the embedded store, a warm cache ---------------
  const backing = new EmbeddedStore();
  const profiles = [];
  for (let i = 0; i < PEOPLE; i++) profiles.push(demoProfile(i));
  await backing.putProfiles(profiles);
  for (let i = 0; i < PEOPLE; i++) await backing.linkAliases(`p-${i}`, demoAliases(i));
  const cache = new CachedStore(backing, { maxPeople: 100_000, maxAliases: 100_000, ttlMs: 3_600_000 });
  const active = loadRuleSetFile(DEMO_RULESET, 1, NOW);
  const service = new DecisionService(cache, active, { deadlineMs: 10, now: () => NOW });
  const inputs: DecideInput[] = [];
  for (let i = 0; i < POOL; i++) {
    inputs.push({
      user: { kind: 'id', id: `p-${(i * 37) % PEOPLE}` },
      placements: [
        { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] },
        { id: 'daily-push', channels: ['app_push', 'sms', 'email'] },
      ],
      contextTags: undefined,
      explain: false,
      deadlineMs: undefined,
    });
  }
  // Warm the cache: every later decision of the pool is answered synchronously.
  for (const input of inputs) await service.decide(input);
  const outcomes = inputs.map((input) => {
    const o = service.decide(input);
    if (o instanceof Promise) throw new Error('the cache is not warm');
    return o;
  });
  const filled = outcomes.filter((o) => o.output.decisions.some((d) => d.campaign !== null)).length;

  const metrics = new Metrics();
  let k = 0;

  const decideOnly = () => {
    const o = service.decide(inputs[k++ & (POOL - 1)]!) as DecisionOutcome;
    return do_not_optimize(o);
  };
  const decideRecorded = () => {
    const t0 = performance.now();
    const o = service.decide(inputs[k++ & (POOL - 1)]!) as DecisionOutcome;
    metrics.decision(o, 200, performance.now() - t0, null);
    return do_not_optimize(o);
  };
  console.log(HEAD);
  // Without and with, in alternating rounds (the machine's state drifts; one round each would
  // mostly measure which ran first); each row is the round with the median median.
  const baseRounds: Row[] = [];
  const withRounds: Row[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    baseRounds.push(await bench(`decide, warm cache, no metrics (round ${round})`, decideOnly, 5_000));
    withRounds.push(
      await bench(`decide, warm cache, timed + recorded (round ${round})`, decideRecorded, 5_000),
    );
  }
  const middle = (rs: Row[]) => [...rs].sort((x, y) => x.medianNs - y.medianNs)[Math.floor(rs.length / 2)]!;
  const base = middle(baseRounds);
  const withMetrics = middle(withRounds);
  const recordOnly = await bench('metrics.decision() alone (2 placements)', () =>
    do_not_optimize(metrics.decision(outcomes[k++ & (POOL - 1)]!, 200, 0.05, null)),
  );
  await bench('performance.now() twice', () => do_not_optimize(performance.now() - performance.now()));

  const hot = new HotHistogram({ route: '/v1/decide', outcome: 'filled' }, DECISION_BUCKETS);
  const hotCounter = new HotCounter({ listener: 'data' });
  let v = 0;
  const hotObserve = await bench('HotHistogram.observe()', () => {
    hot.observe(0.0001 + (v++ & 7) * 0.00002);
  });
  const hotInc = await bench('HotCounter.inc()', () => {
    hotCounter.inc();
  });

  // prom-client's own children, bound once: what the hot path would pay going through them.
  const registry = new Registry();
  const promHistogram = new Histogram({
    name: 'bench_decision_duration_seconds',
    help: 'bench',
    labelNames: ['route', 'outcome'],
    buckets: [...DECISION_BUCKETS],
    registers: [registry],
  }).labels('/v1/decide', 'filled');
  const promCounter = new Counter({
    name: 'bench_requests_total',
    help: 'bench',
    labelNames: ['listener', 'route', 'status'],
    registers: [registry],
  }).labels('data', '/v1/decide', '200');
  const promObserve = await bench('prom-client histogram child .observe()', () => {
    promHistogram.observe(0.0001 + (v++ & 7) * 0.00002);
  });
  const promInc = await bench('prom-client counter child .inc()', () => {
    promCounter.inc();
  });

  await bench('GET /metrics body (metrics.exposition())', () => metrics.exposition(), 2_000);

  // ---- a decision that waits for the store (promises), before and after AsyncLocalStorage ---------
  const uncached = new DecisionService(backing, active, { deadlineMs: 10, now: () => NOW });
  const slow = () => uncached.decide(inputs[k++ & (POOL - 1)]!);
  const slowRounds = async (label: string) => {
    const rs: Row[] = [];
    for (let round = 1; round <= 3; round++) {
      rs.push(await bench(`decide, store read (promise path), ${label} (round ${round})`, slow, 5_000));
    }
    return middle(rs);
  };
  const slowBase = await slowRounds('no AsyncLocalStorage');
  const als = new AsyncLocalStorage<{ requestId: string }>();
  als.run({ requestId: 'bench' }, () => {}); // from now on async hooks track every promise
  const slowAls = await slowRounds('AsyncLocalStorage on');
  const warmAls = middle([
    await bench('decide, warm cache, AsyncLocalStorage on (round 1)', decideOnly, 5_000),
    await bench('decide, warm cache, AsyncLocalStorage on (round 2)', decideOnly, 5_000),
    await bench('decide, warm cache, AsyncLocalStorage on (round 3)', decideOnly, 5_000),
  ]);
  als.disable();

  // ---- summary ----------------------------------------------------------------------------------
  const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
  const summary = {
    'decide, no metrics, median of rounds, ns': round(base.medianNs, 1),
    'decide, timed + recorded, median of rounds, ns': round(withMetrics.medianNs, 1),
    'decide + metrics / decide (median ratio)': round(withMetrics.medianNs / base.medianNs),
    'added per request, ns (median difference)': round(withMetrics.medianNs - base.medianNs, 1),
    'metrics.decision() alone, ns': round(recordOnly.medianNs, 1),
    'added per request by recording alone (the data plane already times requests), %': round(
      (100 * recordOnly.medianNs) / base.medianNs,
      2,
    ),
    'prom-client child observe / HotHistogram.observe': round(promObserve.medianNs / hotObserve.medianNs, 1),
    'prom-client child inc / HotCounter.inc': round(promInc.medianNs / hotInc.medianNs, 1),
    'AsyncLocalStorage on / off, decision waiting for the store': round(slowAls.medianNs / slowBase.medianNs),
    'AsyncLocalStorage on / off, decision from the warm cache': round(warmAls.medianNs / base.medianNs),
  };
  console.log(
    `\nworkload: demo rule set (${active.compiled.segments.length} segments, ${active.compiled.campaigns.length} campaigns), ${PEOPLE} people, ${POOL} requests of 2 placements in rotation, ${filled} of them filled`,
  );
  console.log('\nsummary');
  for (const [name, r] of Object.entries(summary))
    console.log(`  ${name.padEnd(86)}${String(r).padStart(10)}`);

  const out = {
    workload: {
      ruleset: 'rules/examples/demo.yaml',
      segments: active.compiled.segments.length,
      campaigns: active.compiled.campaigns.length,
      people: PEOPLE,
      requests: POOL,
      placementsPerRequest: 2,
      filledRequests: filled,
    },
    rows,
    summary,
  };
  writeResults('metrics', out);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
