/**
 * The profile store in process: for the demo (no Redis) and for tests. It behaves like the Redis
 * store: profiles are kept encoded with the same codec (so a returned object is always a fresh
 * copy and nobody can change stored state through it), counters follow the same keep/ttl rules
 * and expire as a whole, aliases move between people the same way, stages are kept apart from
 * the profile (as `st:{pid}`) with funnel counts that always sum what is stored, and events are
 * deduplicated by id for the same window.
 */
import type { FrequencyCounters, Profile } from '../../rules/types.js';
import { BudgetLedger, checkBudgetReport } from './budget.js';
import { appendImpression, decodeTimes, encodeTimes, impressionLimits, setCounter } from './impressions.js';
import { checkExposure, DEFAULT_MEASURE_RETENTION_MS, MeasureLedger, sampleOf } from './measure.js';
import {
  aliasMember,
  aliasRecord,
  applyPatch,
  checkDeliveryAdd,
  checkEvent,
  DEFAULT_EVENT_DEDUPE_MS,
  DEFAULT_MOVES_TTL_MS,
  daysBetween,
  mergeStages,
  nextStage,
  setOwn,
  splitStages,
  utcDay,
} from './person.js';
import { decodeProfile, encodeProfile } from './profile-format.js';
import type {
  AliasLink,
  BudgetCounts,
  BudgetGrant,
  BudgetReport,
  DeliveryAdd,
  DeliveryRow,
  EventResult,
  EventStore,
  EventWrite,
  ExposureWrite,
  FunnelCounts,
  LiftCounts,
  MeasureStore,
  PeopleSample,
  PersonRecord,
  ProfilePatch,
  ProfileStore,
  SampleStore,
} from './types.js';

export interface EmbeddedStoreOptions {
  /** The clock counters, event ids and moves expire by (tests inject one). Default Date.now. */
  now?: () => number;
  /** How long an event id is remembered, ms. Default 7 days. */
  eventDedupeMs?: number;
  /** How long the moves of a day are kept after the last one, ms. Default 400 days. */
  movesTtlMs?: number;
  /** How long delivery rows, lift counts and exposures are kept after their last change, ms. Default 400 days. */
  measureRetentionMs?: number;
}

interface DayMoves {
  counts: Map<string, number>;
  expiresAt: number;
}

interface CounterHash {
  fields: Map<string, Buffer>;
  expiresAt: number;
}

export class EmbeddedStore implements ProfileStore, EventStore, MeasureStore, SampleStore {
  readonly kind = 'embedded' as const;
  private readonly now: () => number;
  private readonly dedupeMs: number;
  private readonly movesTtlMs: number;
  /** pid -> profile bytes, without stages */
  private readonly profiles = new Map<string, Buffer>();
  /** pid -> brand -> stage (`st:{pid}`) */
  private readonly stages = new Map<string, Map<string, string>>();
  /** brand -> stage -> people (`fn:{brand}`) */
  private readonly funnels = new Map<string, Map<string, number>>();
  /** brand -> day -> `from>to` -> people (`fm:{brand}:<day>`) */
  private readonly moves = new Map<string, Map<string, DayMoves>>();
  /** event id -> when it is forgotten (`ev:<id>`) */
  /** pid -> event id -> until when it counts as seen. */
  private readonly seenEvents = new Map<string, Map<string, number>>();
  private nextSweep = 0;
  /** Event ids remembered, as of the last sweep plus those added since. */
  private seenCount = 0;
  private readonly counters = new Map<string, CounterHash>();
  /** `kind:value` -> pid */
  private readonly aliases = new Map<string, string>();
  /** pid -> its `kind:value` aliases */
  private readonly aliasSets = new Map<string, Set<string>>();
  /** noteOnce: key -> until when (store clock, ms). */
  private readonly notes = new Map<string, number>();
  private notesAfterSweep = 1024;
  private closed = false;
  private readonly measure: MeasureLedger;
  private readonly budgets: BudgetLedger;
  /** Values that did not decode (never expected in process; kept for parity with Redis). */
  corruptValues = 0;

  constructor(opts: EmbeddedStoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.dedupeMs = Math.max(1, opts.eventDedupeMs ?? DEFAULT_EVENT_DEDUPE_MS);
    this.movesTtlMs = Math.max(1, opts.movesTtlMs ?? DEFAULT_MOVES_TTL_MS);
    this.measure = new MeasureLedger(
      Math.max(1, opts.measureRetentionMs ?? DEFAULT_MEASURE_RETENTION_MS),
      this.now,
    );
    this.budgets = new BudgetLedger(
      Math.max(1, opts.measureRetentionMs ?? DEFAULT_MEASURE_RETENTION_MS),
      this.now,
    );
  }

  async loadPerson(pid: string): Promise<PersonRecord> {
    this.check();
    return { profile: this.readProfile(pid), counters: this.readCounters(pid) };
  }

  async resolveAlias(kind: string, value: string): Promise<string | null> {
    this.check();
    return this.aliases.get(aliasMember(kind, value)) ?? null;
  }

  async getProfile(pid: string): Promise<Profile | null> {
    this.check();
    return this.readProfile(pid);
  }

  async putProfile(profile: Profile): Promise<void> {
    this.check();
    const { blob, stages } = splitStages(profile);
    const bytes = encodeProfile(blob);
    this.profiles.set(profile.id, bytes);
    if (stages !== null) this.replaceStages(profile.id, stages);
  }

  async putProfiles(profiles: readonly Profile[]): Promise<void> {
    this.check();
    // Encode everything first: a bad profile leaves the store as it was.
    const encoded = profiles.map((p) => {
      const { blob, stages } = splitStages(p);
      return [p.id, encodeProfile(blob), stages] as const;
    });
    for (const [id, bytes, stages] of encoded) {
      this.profiles.set(id, bytes);
      if (stages !== null) this.replaceStages(id, stages);
    }
  }

  async linkAliases(pid: string, aliases: Readonly<Record<string, string>>): Promise<void> {
    this.check();
    for (const [kind, value] of Object.entries(aliases)) {
      const member = aliasMember(kind, value);
      const previous = this.aliases.get(member);
      if (previous !== undefined && previous !== pid) {
        const set = this.aliasSets.get(previous);
        set?.delete(member);
        if (set !== undefined && set.size === 0) this.aliasSets.delete(previous);
      }
      this.aliases.set(member, pid);
      let mine = this.aliasSets.get(pid);
      if (mine === undefined) this.aliasSets.set(pid, (mine = new Set()));
      mine.add(member);
    }
  }

  async linkManyAliases(links: readonly AliasLink[]): Promise<void> {
    for (const [pid, aliases] of links) await this.linkAliases(pid, aliases);
  }

  async recordImpression(
    pid: string,
    campaignId: string,
    at: number,
    keep: number,
    ttlMs: number,
  ): Promise<void> {
    this.check();
    if (!Number.isFinite(at)) throw new TypeError(`impression time must be a finite number, got ${at}`);
    this.appendImpression(pid, campaignId, at, keep, ttlMs);
  }

  private appendImpression(pid: string, campaignId: string, at: number, keep: number, ttlMs: number): void {
    const limits = impressionLimits(keep, ttlMs);
    const now = this.now();
    let hash = this.liveCounters(pid, now);
    if (hash === undefined) {
      hash = { fields: new Map(), expiresAt: 0 };
      this.counters.set(pid, hash);
    }
    const current = hash.fields.get(campaignId);
    const times = (current === undefined ? null : decodeTimes(current)) ?? [];
    hash.fields.set(campaignId, encodeTimes(appendImpression(times, at, limits.keep, limits.ttlMs)));
    hash.expiresAt = Math.max(hash.expiresAt, now + limits.ttlMs);
  }

  async forgetPerson(pid: string): Promise<boolean> {
    this.check();
    let found = this.profiles.delete(pid);
    if (this.liveCounters(pid, this.now()) !== undefined) found = true;
    this.counters.delete(pid);
    this.seenEvents.delete(pid);
    if (this.measure.forget(pid)) found = true;
    if (this.stages.has(pid)) found = true;
    this.replaceStages(pid, []);
    const mine = this.aliasSets.get(pid);
    if (mine !== undefined) {
      for (const member of mine) {
        if (this.aliases.get(member) === pid) {
          this.aliases.delete(member);
          found = true;
        }
      }
      this.aliasSets.delete(pid);
    }
    return found;
  }

  // ---- events, patches, funnels -----------------------------------------------------------------

  async applyEvents(events: readonly EventWrite[]): Promise<EventResult[]> {
    this.check();
    for (const event of events) checkEvent(event);
    const now = this.now();
    this.sweepEvents(now);
    return events.map((event) => this.applyEvent(event, now));
  }

  private applyEvent(event: EventWrite, now: number): EventResult {
    // Everything that can fail is worked out before anything changes: all or nothing.
    const day = event.stage?.day ?? utcDay(event.at);
    let seen = this.seenEvents.get(event.pid);
    const seenUntil = seen?.get(event.eventId);
    if (seenUntil !== undefined && seenUntil > now) return { outcome: 'duplicate' };
    if (seen === undefined) this.seenEvents.set(event.pid, (seen = new Map()));
    seen.set(event.eventId, now + this.dedupeMs);
    this.seenCount++;
    if (event.delivery !== undefined) for (const a of event.delivery) this.measure.addDelivery(a);
    if (event.outcome !== undefined) this.measure.attribute(event.pid, event.outcome, event.at);
    if (event.impression !== undefined) {
      const { campaign, keep, ttlMs } = event.impression;
      this.appendImpression(event.pid, campaign, event.at, keep, ttlMs);
    }
    if (event.stage === undefined) return { outcome: 'applied' };
    const { brand, defaultStage, next } = event.stage;
    const recorded = this.stages.get(event.pid)?.get(brand);
    const from = recorded ?? defaultStage;
    const to = nextStage(next, from);
    if (to === null) return { outcome: 'applied' };
    this.setStage(event.pid, brand, to);
    this.recordMove(brand, day, `${from}>${to}`, now);
    return { outcome: 'applied', moved: { brand, from, to } };
  }

  // ---- measurement -----------------------------------------------------------------------------

  /** Every person when there are at most `n`; else `n` drawn without replacement (a partial shuffle). */
  async samplePeople(n: number, _deadline: number): Promise<PeopleSample> {
    this.check();
    const ids = [...this.profiles.keys()];
    const exact = ids.length <= n;
    const population = ids.length;
    const chosen = exact ? ids : sampleOf(ids, n);
    const take = chosen.length;
    const people = chosen.map((pid) => ({
      pid,
      record: { profile: this.readProfile(pid), counters: this.readCounters(pid) },
      draws: 1,
    }));
    return {
      people,
      population,
      populationOf: 'people',
      drawn: take,
      exact,
      partial: false,
      reads: take,
    };
  }

  async addDelivery(adds: readonly DeliveryAdd[]): Promise<void> {
    this.check();
    for (const a of adds) checkDeliveryAdd(a);
    for (const a of adds) this.measure.addDelivery(a);
  }

  async recordExposures(exposures: readonly ExposureWrite[]): Promise<void> {
    this.check();
    for (const e of exposures) checkExposure(e);
    for (const e of exposures) this.measure.expose(e);
  }

  async delivery(campaign: string, fromDay: string, toDay: string): Promise<DeliveryRow[]> {
    this.check();
    return this.measure.delivery(campaign, fromDay, toDay);
  }

  async lift(campaign: string): Promise<LiftCounts> {
    this.check();
    return this.measure.lift(campaign);
  }

  async leaseBudgets(
    reports: readonly BudgetReport[],
    now: number,
    settleMs: number,
  ): Promise<BudgetGrant[]> {
    this.check();
    for (const r of reports) checkBudgetReport(r);
    return this.budgets.lease(reports, settleMs, now);
  }

  async budgetCounts(
    campaign: string,
    creative: string,
    unit: string,
    days: readonly string[],
    now: number,
    settleMs: number,
  ): Promise<BudgetCounts> {
    this.check();
    return this.budgets.counts(campaign, creative, unit, days, settleMs, now);
  }

  async patchProfile(pid: string, patch: ProfilePatch, now: number): Promise<Profile | null> {
    this.check();
    const current = this.readProfile(pid);
    if (current === null) return null;
    const patched = applyPatch(current, patch, now);
    const { blob, stages } = splitStages(patched);
    const bytes = encodeProfile(blob);
    this.profiles.set(pid, bytes);
    this.replaceStages(pid, stages ?? []);
    return this.readProfile(pid);
  }

  async funnel(brand: string, fromDay: string, toDay: string): Promise<FunnelCounts> {
    this.check();
    const days = daysBetween(fromDay, toDay);
    const now = this.now();
    const stages: Record<string, number> = {};
    for (const [stage, n] of this.funnels.get(brand) ?? []) setOwn(stages, stage, n);
    const moves: Record<string, Record<string, number>> = {};
    const byDay = this.moves.get(brand);
    for (const day of days) {
      const entry = byDay?.get(day);
      if (entry === undefined) continue;
      if (entry.expiresAt <= now) {
        byDay?.delete(day);
        continue;
      }
      const counts: Record<string, number> = {};
      for (const [move, n] of entry.counts) setOwn(counts, move, n);
      moves[day] = counts;
    }
    return { brand, stages, moves };
  }

  async aliasesOf(pid: string): Promise<Record<string, string>> {
    this.check();
    return aliasRecord(this.aliasSets.get(pid) ?? []);
  }

  async noteOnce(key: string, ttlMs: number): Promise<boolean> {
    this.check();
    const now = this.now();
    const until = this.notes.get(key);
    if (until !== undefined && until > now) return false;
    this.notes.set(key, now + Math.max(1, ttlMs));
    // Expired notes go whenever the map has doubled since the last sweep: O(1) per note over time.
    if (this.notes.size >= 2 * this.notesAfterSweep) {
      for (const [k, u] of this.notes) if (u <= now) this.notes.delete(k);
      this.notesAfterSweep = Math.max(1024, this.notes.size);
    }
    return true;
  }

  /** Sets the person's stages to exactly `pairs`, keeping funnel counts in step. */
  private replaceStages(pid: string, pairs: ReadonlyArray<readonly [string, string]>): void {
    const old = this.stages.get(pid);
    const wanted = new Map(pairs);
    if (old !== undefined) {
      for (const [brand, stage] of old) {
        if (wanted.get(brand) !== stage) this.count(brand, stage, -1);
      }
    }
    for (const [brand, stage] of wanted) {
      if (old?.get(brand) !== stage) this.count(brand, stage, 1);
    }
    if (wanted.size === 0) this.stages.delete(pid);
    else this.stages.set(pid, wanted);
  }

  private setStage(pid: string, brand: string, stage: string): void {
    let mine = this.stages.get(pid);
    if (mine === undefined) this.stages.set(pid, (mine = new Map()));
    const old = mine.get(brand);
    if (old === stage) return;
    if (old !== undefined) this.count(brand, old, -1);
    this.count(brand, stage, 1);
    mine.set(brand, stage);
  }

  private count(brand: string, stage: string, delta: number): void {
    let counts = this.funnels.get(brand);
    if (counts === undefined) this.funnels.set(brand, (counts = new Map()));
    const n = (counts.get(stage) ?? 0) + delta;
    if (n > 0) counts.set(stage, n);
    else counts.delete(stage);
    if (counts.size === 0) this.funnels.delete(brand);
  }

  private recordMove(brand: string, day: string, move: string, now: number): void {
    let byDay = this.moves.get(brand);
    if (byDay === undefined) this.moves.set(brand, (byDay = new Map()));
    let entry = byDay.get(day);
    if (entry === undefined || entry.expiresAt <= now)
      byDay.set(day, (entry = { counts: new Map(), expiresAt: 0 }));
    entry.counts.set(move, (entry.counts.get(move) ?? 0) + 1);
    entry.expiresAt = now + this.movesTtlMs;
  }

  /** Forgets expired event ids now and then (the map would otherwise only grow). */
  private sweepEvents(now: number): void {
    if (now < this.nextSweep && this.seenCount < 1_000_000) return;
    this.seenCount = 0;
    for (const [pid, seen] of this.seenEvents) {
      for (const [id, until] of seen) if (until <= now) seen.delete(id);
      if (seen.size === 0) this.seenEvents.delete(pid);
      else this.seenCount += seen.size;
    }
    this.nextSweep = now + Math.min(this.dedupeMs, 60_000);
  }

  async ping(): Promise<void> {
    this.check();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** How many people have a stored profile. */
  get size(): number {
    return this.profiles.size;
  }

  private check(): void {
    if (this.closed) throw new Error('the embedded store is closed');
  }

  private readProfile(pid: string): Profile | null {
    const bytes = this.profiles.get(pid);
    let blob: Profile | null = null;
    if (bytes !== undefined) {
      blob = decodeProfile(bytes);
      if (blob === null) this.corruptValues++;
    }
    const mine = this.stages.get(pid);
    let stages: Record<string, string> | null = null;
    if (mine !== undefined) {
      stages = {};
      for (const [brand, stage] of mine) setOwn(stages, brand, stage);
    }
    return mergeStages(pid, blob, stages);
  }

  private liveCounters(pid: string, now: number): CounterHash | undefined {
    const hash = this.counters.get(pid);
    if (hash === undefined) return undefined;
    if (hash.expiresAt <= now) {
      this.counters.delete(pid);
      return undefined;
    }
    return hash;
  }

  private readCounters(pid: string): FrequencyCounters {
    const hash = this.liveCounters(pid, this.now());
    const out: Record<string, number[]> = {};
    if (hash === undefined) return out;
    for (const [campaign, bytes] of hash.fields) {
      const times = decodeTimes(bytes);
      if (times === null) this.corruptValues++;
      else setCounter(out, campaign, times);
    }
    return out;
  }
}
