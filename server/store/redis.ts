/**
 * The profile store on Redis: a single Redis, Redis Cluster or Redis Sentinel. This file holds the
 * people: the decision read and the decoding of its reply, writes, patches, aliases, impressions,
 * events and deletes; the rest is in files of their own:
 *   redis-client.ts    the connections (single, cluster, sentinel), the lean decision reader, WAIT
 *   redis-keys.ts      one key layout for all three, in which every script touches one hash slot
 *   lua.ts             the scripts
 *   person-format.ts   the stored person (strings as dictionary ids); impressions.ts, the counters
 *   dictionary.ts      the string dictionary as this process knows it
 *   redis-identity.ts  the store's identity: reset detection, the slots' dictionary markers, and
 *                      the learning every command waits for (`ready`)
 *   redis-funnel.ts    the funnel counts: the pending counts of every slot folded into global ones
 *   redis-sweep.ts     erasing from the dictionary the strings only deleted people held
 * RedisStore stays the one entry point: its funnel, foldCounts, sweepDictionary, checkIdentity
 * and onReset delegate to those.
 *
 * Strings: writes encode with the ids this process knows, asking the dictionary first for the
 * strings it does not (one round trip for a batch); a read that meets ids this process does not
 * know asks for them (one round trip), then decodes. Every slot carries a marker naming the
 * dictionary its ids come from (lua.ts): a read or a write that meets another one than this
 * process knows checks the store's identity (redis-identity.ts); a write encoded with stale ids
 * is encoded again (`withFreshIds`).
 *
 * Replies are decoded here, next to the reads that send them: the formats themselves are in
 * person-format.ts and impressions.ts, and what is left is the read's own policy (a value of a
 * lost dictionary, or that does not decode, is absent and counted in `stats()`).
 *
 * Durability: applyEvents resolves once the events' masters have passed them to the replicas
 * asked for (WAIT; `waitReplicas`), so an acknowledged event survives a failover.
 */

import type { FrequencyCounters, Profile } from '../../rules/types.js';
import { StringDictionary } from './dictionary.js';
import { decodeTimes, impressionLimits, setCounter } from './impressions.js';
import {
  APPLY_EVENT_LUA,
  DEL_IF_EQUALS_LUA,
  DICT_ASSIGN_LUA,
  DICT_LOOKUP_LUA,
  FORGET_PERSON_LUA,
  LINK_ALIASES_LUA,
  LOAD_BY_ALIAS_LUA,
  LOAD_PERSON_LUA,
  PATCH_PERSON_LUA,
  PUT_PEOPLE_LUA,
  READ_PERSON_LUA,
  RECORD_IMPRESSION_LUA,
} from './lua.js';
import { DEFAULT_MEASURE_RETENTION_MS, deliveryField } from './measure.js';
import {
  aliasMember,
  aliasRecord,
  applyPatch,
  CASELESS_ALIAS_KINDS,
  checkEvent,
  DEFAULT_EVENT_DEDUPE_MS,
  DEFAULT_MOVES_TTL_MS,
  splitStages,
  utcDay,
} from './person.js';
import { bodyStart, decodePerson, encodeBody, encodeStages, MissingStrings } from './person-format.js';
import { RedisBudget } from './redis-budget.js';
import { newEpoch, RedisClient, type RedisClientOptions, type RedisTopology } from './redis-client.js';
import { RedisFunnel } from './redis-funnel.js';
import { RedisIdentity, StaleIds, type StoreIdentity, type StoreReset } from './redis-identity.js';
import { RedisKeys } from './redis-keys.js';
import { RedisMeasure } from './redis-measure.js';
import { EXACT_KEYS, sampleRedisPeople } from './redis-sample.js';
import { DictionarySweep } from './redis-sweep.js';
import { type Arg, type LuaScript, luaScript } from './resp.js';

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
  FoundByAlias,
  FunnelCounts,
  LiftCounts,
  PeopleSample,
  PersonRecord,
  ProfilePatch,
  ProfileStore,
} from './types.js';

export { RedisUnavailableError } from './redis-client.js';
export { StoreDataLostError, type StoreIdentity, type StoreReset } from './redis-identity.js';

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
    /** How long delivery rows, lift counts and exposures are kept after their last change, ms. Default 400 days. */
    measureRetentionMs?: number;
    /** samplePeople reads every person of a store with at most this many keys. Default 50,000. */
    sampleExactKeys?: number;
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

/** People per PUT_PEOPLE_LUA call in putProfiles. */
const PUT_GROUP = 100;
/** Calls of putProfiles in flight before waiting for the oldest. */
const CALLS_IN_FLIGHT = 40;
/** Attempts of a patch whose profile another instance changed between read and write. */
const PATCH_ATTEMPTS = 10;
/** Encodings in a row that met strings the dictionary did not have, or a dictionary that changed. */
const ENCODE_ATTEMPTS = 4;
/** Alias links per LINK_ALIASES_LUA call. */
const LINKS_PER_CALL = 200;

const LOAD: LuaScript = luaScript(LOAD_PERSON_LUA);
const LOAD_BY_ALIAS: LuaScript = luaScript(LOAD_BY_ALIAS_LUA);
const READ = luaScript(READ_PERSON_LUA);
const PUT = luaScript(PUT_PEOPLE_LUA);
const PATCH = luaScript(PATCH_PERSON_LUA);
const FORGET = luaScript(FORGET_PERSON_LUA);
const EVENT = luaScript(APPLY_EVENT_LUA);
const IMPRESSION = luaScript(RECORD_IMPRESSION_LUA);
const DEL_IF_EQUALS = luaScript(DEL_IF_EQUALS_LUA);
const ASSIGN = luaScript(DICT_ASSIGN_LUA);
const LOOKUP = luaScript(DICT_LOOKUP_LUA);
const LINK = luaScript(LINK_ALIASES_LUA);

export class RedisStore implements ProfileStore, EventStore {
  readonly kind = 'redis' as const;
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  /** ProfileStore.loadPersonByAlias: present on a single Redis (or Sentinel), absent on a cluster. */
  readonly loadPersonByAlias: ((kind: string, value: string) => Promise<FoundByAlias>) | undefined;
  private readonly ownsClient: boolean;
  /** LOAD_BY_ALIAS_LUA's arguments naming a person's keys up to the id: `<prefix>p:{`, `<prefix>fc:{`. */
  private readonly personKeyHead: string;
  private readonly countersKeyHead: string;
  private readonly batchSize: number;
  private readonly dedupeMs: number;
  private readonly log: (line: string) => void;
  /** Patches of one person made through this instance run one after another. */
  private readonly patching = new Map<string, Promise<unknown>>();
  /** The strings of stored people, as far as this process knows them. */
  private readonly dict: StringDictionary;
  /** The store's identity, and the learning every command waits for. */
  private readonly identity: RedisIdentity;
  /** The funnel counts and their fold. */
  private readonly funnelCounts: RedisFunnel;
  private readonly measure: RedisMeasure;
  private readonly budgets: RedisBudget;
  private readonly sampleExactKeys: number;
  /** Erasing the strings only deleted people held. */
  private readonly dictSweep: DictionarySweep;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private corruptValues = 0;
  private lostValues = 0;

  constructor(opts: RedisStoreOptions) {
    this.log = opts.log ?? ((line) => console.warn(line));
    if ('client' in opts) {
      this.client = opts.client;
      this.ownsClient = false;
    } else {
      const topology: RedisTopology = 'url' in opts ? { kind: 'single', url: opts.url } : opts.topology;
      this.client = new RedisClient({ ...opts, topology, log: this.log, leanScripts: [LOAD, LOAD_BY_ALIAS] });
      this.ownsClient = true;
    }
    this.keys = new RedisKeys(opts.keyPrefix ?? '', this.client.kind === 'cluster');
    this.personKeyHead = `${this.keys.prefix}p:{`;
    this.countersKeyHead = `${this.keys.prefix}fc:{`;
    // One round trip by alias on a single Redis only: on a cluster the alias and the person are
    // in different slots, and callers resolve, then load (sharing and caching each read).
    this.loadPersonByAlias = this.keys.sharded ? undefined : (kind, value) => this.byAliasAtOnce(kind, value);
    this.batchSize = Math.max(1, opts.batchSize ?? 1000);
    this.dedupeMs = Math.max(1, Math.ceil(opts.eventDedupeMs ?? DEFAULT_EVENT_DEDUPE_MS));
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
      (before, after) => this.identity.reset(before, after),
    );
    this.identity = new RedisIdentity(this.client, this.keys, this.dict, {
      dictionaryAtStart: Math.max(0, opts.dictionaryAtStart ?? 100_000),
      log: this.log,
    });
    const ready = () => this.ready();
    const measureRetentionMs = Math.max(
      1,
      Math.ceil(opts.measureRetentionMs ?? DEFAULT_MEASURE_RETENTION_MS),
    );
    this.funnelCounts = new RedisFunnel(
      this.client,
      this.keys,
      this.dict,
      Math.max(1, Math.ceil(opts.movesTtlMs ?? DEFAULT_MOVES_TTL_MS)),
      measureRetentionMs,
      ready,
    );
    this.sampleExactKeys = opts.sampleExactKeys ?? EXACT_KEYS;
    this.measure = new RedisMeasure(
      this.client,
      this.keys,
      measureRetentionMs,
      () => this.foldCounts(),
      ready,
    );
    this.budgets = new RedisBudget(this.client, this.keys, measureRetentionMs, ready);
    this.dictSweep = new DictionarySweep(this.client, this.keys, {
      ready,
      checkIdentity: () => this.checkIdentity(),
      foldCounts: () => this.foldCounts(),
    });
    const identityEvery = opts.identityEveryMs ?? 1000;
    if (identityEvery > 0) this.every(identityEvery, () => this.checkIdentity());
    const foldEvery = opts.foldEveryMs ?? 0;
    if (foldEvery > 0) this.every(foldEvery, () => this.funnelCounts.foldTurn(foldEvery));
    const sweepEvery = opts.sweepEveryMs ?? 0;
    if (sweepEvery > 0) this.every(sweepEvery, () => this.sweepDictionary({ leaseMs: sweepEvery }));
  }

  /** Hears of the store losing its data (its identity changed). Returns a function to stop. */
  onReset(listener: (reset: StoreReset) => void): () => void {
    return this.identity.onReset(listener);
  }

  /** The identity this process knows ('' before it has heard from Redis). */
  get epoch(): string {
    return this.dict.epoch;
  }

  // ---- decisions ------------------------------------------------------------------------------

  loadPerson(pid: string): Promise<PersonRecord> {
    // The decision path: once connected and introduced, one promise from the call to the record.
    if (!this.identity.learnt || !this.client.isReady) return this.loadPersonSlowly(pid);
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

  /**
   * The person an alias names, with their record, in one script (LOAD_BY_ALIAS_LUA) on a single
   * Redis; the alias then the person before the store has settled or without a lean connection.
   */
  private byAliasAtOnce(kind: string, value: string): Promise<FoundByAlias> {
    const lean = this.client.lean;
    if (lean === null || !this.identity.learnt || !this.client.isReady) {
      return this.resolveThenLoad(kind, value);
    }
    const keys = [this.keys.alias(aliasMember(kind, value)), this.keys.slotMarker(0)];
    const args = [this.dict.epoch, this.personKeyHead, this.countersKeyHead];
    // One promise from the call to the answer, as loadPerson's (this runs for every alias miss).
    return lean.evalsha(LOAD_BY_ALIAS, keys, args, 0).then((reply): FoundByAlias | Promise<FoundByAlias> => {
      if (!Array.isArray(reply) || reply.length === 0) {
        // Nobody, unless the id was linked in its own case by an earlier version.
        const legacyCase = CASELESS_ALIAS_KINDS.has(kind) && value !== value.toLowerCase();
        return legacyCase ? this.resolveThenLoad(kind, value) : { pid: null, record: null };
      }
      const pid = Buffer.isBuffer(reply[0]) ? reply[0].toString('utf8') : String(reply[0]);
      const record = this.decodePersonReply(pid, reply, 1);
      return record instanceof Promise ? record.then((r) => ({ pid, record: r })) : { pid, record };
    });
  }

  private async resolveThenLoad(kind: string, value: string): Promise<FoundByAlias> {
    const pid = await this.resolveAlias(kind, value);
    return { pid, record: pid === null ? null : await this.loadPerson(pid) };
  }

  async resolveAlias(kind: string, value: string): Promise<string | null> {
    await this.client.up();
    const found = await this.getAlias(this.keys.alias(aliasMember(kind, value)));
    // Device ids linked before they were kept in lower case are under their case as sent: a
    // miss for such an id looks there too (one more read, only for misses of mixed-case ids).
    if (found === null && CASELESS_ALIAS_KINDS.has(kind) && value !== value.toLowerCase()) {
      return this.getAlias(this.keys.alias(`${kind}:${value}`));
    }
    return found;
  }

  private async getAlias(key: string): Promise<string | null> {
    const lean = this.client.lean;
    if (lean === null) return this.client.main.get(key);
    const reply = await lean.get(key);
    return Buffer.isBuffer(reply) ? reply.toString('utf8') : null;
  }

  // ---- decoding what the reads return ----------------------------------------------------------

  /**
   * A person from LOAD_PERSON_LUA's reply, `[value, counters (flat field, value pairs), marker?]`
   * (from index `from` on: LOAD_BY_ALIAS_LUA's reply has the person's id first), synchronous
   * unless the value needs more from Redis (ids this process does not know, or a marker that is
   * not this process's epoch).
   */
  private decodePersonReply(pid: string, reply: unknown, from = 0): PersonRecord | Promise<PersonRecord> {
    const list: readonly unknown[] = Array.isArray(reply) ? reply : [];
    const value = list[from];
    const marker = list[from + 2];
    const counters = this.decodeCounters(list[from + 1]);
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
    return this.identity.verifyEpoch(performance.now()).then((epoch) => {
      if (text === epoch) return this.decodeValue(pid, value);
      this.lostValues++;
      return null;
    });
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
      const sent = this.identity
        .marked(epoch, (confirmed) => {
          args[1] = confirmed;
          return this.client.script(PUT, keys, args);
        })
        .then(
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
    await this.dictSweep.noteStringsOf(pid);
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
        this.keys.exposures(pid),
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

  // ---- events and patches ----------------------------------------------------------------------

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
                this.keys.exposures(event.pid),
                this.keys.pendingMeasures(slot),
              ];
              const own = args[j]!;
              own[0] = epoch;
              return this.identity.marked(epoch, (confirmed) => {
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
    const table: Arg[] = [];
    if (event.stage === undefined) args.push('0', 0, 0, '');
    else {
      const { brand, defaultStage, next } = event.stage;
      const id = (name: string) => {
        const known = this.dict.idOf(name);
        if (known === undefined) missing.add(name);
        return known ?? 0;
      };
      args.push('1', id(brand), id(defaultStage), event.stage.day ?? utcDay(event.at));
      for (const from of Object.keys(next)) table.push(from === '*' ? '*' : id(from), id(next[from]!));
    }
    args.push(event.outcome ?? '', this.measure.retentionMs, event.delivery?.length ?? 0);
    for (const a of event.delivery ?? []) args.push(deliveryField(a), a.n);
    args.push(...table);
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
          return this.identity.marked(epoch, (confirmed) => {
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

  // ---- notes and aliases ------------------------------------------------------------------------

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

  // ---- funnel counts (redis-funnel.ts) ---------------------------------------------------------

  addDelivery(adds: readonly DeliveryAdd[]): Promise<void> {
    return this.measure.addDelivery(adds);
  }

  recordExposures(exposures: readonly ExposureWrite[]): Promise<void> {
    return this.measure.recordExposures(exposures);
  }

  delivery(campaign: string, fromDay: string, toDay: string): Promise<DeliveryRow[]> {
    return this.measure.delivery(campaign, fromDay, toDay);
  }

  lift(campaign: string): Promise<LiftCounts> {
    return this.measure.lift(campaign);
  }

  leaseBudgets(reports: readonly BudgetReport[], now: number, settleMs: number): Promise<BudgetGrant[]> {
    return this.budgets.leaseBudgets(reports, now, settleMs);
  }

  budgetCounts(
    campaign: string,
    creative: string,
    unit: string,
    days: readonly string[],
    now: number,
    settleMs: number,
  ): Promise<BudgetCounts> {
    return this.budgets.budgetCounts(campaign, creative, unit, days, now, settleMs);
  }

  async samplePeople(n: number, deadline: number): Promise<PeopleSample> {
    await this.ready();
    return sampleRedisPeople(
      this.client,
      this.keys,
      (pid) => this.loadPerson(pid),
      n,
      deadline,
      this.sampleExactKeys,
    );
  }

  funnel(brand: string, fromDay: string, toDay: string): Promise<FunnelCounts> {
    return this.funnelCounts.funnel(brand, fromDay, toDay);
  }

  /**
   * Gathers the pending funnel changes of every slot into the global counts (redis-funnel.ts).
   * Concurrent calls share one fold.
   */
  foldCounts(): Promise<void> {
    return this.funnelCounts.foldCounts();
  }

  // ---- erasing what deleted people leave in the dictionary (redis-sweep.ts) ---------------------

  /**
   * Erases from the string dictionary the strings that only deleted people held, one sweep in the
   * fleet at a time (a lease of `leaseMs`; redis-sweep.ts tells the steps). Returns null when
   * another instance holds the lease, else what it did.
   */
  sweepDictionary(
    opts: { leaseMs?: number; graceMs?: number; batch?: number } = {},
  ): Promise<{ checked: number; erased: number } | null> {
    return this.dictSweep.sweepDictionary(opts);
  }

  // ---- the store's identity (redis-identity.ts) -------------------------------------------------

  /**
   * The store's identity as Redis has it now (made when there is none): a new one than this
   * process knew means the store lost its data, which resets what this process learnt.
   */
  checkIdentity(): Promise<StoreIdentity> {
    return this.identity.checkIdentity();
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
      resets: this.identity.resets,
      dictionaryStrings: this.dict.size,
      lostCountChanges: this.funnelCounts.lostCountChanges,
      erasedStrings: this.dictSweep.erasedStrings,
    };
  }

  /** The key prefix of this store. */
  get keyPrefix(): string {
    return this.keys.prefix;
  }

  // ---- inside -------------------------------------------------------------------------------------

  /** Waits for the connection and for the identity and dictionary to be learnt; fails while down. */
  private ready(): Promise<void> {
    return this.identity.ready();
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
}
