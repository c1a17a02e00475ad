/**
 * A short-lived in-process cache in front of a profile store: people (profile + counters) and
 * alias resolutions, each an LRU bounded by entries and by age (lru-cache).
 *
 * - Misses are cached too (an unknown person, an alias nobody has), so unknown traffic does not
 *   reach the backing store on every request.
 * - Concurrent loads of the same person (or alias) share one backing call.
 * - A write through this store updates or drops what it touches at once: a cached entry never
 *   outlives a write made through this instance. With `announce`, every write is also announced
 *   to the fleet (the bus) before it resolves, so that every other instance and thread drops its
 *   copy (`invalidatePerson` / `invalidateAlias`) within the bus's delay; without it, or while
 *   the bus is down, a copy elsewhere lives at most the TTL.
 * - Cached records are frozen and shared: the same profile object is handed out until it is
 *   replaced, so per-profile work done by the evaluator is reused too.
 * - Admission (`admitAfter`): a person may be cached only from their n-th load within about a
 *   TTL (a small count-min sketch of loads, halved every TTL, as TinyLFU's doorkeeper).
 *   Traffic spread thinly over millions of people then does not churn the cache: every entry
 *   cached and never hit again costs the garbage collector (measured over a million people:
 *   about 8 µs of CPU per decision). Someone asked for twice in a short while is cached.
 * - Standing aside (`standAside`, on by default): when hardly any look-up hits (under 5% of a
 *   window of 1,024), a miss goes straight to the store, neither shared with a load of the same
 *   key in flight, nor counted for admission, nor cached; a fixed sixteenth of the keys (by a
 *   hash) keeps the whole cache, and when more than 10% of their look-ups hit, everyone is taken
 *   back. Entries already cached still answer, and writes still update or drop them: only what a
 *   miss costs changes. See `Worth` for what was measured.
 */
import { LRUCache } from 'lru-cache';
import { hashString } from '../../rules/compile.js';
import type { FrequencyCounters, Profile } from '../../rules/types.js';
import { appendImpression, impressionLimits, setCounter } from './impressions.js';
import { aliasMember } from './person.js';
import type {
  AliasLink,
  BudgetCounts,
  BudgetGrant,
  BudgetReport,
  BusMessage,
  CacheLookups,
  DeliveryAdd,
  DeliveryRow,
  EventResult,
  EventStore,
  EventWrite,
  ExposureWrite,
  FoundByAlias,
  FunnelCounts,
  LiftCounts,
  PeopleSample,
  PersonRecord,
  PersonStore,
  ProfilePatch,
  ProfileStore,
} from './types.js';

export interface CachedStoreOptions {
  /** People kept (profile + counters, misses included). */
  maxPeople: number;
  /** Alias resolutions kept (misses included). */
  maxAliases: number;
  /** Longest an entry is used, ms. */
  ttlMs: number;
  /** The clock entries age by (tests inject one). Default performance.now. */
  now?: () => number;
  /**
   * Loads of a person, or of an alias's resolution, within the recent window, before it is cached.
   * Default 1 (at once).
   */
  admitAfter?: number;
  /** Misses skip the cache while it hardly hits (see the header). Default true. */
  standAside?: boolean;
  /**
   * Tells the fleet what a write changed (the bus); awaited before the write resolves, and never
   * throws (a failure is its own to report).
   */
  announce?: (messages: BusMessage[]) => Promise<void>;
}

/** People or aliases per announcement of a bulk write. */
const ANNOUNCE_BATCH = 1000;

/**
 * One cache's figures; `notAdmitted`: loaded but not cached, not asked for often enough yet;
 * `bypassed`: misses sent straight to the store while the cache stood aside (counted in `misses`
 * too).
 */
export interface OneCacheStats {
  size: number;
  hits: number;
  misses: number;
  notAdmitted: number;
  bypassed: number;
}

export interface CacheStats {
  people: OneCacheStats;
  aliases: OneCacheStats;
  /** Calls to the backing store made for cache misses. */
  backingLoads: number;
  /** Misses that joined a load already in flight instead of making their own. */
  coalesced: number;
  invalidations: number;
  /** True while the cache stands aside (hardly any look-up hits). */
  aside: boolean;
  /** Times it stood aside or took everyone back. */
  asideChanges: number;
}

/** A cached alias miss (lru-cache does not store null). */
const NOBODY = Symbol('nobody');
type AliasEntry = string | typeof NOBODY;

interface InFlight<T> {
  promise: Promise<T>;
  /** Set when a write made the result out of date before it arrived: do not cache it. */
  stale: boolean;
}

const EMPTY_COUNTERS: FrequencyCounters = Object.freeze({});

export class CachedStore implements ProfileStore, EventStore, CacheLookups {
  private readonly backing: PersonStore;
  private readonly people: LRUCache<string, PersonRecord>;
  private readonly aliases: LRUCache<string, AliasEntry>;
  private readonly loadingPeople = new Map<string, InFlight<PersonRecord>>();
  private readonly loadingAliases = new Map<string, InFlight<string | null>>();
  /** Writes and invalidations of people so far: a read by alias is cached only if none came between. */
  private personWrites = 0;
  private readonly counts = {
    peopleHits: 0,
    peopleMisses: 0,
    aliasHits: 0,
    aliasMisses: 0,
    backingLoads: 0,
    coalesced: 0,
    invalidations: 0,
    peopleNotAdmitted: 0,
    aliasesNotAdmitted: 0,
    peopleBypassed: 0,
    aliasesBypassed: 0,
  };
  /** Whether misses are worth the cache's cost; null: they always go through it. */
  private readonly worth: Worth | null;
  private readonly admission: Doorkeeper | null;
  /**
   * The same rule for aliases. Traffic that names each person once (an exchange's cookie ids over
   * a large audience) would otherwise put every alias in the cache and push another out: a
   * 100,000-entry map written on every bid, and the garbage it leaves. Measured with two OpenRTB
   * servers on one Redis, this build and the one that cached every alias, in alternating 5 s
   * closed-loop runs of the load run's uniform OpenRTB scenario (100,000 aliased people): the
   * other build's CPU per bid was 1.11x this one's (median of 12 pairs, 0.92-1.28; 10 of 12 above 1).
   */
  private readonly aliasAdmission: Doorkeeper | null;
  private readonly announce: (messages: BusMessage[]) => Promise<void>;

  constructor(backing: PersonStore, opts: CachedStoreOptions) {
    this.backing = backing;
    this.announce = opts.announce ?? (async () => {});
    const ttl = Math.max(1, opts.ttlMs);
    const clock = opts.now === undefined ? {} : { perf: { now: opts.now }, ttlResolution: 0 };
    this.people = new LRUCache<string, PersonRecord>({ max: Math.max(1, opts.maxPeople), ttl, ...clock });
    this.aliases = new LRUCache<string, AliasEntry>({ max: Math.max(1, opts.maxAliases), ttl, ...clock });
    const admitAfter = Math.max(1, Math.floor(opts.admitAfter ?? 1));
    const now = opts.now ?? (() => performance.now());
    this.admission = admitAfter > 1 ? new Doorkeeper(admitAfter, opts.maxPeople, ttl, now) : null;
    this.aliasAdmission = admitAfter > 1 ? new Doorkeeper(admitAfter, opts.maxAliases, ttl, now) : null;
    this.worth = opts.standAside === false ? null : new Worth();
  }

  get kind(): ProfileStore['kind'] {
    return this.backing.kind;
  }

  // ---- CacheLookups: synchronous, for the hot path -------------------------------------------------

  cachedPerson(pid: string): PersonRecord | undefined {
    const hit = this.people.get(pid);
    if (hit !== undefined) {
      this.counts.peopleHits++;
      this.lookedUp(pid, true);
    }
    // A miss here is counted by the load that follows it.
    return hit;
  }

  cachedAlias(kind: string, value: string): string | null | undefined {
    const member = aliasMember(kind, value);
    const hit = this.aliases.get(member);
    if (hit === undefined) return undefined;
    this.counts.aliasHits++;
    this.lookedUp(member, true);
    return hit === NOBODY ? null : hit;
  }

  // ---- reads ------------------------------------------------------------------------------------

  loadPerson(pid: string): Promise<PersonRecord> {
    const hit = this.people.get(pid);
    if (hit !== undefined) {
      this.counts.peopleHits++;
      this.lookedUp(pid, true);
      return Promise.resolve(hit);
    }
    this.counts.peopleMisses++;
    if (this.lookedUp(pid, false)) {
      this.counts.peopleBypassed++;
      this.counts.backingLoads++;
      return this.backing.loadPerson(pid);
    }
    const pending = this.loadingPeople.get(pid);
    if (pending !== undefined) {
      this.counts.coalesced++;
      return pending.promise;
    }
    this.counts.backingLoads++;
    const flight: InFlight<PersonRecord> = {
      stale: false,
      promise: this.backing.loadPerson(pid).then(
        (record) => {
          if (this.loadingPeople.get(pid) === flight) this.loadingPeople.delete(pid);
          return flight.stale ? record : this.keep(pid, record);
        },
        (err: unknown) => {
          if (this.loadingPeople.get(pid) === flight) this.loadingPeople.delete(pid);
          throw err;
        },
      ),
    };
    this.loadingPeople.set(pid, flight);
    return flight.promise;
  }

  /**
   * Counts a look-up of `key` (a person id or an alias member) towards the cache's worth. True
   * when the cache stands aside for the key: a miss then goes straight to the store.
   */
  private lookedUp(key: string, hit: boolean): boolean {
    const w = this.worth;
    if (w === null) return false;
    if (w.aside && !alwaysCached(key)) return true;
    w.note(hit);
    return false;
  }

  /** A loaded record, cached when admitted (frozen: decisions share it). */
  private keep(pid: string, record: PersonRecord): PersonRecord {
    if (this.admission !== null && !this.admission.admit(pid)) {
      this.counts.peopleNotAdmitted++;
      return record;
    }
    const frozen = freezeRecord(record);
    this.people.set(pid, frozen);
    return frozen;
  }

  /**
   * The person an alias names, with their record: from the cache when it knows the alias, else in
   * one round trip where the backing store can (then both are cached, unless a write touched them
   * on the way: an announced change of the alias, or of any person, since the read was sent).
   */
  loadPersonByAlias(kind: string, value: string): Promise<FoundByAlias> {
    const member = aliasMember(kind, value);
    const hit = this.aliases.get(member);
    const byAlias = this.backing.loadPersonByAlias;
    if (hit !== undefined || byAlias === undefined || this.loadingAliases.has(member)) {
      return this.resolveAlias(kind, value).then((pid) =>
        pid === null ? { pid, record: null } : this.loadPerson(pid).then((record) => ({ pid, record })),
      );
    }
    this.counts.aliasMisses++;
    this.counts.backingLoads++;
    if (this.lookedUp(member, false)) {
      this.counts.aliasesBypassed++;
      return byAlias.call(this.backing, kind, value);
    }
    const writes = this.personWrites;
    const found = byAlias.call(this.backing, kind, value);
    // The alias's own promise is made only for a request that joins this read (most never do):
    // one promise fewer per miss, and none left unhandled when the read fails.
    let joined: Promise<string | null> | null = null;
    const flight: InFlight<string | null> = {
      stale: false,
      get promise() {
        joined ??= found.then((f) => f.pid);
        return joined;
      },
    };
    this.loadingAliases.set(member, flight);
    const settle = () => {
      if (this.loadingAliases.get(member) === flight) this.loadingAliases.delete(member);
    };
    return found.then(
      ({ pid, record }) => {
        settle();
        if (flight.stale) return { pid, record };
        this.keepAlias(member, pid);
        if (pid === null || record === null) return { pid, record };
        this.counts.peopleMisses++;
        // A write to any person since the read was sent (here or announced) may be this one's.
        if (this.personWrites !== writes) return { pid, record };
        return { pid, record: this.keep(pid, record) };
      },
      (err: unknown) => {
        settle();
        throw err;
      },
    );
  }

  /** An alias's loaded resolution (someone, or nobody), cached when admitted. */
  private keepAlias(member: string, pid: string | null): void {
    if (this.aliasAdmission !== null && !this.aliasAdmission.admit(member)) {
      this.counts.aliasesNotAdmitted++;
      return;
    }
    this.aliases.set(member, pid ?? NOBODY);
  }

  resolveAlias(kind: string, value: string): Promise<string | null> {
    const member = aliasMember(kind, value);
    const hit = this.aliases.get(member);
    if (hit !== undefined) {
      this.counts.aliasHits++;
      this.lookedUp(member, true);
      return Promise.resolve(hit === NOBODY ? null : hit);
    }
    this.counts.aliasMisses++;
    if (this.lookedUp(member, false)) {
      this.counts.aliasesBypassed++;
      this.counts.backingLoads++;
      return this.backing.resolveAlias(kind, value);
    }
    const pending = this.loadingAliases.get(member);
    if (pending !== undefined) {
      this.counts.coalesced++;
      return pending.promise;
    }
    this.counts.backingLoads++;
    const flight: InFlight<string | null> = {
      stale: false,
      promise: this.backing.resolveAlias(kind, value).then(
        (pid) => {
          if (this.loadingAliases.get(member) === flight) this.loadingAliases.delete(member);
          if (!flight.stale) this.keepAlias(member, pid);
          return pid;
        },
        (err: unknown) => {
          if (this.loadingAliases.get(member) === flight) this.loadingAliases.delete(member);
          throw err;
        },
      ),
    };
    this.loadingAliases.set(member, flight);
    return flight.promise;
  }

  /** Always from the backing store: whoever asks for one profile wants it as stored now. */
  getProfile(pid: string): Promise<Profile | null> {
    return this.backing.getProfile(pid);
  }

  // ---- writes: through to the backing store, then the cache follows ------------------------------

  async putProfile(profile: Profile): Promise<void> {
    this.invalidatePerson(profile.id);
    try {
      await this.backing.putProfile(profile);
    } finally {
      this.invalidatePerson(profile.id);
    }
    await this.announce([{ type: 'person', pid: profile.id }]);
  }

  async putProfiles(profiles: readonly Profile[]): Promise<void> {
    for (const p of profiles) this.invalidatePerson(p.id);
    try {
      await this.backing.putProfiles(profiles);
    } finally {
      for (const p of profiles) this.invalidatePerson(p.id);
    }
    await this.announcePeople(profiles.map((p) => p.id));
  }

  async linkAliases(pid: string, aliases: Readonly<Record<string, string>>): Promise<void> {
    const entries = Object.entries(aliases);
    for (const [kind, value] of entries) this.invalidateAlias(kind, value);
    try {
      await this.backing.linkAliases(pid, aliases);
    } finally {
      for (const [kind, value] of entries) this.invalidateAlias(kind, value);
    }
    await this.announceAliases(entries.map(([kind, value]) => aliasMember(kind, value)));
  }

  async linkManyAliases(links: readonly AliasLink[]): Promise<void> {
    const members: string[] = [];
    for (const [, aliases] of links)
      for (const [kind, value] of Object.entries(aliases)) members.push(aliasMember(kind, value));
    const drop = () => {
      for (const member of members) this.invalidateAliasMember(member);
    };
    drop();
    try {
      await this.backing.linkManyAliases(links);
    } finally {
      drop();
    }
    await this.announceAliases(members);
  }

  async recordImpression(
    pid: string,
    campaignId: string,
    at: number,
    keep: number,
    ttlMs: number,
  ): Promise<void> {
    // A load already on its way may have read the counters before this write.
    this.dropLoading(pid);
    try {
      await this.backing.recordImpression(pid, campaignId, at, keep, ttlMs);
    } catch (e) {
      this.invalidatePerson(pid);
      throw e;
    }
    await this.announce([{ type: 'person', pid }]);
    // Update the cached counters the same way the store did, keeping the entry's age.
    const cached = this.people.get(pid, { updateAgeOnGet: false });
    if (cached === undefined) return;
    const limits = impressionLimits(keep, ttlMs);
    const counters: Record<string, number[]> = {};
    for (const c of Object.keys(cached.counters)) setCounter(counters, c, cached.counters[c]!.slice());
    setCounter(
      counters,
      campaignId,
      appendImpression(cached.counters[campaignId] ?? [], at, limits.keep, limits.ttlMs),
    );
    this.people.set(pid, freezeRecord({ profile: cached.profile, counters }), { noUpdateTTL: true });
  }

  async forgetPerson(pid: string): Promise<boolean> {
    this.invalidatePerson(pid);
    this.invalidateAliasesOf(pid);
    // Other instances cache the person's aliases by value: they are named in the announcement.
    const aliases = await this.backing.aliasesOf(pid);
    let found: boolean;
    try {
      found = await this.backing.forgetPerson(pid);
    } finally {
      this.invalidatePerson(pid);
      this.invalidateAliasesOf(pid);
    }
    const members = Object.entries(aliases).map(([kind, value]) => aliasMember(kind, value));
    await this.announce([{ type: 'person', pid }]);
    await this.announceAliases(members);
    return found;
  }

  /**
   * Every person an event touches is dropped from the cache (before and after the write) and
   * announced, duplicates too (the announcement of their first application may have been lost).
   */
  async applyEvents(events: readonly EventWrite[]): Promise<EventResult[]> {
    const pids = new Set(events.map((e) => e.pid));
    for (const pid of pids) this.invalidatePerson(pid);
    let results: EventResult[];
    try {
      results = await this.backing.applyEvents(events);
    } finally {
      for (const pid of pids) this.invalidatePerson(pid);
    }
    await this.announcePeople([...pids]);
    return results;
  }

  async patchProfile(pid: string, patch: ProfilePatch, now: number): Promise<Profile | null> {
    this.invalidatePerson(pid);
    let patched: Profile | null;
    try {
      patched = await this.backing.patchProfile(pid, patch, now);
    } finally {
      this.invalidatePerson(pid);
    }
    if (patched !== null) await this.announce([{ type: 'person', pid }]);
    return patched;
  }

  funnel(brand: string, fromDay: string, toDay: string): Promise<FunnelCounts> {
    return this.backing.funnel(brand, fromDay, toDay);
  }

  aliasesOf(pid: string): Promise<Record<string, string>> {
    return this.backing.aliasesOf(pid);
  }

  noteOnce(key: string, ttlMs: number): Promise<boolean> {
    return this.backing.noteOnce(key, ttlMs);
  }

  // Measurement changes nothing a decision reads: straight through.
  addDelivery(adds: readonly DeliveryAdd[]): Promise<void> {
    return this.backing.addDelivery(adds);
  }

  recordExposures(exposures: readonly ExposureWrite[]): Promise<void> {
    return this.backing.recordExposures(exposures);
  }

  delivery(campaign: string, fromDay: string, toDay: string): Promise<DeliveryRow[]> {
    return this.backing.delivery(campaign, fromDay, toDay);
  }

  lift(campaign: string): Promise<LiftCounts> {
    return this.backing.lift(campaign);
  }

  leaseBudgets(reports: readonly BudgetReport[], now: number, settleMs: number): Promise<BudgetGrant[]> {
    return this.backing.leaseBudgets(reports, now, settleMs);
  }

  budgetCounts(
    campaign: string,
    creative: string,
    unit: string,
    days: readonly string[],
    now: number,
    settleMs: number,
  ): Promise<BudgetCounts> {
    return this.backing.budgetCounts(campaign, creative, unit, days, now, settleMs);
  }

  samplePeople(n: number, deadline: number): Promise<PeopleSample> {
    return this.backing.samplePeople(n, deadline);
  }

  ping(): Promise<void> {
    return this.backing.ping();
  }

  close(): Promise<void> {
    this.people.clear();
    this.aliases.clear();
    return this.backing.close();
  }

  // ---- invalidation (also for writes announced by other instances) --------------------------------

  /** Forgets what is cached about a person; a load in flight is not cached when it lands. */
  invalidatePerson(pid: string): void {
    this.counts.invalidations++;
    this.people.delete(pid);
    this.dropLoading(pid);
  }

  /** Forgets a cached alias resolution (hit or miss). */
  invalidateAlias(kind: string, value: string): void {
    this.invalidateAliasMember(aliasMember(kind, value));
  }

  /** invalidateAlias of an alias as the stores name it, `kind:value`. */
  invalidateAliasMember(member: string): void {
    this.counts.invalidations++;
    this.aliases.delete(member);
    const flight = this.loadingAliases.get(member);
    if (flight !== undefined) {
      flight.stale = true;
      this.loadingAliases.delete(member);
    }
  }

  /** Drops everything cached. */
  clear(): void {
    this.personWrites++;
    this.people.clear();
    this.aliases.clear();
    for (const f of this.loadingPeople.values()) f.stale = true;
    for (const f of this.loadingAliases.values()) f.stale = true;
    this.loadingPeople.clear();
    this.loadingAliases.clear();
  }

  stats(): CacheStats {
    const c = this.counts;
    return {
      people: {
        size: this.people.size,
        hits: c.peopleHits,
        misses: c.peopleMisses,
        notAdmitted: c.peopleNotAdmitted,
        bypassed: c.peopleBypassed,
      },
      aliases: {
        size: this.aliases.size,
        hits: c.aliasHits,
        misses: c.aliasMisses,
        notAdmitted: c.aliasesNotAdmitted,
        bypassed: c.aliasesBypassed,
      },
      backingLoads: c.backingLoads,
      coalesced: c.coalesced,
      invalidations: c.invalidations,
      aside: this.worth?.aside ?? false,
      asideChanges: this.worth?.changes ?? 0,
    };
  }

  /** Announces people in messages of at most ANNOUNCE_BATCH (one `person` message for one). */
  private async announcePeople(pids: readonly string[]): Promise<void> {
    if (pids.length === 1) return this.announce([{ type: 'person', pid: pids[0]! }]);
    const messages: BusMessage[] = [];
    for (let i = 0; i < pids.length; i += ANNOUNCE_BATCH)
      messages.push({ type: 'people', pids: pids.slice(i, i + ANNOUNCE_BATCH) });
    if (messages.length > 0) await this.announce(messages);
  }

  private async announceAliases(members: readonly string[]): Promise<void> {
    const messages: BusMessage[] = [];
    for (let i = 0; i < members.length; i += ANNOUNCE_BATCH)
      messages.push({ type: 'aliases', members: members.slice(i, i + ANNOUNCE_BATCH) });
    if (messages.length > 0) await this.announce(messages);
  }

  private dropLoading(pid: string): void {
    this.personWrites++;
    const flight = this.loadingPeople.get(pid);
    if (flight !== undefined) {
      flight.stale = true;
      this.loadingPeople.delete(pid);
    }
  }

  /** Cached aliases pointing at the person (rare: forgetting a person). */
  private invalidateAliasesOf(pid: string): void {
    const members: string[] = [];
    for (const [member, entry] of this.aliases.entries()) if (entry === pid) members.push(member);
    for (const member of members) this.aliases.delete(member);
    for (const [member, flight] of this.loadingAliases) {
      flight.stale = true;
      this.loadingAliases.delete(member);
    }
  }
}

/** The record frozen all the way down, so that sharing it is safe. */
function freezeRecord(record: PersonRecord): PersonRecord {
  const profile = record.profile === null ? null : deepFreeze(record.profile);
  let counters = record.counters;
  if (Object.keys(counters).length === 0) counters = EMPTY_COUNTERS;
  else {
    for (const c of Object.keys(counters)) Object.freeze(counters[c]);
    Object.freeze(counters);
  }
  return Object.freeze({ profile, counters });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/**
 * How often each key (a person's id, an alias) was loaded lately, approximately: a count-min
 * sketch of two rows of saturating byte counters (one array, two hashes of the key), about 16
 * counters per cached entry. Every counter is halved once a cache TTL has passed, or sooner, after
 * as many loads as an eighth of the counters (twice the cache's size): a single load is forgotten
 * within about a TTL (caching someone asked for once a minute ago would only hold them until the
 * TTL ends), and the sketch never fills up enough to answer "seen" for many keys it has not seen.
 */
class Doorkeeper {
  private readonly counts: Uint8Array;
  /** The same counters, four at a time, for halving. */
  private readonly words: Uint32Array;
  private readonly mask: number;
  private readonly threshold: number;
  private readonly window: number;
  private readonly periodMs: number;
  private readonly now: () => number;
  private added = 0;
  private halvedAt: number;

  constructor(threshold: number, maxEntries: number, periodMs: number, now: () => number) {
    let size = 1 << 12;
    while (size < maxEntries * 16 && size < 1 << 24) size *= 2;
    this.counts = new Uint8Array(size);
    this.words = new Uint32Array(this.counts.buffer);
    this.mask = size - 1;
    this.threshold = threshold;
    this.window = size >>> 3;
    this.periodMs = periodMs;
    this.now = now;
    this.halvedAt = now();
  }

  /** Counts one load of `key`; true once it has been loaded `threshold` times lately. */
  admit(key: string): boolean {
    const t = this.now();
    if (t - this.halvedAt >= this.periodMs) this.halve(t);
    let h1 = 0x811c9dc5;
    let h2 = 0x9747b28c;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    const a = (h1 ^ (h1 >>> 16)) & this.mask;
    const b = (h2 ^ (h2 >>> 13)) & this.mask;
    const counts = this.counts;
    const seen = Math.min(counts[a]!, counts[b]!);
    if (seen + 1 >= this.threshold) return true;
    // Conservative update: only the smaller counters grow.
    if (counts[a] === seen) counts[a] = seen + 1;
    if (counts[b] === seen) counts[b] = seen + 1;
    if (++this.added >= this.window) this.halve(t);
    return false;
  }

  private halve(t: number): void {
    this.added = 0;
    this.halvedAt = t;
    const w = this.words;
    for (let i = 0; i < w.length; i++) w[i] = (w[i]! >>> 1) & 0x7f7f7f7f;
  }
}

/** Look-ups per judgement of the cache's worth. */
const WORTH_WINDOW = 1024;
/** The cache stands aside when fewer look-ups than this hit in a window... */
const ASIDE_BELOW = 0.05;
/** ...and takes everyone back when more than this of the sampled keys' look-ups hit. */
const BACK_ABOVE = 0.1;

/**
 * Whether the cache earns what its misses cost. A miss through the cache costs more than one
 * straight to the store: the look-up of loads in flight and their bookkeeping, two admission
 * counts, and for what is admitted a frozen copy in an LRU that the garbage collector carries
 * until it expires. On traffic spread thinly over many people that is nearly every request, for
 * hardly a hit. Measured with `npm run load:compare` (two OpenRTB servers on one Redis,
 * alternating closed-loop runs of the load run's uniform OpenRTB scenario: 100,000 aliased people,
 * of whose alias look-ups 2.4% hit): with every miss sent straight to the store, a bid cost 0.77x
 * the CPU (median of 8 pairs, all below 1); with admission alone taken out, 0.82x; this class as
 * it is, against the build before it, 0.87x and 0.90x (two series of 10 pairs, 9 of each below
 * 1). A hit saves a round trip (tens of µs of the server's and Redis's CPU, and its latency), so
 * the cache steps aside only where hits are rare: below 5%, back above 10% (a margin, so that it
 * does not flap).
 *
 * While it stands aside, the keys of `alwaysCached` (a sixteenth, by a hash) still use the whole
 * cache: their hit ratio is what the cache would do for everyone, and the only one counted.
 */
class Worth {
  aside = false;
  changes = 0;
  private looks = 0;
  private hits = 0;

  note(hit: boolean): void {
    if (hit) this.hits++;
    if (++this.looks < WORTH_WINDOW) return;
    const ratio = this.hits / this.looks;
    this.looks = 0;
    this.hits = 0;
    if (this.aside ? ratio > BACK_ABOVE : ratio < ASIDE_BELOW) {
      this.aside = !this.aside;
      this.changes++;
    }
  }
}

/** Whether a key is of the sixteenth that keeps the cache while it stands aside. */
export function alwaysCached(key: string): boolean {
  const h = hashString(key);
  return ((h ^ (h >>> 15)) & 15) === 0;
}
