/**
 * What decisions deliver, recorded off the decision path: decisions filled and ghosts per
 * campaign x day (the campaign's time zone) x creative x channel, and the exposures of people
 * to campaigns with a hold-out (the treatment arm: shown; the control arm: held out when the
 * campaign would have been shown). A decision only adds to maps in memory; a timer sends them to
 * the store in batches (one call for the counts, one per person for exposures), so recording adds
 * no round trip to a decision.
 *
 * Both arms are recorded at the decision, the one moment they exist alike: an impression exists
 * only for people shown the campaign, so counting the treatment arm at impressions and the
 * control arm at decisions would compare the served with the would-be-served.
 *
 * Bounded: at most `maxPending` exposures wait for a flush (beyond it, new ones are dropped and
 * counted), and a person exposed again to a campaign is not sent again for `resendAfterMs` (the
 * store keeps the first exposure of a window; sending it again changes nothing). What a flush
 * fails to write is dropped and counted, never retried: these counts are not acknowledged to
 * anyone, and a store that is down must not grow this process's memory.
 */
import { LRUCache } from 'lru-cache';
import type { CompiledRuleSet } from '../../rules/compile.js';
import { localDay, tzOffsetMinutes } from '../../rules/time.js';
import type { Ghost, PlacementDecision } from '../../rules/types.js';
import type { DeliveryAdd, DeliveryMetric, ExposureWrite, MeasureStore } from '../store/types.js';

export interface RecorderOptions {
  /** How often pending counts and exposures are sent, ms. Default 1000. */
  flushEveryMs?: number;
  /** Exposures waiting at most. Default 50,000. */
  maxPending?: number;
  /** How long a person's exposure to a campaign is not sent again, ms (at most its window). Default 1 hour. */
  resendAfterMs?: number;
  /** People x campaigns remembered as sent (a person id and a campaign id each). Default 100,000. */
  maxRecent?: number;
  /** Called with what a failed flush could not write. */
  onError?: (err: unknown) => void;
}

export interface RecorderStats {
  /** Delivery counts and exposures written. */
  countsWritten: number;
  exposuresWritten: number;
  /** Exposures not written: over `maxPending`, or in a flush that failed. */
  exposuresDropped: number;
  /** Delivery count updates lost with a failed flush. */
  countsDropped: number;
}

export class DecisionRecorder {
  private counts = new Map<string, DeliveryAdd>();
  private exposures: ExposureWrite[] = [];
  /** person x campaign -> the window start the store keeps (as far as this thread knows) and when last sent. */
  private readonly recent: LRUCache<string, { start: number; sent: number }>;
  /** The day of each time zone, by day number there (decisions come in order: one string a day). */
  private readonly days = new Map<string, { index: number; day: string }>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> | null = null;
  private readonly maxPending: number;
  private readonly resendAfterMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly totals: RecorderStats = {
    countsWritten: 0,
    exposuresWritten: 0,
    exposuresDropped: 0,
    countsDropped: 0,
  };

  constructor(
    private readonly store: MeasureStore,
    opts: RecorderOptions = {},
  ) {
    this.maxPending = opts.maxPending ?? 50_000;
    this.resendAfterMs = opts.resendAfterMs ?? 3_600_000;
    this.onError = opts.onError ?? (() => {});
    this.recent = new LRUCache({ max: opts.maxRecent ?? 100_000 });
    this.timer = setInterval(() => {
      this.flush().catch(() => {});
    }, opts.flushEveryMs ?? 1000);
    this.timer.unref();
  }

  /** Notes one decision: `pid` null for nobody in particular (no exposures). */
  record(
    rs: CompiledRuleSet,
    pid: string | null,
    decisions: readonly PlacementDecision[],
    ghosts: readonly Ghost[] | undefined,
    at: number,
  ): void {
    for (let i = 0; i < decisions.length; i++) {
      const d = decisions[i]!;
      if (d.campaign === null) continue;
      this.note(rs, pid, d.campaign, d.creative, d.channel, 'treatment', at);
    }
    if (ghosts === undefined) return;
    for (let i = 0; i < ghosts.length; i++) {
      const g = ghosts[i]!;
      this.note(rs, pid, g.campaign, g.creative, g.channel, 'control', at);
    }
  }

  private note(
    rs: CompiledRuleSet,
    pid: string | null,
    campaign: string,
    creative: string,
    channel: string,
    arm: 'treatment' | 'control',
    at: number,
  ): void {
    const ci = rs.campaignIndex.get(campaign);
    const c = ci === undefined ? undefined : rs.campaigns[ci];
    if (c === undefined) return;
    const metric: DeliveryMetric = arm === 'treatment' ? 'decisions' : 'ghosts';
    const day = this.dayOf(c.timezone, at);
    const key = `${campaign}\u0000${day}\u0000${creative}\u0000${channel}\u0000${metric}`;
    const have = this.counts.get(key);
    if (have !== undefined) have.n++;
    else this.counts.set(key, { campaign, day, creative, channel, metric, n: 1 });
    // Lift is measured for campaigns with a hold-out only: without one there is no control arm.
    if (pid === null || c.holdout <= 0) return;
    const seen = `${pid}\u0000${campaign}`;
    const known = this.recent.get(seen);
    // Inside the window the store keeps, sent lately: sending again would change nothing. Past
    // the window's end it opens another, so it is sent at once.
    const inWindow = known !== undefined && at >= known.start && at <= known.start + c.attributionMs;
    if (inWindow && at - known.sent < this.resendAfterMs && at >= known.sent) return;
    if (this.exposures.length >= this.maxPending) {
      this.totals.exposuresDropped++;
      return;
    }
    this.recent.set(seen, { start: inWindow ? known.start : at, sent: at });
    this.exposures.push({ pid, campaign, arm, at, windowMs: c.attributionMs });
  }

  /** `localDay` without a date string per decision: one per time zone and day. */
  private dayOf(tz: string, at: number): string {
    const index = Math.floor((at + tzOffsetMinutes(tz, at) * 60_000) / 86_400_000);
    const have = this.days.get(tz);
    if (have !== undefined && have.index === index) return have.day;
    const day = localDay(tz, at);
    this.days.set(tz, { index, day });
    return day;
  }

  /** Sends what is pending; concurrent calls share one flush. */
  flush(): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    const adds = [...this.counts.values()];
    const exposures = this.exposures;
    if (adds.length === 0 && exposures.length === 0) return;
    this.counts = new Map();
    this.exposures = [];
    const [countsDone, exposuresDone] = await Promise.allSettled([
      adds.length === 0 ? null : this.store.addDelivery(adds),
      exposures.length === 0 ? null : this.store.recordExposures(exposures),
    ]);
    if (countsDone.status === 'fulfilled') this.totals.countsWritten += adds.length;
    else {
      this.totals.countsDropped += adds.length;
      this.onError(countsDone.reason);
    }
    if (exposuresDone.status === 'fulfilled') this.totals.exposuresWritten += exposures.length;
    else {
      this.totals.exposuresDropped += exposures.length;
      // Not marked as sent after all: the next decision for them sends them again.
      for (const e of exposures) this.recent.delete(`${e.pid}\u0000${e.campaign}`);
      this.onError(exposuresDone.reason);
    }
  }

  stats(): Readonly<RecorderStats> {
    return this.totals;
  }

  /** Stops the timer and sends what is pending. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    // A flush that was running when close began has left what came in meanwhile.
    await this.flush();
  }
}
