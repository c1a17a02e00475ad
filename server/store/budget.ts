/**
 * Budget lines: the rules both stores follow (BudgetStore in types.ts), and the in-process ledger
 * of the embedded store. The Lua script BUDGET_LEASE_LUA (lua.ts) applies the same rules on Redis.
 *
 * A line keeps, per day of the campaign and in all (`total`): what was delivered (`spent`), the
 * decisions made with it, the opportunities per hour of the day (the traffic's shape, for even
 * pacing), and the commit ring: units leased per second of the store's clock. A lease is committed
 * in full when granted; the unused part comes back with the thread's next report, and delivered
 * units turn the oldest commitments into spent ones. A commitment neither given back nor delivered
 * (a bid that lost; a thread that died) lapses after the settle window. So at every grant,
 * `spent + committed <= amount`: the fleet can over-deliver only by what is delivered later than
 * the settle window after its decision (docs/budgets.md has the bound).
 */
import type { BudgetCounts, BudgetGrant, BudgetPeriodCounts, BudgetReport } from './types.js';

/** The commit ring's resolution, ms. */
export const BUDGET_BUCKET_MS = 1000;

/** The period of a line's total. */
export const TOTAL_PERIOD = 'total';

export interface BudgetPeriod {
  spent: number;
  decisions: number;
  /** second -> units committed then */
  ring: Map<number, number>;
  /** opportunities per hour of the day (days only) */
  opportunities: number[];
}

export function emptyPeriod(): BudgetPeriod {
  return { spent: 0, decisions: 0, ring: new Map(), opportunities: new Array<number>(24).fill(0) };
}

/** Drops the commitments older than the settle window; what is left, summed. */
export function committedOf(p: BudgetPeriod, now: number, settleMs: number): number {
  const oldest = Math.floor((now - settleMs) / BUDGET_BUCKET_MS);
  let sum = 0;
  for (const [b, units] of p.ring) {
    if (b < oldest || units <= 0) p.ring.delete(b);
    else sum += units;
  }
  return sum;
}

/** Delivered units: spent, and as many of the oldest commitments settled. */
export function deliver(p: BudgetPeriod, units: number): void {
  p.spent += units;
  let left = units;
  for (const b of [...p.ring.keys()].sort((x, y) => x - y)) {
    if (left <= 0) break;
    const have = p.ring.get(b)!;
    const take = Math.min(have, left);
    if (take >= have) p.ring.delete(b);
    else p.ring.set(b, have - take);
    left -= take;
  }
}

/** Gives back what was left of a lease, while its commitment still stands. */
export function giveBack(p: BudgetPeriod, at: number, units: number): void {
  const b = Math.floor(at / BUDGET_BUCKET_MS);
  const have = p.ring.get(b);
  if (have === undefined || units <= 0) return;
  if (units >= have) p.ring.delete(b);
  else p.ring.set(b, have - units);
}

function commit(p: BudgetPeriod, now: number, units: number): void {
  if (units <= 0) return;
  const b = Math.floor(now / BUDGET_BUCKET_MS);
  p.ring.set(b, (p.ring.get(b) ?? 0) + units);
}

/**
 * What a report changes and grants, on the line's periods: `period(day)` for its days, and
 * `period(TOTAL_PERIOD)`. Every number is a whole millionth; the Lua script does the same sums.
 */
export function applyBudgetReport(
  period: (day: string) => BudgetPeriod,
  r: BudgetReport,
  now: number,
  settleMs: number,
): BudgetGrant {
  const today = period(r.day);
  const total = period(TOTAL_PERIOD);
  if (r.returned !== undefined) {
    giveBack(period(r.returned.day), r.returned.at, r.returned.units);
    giveBack(total, r.returned.at, r.returned.units);
  }
  commit(today, now, r.overdraft);
  commit(total, now, r.overdraft);
  for (const d of r.delivered) {
    if (d.units <= 0) continue;
    let units = d.units;
    if (d.previous !== undefined) {
      // Just after midnight: yesterday's decisions are delivered first.
      const before = period(d.previous);
      const take = Math.min(units, committedOf(before, now, settleMs));
      if (take > 0) deliver(before, take);
      units -= take;
    }
    if (units > 0) deliver(period(d.day), units);
    deliver(total, d.units);
  }
  today.decisions += r.decisions;
  total.decisions += r.decisions;
  for (const o of r.opportunities) today.opportunities[o.hour] = (today.opportunities[o.hour] ?? 0) + o.n;

  const dayUsed = today.spent + committedOf(today, now, settleMs);
  const totalUsed = total.spent + committedOf(total, now, settleMs);
  const { room, limit, dayLimit } = roomOf(r, dayUsed, totalUsed);
  const units = Math.max(0, Math.min(r.ask, Math.floor(room)));
  commit(today, now, units);
  commit(total, now, units);
  return {
    units,
    at: now,
    limit: units < r.ask ? limit : null,
    day: { spent: today.spent, committed: dayUsed - today.spent + units, decisions: today.decisions },
    total: { spent: total.spent, committed: totalUsed - total.spent + units, decisions: total.decisions },
    dayLimit,
  };
}

/** How much more may be leased now, and what limits it. */
export function roomOf(
  r: Pick<BudgetReport, 'dailyCap' | 'totalCap' | 'daysLeft' | 'paceShare'>,
  dayUsed: number,
  totalUsed: number,
): { room: number; limit: 'budget' | 'pace' | null; dayLimit: number | null } {
  let dayLimit = r.dailyCap;
  if (r.daysLeft !== null && r.totalCap !== null) {
    // An even total: today's share of what the days before left, spread over the days to come.
    const share = Math.max(0, Math.floor((r.totalCap - (totalUsed - dayUsed)) / Math.max(1, r.daysLeft)));
    dayLimit = dayLimit === null ? share : Math.min(dayLimit, share);
  }
  let room = Number.POSITIVE_INFINITY;
  let limit: 'budget' | 'pace' | null = null;
  if (dayLimit !== null) {
    room = dayLimit - dayUsed;
    limit = 'budget';
  }
  if (r.totalCap !== null && r.totalCap - totalUsed < room) {
    room = r.totalCap - totalUsed;
    limit = 'budget';
  }
  if (dayLimit !== null && r.paceShare < 1) {
    const paced = Math.floor(dayLimit * Math.max(0, r.paceShare)) - dayUsed;
    if (paced < room) {
      room = paced;
      limit = 'pace';
    }
  }
  return { room, limit, dayLimit };
}

export function periodCounts(p: BudgetPeriod, now: number, settleMs: number): BudgetPeriodCounts {
  return { spent: p.spent, committed: committedOf(p, now, settleMs), decisions: p.decisions };
}

export function checkBudgetReport(r: BudgetReport): void {
  const whole = (n: number) => Number.isSafeInteger(n) && n >= 0;
  if (typeof r.campaign !== 'string' || r.campaign === '')
    throw new TypeError('a budget report needs a campaign');
  if (typeof r.creative !== 'string') throw new TypeError('a budget report needs a creative (or "")');
  if (typeof r.unit !== 'string' || r.unit === '') throw new TypeError('a budget report needs its unit');
  if (!/^\d{4}-\d{2}-\d{2}$/.test(r.day)) throw new RangeError(`not a day: ${String(r.day)}`);
  if (!whole(r.ask) || !whole(r.overdraft) || !whole(r.decisions))
    throw new RangeError('budget amounts are whole millionths, at least 0');
  for (const d of r.delivered)
    if (!whole(d.units) || !/^\d{4}-\d{2}-\d{2}$/.test(d.day))
      throw new RangeError('a delivery needs a day and whole units');
  for (const o of r.opportunities)
    if (!Number.isInteger(o.hour) || o.hour < 0 || o.hour > 23 || !whole(o.n))
      throw new RangeError('opportunities are counted per hour 0-23');
  if (r.returned !== undefined && (!whole(r.returned.units) || !Number.isFinite(r.returned.at)))
    throw new RangeError('a lease given back needs its time and whole units');
  if (!(r.paceShare >= 0 && r.paceShare <= 1)) throw new RangeError('paceShare is 0 to 1');
}

/** The embedded store's budget lines, forgotten `retentionMs` after their last change. */
export class BudgetLedger {
  private readonly periods = new Map<string, { p: BudgetPeriod; until: number }>();
  private changes = 0;

  constructor(
    private readonly retentionMs: number,
    private readonly now: () => number,
  ) {}

  lease(reports: readonly BudgetReport[], settleMs: number, now: number): BudgetGrant[] {
    const grants = reports.map((r) =>
      applyBudgetReport(
        (day) => this.period(r.campaign, `${r.creative}\u0000${r.unit}`, day),
        r,
        now,
        settleMs,
      ),
    );
    this.sweepSometimes();
    return grants;
  }

  counts(
    campaign: string,
    creative: string,
    unit: string,
    days: readonly string[],
    settleMs: number,
    now: number,
  ): BudgetCounts {
    const line = `${creative}\u0000${unit}`;
    const out: BudgetCounts = { days: {}, total: { spent: 0, committed: 0, decisions: 0 } };
    for (const day of days) {
      const p = this.peek(campaign, line, day) ?? emptyPeriod();
      out.days[day] = { ...periodCounts(p, now, settleMs), opportunities: p.opportunities.slice() };
    }
    const total = this.peek(campaign, line, TOTAL_PERIOD);
    if (total !== undefined) out.total = periodCounts(total, now, settleMs);
    return out;
  }

  private key(campaign: string, creative: string, period: string): string {
    return `${campaign}\u0000${creative}\u0000${period}`;
  }

  private peek(campaign: string, creative: string, period: string): BudgetPeriod | undefined {
    const have = this.periods.get(this.key(campaign, creative, period));
    return have !== undefined && have.until > this.now() ? have.p : undefined;
  }

  private period(campaign: string, creative: string, period: string): BudgetPeriod {
    const key = this.key(campaign, creative, period);
    let have = this.periods.get(key);
    if (have === undefined || have.until <= this.now())
      this.periods.set(key, (have = { p: emptyPeriod(), until: 0 }));
    have.until = this.now() + this.retentionMs;
    return have.p;
  }

  private sweepSometimes(): void {
    if (++this.changes % 1024 !== 0) return;
    const now = this.now();
    for (const [k, v] of this.periods) if (v.until <= now) this.periods.delete(k);
  }
}
