import { describe, expect, it } from 'vitest';
import { BUDGET_SCALE, compileRuleSet } from '../../rules/compile.js';
import type { Campaign, RuleSet } from '../../rules/types.js';
import { EmbeddedStore } from '../store/embedded.js';
import type { BudgetGrant, BudgetReport, BudgetStore } from '../store/types.js';
import { BudgetGate, budgetLineReport, curveOf } from './budgets.js';
import { DecisionService } from './service.js';

const T0 = Date.parse('2026-12-01T06:00:00Z');
const LEASE = 1000;

function ruleSet(...campaigns: Campaign[]): RuleSet {
  return { funnel: ['aware', 'buy'], segments: [], campaigns };
}

const capped = (id: string, budget: Campaign['budget'], extra: Partial<Campaign> = {}): Campaign => ({
  id,
  brand: 'b',
  budget,
  creatives: [{ id: `${id}-cr`, message: 'brand' }],
  ...extra,
});

function fleet(n: number, store: BudgetStore, clock: { now: number }): BudgetGate[] {
  return Array.from(
    { length: n },
    () => new BudgetGate(store, { now: () => clock.now, leaseMs: LEASE, settleMs: 10 * LEASE, timer: false }),
  );
}

/** One decision for person `id` on the one display placement. */
function decideFor(service: DecisionService, id: string, explain = false) {
  return service.decide({
    user: { kind: 'id', id },
    placements: [{ id: 'slot', channels: ['display'], formats: undefined }],
    contextTags: undefined,
    explain,
    deadlineMs: undefined,
  });
}

/** Whether a decision for person `id` fills the placement with campaign `ten`. */
async function fillsTen(service: DecisionService, id: string): Promise<boolean> {
  return (await decideFor(service, id)).output.decisions[0]?.campaign === 'ten';
}

/** Decides for one person after another until the campaign is refused; how many it filled. */
async function fillUntilRefused(service: DecisionService, limit = 1000): Promise<number> {
  let filled = 0;
  while (filled < limit && (await fillsTen(service, `p-${filled}`))) filled++;
  return filled;
}

describe('BudgetGate', () => {
  it('lets a fleet decide a budget once: two gates share ten impressions', async () => {
    const clock = { now: T0 };
    const store = new EmbeddedStore({ now: () => clock.now });
    const rs = compileRuleSet(ruleSet(capped('ten', { daily: 10, pacing: 'asap' })));
    const [a, b] = fleet(2, store, clock);
    const active = { version: 1, checksum: 'x', compiled: rs, activatedAt: T0 };
    const sa = new DecisionService(store, active, { deadlineMs: 50, budgets: a! });
    const sb = new DecisionService(store, active, { deadlineMs: 50, budgets: b! });
    for (const id of Array.from({ length: 40 }, (_, i) => `p-${i}`)) await store.putProfile({ id, tags: [] });
    let total = 0;
    for (let round = 0; round < 6; round++) {
      clock.now += LEASE;
      await Promise.all([a!.tick(), b!.tick()]);
      total += (await fillUntilRefused(sa)) + (await fillUntilRefused(sb));
    }
    expect(total).toBe(10);
    // Refused with its reason, and the next campaign fills instead.
    const out = await decideFor(sa, 'p-1', true);
    expect(out.output.explain?.campaigns.find((c) => c.campaign === 'ten')).toMatchObject({
      status: 'dropped',
      reason: 'budget',
    });
  });

  it('covers what a thread decides while its report is on its way with the lease the report brings back', async () => {
    const clock = { now: T0 };
    const inner = new EmbeddedStore({ now: () => clock.now });
    // Gate a's reports can be held on their way: decisions are then made while one is.
    let release: () => void = () => {};
    let held: Promise<void> | null = null;
    let sent: () => void = () => {};
    const slow: BudgetStore = {
      leaseBudgets: async (r, now, settle) => {
        sent();
        if (held !== null) await held;
        return inner.leaseBudgets(r, now, settle);
      },
      budgetCounts: (...args) => inner.budgetCounts(...args),
    };
    const opts = { now: () => clock.now, leaseMs: LEASE, settleMs: 10 * LEASE, timer: false };
    const a = new BudgetGate(slow, opts);
    const b = new BudgetGate(inner, opts);
    const rs = compileRuleSet(ruleSet(capped('ten', { daily: 4, pacing: 'asap' })));
    const active = { version: 1, checksum: 'x', compiled: rs, activatedAt: T0 };
    const sa = new DecisionService(inner, active, { deadlineMs: 50, budgets: a });
    const sb = new DecisionService(inner, active, { deadlineMs: 50, budgets: b });
    for (const id of Array.from({ length: 10 }, (_, i) => `p-${i}`)) await inner.putProfile({ id, tags: [] });
    // The rule set's first leases (asked for at once): one impression each.
    expect([a.status()[0]!.left, b.status()[0]!.left]).toEqual([BUDGET_SCALE, BUDGET_SCALE]);
    let filled = await fillUntilRefused(sa);
    clock.now += LEASE;
    await a.tick();
    // a wants more: two of the two left.
    expect(a.status()[0]!.left).toBe(2 * BUDGET_SCALE);
    expect(await fillsTen(sa, 'p-1')).toBe(true);
    filled++;
    clock.now += LEASE;
    held = new Promise((r) => {
      release = r;
    });
    const onItsWay = new Promise<void>((r) => {
      sent = r;
    });
    const round = a.tick();
    await onItsWay;
    // Its report gives back the impression a holds; a uses it before the answer comes.
    expect(await fillsTen(sa, 'p-2')).toBe(true);
    filled++;
    release();
    await round;
    held = null;
    // The store counts that decision already: all four are committed, none is granted again.
    const day = '2026-12-01';
    const counts = await inner.budgetCounts('ten', '', 'impressions', [day], clock.now, 10 * LEASE);
    expect(counts.days[day]!.committed).toBe(4 * BUDGET_SCALE);
    filled += (await fillUntilRefused(sa)) + (await fillUntilRefused(sb));
    clock.now += LEASE;
    await Promise.all([a.tick(), b.tick()]);
    filled += (await fillUntilRefused(sa)) + (await fillUntilRefused(sb));
    expect(filled).toBe(4);
  });

  it('stops using a lease within three leases when the store stops answering, and asks again once it does', async () => {
    const clock = { now: T0 };
    const inner = new EmbeddedStore({ now: () => clock.now });
    let down = false;
    const store: BudgetStore = {
      leaseBudgets: (r: readonly BudgetReport[], now: number, settle: number): Promise<BudgetGrant[]> =>
        down ? Promise.reject(new Error('down')) : inner.leaseBudgets(r, now, settle),
      budgetCounts: (...args) => inner.budgetCounts(...args),
    };
    const rs = compileRuleSet(ruleSet(capped('c', { daily: 1_000_000, pacing: 'asap' })));
    const [gate] = fleet(1, store, clock);
    gate!.setRuleSet(rs);
    await gate!.tick();
    const c = rs.campaigns[0]!;
    // Use builds up the ask: a few leases at a steady pace, each used in part.
    for (let i = 0; i < 5; i++) {
      clock.now += LEASE;
      await gate!.tick();
      for (let k = 0; k < 3 && gate!.admitsCampaign(c) === null; k++)
        gate!.consume(c, c.creatives[0]!, false);
    }
    expect(gate!.status()[0]!.left, JSON.stringify(gate!.status()[0]!.last)).toBeGreaterThan(0);
    expect(gate!.admitsCampaign(c)).toBeNull();
    down = true;
    clock.now += LEASE;
    await gate!.tick();
    expect(gate!.failedReports).toBe(1);
    // The lease was given up with the failed report: nothing more is decided on it.
    expect(gate!.admitsCampaign(c)).toBe('budget');
    down = false;
    clock.now += LEASE;
    await gate!.tick();
    expect(gate!.admitsCampaign(c)).toBeNull();
    // A lease not renewed (a stalled thread) is not used past three leases after its grant.
    clock.now += 3 * LEASE;
    expect(gate!.admitsCampaign(c)).toBe('budget');
    // What failed to be reported was kept: decisions made before are in the store.
    const counts = await inner.budgetCounts('c', '', 'impressions', ['2026-12-01'], clock.now, 10 * LEASE);
    expect(counts.days['2026-12-01']!.decisions).toBeGreaterThan(0);
  });

  it('counts deliveries in the unit of each line: impressions, clicks, spend at the CPM or the billed price', async () => {
    const clock = { now: T0 };
    const store = new EmbeddedStore({ now: () => clock.now });
    const rs = compileRuleSet(
      ruleSet(
        capped('imps', { daily: 100, pacing: 'asap' }),
        capped('clicks', { daily: 5, unit: 'clicks', pacing: 'asap' }),
        {
          id: 'spend',
          brand: 'b',
          currency: 'EUR',
          bid: 4,
          budget: { daily: 10, unit: 'spend', pacing: 'asap', cpm: 2 },
          creatives: [
            { id: 'a', message: 'brand' },
            { id: 'b', message: 'brand', budget: { daily: 1, unit: 'spend', cpm: 3, pacing: 'asap' } },
          ],
        },
      ),
    );
    const [gate] = fleet(1, store, clock);
    gate!.setRuleSet(rs);
    await gate!.tick();
    gate!.delivered(rs, 'imps', 'imps-cr', 'impression', T0);
    gate!.delivered(rs, 'imps', undefined, 'won', T0);
    gate!.delivered(rs, 'imps', undefined, 'click', T0);
    gate!.delivered(rs, 'clicks', undefined, 'click', T0);
    gate!.delivered(rs, 'clicks', undefined, 'impression', T0);
    gate!.delivered(rs, 'spend', 'a', 'impression', T0); // the campaign's cpm: 2 / 1000
    gate!.delivered(rs, 'spend', 'b', 'impression', T0); // the creative's own cpm: 3 / 1000
    gate!.delivered(rs, 'spend', undefined, 'won', T0); // a won bid: spend comes with its bill
    gate!.delivered(rs, 'spend', 'a', { spend: 1_500 }, T0);
    gate!.delivered(rs, 'nobody', undefined, 'impression', T0);
    await gate!.tick();
    const spent = async (campaign: string, unit: string, creative = '') =>
      (await store.budgetCounts(campaign, creative, unit, ['2026-12-01'], T0, 10 * LEASE)).days['2026-12-01']!
        .spent;
    expect(await spent('imps', 'impressions')).toBe(2 * BUDGET_SCALE);
    expect(await spent('clicks', 'clicks')).toBe(BUDGET_SCALE);
    expect(await spent('spend', 'spend')).toBe(2_000 + 3_000 + 1_500);
    expect(await spent('spend', 'spend', 'b')).toBe(3_000);
  });

  it('paces an even budget by the share of the day gone (flat without history), and reports where it stands', async () => {
    const clock = { now: T0 }; // 06:00 UTC: a quarter of the day
    const store = new EmbeddedStore({ now: () => clock.now });
    const rs = compileRuleSet(ruleSet(capped('even', { daily: 24_000, pacing: 'even' })));
    const gate = new BudgetGate(store, {
      now: () => clock.now,
      leaseMs: LEASE,
      settleMs: 10 * LEASE,
      aheadMs: 0,
      timer: false,
    });
    gate.setRuleSet(rs);
    await gate.tick();
    clock.now += LEASE;
    const c = rs.campaigns[0]!;
    // A large appetite: opportunities refused for want of a lease raise the next ask.
    for (let i = 0; i < 20_000; i++)
      if (gate.admitsCampaign(c) === null) gate.consume(c, c.creatives[0]!, false);
    await gate.tick();
    const [line] = gate.status();
    // 6 h of 24 (and the next leases): about 6,000, not the whole day's 24,000.
    expect(line!.last!.units / BUDGET_SCALE).toBeGreaterThan(5_900);
    expect(line!.last!.units / BUDGET_SCALE).toBeLessThan(6_100);
    expect(line!.last!.limit).toBe('pace');
    const report = await budgetLineReport(store, c, null, clock.now, 10 * LEASE);
    expect(report).toMatchObject({
      creative: null,
      unit: 'impressions',
      pacing: 'even',
      daily: 24_000,
      today: { day: '2026-12-01', spent: 0, limit: 24_000, pace: 0 },
      status: 'behind',
    });
    expect(report!.today.target).toBeCloseTo(6_000, -1);
    // The lease granted, and the first tick's single unit (still committed: it lapses later).
    expect(report!.today.committed).toBeCloseTo(line!.last!.units / BUDGET_SCALE + 1);
    expect(report!.today.opportunities[6]).toBe(20_000);
  });

  it('gives back the lease of a budget the new rule set no longer has, with what it had not reported', async () => {
    const clock = { now: T0 };
    const store = new EmbeddedStore({ now: () => clock.now });
    const before = compileRuleSet(ruleSet(capped('gone', { daily: 100, pacing: 'asap' })));
    const [gate] = fleet(1, store, clock);
    gate!.setRuleSet(before);
    await gate!.tick();
    const c = before.campaigns[0]!;
    // One decision on the first lease, then refusals that raise the next ask.
    let decided = 0;
    const decide = () => {
      if (gate!.admitsCampaign(c) !== null) return;
      gate!.consume(c, c.creatives[0]!, false);
      decided++;
    };
    for (let i = 0; i < 20; i++) decide();
    clock.now += LEASE;
    await gate!.tick();
    decide();
    expect(decided).toBe(2);
    const read = async () =>
      (await store.budgetCounts('gone', '', 'impressions', ['2026-12-01'], clock.now, 10 * LEASE)).days[
        '2026-12-01'
      ]!;
    // Leased beyond the two decisions taken.
    expect((await read()).committed).toBeGreaterThan(2 * BUDGET_SCALE);
    gate!.setRuleSet(compileRuleSet(ruleSet(capped('other', { daily: 100, pacing: 'asap' }))));
    expect(gate!.status().map((l) => l.campaign)).toEqual(['other']);
    clock.now += LEASE;
    await gate!.tick();
    // The decisions taken stay committed, the rest of the lease came back, both decisions counted.
    expect(await read()).toMatchObject({ committed: 2 * BUDGET_SCALE, decisions: 2 });
    // Given back once: a later report does not send it again.
    clock.now += LEASE;
    await gate!.tick();
    expect(await read()).toMatchObject({ committed: 2 * BUDGET_SCALE, decisions: 2 });
  });

  it('reports a spent even total without a pace (its day has no target to compare with)', async () => {
    const clock = { now: T0 };
    const store = new EmbeddedStore({ now: () => clock.now });
    const rs = compileRuleSet(
      ruleSet(capped('done', { total: 10, pacing: 'even' }, { flight: { end: '2026-12-09T00:00:00Z' } })),
    );
    const c = rs.campaigns[0]!;
    await store.leaseBudgets(
      [
        {
          campaign: 'done',
          creative: '',
          unit: 'impressions',
          day: '2026-11-30',
          overdraft: 0,
          delivered: [{ day: '2026-11-30', units: 10 * BUDGET_SCALE }],
          decisions: 10,
          opportunities: [],
          ask: 0,
          dailyCap: null,
          totalCap: 10 * BUDGET_SCALE,
          daysLeft: 10,
          paceShare: 1,
        },
      ],
      T0 - 86_400_000,
      10 * LEASE,
    );
    const report = await budgetLineReport(store, c, null, clock.now, 10 * LEASE);
    expect(report).toMatchObject({
      status: 'spent',
      remaining: 0,
      today: { limit: 0, target: 0, pace: null },
    });
  });

  it('learns the shape of the day from the days before, one day bursting without moving it', () => {
    const day = Array.from({ length: 24 }, (_, h) => (h < 12 ? 100 : 300));
    const burst = day.map((n, h) => (h === 3 ? n * 10 : n));
    const curve = curveOf([day, burst, day]);
    // Half the hours at a third of the others' traffic: the first half of the day is a quarter.
    // (a quarter, plus what the smoothing moves across its two edges: about 13/48).
    expect(curve[12]).toBeCloseTo(13 / 48, 2);
    expect(curve[4]! - curve[3]!).toBeCloseTo(curve[3]! - curve[2]!, 3);
    expect(curve[24]).toBe(1);
    // Too little history: flat.
    expect(curveOf([[1, 2, 3]])[12]).toBe(0.5);
  });
});
