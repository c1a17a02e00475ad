/**
 * The profile store on Redis (ioredis). Key layout (types.ts), all keys behind an optional
 * prefix; the keys of one person share the `{pid}` hash tag:
 *   p:{pid}          the person: stages and profile in one value, strings as dictionary ids
 *                    (codec.ts, format 2)
 *   fc:{pid}         hash: campaign id -> packed impression times (codec.ts)
 *   ax:{pid}         set of the person's aliases, `kind:value`
 *   a:{kind:value}   alias -> pid
 *   fn:{brand}       hash: stage -> people recorded at it (the sum of the stages of every p:{pid})
 *   fm:{brand}:<day> hash: `from>to` -> people moved by events that UTC day (kept ~400 days)
 *   ev:<eventId>     event ids seen (dedupe window, default 7 days)
 *   dict, dict:r     the string dictionary: string -> id, id -> string (dictionary.ts)
 *   rs:seq, rs:v:<version>, rs:active   rule sets (redis-rulesets.ts)
 *
 * Every write that changes a stored stage adjusts fn:{brand} in the same Lua script (lua.ts),
 * so the counts are always the sum of what is stored. The funnel and dictionary keys make those
 * scripts touch more than one hash slot: this store runs on a single Redis (with replicas), not
 * on Cluster.
 *
 * Strings: writes encode with the ids this process knows, asking Redis first for the strings it
 * does not (one round trip for a batch); a read that meets ids this process does not know asks
 * for them (one round trip), then decodes. Writes carrying ids, and decision reads, check that
 * the dictionary in Redis is still the one the ids came from (its epoch, dictionary.ts); when it
 * is not (Redis lost it), this process forgets what it knew, and a write is made again.
 *
 * Failure behaviour: when Redis is down, commands fail at once instead of queueing (no offline
 * queue; commands in flight when the connection drops are rejected, not replayed), the client
 * reconnects by itself with a capped backoff, and connection errors are logged, never thrown.
 * Until the very first connection attempt has settled, commands wait for it, so a store can be
 * used right after it is constructed.
 */
import { type ChainableCommander, Redis, type RedisOptions } from 'ioredis';
import type { FrequencyCounters, Profile } from '../../rules/types.js';
import {
  aliasMember,
  bodyStart,
  decodePerson,
  decodeTimes,
  encodeBody,
  encodeStages,
  impressionLimits,
  MissingStrings,
  RECORD_IMPRESSION_LUA,
  setCounter,
} from './codec.js';
import { StringDictionary } from './dictionary.js';
import {
  APPLY_EVENT_LUA,
  DEL_IF_EQUALS_LUA,
  DICT_ASSIGN_LUA,
  FORGET_PERSON_LUA,
  LOAD_PERSON_LUA,
  PATCH_PERSON_LUA,
  PUT_PEOPLE_LUA,
  READ_PERSON_LUA,
  STALE_DICTIONARY,
} from './lua.js';
import {
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
import { type LuaScript, luaScript, RespConnection } from './resp.js';
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

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` */
  url: string;
  /** Put in front of every key (`mindshare:`); must not contain `{` or `}`. */
  keyPrefix?: string;
  /** Longest wait for a TCP connection, ms. Default 2000. */
  connectTimeoutMs?: number;
  /** A command without a reply after this long is rejected, ms. Default 3000. */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts, ms (the backoff doubles up to it). Default 1000. */
  maxRetryDelayMs?: number;
  /** Commands per pipeline for bulk writes. Default 1000. */
  batchSize?: number;
  /** Where connection state changes are reported. Default console.warn. */
  log?: (line: string) => void;
  /** How long an event id is remembered (`ev:<id>`), ms. Default 7 days. */
  eventDedupeMs?: number;
  /** How long the moves of a day are kept after the last one (`fm:`), ms. Default 400 days. */
  movesTtlMs?: number;
  /**
   * Decision reads (loadPerson, resolveAlias) on a second, lean connection (resp.ts) rather than
   * through ioredis: about a third of the client CPU per read. Default true.
   */
  leanReads?: boolean;
}

export interface RedisStoreStats {
  /** The main connection: `ready` when commands can be sent. */
  status: string;
  /** The decision-read connection (`ready`, `connecting`, `reconnecting`, `closed`); null when reads share the main one. */
  readStatus: string | null;
  /** Connection errors seen (refused, reset, timeouts). */
  connectionErrors: number;
  /** Stored values that did not decode and were treated as absent. */
  corruptValues: number;
  /** Strings of the dictionary this process knows. */
  dictionaryStrings: number;
}

/** The scripts defined on the connection (defineCommand: EVALSHA, with EVAL on NOSCRIPT). */
type Arg = string | number | Buffer;
interface Scripts {
  msRecordImpression(key: string, field: string, at: number, keep: number, ttlMs: number): Promise<number>;
  msDelIfEquals(key: string, value: string): Promise<number>;
  msPutPeople(numberOfKeys: number, ...args: Arg[]): Promise<number>;
  msPatchPerson(...args: Arg[]): Promise<number>;
  msForgetPerson(...args: Arg[]): Promise<[number, string[]]>;
  msDictAssign(...args: Arg[]): Promise<Array<string | number>>;
  /** LOAD_PERSON_LUA with Buffer replies. */
  msLoadPersonBuffer(
    profileKey: string,
    countersKey: string,
    dictKey: string,
    epoch: string,
    dictionaryEntries: number,
  ): Promise<unknown>;
  /** READ_PERSON_LUA with Buffer replies. */
  msReadPersonBuffer(profileKey: string, dictKey: string, epoch: string): Promise<unknown>;
}
type ScriptsPipeline = ChainableCommander & {
  msDelIfEquals(key: string, value: string): ScriptsPipeline;
  msPutPeople(numberOfKeys: number, ...args: Arg[]): ScriptsPipeline;
  msApplyEvent(...args: Arg[]): ScriptsPipeline;
};

/** People per PUT_PEOPLE_LUA call in putProfiles. */
const PUT_GROUP = 100;
/** Pipelines of putProfiles sent before waiting for the oldest. */
const PIPELINES_IN_FLIGHT = 4;

/** Attempts of a patch whose profile another instance changed between read and write. */
const PATCH_ATTEMPTS = 10;
/**
 * The largest dictionary a decision read brings along to a process that does not know it yet
 * (entries of dict:r): a process starting up then decodes its first decisions without a second
 * round trip. Beyond it, the process asks for the ids it meets.
 */
const DICTIONARY_WITH_READ = 10_000;
/** Encodings of a batch in a row that met strings the dictionary did not have. */
const ENCODE_ATTEMPTS = 3;

/** Redis cannot be reached right now; the client keeps reconnecting. */
export class RedisUnavailableError extends Error {
  readonly code = 'redis_unavailable';
}

export class RedisStore implements ProfileStore, EventStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  /** The connection decision reads take; null: they go through `redis`. */
  private readonly lean: RespConnection | null;
  private readonly loadScript: LuaScript = luaScript(LOAD_PERSON_LUA);
  private readonly scripts: Scripts;
  private readonly prefix: string;
  private readonly batchSize: number;
  private readonly dedupeMs: number;
  private readonly movesTtlMs: number;
  private readonly log: (line: string) => void;
  /** Patches of one person made through this instance run one after another. */
  private readonly patching = new Map<string, Promise<unknown>>();
  /** The strings of stored people, as far as this process knows them. */
  private readonly dict: StringDictionary;
  /** The dictionary's keys: string -> id, id -> string. */
  private readonly dictKey: string;
  private readonly dictRKey: string;
  /** Settles when the first connection attempt has succeeded or failed; null after that. */
  private starting: Promise<void> | null;
  private healthy = true;
  private closed = false;
  private connectionErrors = 0;
  private lastError = '';
  private corruptValues = 0;

  constructor(opts: RedisStoreOptions) {
    const prefix = opts.keyPrefix ?? '';
    if (/[{}]/.test(prefix))
      throw new Error(`Redis key prefix ${JSON.stringify(prefix)} must not contain { or }`);
    this.prefix = prefix;
    this.dictKey = `${prefix}dict`;
    this.dictRKey = `${prefix}dict:r`;
    this.batchSize = Math.max(1, opts.batchSize ?? 1000);
    this.dedupeMs = Math.max(1, Math.ceil(opts.eventDedupeMs ?? DEFAULT_EVENT_DEDUPE_MS));
    this.movesTtlMs = Math.max(1, Math.ceil(opts.movesTtlMs ?? DEFAULT_MOVES_TTL_MS));
    this.log = opts.log ?? ((line) => console.warn(line));
    const maxDelay = Math.max(10, opts.maxRetryDelayMs ?? 1000);
    const options: RedisOptions = {
      // Fail fast while disconnected: nothing waits in an offline queue.
      enableOfflineQueue: false,
      // Commands in flight when the connection drops are rejected at the first reconnection
      // attempt rather than replayed later (an impression must not be counted twice).
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // Concurrent single commands (alias look-ups of many requests) share one write.
      enableAutoPipelining: true,
      connectTimeout: opts.connectTimeoutMs ?? 2000,
      commandTimeout: opts.commandTimeoutMs ?? 3000,
      // Reconnect forever, 50 ms doubling up to maxDelay, with a little jitter so that many
      // instances do not knock at the same moment.
      retryStrategy: (times) => {
        const base = Math.min(maxDelay, 50 * 2 ** Math.min(times - 1, 10));
        return Math.round(base * (0.8 + 0.2 * Math.random()));
      },
      lazyConnect: false,
    };
    this.redis = new Redis(opts.url, options);
    this.redis.defineCommand('msRecordImpression', { numberOfKeys: 1, lua: RECORD_IMPRESSION_LUA });
    this.redis.defineCommand('msDelIfEquals', { numberOfKeys: 1, lua: DEL_IF_EQUALS_LUA });
    // The number of keys is the first argument: one script call writes one or many people.
    this.redis.defineCommand('msPutPeople', { lua: PUT_PEOPLE_LUA });
    this.redis.defineCommand('msPatchPerson', { numberOfKeys: 1, lua: PATCH_PERSON_LUA });
    this.redis.defineCommand('msForgetPerson', { numberOfKeys: 3, lua: FORGET_PERSON_LUA });
    this.redis.defineCommand('msApplyEvent', { numberOfKeys: 3, lua: APPLY_EVENT_LUA });
    this.redis.defineCommand('msLoadPerson', { numberOfKeys: 3, lua: LOAD_PERSON_LUA });
    this.redis.defineCommand('msReadPerson', { numberOfKeys: 2, lua: READ_PERSON_LUA });
    this.redis.defineCommand('msDictAssign', { numberOfKeys: 2, lua: DICT_ASSIGN_LUA });
    this.scripts = this.redis as unknown as Scripts;
    this.dict = new StringDictionary({
      assign: async (names) => {
        this.assertUp();
        const [epoch, ...ids] = await this.scripts.msDictAssign(this.dictKey, this.dictRKey, ...names);
        return { epoch: String(epoch ?? ''), ids: ids.map(Number) };
      },
      lookup: async (ids) => {
        this.assertUp();
        const [epoch, ...names] = await this.redis.hmget(this.dictRKey, 'epoch', ...ids.map(String));
        return { epoch: epoch ?? '', names };
      },
    });
    this.lean =
      opts.leanReads === false
        ? null
        : new RespConnection({
            url: opts.url,
            connectTimeoutMs: opts.connectTimeoutMs ?? 2000,
            commandTimeoutMs: opts.commandTimeoutMs ?? 3000,
            maxRetryDelayMs: maxDelay,
            onError: (err) => {
              this.connectionErrors++;
              this.lastError = err.message;
            },
          });

    this.redis.on('error', (err: Error) => {
      this.connectionErrors++;
      this.lastError = err.message;
      if (this.healthy && !this.closed) {
        this.healthy = false;
        this.log(`Redis unavailable (${err.message}); commands fail until it is back, reconnecting`);
      }
    });
    this.redis.on('close', () => {
      if (this.healthy && !this.closed) {
        this.healthy = false;
        this.log('Redis connection closed; commands fail until it is back, reconnecting');
      }
    });
    this.redis.on('ready', () => {
      if (!this.healthy && !this.closed) this.log('Redis connection ready again');
      this.healthy = true;
    });
    this.starting = new Promise<void>((resolve) => {
      const settle = () => {
        this.redis.off('ready', settle);
        this.redis.off('close', settle);
        this.starting = null;
        resolve();
      };
      this.redis.on('ready', settle);
      this.redis.on('close', settle);
    });
  }

  loadPerson(pid: string): Promise<PersonRecord> {
    // The decision path: once connected, one promise from the call to the record.
    if (this.starting !== null || this.redis.status !== 'ready') return this.loadPersonSlowly(pid);
    return this.readForDecision(pid).then((reply) => this.decodePersonReply(pid, reply));
  }

  /** loadPerson before the first connection attempt has settled, or while Redis is down. */
  private async loadPersonSlowly(pid: string): Promise<PersonRecord> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    return this.decodePersonReply(pid, await this.readForDecision(pid));
  }

  /** LOAD_PERSON_LUA for a person, on the lean connection when there is one. */
  private readForDecision(pid: string): Promise<unknown> {
    const p = this.pKey(pid);
    const fc = this.fcKey(pid);
    const epoch = this.dict.epoch;
    if (this.lean === null)
      return this.scripts.msLoadPersonBuffer(p, fc, this.dictRKey, epoch, DICTIONARY_WITH_READ);
    return this.lean.evalsha(this.loadScript, [p, fc, this.dictRKey], [epoch, DICTIONARY_WITH_READ]);
  }

  async resolveAlias(kind: string, value: string): Promise<string | null> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    const key = this.aliasKey(aliasMember(kind, value));
    if (this.lean === null) return this.redis.get(key);
    const reply = await this.lean.call(['GET', key]);
    return Buffer.isBuffer(reply) ? reply.toString('utf8') : null;
  }

  async getProfile(pid: string): Promise<Profile | null> {
    return (await this.readPerson(pid)).profile;
  }

  async putProfile(profile: Profile): Promise<void> {
    await this.writePeople([profile]);
  }

  /**
   * PUT_PEOPLE_LUA for groups of people, the groups pipelined (`batchSize` people a pipeline).
   * Each person's value and counts change together; people of one group together.
   */
  async putProfiles(profiles: readonly Profile[]): Promise<void> {
    if (profiles.length === 0) return;
    await this.writePeople(profiles);
  }

  /**
   * Encodes and writes people. When the dictionary turns out not to be the one the ids came
   * from (Redis lost it), learns it again and writes once more.
   */
  private async writePeople(profiles: readonly Profile[]): Promise<void> {
    // Split and check everything first: a profile that cannot be encoded writes nothing.
    const split = profiles.map((profile) => splitStages(profile));
    for (let attempt = 0; ; attempt++) {
      const { epoch, values } = await this.encodePeople(profiles, split);
      try {
        await this.sendPeople(profiles, epoch, values);
        return;
      } catch (err) {
        if (attempt > 0 || !isStaleDictionary(err)) throw err;
        await this.relearnDictionary();
      }
    }
  }

  /**
   * Per person the head (first byte and stages; '' when the profile does not say) and the body,
   * and the epoch of the dictionary their ids come from. Strings this process does not know are
   * given ids first (one round trip for the batch).
   */
  private async encodePeople(
    profiles: readonly Profile[],
    split: ReadonlyArray<ReturnType<typeof splitStages>>,
  ): Promise<{ epoch: string; values: Arg[] }> {
    const { epoch, value } = await this.withIds((missing) => {
      const values: Arg[] = new Array<Arg>(2 * profiles.length);
      for (let i = 0; i < profiles.length; i++) {
        const { blob, stages } = split[i]!;
        values[2 * i] = stages === null ? '' : encodeStages(stages, this.dict, missing);
        values[2 * i + 1] = encodeBody(blob, profiles[i]!.id, this.dict, missing);
      }
      return values;
    });
    return { epoch, values: value };
  }

  /**
   * What `encode` makes with the ids this process knows, and the epoch of the dictionary they
   * come from. `encode` adds the strings it met without an id to `missing`; those are given ids
   * (one round trip) and it runs again.
   */
  private async withIds<T>(encode: (missing: Set<string>) => T): Promise<{ epoch: string; value: T }> {
    for (let attempt = 1; ; attempt++) {
      const missing = new Set<string>();
      const epoch = this.dict.epoch;
      const value = encode(missing);
      if (missing.size === 0) return { epoch, value };
      if (attempt >= ENCODE_ATTEMPTS)
        throw new Error('the string dictionary kept changing while profiles were encoded; try again');
      if (this.starting !== null) await this.starting;
      this.assertUp();
      await this.dict.ensure(missing);
    }
  }

  private async sendPeople(
    profiles: readonly Profile[],
    epoch: string,
    values: readonly Arg[],
  ): Promise<void> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    if (profiles.length === 1) {
      await this.scripts.msPutPeople(
        1,
        this.pKey(profiles[0]!.id),
        this.prefix,
        epoch,
        values[0]!,
        values[1]!,
      );
      return;
    }
    const group = Math.min(PUT_GROUP, this.batchSize);
    // A few pipelines in flight, so that Redis runs one while the next is being serialized.
    const inFlight = new Set<Promise<void>>();
    let failure: unknown = null;
    for (let i = 0; i < profiles.length && failure === null; i += this.batchSize) {
      const pipe = this.redis.pipeline() as ScriptsPipeline;
      const end = Math.min(profiles.length, i + this.batchSize);
      let calls = 0;
      for (let g = i; g < end; g += group) {
        const to = Math.min(end, g + group);
        const args: Arg[] = [];
        for (let j = g; j < to; j++) args.push(this.pKey(profiles[j]!.id));
        args.push(this.prefix, epoch);
        for (let j = 2 * g; j < 2 * to; j++) args.push(values[j]!);
        pipe.msPutPeople(to - g, ...args);
        calls++;
      }
      const sent: Promise<void> = pipe.exec().then(
        (replies) => {
          inFlight.delete(sent);
          checked(replies, calls);
        },
        (err: unknown) => {
          inFlight.delete(sent);
          throw err;
        },
      );
      sent.catch((err: unknown) => {
        failure ??= err;
      });
      inFlight.add(sent);
      if (inFlight.size >= PIPELINES_IN_FLIGHT) await Promise.race(inFlight).catch(() => undefined);
    }
    await Promise.allSettled(inFlight);
    if (failure !== null) throw failure;
  }

  /** The stored bytes of a person (null when none) and the profile they hold, in one round trip. */
  private async readPerson(pid: string): Promise<{ bytes: Buffer | null; profile: Profile | null }> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    const reply = await this.scripts.msReadPersonBuffer(this.pKey(pid), this.dictRKey, this.dict.epoch);
    const [bytes, stale] = Array.isArray(reply) ? reply : [];
    if (stale !== undefined && stale !== null) this.dict.forget();
    const profile = await this.decodeValue(pid, bytes);
    return { bytes: Buffer.isBuffer(bytes) ? bytes : null, profile };
  }

  /** Forgets what this process knew of the dictionary and learns its epoch again. */
  private async relearnDictionary(): Promise<void> {
    this.dict.forget();
    if (this.starting !== null) await this.starting;
    this.assertUp();
    await this.dict.load([]);
  }

  async linkAliases(pid: string, aliases: Readonly<Record<string, string>>): Promise<void> {
    const members = Object.entries(aliases).map(([kind, value]) => aliasMember(kind, value));
    if (members.length === 0) return;
    if (this.starting !== null) await this.starting;
    this.assertUp();
    const pipe = this.redis.pipeline();
    for (const member of members) pipe.getset(this.aliasKey(member), pid);
    pipe.sadd(this.axKey(pid), ...members);
    const previous = checked(await pipe.exec(), members.length + 1);
    // Unlink each alias at the person it pointed at before.
    const unlink = this.redis.pipeline();
    let n = 0;
    for (let i = 0; i < members.length; i++) {
      const old = previous[i];
      if (typeof old === 'string' && old !== pid) {
        unlink.srem(this.axKey(old), members[i]!);
        n++;
      }
    }
    if (n > 0) checked(await unlink.exec(), n);
  }

  async linkManyAliases(links: readonly AliasLink[]): Promise<void> {
    const members: Array<[pid: string, member: string]> = [];
    for (const [pid, aliases] of links) {
      for (const [kind, value] of Object.entries(aliases)) members.push([pid, aliasMember(kind, value)]);
    }
    if (members.length === 0) return;
    if (this.starting !== null) await this.starting;
    this.assertUp();
    // One pipeline points every alias at its person and adds it to the person's set; a second
    // unlinks the aliases that pointed at someone else before (in order, so an alias listed
    // twice ends with the later person).
    const pipe = this.redis.pipeline();
    for (const [pid, member] of members) {
      pipe.getset(this.aliasKey(member), pid);
      pipe.sadd(this.axKey(pid), member);
    }
    const replies = checked(await pipe.exec(), 2 * members.length);
    const unlink = this.redis.pipeline();
    let n = 0;
    for (let i = 0; i < members.length; i++) {
      const [pid, member] = members[i]!;
      const old = replies[2 * i];
      if (typeof old === 'string' && old !== pid) {
        unlink.srem(this.axKey(old), member);
        n++;
      }
    }
    if (n > 0) checked(await unlink.exec(), n);
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
    if (this.starting !== null) await this.starting;
    this.assertUp();
    await this.scripts.msRecordImpression(this.fcKey(pid), campaignId, at, limits.keep, limits.ttlMs);
  }

  async forgetPerson(pid: string): Promise<boolean> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    // Atomically: the aliases the person had, everything kept under the person's hash tag, and
    // the person's stages taken out of the funnel counts.
    const [deleted, members] = await this.scripts.msForgetPerson(
      this.pKey(pid),
      this.fcKey(pid),
      this.axKey(pid),
      this.prefix,
    );
    let found = deleted > 0;
    if (members.length > 0) {
      // An alias that has meanwhile moved to someone else stays theirs.
      const pipe = this.redis.pipeline() as ScriptsPipeline;
      for (const member of members) pipe.msDelIfEquals(this.aliasKey(member), pid);
      const results = checked(await pipe.exec(), members.length);
      if (results.some((r) => r === 1)) found = true;
    }
    return found;
  }

  // ---- events, patches, funnels -----------------------------------------------------------------

  /**
   * One Lua call per event, the batch in one pipeline. When Redis fails part-way, the call
   * rejects; the events that did reach Redis are duplicates on a retry, the others apply then.
   */
  async applyEvents(events: readonly EventWrite[]): Promise<EventResult[]> {
    for (const event of events) checkEvent(event);
    if (events.length === 0) return [];
    if (this.starting !== null) await this.starting;
    this.assertUp();
    const pipe = this.redis.pipeline() as ScriptsPipeline;
    for (const event of events) pipe.msApplyEvent(...this.eventArgs(event));
    const replies = checked(await pipe.exec(), events.length);
    return replies.map((reply, i) => {
      const r = reply as [number, string?, string?];
      if (r[0] === 0) return { outcome: 'duplicate' };
      const stage = events[i]!.stage;
      if (r.length < 3 || stage === undefined) return { outcome: 'applied' };
      return { outcome: 'applied', moved: { brand: stage.brand, from: r[1]!, to: r[2]! } };
    });
  }

  /** The arguments of APPLY_EVENT_LUA for one event. */
  private eventArgs(event: EventWrite): Arg[] {
    const args: Arg[] = [
      this.evKey(event.eventId),
      this.fcKey(event.pid),
      this.pKey(event.pid),
      this.prefix,
      this.dedupeMs,
      event.at,
    ];
    if (event.impression === undefined) args.push('0', '', 0, 0);
    else {
      const limits = impressionLimits(event.impression.keep, event.impression.ttlMs);
      args.push('1', event.impression.campaign, limits.keep, limits.ttlMs);
    }
    if (event.stage === undefined) return args;
    const { brand, defaultStage, next } = event.stage;
    args.push('1', brand, defaultStage, utcDay(event.at), this.movesTtlMs);
    for (const from of Object.keys(next)) args.push(from, next[from]!);
    return args;
  }

  /**
   * Reads the profile and stages, applies the patch, and writes back only if the profile is
   * unchanged since the read (PATCH_PERSON_LUA); on a conflict it reads again. Stages are written
   * brand by brand, so an event moving another brand meanwhile is kept.
   */
  patchProfile(pid: string, patch: ProfilePatch, now: number): Promise<Profile | null> {
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
    for (let attempt = 0; attempt < PATCH_ATTEMPTS; attempt++) {
      const { bytes, profile } = await this.readPerson(pid);
      if (bytes === null || profile === null) return null;
      const patched = applyPatch(profile, patch, now);
      const { blob, stages } = splitStages(patched);
      const { epoch, value: body } = await this.withIds((missing) =>
        encodeBody(blob, pid, this.dict, missing),
      );
      const args: Arg[] = [this.pKey(pid), this.prefix, epoch, bytes.subarray(bodyStart(bytes)), body];
      const stored = profile.stages ?? {};
      const wanted = new Map(stages ?? []);
      for (const [brand, stage] of wanted)
        if (!Object.hasOwn(stored, brand) || stored[brand] !== stage) args.push(brand, '1', stage);
      for (const brand of Object.keys(stored)) if (!wanted.has(brand)) args.push(brand, '0', '');
      this.assertUp();
      let outcome: number;
      try {
        outcome = await this.scripts.msPatchPerson(...args);
      } catch (err) {
        if (!isStaleDictionary(err)) throw err;
        await this.relearnDictionary();
        continue;
      }
      if (outcome === 1) return patched;
      if (outcome === -1) return null;
      // Someone else wrote the profile in between: a short pause, then read again.
      await new Promise((r) => setTimeout(r, Math.random() * 2 * (attempt + 1)));
    }
    throw new Error(`profile ${pid} kept changing while it was patched; try again`);
  }

  async funnel(brand: string, fromDay: string, toDay: string): Promise<FunnelCounts> {
    const days = daysBetween(fromDay, toDay);
    if (this.starting !== null) await this.starting;
    this.assertUp();
    const pipe = this.redis.pipeline().hgetall(this.fnKey(brand));
    for (const day of days) pipe.hgetall(this.fmKey(brand, day));
    const [counts, ...perDay] = checked(await pipe.exec(), days.length + 1) as Array<Record<string, string>>;
    const stages = numbers(counts!);
    const moves: Record<string, Record<string, number>> = {};
    days.forEach((day, i) => {
      const m = perDay[i]!;
      if (Object.keys(m).length > 0) moves[day] = numbers(m);
    });
    return { brand, stages, moves };
  }

  async aliasesOf(pid: string): Promise<Record<string, string>> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    return aliasRecord(await this.redis.smembers(this.axKey(pid)));
  }

  // ---- the connection, for the bus and the rule sets on the same Redis ------------------------------

  /** The key prefix of this store (channels and rule-set keys use it too). */
  get keyPrefix(): string {
    return this.prefix;
  }

  /**
   * The store's connection once it can be used (waits for the first connection attempt, then
   * fails at once while Redis is down, like every method of the store).
   */
  async connection(): Promise<Redis> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    return this.redis;
  }

  /** A new connection with the store's settings, and `overrides` (a subscriber, say). */
  duplicateConnection(overrides: Partial<RedisOptions> = {}): Redis {
    return this.redis.duplicate(overrides);
  }

  async ping(): Promise<void> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    await this.redis.ping();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.lean?.close();
    if (this.redis.status === 'ready') {
      try {
        await this.redis.quit();
      } catch {
        // Closing anyway.
      }
    }
    if (this.redis.status !== 'end') this.redis.disconnect();
  }

  /** Fails at once, saying why, while the connection is not ready. */
  private assertUp(): void {
    const status = this.redis.status;
    if (status === 'ready') return;
    if (this.closed) throw new RedisUnavailableError('the Redis store is closed');
    const why = this.lastError === '' ? '' : ` (last error: ${this.lastError})`;
    throw new RedisUnavailableError(`Redis is not connected, ${status}${why}`);
  }

  stats(): RedisStoreStats {
    return {
      status: this.redis.status,
      readStatus: this.lean?.status ?? null,
      connectionErrors: this.connectionErrors,
      corruptValues: this.corruptValues,
      dictionaryStrings: this.dict.size,
    };
  }

  /** The keys of a person and of an alias, as stored (with the prefix). */
  keysOf(pid: string): { profile: string; counters: string; aliases: string } {
    return {
      profile: this.pKey(pid),
      counters: this.fcKey(pid),
      aliases: this.axKey(pid),
    };
  }

  /** The keys of the string dictionary: string -> id, and id -> string. */
  dictionaryKeys(): { ids: string; names: string } {
    return { ids: this.dictKey, names: this.dictRKey };
  }

  private pKey(pid: string): string {
    return `${this.prefix}p:{${pid}}`;
  }
  private fcKey(pid: string): string {
    return `${this.prefix}fc:{${pid}}`;
  }
  private axKey(pid: string): string {
    return `${this.prefix}ax:{${pid}}`;
  }
  private fnKey(brand: string): string {
    return `${this.prefix}fn:{${brand}}`;
  }
  private fmKey(brand: string, day: string): string {
    return `${this.prefix}fm:{${brand}}:${day}`;
  }
  private evKey(eventId: string): string {
    return `${this.prefix}ev:${eventId}`;
  }
  aliasKey(member: string): string {
    return `${this.prefix}a:{${member}}`;
  }

  /**
   * A person from LOAD_PERSON_LUA's reply, `[value, counters (flat field, value pairs), stale?,
   * dictionary?]`: synchronous unless the value holds ids this process does not know (then one
   * round trip for them).
   */
  private decodePersonReply(pid: string, reply: unknown): PersonRecord | Promise<PersonRecord> {
    const [value, countersReply, stale, dictionary] = Array.isArray(reply) ? reply : [];
    const counters = this.decodeCounters(countersReply);
    if (stale !== undefined && stale !== null) {
      this.dict.forget();
      if (Array.isArray(dictionary)) this.absorbDictionary(dictionary);
    }
    const profile = this.decodeValue(pid, value);
    if (profile instanceof Promise) return profile.then((p) => ({ profile: p, counters }));
    return { profile, counters };
  }

  /** Takes in the whole of dict:r, as LOAD_PERSON_LUA returns it (flat field, value pairs). */
  private absorbDictionary(flat: readonly unknown[]): void {
    let epoch = '';
    const entries: Array<[number, string]> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = flat[i];
      const value = flat[i + 1];
      if (!Buffer.isBuffer(field) || !Buffer.isBuffer(value)) continue;
      const name = field.toString('utf8');
      if (name === 'epoch') epoch = value.toString('utf8');
      else if (/^\d+$/.test(name)) entries.push([Number(name), value.toString('utf8')]);
    }
    this.dict.absorb(epoch, entries);
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

/** A write refused because its ids come from another dictionary than the one in Redis. */
function isStaleDictionary(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith(STALE_DICTIONARY);
}

/** A hash of counts as numbers. */
function numbers(hash: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(hash)) setOwn(out, key, Number(hash[key]));
  return out;
}

/** The replies of a pipeline, or the first error in it. */
function checked(replies: [Error | null, unknown][] | null, expected: number): unknown[] {
  if (replies === null) throw new Error('Redis transaction aborted');
  if (replies.length !== expected)
    throw new Error(`Redis answered ${replies.length} replies, expected ${expected}`);
  const out = new Array<unknown>(replies.length);
  for (let i = 0; i < replies.length; i++) {
    const [err, value] = replies[i]!;
    if (err !== null) throw err;
    out[i] = value;
  }
  return out;
}
