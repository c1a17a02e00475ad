/**
 * The profile store on Redis: a single Redis, Redis Cluster or Redis Sentinel (redis-client.ts),
 * one key layout for all three (redis-keys.ts) in which every script touches one hash slot.
 *
 * Strings: writes encode with the ids this process knows, asking the dictionary first for the
 * strings it does not (one round trip for a batch); a read that meets ids this process does not
 * know asks for them (one round trip), then decodes. Every slot carries a marker naming the
 * dictionary its ids come from (lua.ts): a decision read that finds another one than this
 * process knows checks the store's identity, and either learns the dictionary again (it changed:
 * the store lost its data and was written anew) or treats the value as lost (its ids come from a
 * dictionary the store no longer has). Writes are checked against the marker the same way.
 *
 * Identity: the store's epoch (`meta:{ms}`) is made on first use and read again every second; a
 * new epoch means the store lost its data (a Redis restarted without persistence, a flushed
 * database, a shard lost with its replicas). Listeners of `onReset` hear of it (the server
 * drops its cache, says so in a metric and restores its rule set).
 *
 * Funnel counts: scripts that change stages record the change in the slot's pending counts; a
 * fold gathers them into the global counts by name (every few seconds, and before every funnel
 * read, so a read is exact): FOLD_TAKE on each run of slots of one node, FOLD_APPLY on the
 * global slot (once per slot and generation), FOLD_CLEAR; a fold cut short is finished by the
 * next one, and nothing is counted twice.
 *
 * Durability: applyEvents resolves once the events' masters have passed them to the replicas
 * asked for (WAIT; `waitReplicas`), so an acknowledged event survives a failover.
 */

import type { Redis } from 'ioredis';
import type { FrequencyCounters, Profile } from '../../rules/types.js';
import { StringDictionary } from './dictionary.js';
import { decodeTimes, impressionLimits, setCounter } from './impressions.js';
import {
  APPLY_EVENT_LUA,
  DEL_IF_EQUALS_LUA,
  DICT_ALL_LUA,
  DICT_ASSIGN_LUA,
  DICT_ERASE_LUA,
  DICT_LOOKUP_LUA,
  DICT_RETIRE_LUA,
  FOLD_APPLY_LUA,
  FOLD_CLEAR_LUA,
  FOLD_TAKE_LUA,
  FOLD_TURN_LUA,
  FORGET_PERSON_LUA,
  IDENTITY_LUA,
  LINK_ALIASES_LUA,
  LOAD_PERSON_LUA,
  NO_MARKER,
  PATCH_PERSON_LUA,
  PUT_PEOPLE_LUA,
  READ_PERSON_LUA,
  RECORD_IMPRESSION_LUA,
  STALE_DICTIONARY,
} from './lua.js';
import {
  aliasMember,
  aliasRecord,
  applyPatch,
  checkEvent,
  DEFAULT_EVENT_DEDUPE_MS,
  DEFAULT_MOVES_TTL_MS,
  daysBetween,
  setOwn,
  splitStages,
  utcDay,
} from './person.js';
import {
  bodyStart,
  decodePerson,
  encodeBody,
  encodeStages,
  MissingStrings,
  personIds,
} from './person-format.js';
import {
  newEpoch,
  RedisClient,
  type RedisClientOptions,
  type RedisTopology,
  RedisUnavailableError,
} from './redis-client.js';
import { RedisKeys } from './redis-keys.js';
import { type Arg, type LuaScript, luaScript } from './resp.js';

import type {
  AliasLink,
  EventResult,
  EventStore,
  EventWrite,
  FunnelCounts,
  PersonRecord,
  ProfilePatch,
  ProfileStore,
} from './types.js';

export { RedisUnavailableError } from './redis-client.js';

export type RedisStoreOptions = (
  | {
      /** `redis://[user:password@]host:port[/db]` or `rediss://…`: a single Redis. */
      url: string;
    }
  | {
      /** How Redis is deployed (single, cluster, sentinel). */
      topology: RedisTopology;
    }
  | {
      /** Connections to share (closed by whoever made them). */
      client: RedisClient;
    }
) &
  Omit<RedisClientOptions, 'topology'> & {
    /** Put in front of every key (`mindshare:`); must not contain `{` or `}`. */
    keyPrefix?: string;
    /** Commands per pipeline for bulk writes. Default 1000. */
    batchSize?: number;
    /** How long an event id is remembered (`ev:{pid}:<id>`), ms. Default 7 days. */
    eventDedupeMs?: number;
    /** How long the moves of a day are kept after the last one (`fm:`), ms. Default 400 days. */
    movesTtlMs?: number;
    /**
     * How often this store takes a turn at gathering the funnel counts of a sixteenth of the slots
     * in the background (0: never; they are gathered whole before every read anyway). The fleet
     * takes one turn at a time (a lease), so the background cost does not grow with the fleet.
     * One store of an instance is enough (the control plane's). Default 0.
     */
    foldEveryMs?: number;
    /** How often the store's identity is checked, ms. Default 1000. */
    identityEveryMs?: number;
    /** The largest dictionary loaded whole when the store starts (beyond it, ids are asked for as met). Default 100,000. */
    dictionaryAtStart?: number;
    /**
     * How often this store takes a turn at erasing from the string dictionary what only deleted
     * people held (sweepDictionary; 0: never). The fleet takes one turn at a time (a lease). One
     * store of an instance is enough (the control plane's). Default 0.
     */
    sweepEveryMs?: number;
  };

export interface RedisStoreStats {
  /** The connections: `ready` when commands can be sent to every slot's master. */
  status: string;
  /** The decision-read connection (`ready`, `connecting`, `reconnecting`, `closed`); null when reads share the main one. */
  readStatus: string | null;
  /** Connection errors seen (refused, reset, timeouts). */
  connectionErrors: number;
  /** Stored values that did not decode and were treated as absent. */
  corruptValues: number;
  /** Stored values written with a dictionary the store has lost, treated as absent. */
  lostValues: number;
  /** Times the store's identity changed under this process (it lost its data). */
  resets: number;
  /** Strings of the dictionary this process knows. */
  dictionaryStrings: number;
  /** Strings this process's sweeps erased from the dictionary (only deleted people held them). */
  erasedStrings: number;
  /** Funnel changes that could not be counted (their slot's dictionary was lost). */
  lostCountChanges: number;
}

/** What the store's identity says. */
export interface StoreIdentity {
  epoch: string;
  createdAt: number;
}

/** A store that lost its data, as an instance sees it: the identity before and after. */
export interface StoreReset {
  before: string;
  after: string;
}

/** A write refused: its slot's values come from a dictionary the store has lost (re-import them). */
export class StoreDataLostError extends RedisUnavailableError {}

/** People per PUT_PEOPLE_LUA call in putProfiles. */
const PUT_GROUP = 100;
/** Calls of putProfiles in flight before waiting for the oldest. */
const CALLS_IN_FLIGHT = 40;
/** Attempts of a patch whose profile another instance changed between read and write. */
const PATCH_ATTEMPTS = 10;
/** Encodings in a row that met strings the dictionary did not have, or a dictionary that changed. */
const ENCODE_ATTEMPTS = 4;
/** Slots per fold call (one script on one node). */
const FOLD_RUN = 1024;
/** Folds per FOLD_APPLY call. */
const FOLD_APPLY_GROUP = 500;
/** Alias links per LINK_ALIASES_LUA call. */
const LINKS_PER_CALL = 200;
/** Ids per SADD when a deleted person's strings are noted. */
const CANDIDATES_PER_CALL = 5000;
/** Ids one dictionary sweep checks at most. */
const SWEEP_BATCH = 100_000;
/**
 * How long a sweep waits between retiring ids and reading who holds them: every process hears of
 * it within a second (the identity check), and a write it encoded before takes at most its
 * command timeout (3 s) to land, twice when its slot's marker is checked first.
 */
const SWEEP_GRACE_MS = 10_000;
/** Keys per SCAN step and per pipeline of reads in a sweep. */
const SCAN_COUNT = 1000;

const LOAD: LuaScript = luaScript(LOAD_PERSON_LUA);
const READ = luaScript(READ_PERSON_LUA);
const PUT = luaScript(PUT_PEOPLE_LUA);
const PATCH = luaScript(PATCH_PERSON_LUA);
const FORGET = luaScript(FORGET_PERSON_LUA);
const EVENT = luaScript(APPLY_EVENT_LUA);
const IMPRESSION = luaScript(RECORD_IMPRESSION_LUA);
const DEL_IF_EQUALS = luaScript(DEL_IF_EQUALS_LUA);
const IDENTITY = luaScript(IDENTITY_LUA);
const ASSIGN = luaScript(DICT_ASSIGN_LUA);
const LOOKUP = luaScript(DICT_LOOKUP_LUA);
const ALL = luaScript(DICT_ALL_LUA);
const RETIRE = luaScript(DICT_RETIRE_LUA);
const ERASE = luaScript(DICT_ERASE_LUA);
const LINK = luaScript(LINK_ALIASES_LUA);
const TAKE = luaScript(FOLD_TAKE_LUA);
const APPLY = luaScript(FOLD_APPLY_LUA);
const CLEAR = luaScript(FOLD_CLEAR_LUA);
const FOLD_TURN = luaScript(FOLD_TURN_LUA);

/** The ids of a write came from a dictionary the store no longer has: encode again. */
class StaleIds extends Error {}

export class RedisStore implements ProfileStore, EventStore {
  readonly kind = 'redis' as const;
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  private readonly ownsClient: boolean;
  private readonly batchSize: number;
  private readonly dedupeMs: number;
  private readonly movesTtlMs: number;
  private readonly dictionaryAtStart: number;
  private readonly log: (line: string) => void;
  /** Patches of one person made through this instance run one after another. */
  private readonly patching = new Map<string, Promise<unknown>>();
  /** The strings of stored people, as far as this process knows them. */
  private readonly dict: StringDictionary;
  private readonly resetListeners = new Set<(reset: StoreReset) => void>();
  /** Learning the identity and the dictionary, once the client is up; null when done. */
  private learning: Promise<void> | null = null;
  private learnt = false;
  /** A check of the identity in flight, and when it was sent. */
  private verifying: { sent: number; epoch: Promise<string> } | null = null;
  private folding: Promise<void> | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private corruptValues = 0;
  private lostValues = 0;
  private lostCountChanges = 0;
  private resets = 0;
  private erasedStrings = 0;
  /** The dictionary sweeps' generation this process last heard of (meta `retire`). */
  private retireGen = '';

  constructor(opts: RedisStoreOptions) {
    this.log = opts.log ?? ((line) => console.warn(line));
    if ('client' in opts) {
      this.client = opts.client;
      this.ownsClient = false;
    } else {
      const topology: RedisTopology = 'url' in opts ? { kind: 'single', url: opts.url } : opts.topology;
      this.client = new RedisClient({ ...opts, topology, log: this.log, leanScripts: [LOAD] });
      this.ownsClient = true;
    }
    this.keys = new RedisKeys(opts.keyPrefix ?? '', this.client.kind === 'cluster');
    this.batchSize = Math.max(1, opts.batchSize ?? 1000);
    this.dedupeMs = Math.max(1, Math.ceil(opts.eventDedupeMs ?? DEFAULT_EVENT_DEDUPE_MS));
    this.movesTtlMs = Math.max(1, Math.ceil(opts.movesTtlMs ?? DEFAULT_MOVES_TTL_MS));
    this.dictionaryAtStart = Math.max(0, opts.dictionaryAtStart ?? 100_000);
    this.dict = new StringDictionary(
      {
        assign: async (names) => {
          await this.client.up();
          const [epoch, ...ids] = (await this.client.script(
            ASSIGN,
            [this.keys.dict, this.keys.dictNames, this.keys.meta, this.keys.dictRetiring],
            [newEpoch(), Date.now(), ...names],
          )) as Array<string | number>;
          return { epoch: String(epoch ?? ''), ids: ids.map(Number) };
        },
        lookup: async (ids) => {
          await this.client.up();
          const [epoch, ...names] = (await this.client.script(
            LOOKUP,
            [this.keys.dictNames, this.keys.meta],
            ids.map(String),
          )) as Array<string | null>;
          return { epoch: epoch ?? '', names };
        },
      },
      (before, after) => this.reset(before, after),
    );
    this.learning = this.learnWhenUp();
    const identityEvery = opts.identityEveryMs ?? 1000;
    if (identityEvery > 0) this.every(identityEvery, () => this.checkIdentity());
    const foldEvery = opts.foldEveryMs ?? 0;
    if (foldEvery > 0) this.every(foldEvery, () => this.foldTurn(foldEvery));
    const sweepEvery = opts.sweepEveryMs ?? 0;
    if (sweepEvery > 0) this.every(sweepEvery, () => this.sweepDictionary({ leaseMs: sweepEvery }));
  }

  /** Hears of the store losing its data (its identity changed). Returns a function to stop. */
  onReset(listener: (reset: StoreReset) => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  /** The identity this process knows ('' before it has heard from Redis). */
  get epoch(): string {
    return this.dict.epoch;
  }

  // ---- decisions ------------------------------------------------------------------------------

  loadPerson(pid: string): Promise<PersonRecord> {
    // The decision path: once connected and introduced, one promise from the call to the record.
    if (!this.learnt || !this.client.isReady) return this.loadPersonSlowly(pid);
    return this.readForDecision(pid).then((reply) => this.decodePersonReply(pid, reply));
  }

  /** loadPerson before the store has settled, or while Redis is down. */
  private async loadPersonSlowly(pid: string): Promise<PersonRecord> {
    await this.ready();
    return this.decodePersonReply(pid, await this.readForDecision(pid));
  }

  /** LOAD_PERSON_LUA for a person, on the lean connection when there is one. */
  private readForDecision(pid: string): Promise<unknown> {
    const slot = this.slotOf(pid);
    const keys = [this.keys.person(pid), this.keys.counters(pid), this.keys.slotMarker(slot)];
    const epoch = this.dict.epoch;
    const lean = this.client.lean;
    if (lean === null) return this.client.scriptBuffer(LOAD, keys, [epoch]);
    return lean.evalsha(LOAD, keys, [epoch], slot);
  }

  async resolveAlias(kind: string, value: string): Promise<string | null> {
    await this.client.up();
    const key = this.keys.alias(aliasMember(kind, value));
    const lean = this.client.lean;
    if (lean === null) return this.client.main.get(key);
    const reply = await lean.get(key);
    return Buffer.isBuffer(reply) ? reply.toString('utf8') : null;
  }

  /**
   * A person from LOAD_PERSON_LUA's reply, `[value, counters (flat field, value pairs), marker?]`:
   * synchronous unless the value needs more from Redis (ids this process does not know, or a
   * marker that is not this process's epoch).
   */
  private decodePersonReply(pid: string, reply: unknown): PersonRecord | Promise<PersonRecord> {
    const [value, countersReply, marker] = Array.isArray(reply) ? reply : [];
    const counters = this.decodeCounters(countersReply);
    const profile = this.decodeMarked(pid, value, marker);
    if (profile instanceof Promise) return profile.then((p) => ({ profile: p, counters }));
    return { profile, counters };
  }

  /**
   * A value read with its slot's marker (undefined when it is this process's epoch). A slot
   * without a marker has never been written by this layout's writes (people moved from a single
   * Redis into a cluster, say): its ids are taken as the store's own.
   */
  private decodeMarked(
    pid: string,
    value: unknown,
    marker: unknown,
  ): Profile | null | Promise<Profile | null> {
    if (marker === undefined || marker === null) return this.decodeValue(pid, value);
    const text = Buffer.isBuffer(marker) ? marker.toString('utf8') : String(marker);
    if (text === '') return this.decodeValue(pid, value);
    return this.verifyEpoch(performance.now()).then((epoch) => {
      if (text === epoch) return this.decodeValue(pid, value);
      this.lostValues++;
      return null;
    });
  }

  // ---- reads and writes of profiles ---------------------------------------------------------

  async getProfile(pid: string): Promise<Profile | null> {
    return (await this.readPerson(pid)).profile;
  }

  async putProfile(profile: Profile): Promise<void> {
    await this.writePeople([profile]);
  }

  /**
   * PUT_PEOPLE_LUA for groups of people (people of one slot per group on Redis Cluster), a few
   * dozen calls in flight. Each person's value and counts change together; people of one group
   * together.
   */
  async putProfiles(profiles: readonly Profile[]): Promise<void> {
    if (profiles.length === 0) return;
    await this.writePeople(profiles);
  }

  /**
   * Encodes and writes people. When the ids turn out to come from a dictionary the store no
   * longer has, learns it again and writes once more.
   */
  private async writePeople(profiles: readonly Profile[]): Promise<void> {
    // Split and check everything first: a profile that cannot be encoded writes nothing.
    const split = profiles.map((profile) => {
      this.slotOf(profile.id);
      return splitStages(profile);
    });
    await this.withFreshIds(
      (missing) => {
        const values: Arg[] = new Array<Arg>(2 * profiles.length);
        for (let i = 0; i < profiles.length; i++) {
          const { blob, stages } = split[i]!;
          values[2 * i] = stages === null ? '' : encodeStages(stages, this.dict, missing);
          values[2 * i + 1] = encodeBody(blob, profiles[i]!.id, this.dict, missing);
        }
        return values;
      },
      (epoch, values) => this.sendPeople(profiles, epoch, values),
    );
  }

  private async sendPeople(
    profiles: readonly Profile[],
    epoch: string,
    values: readonly Arg[],
  ): Promise<void> {
    await this.ready();
    const groups = this.groupBySlot(
      profiles.map((p) => p.id),
      Math.min(PUT_GROUP, this.batchSize),
    );
    const inFlight = new Set<Promise<void>>();
    let failure: unknown = null;
    for (const group of groups) {
      if (failure !== null) break;
      const keys: string[] = [];
      const args: Arg[] = [epoch, '0'];
      for (const i of group) {
        const pid = profiles[i]!.id;
        const slot = this.slotOf(pid);
        keys.push(this.keys.person(pid), this.keys.slotMarker(slot), this.keys.pendingCounts(slot));
        args.push(values[2 * i]!, values[2 * i + 1]!);
      }
      const sent = this.marked(epoch, (confirmed) => {
        args[1] = confirmed;
        return this.client.script(PUT, keys, args);
      }).then(
        () => {
          inFlight.delete(sent);
        },
        (err: unknown) => {
          inFlight.delete(sent);
          failure ??= err;
        },
      );
      inFlight.add(sent);
      if (inFlight.size >= CALLS_IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure !== null) throw failure;
  }

  /** The stored bytes of a person (null when none) and the profile they hold, in one round trip. */
  private async readPerson(pid: string): Promise<{ bytes: Buffer | null; profile: Profile | null }> {
    await this.ready();
    const reply = await this.client.scriptBuffer(
      READ,
      [this.keys.person(pid), this.keys.slotMarker(this.slotOf(pid))],
      [this.dict.epoch],
    );
    const [bytes, marker] = Array.isArray(reply) ? reply : [];
    const profile = await this.decodeMarked(pid, bytes, marker);
    return { bytes: Buffer.isBuffer(bytes) && profile !== null ? bytes : null, profile };
  }

  async linkAliases(pid: string, aliases: Readonly<Record<string, string>>): Promise<void> {
    const members = Object.entries(aliases).map(([kind, value]) => aliasMember(kind, value));
    if (members.length === 0) return;
    this.slotOf(pid);
    await this.linkMembers(members.map((m) => [pid, m]));
  }

  async linkManyAliases(links: readonly AliasLink[]): Promise<void> {
    const members: Array<[pid: string, member: string]> = [];
    for (const [pid, aliases] of links) {
      this.slotOf(pid);
      for (const [kind, value] of Object.entries(aliases)) members.push([pid, aliasMember(kind, value)]);
    }
    if (members.length === 0) return;
    await this.linkMembers(members);
  }

  /**
   * Points every alias at its person and adds it to the person's set; then unlinks the aliases
   * that pointed at someone else before (in order, so an alias listed twice ends with the later
   * person). An alias and its person live in different slots: these are separate commands,
   * sent together.
   */
  private async linkMembers(members: ReadonlyArray<readonly [pid: string, member: string]>): Promise<void> {
    await this.ready();
    if (!this.keys.sharded) {
      // Every key on one node: one script a batch (calls in order, so the later link wins).
      const calls: Array<Promise<unknown>> = [];
      for (let from = 0; from < members.length; from += LINKS_PER_CALL) {
        const keys: string[] = [];
        const args: Arg[] = [this.keys.prefix];
        for (const [pid, member] of members.slice(from, from + LINKS_PER_CALL)) {
          keys.push(this.keys.alias(member), this.keys.aliasesOf(pid));
          args.push(pid, member);
        }
        calls.push(this.client.script(LINK, keys, args));
      }
      await Promise.all(calls);
      return;
    }
    const main = this.client.main;
    for (let from = 0; from < members.length; from += this.batchSize) {
      const batch = members.slice(from, from + this.batchSize);
      const replies = await Promise.all(
        batch.flatMap(([pid, member]) => [
          main.getset(this.keys.alias(member), pid),
          main.sadd(this.keys.aliasesOf(pid), member),
        ]),
      );
      const unlinks: Array<Promise<unknown>> = [];
      batch.forEach(([pid, member], i) => {
        const old = replies[2 * i];
        if (typeof old === 'string' && old !== pid) unlinks.push(main.srem(this.keys.aliasesOf(old), member));
      });
      await Promise.all(unlinks);
    }
  }

  async recordImpression(
    pid: string,
    campaignId: string,
    at: number,
    keep: number,
    ttlMs: number,
  ): Promise<void> {
    if (!Number.isFinite(at)) throw new TypeError(`impression time must be a finite number, got ${at}`);
    const limits = impressionLimits(keep, ttlMs);
    this.slotOf(pid);
    await this.ready();
    await this.client.script(
      IMPRESSION,
      [this.keys.counters(pid)],
      [campaignId, at, limits.keep, limits.ttlMs],
    );
  }

  async forgetPerson(pid: string): Promise<boolean> {
    const slot = this.slotOf(pid);
    await this.ready();
    // The person's strings become candidates for erasure from the dictionary (sweepDictionary)
    // before the person goes: should the process stop in between, a sweep finds them still held.
    const value = await this.client.main.getBuffer(this.keys.person(pid));
    const ids = value === null ? null : personIds(value);
    if (ids !== null && ids.length > 0) {
      const distinct = [...new Set(ids)];
      for (let i = 0; i < distinct.length; i += CANDIDATES_PER_CALL)
        await this.client.main.sadd(this.keys.dictGone, ...distinct.slice(i, i + CANDIDATES_PER_CALL));
    }
    // Atomically: the aliases the person had, everything kept under the person's hash tag, and
    // the person's stages taken out of the counts.
    const [deleted, members] = (await this.client.script(
      FORGET,
      [
        this.keys.person(pid),
        this.keys.counters(pid),
        this.keys.aliasesOf(pid),
        this.keys.events(pid),
        this.keys.pendingCounts(slot),
      ],
      [],
    )) as [number, string[]];
    let found = deleted > 0;
    if (members.length > 0) {
      // An alias that has meanwhile moved to someone else stays theirs.
      const results = await Promise.all(
        members.map((member) => this.client.script(DEL_IF_EQUALS, [this.keys.alias(member)], [pid])),
      );
      if (results.some((r) => Number(r) === 1)) found = true;
    }
    return found;
  }

  // ---- events, patches, funnels -----------------------------------------------------------------

  /**
   * One Lua call per event, sent together; then, when replicas are asked for, a WAIT on each
   * master the events went to. When Redis fails part-way, the call rejects; the events that did
   * reach Redis are duplicates on a retry, the others apply then.
   */
  async applyEvents(events: readonly EventWrite[]): Promise<EventResult[]> {
    for (const event of events) {
      checkEvent(event);
      this.slotOf(event.pid);
    }
    if (events.length === 0) return [];
    const replies = new Array<[number, string?, string?]>(events.length);
    // Events whose ids turn out stale are encoded and sent again; the others are not resent.
    let pending = events.map((_, i) => i);
    for (let attempt = 1; pending.length > 0; attempt++) {
      const sending = pending;
      pending = [];
      const sent = await this.withFreshIds(
        (missing) => sending.map((i) => this.eventArgs(events[i]!, missing)),
        (epoch, args) =>
          Promise.allSettled(
            sending.map((i, j) => {
              const event = events[i]!;
              const slot = this.slotOf(event.pid);
              const keys = [
                this.keys.events(event.pid),
                this.keys.counters(event.pid),
                this.keys.person(event.pid),
                this.keys.slotMarker(slot),
                this.keys.pendingCounts(slot),
              ];
              const own = args[j]!;
              own[0] = epoch;
              return this.marked(epoch, (confirmed) => {
                own[1] = confirmed;
                return this.client.script(EVENT, keys, own);
              }) as Promise<[number, string?, string?]>;
            }),
          ),
      );
      let failure: unknown = null;
      sent.forEach((outcome, j) => {
        const i = sending[j]!;
        if (outcome.status === 'fulfilled') replies[i] = outcome.value;
        else if (outcome.reason instanceof StaleIds && attempt < ENCODE_ATTEMPTS) pending.push(i);
        else failure ??= outcome.reason;
      });
      if (failure !== null) throw failure;
    }
    await this.client.waitForReplicas(new Set(events.map((e) => this.slotOf(e.pid))));
    const ids: number[] = [];
    for (const r of replies) if (r.length >= 3) ids.push(Number(r[1]), Number(r[2]));
    if (ids.length > 0) await this.dict.load(ids);
    const names = this.dict.names;
    return replies.map((r, i) => {
      if (Number(r[0]) === 0) return { outcome: 'duplicate' };
      const stage = events[i]!.stage;
      if (r.length < 3 || stage === undefined) return { outcome: 'applied' };
      const from = names[Number(r[1])] ?? stage.defaultStage;
      const to = names[Number(r[2])] ?? '';
      return { outcome: 'applied', moved: { brand: stage.brand, from, to } };
    });
  }

  /** The arguments of APPLY_EVENT_LUA for one event (the first two, epoch and confirmation, filled in when sent). */
  private eventArgs(event: EventWrite, missing: Set<string>): Arg[] {
    const args: Arg[] = ['', '0', this.dedupeMs, event.at];
    if (event.impression === undefined) args.push('0', '', 0, 0);
    else {
      const limits = impressionLimits(event.impression.keep, event.impression.ttlMs);
      args.push('1', event.impression.campaign, limits.keep, limits.ttlMs);
    }
    if (event.stage === undefined) args.push('0', 0, 0, '');
    else {
      const { brand, defaultStage, next } = event.stage;
      const id = (name: string) => {
        const known = this.dict.idOf(name);
        if (known === undefined) missing.add(name);
        return known ?? 0;
      };
      args.push('1', id(brand), id(defaultStage), utcDay(event.at));
      for (const from of Object.keys(next)) args.push(from === '*' ? '*' : id(from), id(next[from]!));
    }
    args.push(event.eventId);
    return args;
  }

  /**
   * Reads the profile and stages, applies the patch, and writes back only if the profile is
   * unchanged since the read (PATCH_PERSON_LUA); on a conflict it reads again. Stages are written
   * brand by brand, so an event moving another brand meanwhile is kept.
   */
  patchProfile(pid: string, patch: ProfilePatch, now: number): Promise<Profile | null> {
    this.slotOf(pid);
    // Queue behind a patch of the same person already running here: no conflict with ourselves.
    const before = this.patching.get(pid) ?? Promise.resolve();
    const run = before.then(
      () => this.patchOnce(pid, patch, now),
      () => this.patchOnce(pid, patch, now),
    );
    this.patching.set(pid, run);
    const clear = () => {
      if (this.patching.get(pid) === run) this.patching.delete(pid);
    };
    run.then(clear, clear);
    return run;
  }

  private async patchOnce(pid: string, patch: ProfilePatch, now: number): Promise<Profile | null> {
    const slot = this.slotOf(pid);
    const keys = [this.keys.person(pid), this.keys.slotMarker(slot), this.keys.pendingCounts(slot)];
    for (let attempt = 0; attempt < PATCH_ATTEMPTS; attempt++) {
      const { bytes, profile } = await this.readPerson(pid);
      if (bytes === null || profile === null) return null;
      const patched = applyPatch(profile, patch, now);
      const { blob, stages } = splitStages(patched);
      const stored = profile.stages ?? {};
      const wanted = new Map(stages ?? []);
      const outcome = (await this.withFreshIds(
        (missing) => {
          const id = (name: string) => {
            const known = this.dict.idOf(name);
            if (known === undefined) missing.add(name);
            return known ?? 0;
          };
          const args: Arg[] = [
            '',
            '0',
            bytes.subarray(bodyStart(bytes)),
            encodeBody(blob, pid, this.dict, missing),
          ];
          for (const [brand, stage] of wanted)
            if (!Object.hasOwn(stored, brand) || stored[brand] !== stage)
              args.push(id(brand), '1', id(stage));
          for (const brand of Object.keys(stored)) if (!wanted.has(brand)) args.push(id(brand), '0', 0);
          return args;
        },
        (epoch, args) => {
          args[0] = epoch;
          return this.marked(epoch, (confirmed) => {
            args[1] = confirmed;
            return this.client.script(PATCH, keys, args);
          });
        },
      )) as number;
      if (outcome === 1) return patched;
      if (outcome === -1) return null;
      // Someone else wrote the profile in between: a short pause, then read again.
      await new Promise((r) => setTimeout(r, Math.random() * 2 * (attempt + 1)));
    }
    throw new Error(`profile ${pid} kept changing while it was patched; try again`);
  }

  async funnel(brand: string, fromDay: string, toDay: string): Promise<FunnelCounts> {
    const days = daysBetween(fromDay, toDay);
    await this.foldCounts();
    const main = this.client.main;
    const [counts, ...perDay] = await Promise.all([
      main.hgetall(this.keys.stageCounts(brand)),
      ...days.map((day) => main.hgetall(this.keys.dayMoves(brand, day))),
    ]);
    const stages = numbers(counts!);
    const moves: Record<string, Record<string, number>> = {};
    days.forEach((day, i) => {
      const m = perDay[i]!;
      if (Object.keys(m).length > 0) moves[day] = numbers(m);
    });
    return { brand, stages, moves };
  }

  /**
   * Gathers the pending funnel changes of every slot into the global counts (see the top of the
   * file). Concurrent calls share one fold.
   */
  foldCounts(): Promise<void> {
    this.folding ??= this.foldOnce(0, this.keys.countSlots - 1).finally(() => {
      this.folding = null;
    });
    return this.folding;
  }

  /** A background turn: one part of the slots, when the fleet's lease falls to this instance. */
  private async foldTurn(leaseMs: number): Promise<void> {
    const parts = Math.ceil(this.keys.countSlots / FOLD_RUN);
    const part = Number(
      await this.client.script(FOLD_TURN, [this.keys.foldLease, this.keys.foldCursor], [leaseMs, parts]),
    );
    if (part < 0 || this.folding !== null) return;
    await this.foldOnce(part * FOLD_RUN, (part + 1) * FOLD_RUN - 1);
  }

  /** Folds the slots `from` .. `to`. */
  private async foldOnce(from: number, to: number): Promise<void> {
    await this.ready();
    const prefix = this.keys.prefix;
    const runs: Array<[number, number]> = this.keys.sharded
      ? this.client
          .slotRuns(FOLD_RUN)
          .filter(([a, b]) => b >= from && a <= to)
          .map(([a, b]): [number, number] => [Math.max(a, from), Math.min(b, to)])
      : [[0, 0]];
    const taken = await Promise.all(
      runs.map(([from, to]) => {
        const tags: string[] = [];
        for (let s = from; s <= to; s++) tags.push(this.keys.slotKeysTag(s));
        return this.client.script(TAKE, [this.keys.pendingCounts(from)], [prefix, ...tags]) as Promise<
          Array<[number, number, string, string[]]>
        >;
      }),
    );
    interface Fold {
      slot: number;
      gen: number;
      marker: string;
      fields: string[];
    }
    const folds: Fold[][] = taken.map((replies, r) =>
      replies.map(([index, gen, marker, fields]) => ({
        slot: runs[r]![0] + Number(index) - 2,
        gen: Number(gen),
        marker: String(marker),
        fields,
      })),
    );
    const all = folds.flat();
    if (all.length === 0) return;
    // The ids of every fold written with the dictionary this process knows.
    const epoch = this.dict.epoch;
    const ids: number[] = [];
    for (const f of all) {
      if (f.marker !== epoch) continue;
      for (let i = 0; i < f.fields.length; i += 2) {
        const parts = f.fields[i]!.split('|');
        ids.push(Number(parts[1]));
        if (parts[0] === 's') ids.push(Number(parts[2]));
        else ids.push(Number(parts[3]), Number(parts[4]));
      }
    }
    await this.dict.load(ids);
    const names = this.dict.names;
    const groups: Arg[][] = [];
    let args: Arg[] = [];
    let count = 0;
    for (const f of all) {
      const changes: string[] = [];
      if (f.marker === epoch) {
        for (let i = 0; i < f.fields.length; i += 2) {
          const parts = f.fields[i]!.split('|');
          const delta = f.fields[i + 1]!;
          const brand = names[Number(parts[1])];
          if (parts[0] === 's') {
            const stage = names[Number(parts[2])];
            if (brand !== undefined && stage !== undefined) changes.push('s', brand, stage, delta);
            else this.lostCountChanges++;
          } else {
            const from = names[Number(parts[3])];
            const to = names[Number(parts[4])];
            if (brand !== undefined && from !== undefined && to !== undefined)
              changes.push('m', brand, `${parts[2]}|${from}>${to}`, delta);
            else this.lostCountChanges++;
          }
        }
      } else {
        this.lostCountChanges += f.fields.length / 2;
      }
      args.push(f.slot, f.gen, changes.length / 4, ...changes);
      if (++count >= FOLD_APPLY_GROUP) {
        groups.push(args);
        args = [];
        count = 0;
      }
    }
    if (args.length > 0) groups.push(args);
    for (const group of groups)
      await this.client.script(APPLY, [this.keys.folds], [prefix, this.movesTtlMs, ...group]);
    await Promise.all(
      folds.map((run, r) => {
        if (run.length === 0) return null;
        const pairs: Arg[] = [];
        for (const f of run) pairs.push(this.keys.slotKeysTag(f.slot), f.gen);
        return this.client.script(CLEAR, [this.keys.pendingCounts(runs[r]![0])], [prefix, ...pairs]);
      }),
    );
  }

  // ---- erasing what deleted people leave in the dictionary ---------------------------------------

  /**
   * Erases from the string dictionary the strings that only deleted people held, so that nothing
   * of a person stays after a DELETE. Deleting a person notes the ids of its strings
   * (`dict:gone`); a sweep, one in the fleet at a time (a lease of `leaseMs`):
   *  1. moves up to `batch` of them to `dict:retiring` and raises the `retire` generation: within
   *     a second every process hears of it with the identity, and from then asks Redis for those
   *     strings before writing them (which keeps a string asked for);
   *  2. waits `graceMs`, longer than a write encoded before a process heard takes to land
   *     (commands time out after 3 s and are not replayed);
   *  3. gathers the pending funnel counts (they name stages by id), then reads every person value
   *     and pending count of every master, and keeps the ids still held;
   *  4. erases the strings of the others that are still retiring, ends the retirement and raises
   *     the generation again (processes forget what they knew of those ids).
   * A sweep that fails part-way erases nothing; the ids stay retiring for the next one. Returns
   * null when another instance holds the lease, else what it did.
   */
  async sweepDictionary(
    opts: { leaseMs?: number; graceMs?: number; batch?: number } = {},
  ): Promise<{ checked: number; erased: number } | null> {
    await this.ready();
    const leaseMs = Math.max(1000, opts.leaseMs ?? 600_000);
    const lease = newEpoch();
    const main = this.client.main;
    if ((await main.set(this.keys.dictSweepLease, lease, 'PX', leaseMs, 'NX')) === null) return null;
    try {
      const retiring = (
        (await this.client.script(
          RETIRE,
          [this.keys.dictGone, this.keys.dictRetiring, this.keys.meta],
          [Math.max(1, opts.batch ?? SWEEP_BATCH)],
        )) as string[]
      ).map(Number);
      if (retiring.length === 0) return { checked: 0, erased: 0 };
      await this.checkIdentity();
      await sleep(opts.graceMs ?? SWEEP_GRACE_MS);
      await this.foldCounts();
      const held = await this.heldIds(new Set(retiring));
      const gone = retiring.filter((id) => !held.has(id));
      const erased = Number(
        await this.client.script(
          ERASE,
          [this.keys.dict, this.keys.dictNames, this.keys.dictRetiring, this.keys.meta],
          gone,
        ),
      );
      this.erasedStrings += erased;
      await this.checkIdentity();
      return { checked: retiring.length, erased };
    } finally {
      // Ends the lease only if it is still this sweep's.
      await this.client.script(DEL_IF_EQUALS, [this.keys.dictSweepLease], [lease]).catch(() => {});
    }
  }

  /** Which of `wanted` some stored person or pending funnel count holds. */
  private async heldIds(wanted: ReadonlySet<number>): Promise<Set<number>> {
    const held = new Set<number>();
    const note = (id: number) => {
      if (wanted.has(id)) held.add(id);
    };
    const prefix = globEscape(this.keys.prefix);
    for (const node of this.client.masters()) {
      await scanKeys(node, `${prefix}p:{*`, async (keys) => {
        // One GET a key, pipelined (on Redis Cluster a node's keys are of many slots: no MGET).
        const pipe = node.pipeline();
        for (const key of keys) pipe.getBuffer(key);
        for (const [err, value] of (await pipe.exec()) ?? []) {
          if (err) throw err;
          if (!(value instanceof Uint8Array)) continue;
          const ids = personIds(value);
          if (ids === null) continue;
          for (const id of ids) note(id);
        }
      });
      await scanKeys(node, `${prefix}f[qf]:{*`, async (keys) => {
        for (const key of keys) {
          for (const field of await node.hkeys(key)) {
            // `s|brand|stage` and `m|brand|day|from|to` (lua.ts): every part but the day an id.
            const parts = field.split('|');
            parts.forEach((part, i) => {
              if (i > 0 && !(parts[0] === 'm' && i === 2)) note(Number(part));
            });
          }
        }
      });
    }
    return held;
  }

  /** SET NX with a time to live; acknowledged once a replica has it (as events are). */
  async noteOnce(key: string, ttlMs: number): Promise<boolean> {
    await this.ready();
    const noted =
      (await this.client.main.set(this.keys.note(key), '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) ===
      'OK';
    if (noted) await this.client.waitForReplicas([this.slotOf(key)]);
    return noted;
  }

  async aliasesOf(pid: string): Promise<Record<string, string>> {
    await this.ready();
    return aliasRecord(await this.client.main.smembers(this.keys.aliasesOf(pid)));
  }

  // ---- the store's identity ---------------------------------------------------------------------

  /**
   * The store's identity as Redis has it now (made when there is none): a new one than this
   * process knew means the store lost its data, which resets what this process learnt.
   */
  async checkIdentity(): Promise<StoreIdentity> {
    await this.client.up();
    const [epoch, createdAt, retire] = (await this.client.script(
      IDENTITY,
      [this.keys.meta],
      [newEpoch(), Date.now()],
    )) as [string, string, string | null];
    this.dict.adopt(epoch);
    const gen = retire ?? '0';
    if (gen !== this.retireGen) {
      // A dictionary sweep began or ended: which ids it is checking now.
      const retiring = await this.client.main.smembers(this.keys.dictRetiring);
      this.dict.retire(retiring.map(Number));
      this.retireGen = gen;
    }
    return { epoch, createdAt: Number(createdAt) };
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.ownsClient) await this.client.close();
  }

  stats(): RedisStoreStats {
    const c = this.client.stats();
    return {
      status: c.status,
      readStatus: c.readStatus,
      connectionErrors: c.connectionErrors,
      corruptValues: this.corruptValues,
      lostValues: this.lostValues,
      resets: this.resets,
      dictionaryStrings: this.dict.size,
      lostCountChanges: this.lostCountChanges,
      erasedStrings: this.erasedStrings,
    };
  }

  /** The key prefix of this store. */
  get keyPrefix(): string {
    return this.keys.prefix;
  }

  // ---- inside -------------------------------------------------------------------------------------

  /** Waits for the connection and for the identity and dictionary to be learnt; fails while down. */
  private async ready(): Promise<void> {
    await this.client.up();
    // The learning started with the store gives up quietly when Redis is away: learn again.
    while (!this.learnt) {
      this.learning ??= this.learn();
      await this.learning;
    }
  }

  /** Learns the identity and dictionary as soon as the client first connects (not before). */
  private async learnWhenUp(): Promise<void> {
    try {
      await this.client.up();
      await this.learn();
    } catch {
      // Down at start: the first command that needs the store learns them.
    } finally {
      this.learning = null;
    }
  }

  /** The identity, and the whole dictionary when it is not large. */
  private async learn(): Promise<void> {
    try {
      await this.checkIdentity();
      const [epoch, flat] = (await this.client.script(
        ALL,
        [this.keys.dictNames, this.keys.meta],
        [this.dictionaryAtStart],
      )) as [string, string[] | undefined];
      if (Array.isArray(flat)) {
        const entries: Array<[number, string]> = [];
        for (let i = 0; i + 1 < flat.length; i += 2) {
          if (/^\d+$/.test(flat[i]!)) entries.push([Number(flat[i]), flat[i + 1]!]);
        }
        this.dict.absorb(epoch, entries);
      } else this.dict.adopt(epoch);
      this.learnt = true;
    } finally {
      this.learning = null;
    }
  }

  /** The store lost its data: forget what was learnt, and tell the listeners. */
  private reset(before: string, after: string): void {
    this.resets++;
    this.log(
      `the Redis store lost its data: its identity was ${before}, now ${after}; cached strings are forgotten, values written before are lost`,
    );
    for (const listener of this.resetListeners) {
      try {
        listener({ before, after });
      } catch (e) {
        this.log(`a store reset listener failed: ${(e as Error).message}`);
      }
    }
  }

  /**
   * The store's identity as Redis has it after the moment `since` (performance.now()): a check
   * in flight that was sent after it is shared, otherwise one is sent. Learns it when it changed.
   */
  private verifyEpoch(since: number): Promise<string> {
    const running = this.verifying;
    if (running !== null && running.sent >= since) return running.epoch;
    const sent = performance.now();
    const check: { sent: number; epoch: Promise<string> } = {
      sent,
      epoch: this.checkIdentity().then((id) => id.epoch),
    };
    const clear = () => {
      if (this.verifying === check) this.verifying = null;
    };
    check.epoch.then(clear, clear);
    this.verifying = check;
    return check.epoch;
  }

  /**
   * Sends a write that carries ids of the dictionary of `epoch` (`send(confirmed)`); when its slot
   * has no marker yet, checks the identity and sends it again saying so; when the marker names
   * another dictionary, StaleIds (this process's ids are out of date: encode again) or
   * StoreDataLostError (the slot's values come from a dictionary the store lost).
   */
  private async marked<T>(epoch: string, send: (confirmed: '0' | '1') => Promise<T>): Promise<T> {
    let confirmed: '0' | '1' = '0';
    for (;;) {
      try {
        return await send(confirmed);
      } catch (err) {
        const refused = markerRefusal(err);
        if (refused === null) throw err;
        const current = await this.verifyEpoch(performance.now());
        if (current !== epoch) throw new StaleIds();
        if (refused === NO_MARKER && confirmed === '0') {
          confirmed = '1';
          continue;
        }
        throw new StoreDataLostError(
          'this part of the store holds values written with a string dictionary the store has lost; empty the store and import its people again',
        );
      }
    }
  }

  /**
   * What `encode` makes with ids this process knows (strings it lacks are given ids first, one
   * round trip), sent with `send`; encoded and sent again when the ids were stale.
   */
  private async withFreshIds<T, R>(
    encode: (missing: Set<string>) => T,
    send: (epoch: string, value: T) => Promise<R>,
  ): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      await this.ready();
      const missing = new Set<string>();
      const epoch = this.dict.epoch;
      const value = encode(missing);
      if (missing.size > 0) {
        if (attempt >= ENCODE_ATTEMPTS)
          throw new Error('the string dictionary kept changing while profiles were encoded; try again');
        await this.dict.ensure(missing);
        continue;
      }
      try {
        return await send(epoch, value);
      } catch (err) {
        if (!(err instanceof StaleIds) || attempt >= ENCODE_ATTEMPTS) throw err;
      }
    }
  }

  /** The slot of a person's keys; a person id must not be empty (its keys would not share one). */
  private slotOf(pid: string): number {
    if (typeof pid !== 'string' || pid === '') throw new TypeError('a person id must be a non-empty string');
    return this.keys.slotOfPerson(pid);
  }

  /** Indexes of `pids` in groups of at most `size`: one slot per group on Redis Cluster. */
  private groupBySlot(pids: readonly string[], size: number): number[][] {
    const groups: number[][] = [];
    if (this.client.kind !== 'cluster') {
      for (let i = 0; i < pids.length; i += size) {
        const group: number[] = [];
        for (let j = i; j < Math.min(pids.length, i + size); j++) group.push(j);
        groups.push(group);
      }
      return groups;
    }
    const bySlot = new Map<number, number[]>();
    pids.forEach((pid, i) => {
      const slot = this.slotOf(pid);
      let group = bySlot.get(slot);
      if (group === undefined || group.length >= size) {
        group = [];
        bySlot.set(slot, group);
        groups.push(group);
      }
      group.push(i);
    });
    return groups;
  }

  private every(ms: number, task: () => Promise<unknown>): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.closed || !this.client.isReady) return;
      busy = true;
      task().then(
        () => {
          busy = false;
        },
        () => {
          busy = false; // down or failing over: the next round tries again
        },
      );
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** The profile in a stored value (null when none, or when it does not decode: counted). */
  private decodeValue(pid: string, value: unknown): Profile | null | Promise<Profile | null> {
    if (value === null || value === undefined) return null;
    if (!(value instanceof Uint8Array)) {
      this.corruptValues++;
      return null;
    }
    const out = decodePerson(value, pid, this.dict.names);
    if (out instanceof MissingStrings) return this.decodeAfterLoading(pid, value, out.ids);
    if (out === null) this.corruptValues++;
    return out;
  }

  private async decodeAfterLoading(
    pid: string,
    value: Uint8Array,
    ids: readonly number[],
  ): Promise<Profile | null> {
    await this.dict.load(ids);
    const out = decodePerson(value, pid, this.dict.names);
    if (out instanceof MissingStrings || out === null) {
      this.corruptValues++;
      return null;
    }
    return out;
  }

  /** Counters from an HGETALL returned flat from a script (Buffers). */
  private decodeCounters(flat: unknown): FrequencyCounters {
    const out: Record<string, number[]> = {};
    if (!Array.isArray(flat)) return out;
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field: unknown = flat[i];
      const value: unknown = flat[i + 1];
      if (!Buffer.isBuffer(field) || !Buffer.isBuffer(value)) continue;
      const times = decodeTimes(value);
      if (times === null) this.corruptValues++;
      else setCounter(out, field.toString('utf8'), times);
    }
    return out;
  }
}

/** NO_MARKER or STALE_DICTIONARY when a write was refused for its slot's marker; null otherwise. */
function markerRefusal(err: unknown): string | null {
  if (!(err instanceof Error)) return null;
  if (err.message.startsWith(NO_MARKER)) return NO_MARKER;
  if (err.message.startsWith(STALE_DICTIONARY)) return STALE_DICTIONARY;
  return null;
}

/** A hash of counts as numbers. */
function numbers(hash: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(hash)) setOwn(out, key, Number(hash[key]));
  return out;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `text` matched literally in a SCAN pattern. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** Every key of one node that matches `pattern`, handed over a SCAN step at a time. */
async function scanKeys(
  node: Redis,
  pattern: string,
  take: (keys: string[]) => Promise<void>,
): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    if (keys.length > 0) await take(keys);
  } while (cursor !== '0');
}
