/**
 * Budgets and pacing on one thread: the decision path checks a number in memory, never the store.
 *
 * Every budget line (a campaign's budget, or a creative's) holds a lease: units of its budget this
 * thread may commit to until its next report. A decision that fills a placement with the campaign
 * consumes what it can cost (an impression; a click at the campaign's click rate so far; the
 * price of the impression or the bid) from every line it touches, and a line without room drops
 * the campaign (`budget`, or `pace` when it is only ahead of its even pace). Every `leaseMs` the
 * thread reports to the store, per line, what it delivered (impressions, clicks, spend from events
 * and notices handled here), its decisions and opportunities, gives back what is left of its
 * lease, and asks for the next one: one call per line, off the decision path (BudgetStore).
 *
 * The store grants only while `spent + committed <= amount` (server/store/budget.ts), so the fleet
 * delivers past a budget only by what is delivered more than the settle window after its decision,
 * or was reserved at less than it cost (clicks, which are estimated): docs/budgets.md states the
 * bound. A lease is used for at most `3 x leaseMs` after it was granted (a thread whose reports
 * fail or stall stops using it) and the settle window must be longer.
 *
 * Even pacing: by a moment of the day the line may have used its day's amount times the share of
 * the day's opportunities that came before that moment, on the days before (the traffic's shape
 * per hour, learned from the store; flat until there is history), looking one lease and `aheadMs`
 * ahead. A total budget paced evenly gives each day its share of what is left over the flight's
 * days left.
 */
import type {
  CompiledBudget,
  CompiledCampaign,
  CompiledCreative,
  CompiledRuleSet,
} from '../../rules/compile.js';
import { BUDGET_SCALE } from '../../rules/compile.js';
import type { EligibilityFilter } from '../../rules/decide.js';
import { calendarPeriod, localDay } from '../../rules/time.js';
import type { DropReason } from '../../rules/types.js';
import { roomOf } from '../store/budget.js';
import { daysBetween } from '../store/person.js';
import type { BudgetGrant, BudgetReport, BudgetStore } from '../store/types.js';

export interface BudgetGateOptions {
  now?: () => number;
  /** How often leases are renewed and reports sent, ms. Default 1000. */
  leaseMs?: number;
  /** How long a lease stays committed unless given back or delivered, ms. Default DEFAULT_SETTLE_MS. */
  settleMs?: number;
  /** How far ahead of now an even pace may run (room for bursts), ms. Default 2 minutes. */
  aheadMs?: number;
  /** Days of opportunities the traffic's shape is learned from. Default 7. */
  curveDays?: number;
  /** Renew on a timer (default); false: the caller calls tick() (simulations, tests). */
  timer?: boolean;
  onError?: (err: unknown) => void;
}

/** What a line knows of itself, for metrics and the status route. */
export interface BudgetLineStatus {
  campaign: string;
  creative: string;
  budget: CompiledBudget;
  /** The last grant's counts (null before the first). */
  last: BudgetGrant | null;
  /** Units of the current lease not used. */
  left: number;
  /** The share of a day's opportunities each hour has (0-23), as the even pace follows it. */
  shape: number[];
}

interface Line {
  readonly campaign: string;
  readonly creative: string;
  budget: CompiledBudget;
  timezone: string;
  flightEnd: number;
  /** what is left of the lease, its size, day and grant time; leaseUntil 0: no lease */
  left: number;
  leaseDay: string;
  leaseAt: number;
  leaseUntil: number;
  overdraft: number;
  delivered: Map<string, number>;
  decisions: number;
  /** opportunities of `oppDay` by hour */
  opportunities: number[];
  oppDay: string;
  /** the local hour being counted and when it ends */
  hour: number;
  hourEnds: number;
  /** units wanted since the last report (consumed, or refused for want of room) */
  demand: number;
  /** units wanted per ms, smoothed over reports */
  rate: number;
  /** units consumed since the last report, and per ms smoothed over reports */
  used: number;
  useRate: number;
  lastReport: number;
  limit: 'budget' | 'pace' | null;
  last: BudgetGrant | null;
  /** a click's estimated cost per decision, millionths */
  clickCost: number;
  /** the traffic's shape: cumulative share of the day's opportunities at the start of each hour (25 values) */
  curve: Float64Array;
  curveDay: string;
  /** the rule set no longer has it: one last report gives its lease back */
  retired: boolean;
}

/** How long a lease stays committed unless given back or delivered, by default: 2 minutes. */
export const DEFAULT_SETTLE_MS = 120_000;

interface Entry {
  readonly id: string;
  readonly line: Line | null;
  readonly creatives: ReadonlyArray<Line | null>;
}

const FLAT_CURVE = Float64Array.from({ length: 25 }, (_, h) => h / 24);
/** A lease asks for this many leases' worth of the recent use (room for bursts). */
const ASK_LEASES = 3;
/** Opportunities a shape is learned from at the least (ten an hour); fewer: flat. */
const MIN_CURVE_OPPORTUNITIES = 240;

export class BudgetGate {
  private lines = new Map<string, Line>();
  /** lines no longer in the rule set, until one last report gives their lease back */
  private readonly retiring = new Set<Line>();
  /** campaign index -> its campaign line (or null) and creative lines by creative index */
  private byCampaign: Array<Entry | undefined> = [];
  /** the same by campaign id (a request begun on the rule set before: indexes may differ) */
  private byId = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly leaseMs: number;
  private readonly settleMs: number;
  private readonly aheadMs: number;
  private readonly curveDays: number;
  private readonly onError: (err: unknown) => void;
  private readonly timer: NodeJS.Timeout | null;
  private ticking: Promise<void> | null = null;
  private errors = 0;
  /** true while some campaign of the rule set has a budget */
  active = false;
  private readonly plainFilter: EligibilityFilter = {
    campaign: (c) => this.admitsCampaign(c),
    creative: (_placement, c, cr) => this.admitsCreative(c, cr, false),
  };

  constructor(
    private readonly store: BudgetStore,
    opts: BudgetGateOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.leaseMs = opts.leaseMs ?? 1000;
    this.settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
    this.aheadMs = opts.aheadMs ?? 120_000;
    this.curveDays = opts.curveDays ?? 7;
    this.onError = opts.onError ?? (() => {});
    if (this.settleMs <= 3 * this.leaseMs)
      throw new RangeError('the settle window must be longer than three leases');
    this.timer =
      opts.timer === false
        ? null
        : setInterval(() => {
            this.tick().catch(() => {});
          }, this.leaseMs);
    this.timer?.unref();
  }

  /** Follows the rule set: lines of new budgets start without a lease (asked for at once). */
  setRuleSet(rs: CompiledRuleSet): void {
    const next = new Map<string, Line>();
    const byCampaign: typeof this.byCampaign = new Array(rs.campaigns.length);
    const take = (c: CompiledCampaign, cr: CompiledCreative | null, budget: CompiledBudget): Line => {
      const key = `${c.id}\u0000${cr?.id ?? ''}`;
      const have = this.lines.get(key);
      const line =
        have !== undefined && have.budget.unit === budget.unit ? have : this.newLine(c, cr, budget);
      line.budget = budget;
      line.timezone = c.timezone;
      line.flightEnd = c.flightEnd;
      line.retired = false;
      next.set(key, line);
      return line;
    };
    const byId = new Map<string, Entry>();
    for (const c of rs.campaigns) {
      if (!c.budgeted) continue;
      const entry: Entry = {
        id: c.id,
        line: c.budget === null ? null : take(c, null, c.budget),
        creatives: c.creatives.map((cr) => (cr.budget === null ? null : take(c, cr, cr.budget))),
      };
      byCampaign[c.index] = entry;
      byId.set(c.id, entry);
    }
    for (const [key, line] of this.lines) {
      if (next.get(key) === line) continue;
      // Gone from the rule set (or counting another unit now): one last report gives its lease
      // back and sends what it has not reported yet.
      line.retired = true;
      if (line.leaseUntil > 0 || line.delivered.size > 0 || line.decisions > 0 || line.overdraft > 0)
        this.retiring.add(line);
    }
    this.lines = next;
    this.byCampaign = byCampaign;
    this.byId = byId;
    this.active = byCampaign.some((e) => e !== undefined);
    if (this.active && [...next.values()].some((l) => l.leaseUntil === 0)) this.tick().catch(() => {});
  }

  private newLine(c: CompiledCampaign, cr: CompiledCreative | null, budget: CompiledBudget): Line {
    return {
      campaign: c.id,
      creative: cr?.id ?? '',
      budget,
      timezone: c.timezone,
      flightEnd: c.flightEnd,
      left: 0,
      leaseDay: '',
      leaseAt: 0,
      leaseUntil: 0,
      overdraft: 0,
      delivered: new Map(),
      decisions: 0,
      opportunities: new Array<number>(24).fill(0),
      oppDay: '',
      hour: 0,
      hourEnds: 0,
      demand: 0,
      rate: 0,
      used: 0,
      useRate: 0,
      lastReport: this.now(),
      limit: null,
      last: null,
      clickCost: Math.round(BUDGET_SCALE / 100),
      curve: FLAT_CURVE,
      curveDay: '',
      retired: false,
    };
  }

  /**
   * The checks of one request, beside the caller's (`inner`, the bidder's): a campaign without
   * room is dropped before it competes, a creative whose price does not fit is not considered.
   */
  filter(inner: EligibilityFilter | undefined, bidding: boolean): EligibilityFilter {
    // /v1/decide's (no filter of the caller's): one object for every request.
    if (inner === undefined && !bidding) return this.plainFilter;
    return {
      campaign: (c) => {
        const why = inner?.campaign?.(c) ?? null;
        if (why !== null) return why;
        return this.admitsCampaign(c);
      },
      creative: (placement, c, cr) => {
        const why = inner?.creative?.(placement, c, cr) ?? null;
        if (why !== null) return why;
        return this.admitsCreative(c, cr, bidding);
      },
    };
  }

  /** An opportunity of the campaign; whether its own budget has room left. */
  admitsCampaign(c: CompiledCampaign): DropReason | null {
    const entry = this.entryOf(c);
    if (entry === undefined) return null;
    const now = this.now();
    const line = entry.line;
    if (line !== null) this.countOpportunity(line, now);
    for (const l of entry.creatives) if (l !== null) this.countOpportunity(l, now);
    if (line === null) return null;
    if (line.left > 0 && now < line.leaseUntil) return null;
    line.demand += this.estimate(line, c);
    return line.limit === 'pace' ? 'pace' : 'budget';
  }

  admitsCreative(c: CompiledCampaign, cr: CompiledCreative, bidding: boolean): DropReason | null {
    const entry = this.entryOf(c);
    if (entry === undefined) return null;
    const now = this.now();
    return (
      this.roomFor(entry.line, cr, bidding, now) ?? this.roomFor(creativeLine(entry, cr), cr, bidding, now)
    );
  }

  /** A campaign's lines, by index in the gate's rule set, else by id (a request begun before a swap). */
  private entryOf(c: CompiledCampaign): Entry | undefined {
    const e = this.byCampaign[c.index];
    return e !== undefined && e.id === c.id ? e : this.byId.get(c.id);
  }

  /** null when the line (if any) has room for the creative's cost now; else why not. */
  private roomFor(line: Line | null, cr: CompiledCreative, bidding: boolean, now: number): DropReason | null {
    if (line === null) return null;
    const cost = this.costOf(line, cr, bidding);
    if (line.left >= cost && now < line.leaseUntil) return null;
    line.demand += cost;
    return line.limit === 'pace' ? 'pace' : 'budget';
  }

  /** A placement filled with the creative: what it can cost, taken from its lines' leases. */
  consume(c: CompiledCampaign, cr: CompiledCreative, bidding: boolean): void {
    const entry = this.entryOf(c);
    if (entry === undefined) return;
    if (entry.line !== null) this.take(entry.line, cr, bidding);
    const own = creativeLine(entry, cr);
    if (own !== null) this.take(own, cr, bidding);
  }

  private take(line: Line, cr: CompiledCreative, bidding: boolean): void {
    const cost = this.costOf(line, cr, bidding);
    line.demand += cost;
    line.used += cost;
    line.decisions++;
    if (line.left >= cost) line.left -= cost;
    else {
      line.overdraft += cost - line.left;
      line.left = 0;
    }
  }

  /**
   * Delivered: an impression (`/v1/events`: impressions, and spend at the rule set's price), a won
   * bid (impressions only: the billing notice brings the spend), a click, or spend in millionths
   * of the campaign's currency. Counted on the lines of the campaign and of the creative, on the
   * day of `at` in the campaign's time zone.
   */
  delivered(
    rs: CompiledRuleSet,
    campaign: string,
    creative: string | undefined,
    what: 'impression' | 'won' | 'click' | { spend: number },
    at: number,
  ): void {
    const ci = rs.campaignIndex.get(campaign);
    const c = ci === undefined ? undefined : rs.campaigns[ci];
    if (c === undefined) return;
    const entry = this.entryOf(c);
    if (entry === undefined) return;
    const cr = creative === undefined ? undefined : c.creatives.find((x) => x.id === creative);
    const { start } = calendarPeriod('day', c.timezone, at);
    const day = localDay(c.timezone, at);
    // Within the settle window after midnight, most likely a decision of the day before.
    const previous = at - start < this.settleMs ? localDay(c.timezone, start - 1) : '';
    const key = `${day}|${previous}`;
    for (const line of [entry.line, cr === undefined ? null : creativeLine(entry, cr)]) {
      if (line === null) continue;
      let units = 0;
      const unit = line.budget.unit;
      if (typeof what === 'object') units = unit === 'spend' ? what.spend : 0;
      else if (what === 'click') units = unit === 'clicks' ? BUDGET_SCALE : 0;
      else if (unit === 'impressions') units = BUDGET_SCALE;
      else if (unit === 'spend' && what === 'impression') units = cr?.impressionCost ?? c.impressionCost;
      if (units > 0) line.delivered.set(key, (line.delivered.get(key) ?? 0) + units);
    }
  }

  private costOf(line: Line, cr: CompiledCreative, bidding: boolean): number {
    switch (line.budget.unit) {
      case 'impressions':
        return BUDGET_SCALE;
      case 'clicks':
        return line.clickCost;
      case 'spend':
        // A bid can cost at most its price (validated: in the campaign's currency).
        return bidding ? Math.round((cr.bid / 1000) * BUDGET_SCALE) : cr.impressionCost;
    }
  }

  private estimate(line: Line, c: CompiledCampaign): number {
    return line.budget.unit === 'impressions'
      ? BUDGET_SCALE
      : line.budget.unit === 'clicks'
        ? line.clickCost
        : c.impressionCost;
  }

  private countOpportunity(line: Line, now: number): void {
    if (now >= line.hourEnds) this.moveHour(line, now);
    line.opportunities[line.hour]!++;
  }

  private moveHour(line: Line, now: number): void {
    const { start, end } = calendarPeriod('day', line.timezone, now);
    const day = localDay(line.timezone, now);
    if (day !== line.oppDay) {
      // Opportunities of a day that ended before they were reported are not sent (at most a lease's).
      line.opportunities.fill(0);
      line.oppDay = day;
    }
    const hourLen = (end - start) / 24;
    line.hour = Math.min(23, Math.floor((now - start) / hourLen));
    line.hourEnds = Math.min(end, start + (line.hour + 1) * hourLen);
  }

  /** The share of the day's amount an even pace allows by `t` (1 past the day's end). */
  private paceShare(line: Line, now: number): number {
    if (line.budget.pacing === 'asap') return 1;
    // Leases outstanding (up to ASK_LEASES of recent use, per thread) count as used until given
    // back: look that much further ahead, or the pace lags its target by that much. Not at the
    // day's start, when nothing is outstanding yet: the lead grows with the day's first minutes.
    const { start, end } = calendarPeriod('day', line.timezone, now);
    const t = now + Math.min((1 + ASK_LEASES) * this.leaseMs + this.aheadMs, now - start);
    return shareBy(line.curve, start, end, t);
  }

  /** Sends every line's report and takes the next leases; concurrent calls share one round. */
  tick(): Promise<void> {
    this.ticking ??= this.tickOnce().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async tickOnce(): Promise<void> {
    const lines = [...this.lines.values(), ...this.retiring];
    if (lines.length === 0) return;
    const now = this.now();
    // A new day's shape first: the day's first report already paces by it.
    await this.learnCurves(lines, now);
    const sent: Array<{ line: Line; report: BudgetReport; leftAtSend: number } | null> = lines.map((line) => {
      try {
        const report = this.reportOf(line, now);
        // The report gives the whole lease back and the answer's lease covers what is used while
        // it is on its way: the store grants min(ask, room), and the room it gives back is at
        // least the lease, so up to `ask` of it stays usable meanwhile (a thread that asks for
        // nothing, idle or retiring, stops using its lease now).
        line.left = Math.min(line.left, report.ask);
        return { line, report, leftAtSend: line.left };
      } catch (err) {
        // A line that cannot be reported (never expected) must not hold the others back.
        this.errors++;
        this.onError(err);
        line.left = 0;
        line.leaseUntil = 0;
        return null;
      }
    });
    // One call per line, each on its own: a line whose call fails (its cluster shard away) does
    // not make the others' reports be sent twice.
    const results = await Promise.allSettled(
      sent.map((x) =>
        x === null ? Promise.resolve([]) : this.store.leaseBudgets([x.report], now, this.settleMs),
      ),
    );
    results.forEach((result, i) => {
      const x = sent[i];
      if (x === null || x === undefined) return;
      const { line, report, leftAtSend } = x;
      // Used while the report was on its way (from the lease it gave back, or past it): the store
      // no longer counts it. The lease the answer brings covers it: the store gave back the old
      // lease and granted the new one in one step, so no other thread could take that room in
      // between. Only what the new lease cannot cover (the budget or its pace reached just then)
      // waits for the next report.
      const flight = Math.max(0, leftAtSend - line.left) + line.overdraft;
      line.overdraft = flight;
      const g = result.status === 'fulfilled' ? result.value[0] : undefined;
      if (g === undefined) {
        // Without the store no line may commit more: it stops until the store answers. What was
        // to be reported waits for the next report (delivered units and decisions are not lost).
        this.errors++;
        if (result.status === 'rejected') this.onError(result.reason);
        line.left = 0;
        line.leaseUntil = 0;
        this.restore(line, report);
        return;
      }
      if (line.retired) {
        this.retiring.delete(line);
        return;
      }
      const cover = Math.min(flight, g.units);
      line.left = g.units - cover;
      line.overdraft = flight - cover;
      line.leaseAt = g.at;
      line.leaseDay = report.day;
      line.leaseUntil = g.units > 0 ? now + 3 * this.leaseMs : 0;
      line.limit = g.limit;
      line.last = g;
      if (line.budget.unit === 'clicks') {
        // Clicks per decision so far, with a prior of 1 in 100 worth 100 decisions.
        line.clickCost = Math.max(1, Math.round((g.total.spent + BUDGET_SCALE) / (g.total.decisions + 100)));
      }
    });
  }

  /**
   * A line's report. The lease stays usable until the answer (a report round must not drop the
   * campaign): it is given back whole, and the lease the answer brings covers what is used meanwhile.
   */
  private reportOf(line: Line, now: number): BudgetReport {
    const day = localDay(line.timezone, now);
    const elapsed = Math.max(1, now - line.lastReport);
    line.rate = line.rate === 0 ? line.demand / elapsed : 0.5 * line.rate + 0.5 * (line.demand / elapsed);
    line.useRate =
      line.useRate === 0 ? line.used / elapsed : 0.5 * line.useRate + 0.5 * (line.used / elapsed);
    line.lastReport = now;
    const idle = line.demand === 0;
    line.demand = 0;
    line.used = 0;
    const b = line.budget;
    const step = b.unit === 'impressions' ? BUDGET_SCALE : 1;
    // Enough for three leases of what the thread wants (bursts), and at least one decision's
    // worth, so that a thread with little traffic decides at once. Held back by its pace, it
    // wants more than it may have: it asks for three leases of what it used instead, so that
    // what it holds unused (committed all the same) follows its pace, not its traffic. A thread
    // that saw no opportunity holds nothing of a budget close to its end (others may need it).
    const rate = line.limit === 'pace' ? Math.min(line.rate, line.useRate) : line.rate;
    const ask =
      line.retired || (idle && scarce(line, step))
        ? 0
        : Math.max(step, Math.ceil((rate * this.leaseMs * ASK_LEASES) / step) * step);
    const report: BudgetReport = {
      campaign: line.campaign,
      creative: line.creative,
      unit: b.unit,
      day,
      overdraft: line.overdraft,
      delivered: [...line.delivered].map(([key, units]) => {
        const [d, previous] = key.split('|') as [string, string];
        return previous === '' ? { day: d, units } : { day: d, units, previous };
      }),
      decisions: line.decisions,
      opportunities:
        line.oppDay === day ? line.opportunities.flatMap((n, hour) => (n > 0 ? [{ hour, n }] : [])) : [],
      ask,
      dailyCap: b.daily,
      totalCap: b.total,
      daysLeft:
        b.pacing === 'even' && b.total !== null ? daysLeftOf(line.timezone, day, line.flightEnd, now) : null,
      // Millionths, as the store takes it (both stores then grant alike).
      paceShare: Math.round(this.paceShare(line, now) * 1_000_000) / 1_000_000,
    };
    if (line.leaseUntil > 0) report.returned = { day: line.leaseDay, at: line.leaseAt, units: line.left };
    line.overdraft = 0;
    line.delivered = new Map();
    line.decisions = 0;
    if (line.oppDay === day) line.opportunities.fill(0);
    return report;
  }

  /** A report the store did not take: its counts wait for the next one; its lease is gone. */
  private restore(line: Line, r: BudgetReport): void {
    line.overdraft += r.overdraft;
    for (const d of r.delivered) {
      const key = `${d.day}|${d.previous ?? ''}`;
      line.delivered.set(key, (line.delivered.get(key) ?? 0) + d.units);
    }
    line.decisions += r.decisions;
    if (line.oppDay === r.day) for (const o of r.opportunities) line.opportunities[o.hour]! += o.n;
  }

  /**
   * Once a local day per line: the shape of the days before, read off the decision path (a line
   * whose read fails keeps the shape it had and tries again at the next report).
   */
  private async learnCurves(lines: readonly Line[], now: number): Promise<void> {
    const reads: Promise<void>[] = [];
    for (const line of lines) {
      const day = localDay(line.timezone, now);
      if (line.curveDay === day || line.budget.pacing === 'asap' || line.retired) continue;
      const first = localDay(line.timezone, now - this.curveDays * 86_400_000);
      const days = daysBetween(first, day).slice(0, -1);
      reads.push(
        this.store
          .budgetCounts(line.campaign, line.creative, line.budget.unit, days, now, this.settleMs)
          .then((counts) => {
            line.curve = curveOf(Object.values(counts.days).map((d) => d.opportunities));
            line.curveDay = day;
          })
          .catch((err) => {
            this.onError(err);
          }),
      );
    }
    await Promise.all(reads);
  }

  /** Lines as this thread knows them. */
  status(): BudgetLineStatus[] {
    return [...this.lines.values()].map((l) => ({
      campaign: l.campaign,
      creative: l.creative,
      budget: l.budget,
      last: l.last,
      left: l.left,
      shape: shapeOf(l.curve),
    }));
  }

  get settleWindowMs(): number {
    return this.settleMs;
  }

  /** Reports that failed (the store did not answer). */
  get failedReports(): number {
    return this.errors;
  }

  /** Stops the timer and gives every lease back. */
  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    for (const line of this.lines.values()) {
      line.retired = true;
      this.retiring.add(line);
    }
    this.lines.clear();
    await this.tick();
  }
}

/**
 * Days of the flight left, today included, for an even total: from the day numbers (a flight may
 * be years long); null without an end.
 */
function daysLeftOf(tz: string, today: string, flightEnd: number, now: number): number | null {
  if (!Number.isFinite(flightEnd)) return null;
  const last = localDay(tz, Math.max(now, flightEnd));
  return Math.round((Date.parse(`${last}T00:00:00Z`) - Date.parse(`${today}T00:00:00Z`)) / 86_400_000) + 1;
}

/** A creative's own line in an entry, checked by id (indexes may differ across rule sets). */
function creativeLine(entry: Entry, cr: CompiledCreative): Line | null {
  const l = entry.creatives[cr.index];
  if (l !== undefined && (l === null || l.creative === cr.id)) return l;
  for (const other of entry.creatives) if (other !== null && other.creative === cr.id) return other;
  return null;
}

/**
 * The share of a day's opportunities that come before `t` along `curve` (cumulative at each
 * hour's start), in the day [start, end) of the line's zone: 1 at or past its end.
 */
function shareBy(curve: Float64Array, start: number, end: number, t: number): number {
  if (t >= end) return 1;
  const x = ((t - start) / (end - start)) * 24;
  const h = Math.min(23, Math.floor(x));
  return curve[h]! + (curve[h + 1]! - curve[h]!) * (x - h);
}

/** Each hour's share of the day (0-23) from a cumulative curve. */
function shapeOf(curve: Float64Array): number[] {
  return Array.from({ length: 24 }, (_, h) => curve[h + 1]! - curve[h]!);
}

/**
 * Whether a line's last grant left it little room: under ten decisions' worth or 5% of its
 * amount, today or in all.
 */
function scarce(line: Line, step: number): boolean {
  const g = line.last;
  if (g === null) return false;
  const b = line.budget;
  const dayRoom = g.dayLimit === null ? Number.POSITIVE_INFINITY : g.dayLimit - g.day.spent - g.day.committed;
  const totalRoom = b.total === null ? Number.POSITIVE_INFINITY : b.total - g.total.spent - g.total.committed;
  const amount = g.dayLimit ?? b.total ?? 0;
  return Math.min(dayRoom, totalRoom) < Math.max(10 * step, 0.05 * amount);
}

/**
 * The cumulative share of a day's opportunities at the start of each hour (25 values), from the
 * opportunities per hour of days before: each hour's share of its day, the median over the days
 * (a burst on one day does not move the shape), each smoothed by one opportunity so that an hour
 * never seen still gets a little, then with a quarter of each neighbouring hour's. Flat below
 * MIN_CURVE_OPPORTUNITIES in all.
 */
export function curveOf(days: ReadonlyArray<readonly number[]>): Float64Array {
  const used = days.filter((d) => d.reduce((a, b) => a + b, 0) > 0);
  const all = used.reduce((sum, d) => sum + d.reduce((a, b) => a + b, 0), 0);
  if (all < MIN_CURVE_OPPORTUNITIES) return FLAT_CURVE;
  const shares = new Array<number>(24);
  for (let h = 0; h < 24; h++) {
    const perDay = used
      .map((d) => ((d[h] ?? 0) + 1) / (d.reduce((a, b) => a + b, 0) + 24))
      .sort((a, b) => a - b);
    const mid = perDay.length >> 1;
    shares[h] = perDay.length % 2 === 1 ? perDay[mid]! : (perDay[mid - 1]! + perDay[mid]!) / 2;
  }
  // Each hour with a quarter of each neighbour's (around the clock): traffic changes smoothly
  // from hour to hour, and a burst in one hour of a short history should not become a cliff.
  const smooth = shares.map((x, h) => 0.25 * shares[(h + 23) % 24]! + 0.5 * x + 0.25 * shares[(h + 1) % 24]!);
  const total = smooth.reduce((a, b) => a + b, 0);
  const out = new Float64Array(25);
  for (let h = 0; h < 24; h++) out[h + 1] = out[h]! + smooth[h]! / total;
  out[24] = 1;
  return out;
}

/** A budget line's state as operators see it: amounts in the budget's unit (not millionths). */
export interface BudgetLineReport {
  campaign: string;
  /** null for the campaign's own budget. */
  creative: string | null;
  unit: CompiledBudget['unit'];
  pacing: CompiledBudget['pacing'];
  daily: number | null;
  total: number | null;
  today: {
    day: string;
    spent: number;
    /** Leased by instances and not yet delivered or given back. */
    committed: number;
    /** The most today may reach (the daily amount, or an even total's share); null: no limit. */
    limit: number | null;
    /** Where an even pace puts spending by now (null: asap or no daily limit). */
    target: number | null;
    /** spent / target (null without a target, or before 1% of the day's target). */
    pace: number | null;
    /** Opportunities per hour of the day so far. */
    opportunities: number[];
  };
  spentInAll: number;
  /** What a total budget has left (null without one). */
  remaining: number | null;
  /** `spent`: no room left today or in all; `behind`/`ahead` of an even pace by more than 10%; else `on_pace`. */
  status: 'spent' | 'behind' | 'on_pace' | 'ahead' | 'unpaced';
  /** The shape of the day the even pace follows: each hour's share. */
  shape: number[];
}

const SCALE = 1_000_000;

/**
 * A line's report, read from the store: today's and all-time counts, the even pace's target by
 * `now` (along the shape learned from the `curveDays` days before), and where it stands.
 */
export async function budgetLineReport(
  store: BudgetStore,
  c: CompiledCampaign,
  creative: CompiledCreative | null,
  now: number,
  settleMs: number,
  curveDays = 7,
): Promise<BudgetLineReport | null> {
  const budget = creative === null ? c.budget : creative.budget;
  if (budget === null) return null;
  const day = localDay(c.timezone, now);
  const days = daysBetween(localDay(c.timezone, now - curveDays * 86_400_000), day);
  const counts = await store.budgetCounts(c.id, creative?.id ?? '', budget.unit, days, now, settleMs);
  const today = counts.days[day] ?? {
    spent: 0,
    committed: 0,
    decisions: 0,
    opportunities: new Array(24).fill(0),
  };
  const curve = curveOf(days.slice(0, -1).map((d) => counts.days[d]?.opportunities ?? []));
  const dayUsed = today.spent + today.committed;
  const totalUsed = counts.total.spent + counts.total.committed;
  const daysLeft =
    budget.pacing === 'even' && budget.total !== null ? daysLeftOf(c.timezone, day, c.flightEnd, now) : null;
  const { dayLimit } = roomOf(
    { dailyCap: budget.daily, totalCap: budget.total, daysLeft, paceShare: 1 },
    dayUsed,
    totalUsed,
  );
  const { start, end } = calendarPeriod('day', c.timezone, now);
  const target =
    budget.pacing === 'even' && dayLimit !== null ? dayLimit * shareBy(curve, start, end, now) : null;
  const pace =
    target !== null && dayLimit !== null && target > 0 && target >= dayLimit * 0.01
      ? today.spent / target
      : null;
  const noRoom =
    (dayLimit !== null && dayUsed >= dayLimit) || (budget.total !== null && totalUsed >= budget.total);
  return {
    campaign: c.id,
    creative: creative?.id ?? null,
    unit: budget.unit,
    pacing: budget.pacing,
    daily: budget.daily === null ? null : budget.daily / SCALE,
    total: budget.total === null ? null : budget.total / SCALE,
    today: {
      day,
      spent: today.spent / SCALE,
      committed: today.committed / SCALE,
      limit: dayLimit === null ? null : dayLimit / SCALE,
      target: target === null ? null : Math.round(target) / SCALE,
      pace: pace === null ? null : Math.round(pace * 1000) / 1000,
      opportunities: today.opportunities,
    },
    spentInAll: counts.total.spent / SCALE,
    remaining: budget.total === null ? null : Math.max(0, budget.total - counts.total.spent) / SCALE,
    status: noRoom
      ? 'spent'
      : pace === null
        ? 'unpaced'
        : pace < 0.9
          ? 'behind'
          : pace > 1.1
            ? 'ahead'
            : 'on_pace',
    shape: shapeOf(curve).map((share) => Math.round(share * 1e6) / 1e6),
  };
}

/** Every budget line of a campaign (its own, then its creatives'), reported. */
export async function campaignBudgetReport(
  store: BudgetStore,
  c: CompiledCampaign,
  now: number,
  settleMs: number,
): Promise<BudgetLineReport[]> {
  const lines = await Promise.all([
    budgetLineReport(store, c, null, now, settleMs),
    ...c.creatives.map((cr) => budgetLineReport(store, c, cr, now, settleMs)),
  ]);
  return lines.filter((l): l is BudgetLineReport => l !== null);
}
