/**
 * Rule-evaluation benchmark: decide() and matchSegments() on synthetic rule sets of 100, 1k, 10k
 * and 100k segments with 200 campaigns, and the same 1k segments evaluated by json-logic-js and
 * json-rules-engine. Prints a table and writes every figure to bench/results/rules-<date>.json
 * and bench/results/rules-latest.json. Run with `npm run bench:rules`.
 *
 * "warm": the same frozen profile objects come back (a profile cache hit: the cache freezes what it
 * shares), so the compiled rule set's per-profile preparation (the person's keys, id hash) is
 * reused. "cold": every call gets a fresh
 * shallow copy of the profile, as after a store fetch, so the preparation runs every time (the
 * copy itself is part of the figure; its cost alone is the `profile copy` row).
 */

import { availableParallelism, cpus } from 'node:os';
import jsonLogic from 'json-logic-js';
import { Engine } from 'json-rules-engine';
import { do_not_optimize, measure } from 'mitata';
import { type CompiledRuleSet, compileRuleSet } from '../rules/compile.js';
import { decide } from '../rules/decide.js';
import type { DecisionRequest, FrequencyCounters, Profile } from '../rules/types.js';
import { writeResults } from './report.js';
import {
  counters,
  crowds,
  jsonLogicData,
  NOW,
  profiles,
  ruleSet,
  rulesEngineFacts,
  toJsonLogic,
  toRulesEngineRule,
  vocabulary,
} from './synthetic.js';
import { type PerCall, perCall } from './timing.js';

const SIZES = [100, 1_000, 10_000, 100_000];
const CAMPAIGNS = 200;
const POOL = 256;
const PER_CALL_SAMPLES = 20_000;

const ONE: DecisionRequest = { placements: [{ id: 'home-banner', channels: ['display', 'native'] }] };
const TWO: DecisionRequest = {
  placements: [
    { id: 'home-banner', channels: ['display', 'native'] },
    { id: 'push', channels: ['app_push', 'sms', 'email'] },
  ],
};

interface Row {
  name: string;
  kind: 'decide' | 'match' | 'json-logic-js' | 'json-rules-engine' | 'baseline';
  segments: number | null;
  profile: 'warm' | 'cold' | null;
  placements: number | null;
  /** mitata: median of samples, ns (for fast functions a sample is the mean of a batch) */
  medianNs: number;
  /** mitata: 99th percentile of samples, ns */
  p99Ns: number;
  /** one call timed at a time: median and tails, ns (includes the timer's own cost) */
  perCall: PerCall;
  opsPerSec: number;
}

const rows: Row[] = [];

async function bench(
  meta: Omit<Row, 'medianNs' | 'p99Ns' | 'perCall' | 'opsPerSec'>,
  fn: () => unknown,
  samples = PER_CALL_SAMPLES,
): Promise<Row> {
  const stats = await measure(fn);
  const row: Row = {
    ...meta,
    medianNs: stats.p50,
    p99Ns: stats.p99,
    perCall: await perCall(fn, samples),
    opsPerSec: 1e9 / stats.p50,
  };
  rows.push(row);
  console.log(line(row));
  return row;
}

// ---- printing --------------------------------------------------------------------------------

function time(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(0)} ns`;
}
function ops(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M/s`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k/s`;
  return `${n.toFixed(0)} /s`;
}
const HEAD = `${'benchmark'.padEnd(48)}${'median'.padStart(11)}${'p99'.padStart(11)}${'call p50'.padStart(11)}${'call p99'.padStart(11)}${'ops/s'.padStart(12)}`;
function line(r: Row): string {
  return `${r.name.padEnd(48)}${time(r.medianNs).padStart(11)}${time(r.p99Ns).padStart(11)}${time(r.perCall.p50Ns).padStart(11)}${time(r.perCall.p99Ns).padStart(11)}${ops(r.opsPerSec).padStart(12)}`;
}

// ---- workload ----------------------------------------------------------------------------------

interface SizeInfo {
  segments: number;
  campaigns: number;
  compileMs: number;
  /** mean number of segments a person matches */
  meanMatched: number;
  /** share of one-placement requests that are filled */
  fillRate: number;
}

function describeSize(
  compiled: CompiledRuleSet,
  pool: Profile[],
  pc: FrequencyCounters[],
): Omit<SizeInfo, 'compileMs'> {
  let matched = 0;
  let filled = 0;
  pool.forEach((p, i) => {
    matched += compiled.matchSegments(p).length;
    if (decide(compiled, p, pc[i]!, ONE, NOW).decisions[0]!.campaign !== null) filled++;
  });
  return {
    segments: compiled.segments.length,
    campaigns: compiled.campaigns.length,
    meanMatched: matched / pool.length,
    fillRate: filled / pool.length,
  };
}

async function main(): Promise<void> {
  // Frozen, as the cache hands them out: only frozen profiles keep their preparation.
  const pool = profiles(POOL).map((p) => Object.freeze(p));
  const pc = pool.map((_, i) => counters(i, CAMPAIGNS));
  const sizes: SizeInfo[] = [];
  console.log(`node ${process.version}, ${availableParallelism()} cpus (${cpus()[0]?.model ?? 'unknown'})`);
  console.log(
    `workload: ${vocabulary().tags.length} tags, ${CAMPAIGNS} campaigns, ${POOL} people of 30 tags rotating\n`,
  );
  console.log(HEAD);

  let k = 0;
  await bench(
    {
      name: 'profile copy (part of every cold figure)',
      kind: 'baseline',
      segments: null,
      profile: null,
      placements: null,
    },
    () => do_not_optimize({ ...pool[k++ & (POOL - 1)]! }),
  );

  for (const n of SIZES) {
    const t0 = performance.now();
    const compiled = compileRuleSet(ruleSet(n, CAMPAIGNS));
    const compileMs = performance.now() - t0;
    const info = { ...describeSize(compiled, pool, pc), compileMs };
    sizes.push(info);
    const label = n >= 1000 ? `${n / 1000}k` : String(n);
    let i = 0;
    await bench(
      {
        name: `decide ${label} segments, 1 placement, warm`,
        kind: 'decide',
        segments: n,
        profile: 'warm',
        placements: 1,
      },
      () => {
        const j = i++ & (POOL - 1);
        return do_not_optimize(decide(compiled, pool[j]!, pc[j]!, ONE, NOW));
      },
    );
    await bench(
      {
        name: `decide ${label} segments, 1 placement, cold`,
        kind: 'decide',
        segments: n,
        profile: 'cold',
        placements: 1,
      },
      () => {
        const j = i++ & (POOL - 1);
        return do_not_optimize(decide(compiled, { ...pool[j]! }, pc[j]!, ONE, NOW));
      },
    );
    if (n === 1_000) {
      await bench(
        {
          name: `decide ${label} segments, 2 placements, warm`,
          kind: 'decide',
          segments: n,
          profile: 'warm',
          placements: 2,
        },
        () => {
          const j = i++ & (POOL - 1);
          return do_not_optimize(decide(compiled, pool[j]!, pc[j]!, TWO, NOW));
        },
      );
      await bench(
        {
          name: `decide ${label} segments, 2 placements, cold`,
          kind: 'decide',
          segments: n,
          profile: 'cold',
          placements: 2,
        },
        () => {
          const j = i++ & (POOL - 1);
          return do_not_optimize(decide(compiled, { ...pool[j]! }, pc[j]!, TWO, NOW));
        },
      );
      await bench(
        {
          name: `matchSegments ${label}, cold`,
          kind: 'match',
          segments: n,
          profile: 'cold',
          placements: null,
        },
        () => do_not_optimize(compiled.matchSegments({ ...pool[i++ & (POOL - 1)]! })),
      );
    }
    await bench(
      { name: `matchSegments ${label}, warm`, kind: 'match', segments: n, profile: 'warm', placements: null },
      () => do_not_optimize(compiled.matchSegments(pool[i++ & (POOL - 1)]!)),
    );
  }

  // The same 1k crowds in json-logic-js and json-rules-engine, all evaluated for one person.
  const cs = crowds(1_000);
  const logic = cs.map(toJsonLogic);
  const logicData = pool.map(jsonLogicData);
  const evalLogic = (d: Record<string, unknown>): string[] => {
    const out: string[] = [];
    for (let s = 0; s < logic.length; s++) if (jsonLogic.apply(logic[s]!, d) === true) out.push(`seg-${s}`);
    return out;
  };
  const engine = new Engine(
    cs.map((c, s) => toRulesEngineRule(c, `seg-${s}`)),
    { allowUndefinedFacts: true },
  );
  engine.addOperator('startsWithAny', (fact: unknown, prefix: unknown) =>
    Array.isArray(fact) && typeof prefix === 'string'
      ? fact.some((t) => typeof t === 'string' && t.startsWith(prefix))
      : false,
  );
  const facts = pool.map(rulesEngineFacts);
  const evalEngine = async (f: Record<string, unknown>): Promise<string[]> => {
    const r = await engine.run(f);
    return r.events.map((e) => e.type);
  };

  // The three evaluators must agree before their speeds are compared.
  const compiled1k = compileRuleSet(ruleSet(1_000, CAMPAIGNS));
  let agree = 0;
  for (let j = 0; j < POOL; j++) {
    const ours = compiled1k.matchSegments(pool[j]!);
    const a = evalLogic(logicData[j]!);
    const b = (await evalEngine(facts[j]!)).sort((x, y) => Number(x.slice(4)) - Number(y.slice(4)));
    if (JSON.stringify(ours) === JSON.stringify(a) && JSON.stringify(ours) === JSON.stringify(b)) agree++;
  }
  console.log(
    `\n(json-logic-js and json-rules-engine agree with matchSegments on ${agree}/${POOL} people)\n`,
  );
  if (agree !== POOL) throw new Error('the evaluators disagree: the comparison would not be fair');

  let m = 0;
  await bench(
    {
      name: 'json-logic-js 1k segments (one person)',
      kind: 'json-logic-js',
      segments: 1_000,
      profile: null,
      placements: null,
    },
    () => do_not_optimize(evalLogic(logicData[m++ & (POOL - 1)]!)),
    2_000,
  );
  await bench(
    {
      name: 'json-rules-engine 1k segments (one person)',
      kind: 'json-rules-engine',
      segments: 1_000,
      profile: null,
      placements: null,
    },
    () => evalEngine(facts[m++ & (POOL - 1)]!),
    200,
  );

  // ---- ratios and aims ---------------------------------------------------------------------------
  const find = (
    kind: Row['kind'],
    segments: number,
    profile: Row['profile'],
    placements: number | null = 1,
  ) =>
    rows.find(
      (r) =>
        r.kind === kind &&
        r.segments === segments &&
        r.profile === profile &&
        r.placements === (kind === 'decide' ? placements : null),
    )!;
  const d1kWarm = find('decide', 1_000, 'warm');
  const d1kCold = find('decide', 1_000, 'cold');
  const d100kWarm = find('decide', 100_000, 'warm');
  const d100kCold = find('decide', 100_000, 'cold');
  const logicRow = find('json-logic-js', 1_000, null);
  const engineRow = find('json-rules-engine', 1_000, null);
  const round = (x: number) => Math.round(x * 100) / 100;
  const ratios = {
    'decide@100k / decide@1k (cold)': round(d100kCold.medianNs / d1kCold.medianNs),
    'decide@100k / decide@1k (warm)': round(d100kWarm.medianNs / d1kWarm.medianNs),
    'decide@10k / decide@1k (cold)': round(find('decide', 10_000, 'cold').medianNs / d1kCold.medianNs),
    'matchSegments@100k / matchSegments@1k (warm)': round(
      find('match', 100_000, 'warm').medianNs / find('match', 1_000, 'warm').medianNs,
    ),
    'json-logic-js / decide@1k (cold)': round(logicRow.medianNs / d1kCold.medianNs),
    'json-logic-js / decide@1k (warm)': round(logicRow.medianNs / d1kWarm.medianNs),
    'json-rules-engine / decide@1k (cold)': round(engineRow.medianNs / d1kCold.medianNs),
    'json-rules-engine / decide@1k (warm)': round(engineRow.medianNs / d1kWarm.medianNs),
  };
  const aims = [
    {
      aim: 'decide() 1k segments, 200 campaigns, median (cold)',
      target: '< 20 µs',
      measured: time(d1kCold.medianNs),
      met: d1kCold.medianNs < 20_000,
    },
    {
      aim: 'decide() 1k segments, 200 campaigns, median (warm)',
      target: '< 20 µs',
      measured: time(d1kWarm.medianNs),
      met: d1kWarm.medianNs < 20_000,
    },
    {
      aim: 'decide@100k / decide@1k (cold)',
      target: '<= 5',
      measured: String(ratios['decide@100k / decide@1k (cold)']),
      met: ratios['decide@100k / decide@1k (cold)'] <= 5,
    },
    {
      aim: 'decide@100k / decide@1k (warm)',
      target: '<= 5',
      measured: String(ratios['decide@100k / decide@1k (warm)']),
      met: ratios['decide@100k / decide@1k (warm)'] <= 5,
    },
    {
      aim: 'json-logic-js / decide@1k (cold)',
      target: '>= 50',
      measured: String(ratios['json-logic-js / decide@1k (cold)']),
      met: ratios['json-logic-js / decide@1k (cold)'] >= 50,
    },
    {
      aim: 'json-rules-engine / decide@1k (cold)',
      target: '>= 500',
      measured: String(ratios['json-rules-engine / decide@1k (cold)']),
      met: ratios['json-rules-engine / decide@1k (cold)'] >= 500,
    },
  ];

  console.log('\nrule sets');
  for (const s of sizes)
    console.log(
      `  ${String(s.segments).padStart(7)} segments: compiled in ${s.compileMs.toFixed(0)} ms, a person matches ${s.meanMatched.toFixed(1)} on average, ${Math.round(s.fillRate * 100)}% of requests filled`,
    );
  console.log('\nratios (medians)');
  for (const [name, r] of Object.entries(ratios))
    console.log(`  ${name.padEnd(48)}${String(r).padStart(10)}`);
  console.log('\naims');
  for (const a of aims)
    console.log(`  ${a.met ? 'met    ' : 'MISSED '} ${a.aim}: ${a.measured} (aim ${a.target})`);

  const out = {
    workload: {
      tags: vocabulary().tags.length,
      campaigns: CAMPAIGNS,
      people: POOL,
      tagsPerPerson: 30,
      now: new Date(NOW).toISOString(),
      oneplacement: ONE,
      twoPlacements: TWO,
    },
    sizes,
    results: rows,
    ratios,
    aims,
  };
  writeResults('rules', out);
}

await main();
