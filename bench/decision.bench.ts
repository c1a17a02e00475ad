/**
 * A whole decision in process, as the data plane makes it after parsing the body:
 * DecisionService with the demo rule set, on a warm cache (CachedStore hit: synchronous) and on a
 * cache miss (the same service straight over an EmbeddedStore: a store read, the profile decoded,
 * the deadline timer armed). No HTTP, no Redis. Prints a table and writes the figures to
 * bench/results/decision-<date>.json and decision-latest.json. Run with `npm run bench:decision`.
 */
import { do_not_optimize } from 'mitata';
import { compileRuleSet } from '../rules/compile.js';
import { DEMO_RULESET } from '../server/config.js';
import { BudgetGate } from '../server/decision/budgets.js';
import { checkDecideRequest, type DecideInput } from '../server/decision/request.js';
import { type DecisionOutcome, DecisionService } from '../server/decision/service.js';
import { demoProfile } from '../server/demo/profiles.js';
import { loadRuleSetFile } from '../server/ruleset-file.js';
import { CachedStore } from '../server/store/cached.js';
import { EmbeddedStore } from '../server/store/embedded.js';
import { bench, HEAD, printRatios, type Row, writeResults } from './report.js';

/** 24 November 2026, noon in Shanghai: the demo campaigns are in flight. */
const NOW = Date.parse('2026-11-24T04:00:00.000Z');
const PEOPLE = 1_000;
const POOL = 256;

const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };
const PUSH = { id: 'daily-push', channels: ['app_push', 'sms', 'email'] };

function inputs(placements: unknown[]): DecideInput[] {
  return Array.from({ length: POOL }, (_, i) => checkDecideRequest({ user: { id: `p-${i}` }, placements }));
}

async function main(): Promise<void> {
  const backing = new EmbeddedStore({ now: () => NOW });
  for (let i = 0; i < PEOPLE; i++) await backing.putProfile(demoProfile(i));
  const active = loadRuleSetFile(DEMO_RULESET, 1, NOW);
  const cache = new CachedStore(backing, { maxPeople: 100_000, maxAliases: 100_000, ttlMs: 3_600_000 });
  const warm = new DecisionService(cache, active, { deadlineMs: 10, now: () => NOW });
  const cold = new DecisionService(backing, active, { deadlineMs: 10, now: () => NOW });
  // The same rule set with a budget on every campaign (room for all the bench's decisions): what
  // the budget checks and takes cost a decision.
  const definition = active.definition!;
  const budgeted = {
    ...active,
    compiled: compileRuleSet({
      ...definition,
      campaigns: definition.campaigns.map((c) => ({
        ...c,
        budget: { daily: 1e9, unit: 'impressions' as const, pacing: 'asap' as const },
      })),
    }),
  };
  const gate = new BudgetGate(new EmbeddedStore({ now: () => NOW }), { now: () => NOW, timer: false });
  const paced = new DecisionService(cache, budgeted, { deadlineMs: 10, now: () => NOW, budgets: gate });
  const one = inputs([BANNER]);
  const two = inputs([BANNER, PUSH]);
  for (const input of one) await warm.decide(input);
  let filled = 0;
  for (const input of one) if ((await warm.decide(input)).output.decisions[0]?.campaign != null) filled++;
  // Demand first (refused), then a lease as large as the room: every decision below has room.
  await gate.tick();
  for (let i = 0; i < 200_000; i++) paced.decide(one[i & 255]!);
  await gate.tick();
  let pacedFilled = 0;
  for (const input of one)
    if ((await paced.decide(input)).output.decisions[0]?.campaign != null) pacedFilled++;
  if (pacedFilled !== filled)
    throw new Error(`budgeted: ${pacedFilled} filled, not ${filled}: a lease ran out`);

  console.log(
    `demo rule set, ${PEOPLE} people in an EmbeddedStore, ${POOL} rotating; ${filled}/${POOL} banner requests filled\n`,
  );
  console.log(HEAD);
  const rows: Row[] = [];
  let k = 0;
  const sync = (o: DecisionOutcome | Promise<DecisionOutcome>) => {
    if (o instanceof Promise) throw new Error('a warm decision waited for the store');
    return do_not_optimize(o);
  };
  rows.push(await bench('decide, warm cache, 1 placement', () => sync(warm.decide(one[k++ & 255]!))));
  rows.push(await bench('decide, warm cache, 2 placements', () => sync(warm.decide(two[k++ & 255]!))));
  rows.push(await bench('decide, cache miss (store read), 1 placement', () => cold.decide(one[k++ & 255]!)));
  rows.push(
    await bench('decide, warm cache, 1 placement, every campaign budgeted', () =>
      sync(paced.decide(one[k++ & 255]!)),
    ),
  );
  rows.push(await bench('decide, cache miss (store read), 2 placements', () => cold.decide(two[k++ & 255]!)));
  const ratios = {
    'miss / warm (1 placement)': rows[2]!.medianNs / rows[0]!.medianNs,
    '2 placements / 1 (warm)': rows[1]!.medianNs / rows[0]!.medianNs,
    'budgeted / not (warm, 1 placement)': rows[3]!.medianNs / rows[0]!.medianNs,
  };
  printRatios(ratios);
  writeResults('decision', {
    workload: { people: PEOPLE, pool: POOL, ruleSet: 'rules/examples/demo.yaml', filled },
    results: rows,
    ratios,
  });
}

await main();
