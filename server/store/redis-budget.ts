/**
 * Budget lines of the Redis store (RedisStore delegates here; budget.ts has the rules). One script
 * call per line, on the campaign's slot; the calls of one report round go out together.
 */
import {
  BUDGET_BUCKET_MS,
  type BudgetPeriod,
  checkBudgetReport,
  emptyPeriod,
  periodCounts,
  TOTAL_PERIOD,
} from './budget.js';
import { BUDGET_LEASE_LUA, BUDGET_READ_LUA } from './lua.js';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { type Arg, luaScript } from './resp.js';
import type { BudgetCounts, BudgetGrant, BudgetReport } from './types.js';

const LEASE = luaScript(BUDGET_LEASE_LUA);
const READ = luaScript(BUDGET_READ_LUA);

export class RedisBudget {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    /** How long a line's keys live after their last change, ms. */
    private readonly retentionMs: number,
    private readonly ready: () => Promise<void>,
  ) {}

  async leaseBudgets(
    reports: readonly BudgetReport[],
    now: number,
    settleMs: number,
  ): Promise<BudgetGrant[]> {
    for (const r of reports) checkBudgetReport(r);
    if (reports.length === 0) return [];
    await this.ready();
    return Promise.all(reports.map((r) => this.leaseOne(r, now, settleMs)));
  }

  private async leaseOne(r: BudgetReport, now: number, settleMs: number): Promise<BudgetGrant> {
    const keys = [
      this.keys.budget(r.campaign, r.creative, r.unit, r.day),
      this.keys.budget(r.campaign, r.creative, r.unit, TOTAL_PERIOD),
    ];
    const indexOf = (day: string): number => {
      if (day === r.day) return 1;
      const key = this.keys.budget(r.campaign, r.creative, r.unit, day);
      const i = keys.indexOf(key);
      if (i >= 0) return i + 1;
      keys.push(key);
      return keys.length;
    };
    const back = r.returned === undefined ? 0 : indexOf(r.returned.day);
    const delivered = r.delivered
      .filter((d) => d.units > 0)
      .map((d) => [indexOf(d.day), d.units, d.previous === undefined ? 0 : indexOf(d.previous)] as const);
    const args: Arg[] = [
      Math.round(now),
      Math.round(settleMs),
      BUDGET_BUCKET_MS,
      this.retentionMs,
      r.ask,
      r.dailyCap ?? -1,
      r.totalCap ?? -1,
      r.daysLeft ?? -1,
      Math.round(r.paceShare * 1_000_000),
      r.decisions,
      r.overdraft,
      back,
      Math.round(r.returned?.at ?? 0),
      r.returned?.units ?? 0,
      delivered.length,
    ];
    for (const [k, units, previous] of delivered) args.push(k, units, previous);
    const opportunities = r.opportunities.filter((o) => o.n > 0);
    args.push(opportunities.length);
    for (const o of opportunities) args.push(o.hour, o.n);
    const got = (await this.client.script(LEASE, keys, args)) as number[];
    const n = (i: number) => Number(got[i] ?? 0);
    const limit = n(1);
    return {
      units: n(0),
      at: Math.round(now),
      limit: limit === 1 ? 'budget' : limit === 2 ? 'pace' : null,
      day: { spent: n(2), committed: n(3), decisions: n(4) },
      total: { spent: n(5), committed: n(6), decisions: n(7) },
      dayLimit: n(8) < 0 ? null : n(8),
    };
  }

  async budgetCounts(
    campaign: string,
    creative: string,
    unit: string,
    days: readonly string[],
    now: number,
    settleMs: number,
  ): Promise<BudgetCounts> {
    await this.ready();
    const keys = [TOTAL_PERIOD, ...days].map((p) => this.keys.budget(campaign, creative, unit, p));
    const hashes = (await this.client.script(READ, keys, [])) as unknown[][];
    const periods = hashes.map((h) => periodOf(h));
    const out: BudgetCounts = { days: {}, total: periodCounts(periods[0]!, now, settleMs) };
    days.forEach((day, i) => {
      const p = periods[i + 1]!;
      out.days[day] = { ...periodCounts(p, now, settleMs), opportunities: p.opportunities.slice() };
    });
    return out;
  }
}

/** A line's hash, as HGETALL answers it, as a period. */
function periodOf(flat: readonly unknown[]): BudgetPeriod {
  const p = emptyPeriod();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = String(flat[i]);
    const value = Number(String(flat[i + 1]));
    if (!Number.isFinite(value)) continue;
    if (field === 's') p.spent = value;
    else if (field === 'n') p.decisions = value;
    else if (field.startsWith('c:')) p.ring.set(Number(field.slice(2)), value);
    else if (field.startsWith('o:')) {
      const h = Number(field.slice(2));
      if (Number.isInteger(h) && h >= 0 && h < 24) p.opportunities[h] = value;
    }
  }
  return p;
}
