/**
 * The profile store on Redis (ioredis). Key layout (types.ts), all keys behind an optional
 * prefix; the keys of one person share the `{pid}` hash tag, so a Redis Cluster keeps them in
 * one slot:
 *   p:{pid}          profile bytes (codec.ts)
 *   fc:{pid}         hash: campaign id -> packed impression times (codec.ts)
 *   ax:{pid}         set of the person's aliases, `kind:value`
 *   a:{kind:value}   alias -> pid
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
  decodeProfile,
  decodeTimes,
  encodeProfile,
  impressionLimits,
  RECORD_IMPRESSION_LUA,
  setCounter,
} from './codec.js';
import type { PersonRecord, ProfileStore } from './types.js';

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
}

export interface RedisStoreStats {
  status: string;
  /** Connection errors seen (refused, reset, timeouts). */
  connectionErrors: number;
  /** Stored values that did not decode and were treated as absent. */
  corruptValues: number;
}

/** The scripts defined on the connection (defineCommand: EVALSHA, with EVAL on NOSCRIPT). */
interface Scripts {
  msRecordImpression(key: string, field: string, at: number, keep: number, ttlMs: number): Promise<number>;
  msDelIfEquals(key: string, value: string): Promise<number>;
}
type ScriptsPipeline = ChainableCommander & {
  msDelIfEquals(key: string, value: string): ScriptsPipeline;
};

/** Redis cannot be reached right now; the client keeps reconnecting. */
export class RedisUnavailableError extends Error {
  readonly code = 'redis_unavailable';
}

const DEL_IF_EQUALS_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export class RedisStore implements ProfileStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private readonly scripts: Scripts;
  private readonly prefix: string;
  private readonly batchSize: number;
  private readonly log: (line: string) => void;
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
    this.batchSize = Math.max(1, opts.batchSize ?? 1000);
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
    this.scripts = this.redis as unknown as Scripts;

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

  async loadPerson(pid: string): Promise<PersonRecord> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    const replies = await this.redis
      .pipeline()
      .getBuffer(this.pKey(pid))
      .hgetallBuffer(this.fcKey(pid))
      .exec();
    const [profileReply, countersReply] = checked(replies, 2);
    return {
      profile: this.decodeProfileReply(profileReply),
      counters: this.decodeCounters(countersReply as Record<string, Buffer> | null),
    };
  }

  async resolveAlias(kind: string, value: string): Promise<string | null> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    return this.redis.get(this.aliasKey(aliasMember(kind, value)));
  }

  async getProfile(pid: string): Promise<Profile | null> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    return this.decodeProfileReply(await this.redis.getBuffer(this.pKey(pid)));
  }

  async putProfile(profile: Profile): Promise<void> {
    const bytes = encodeProfile(profile);
    if (this.starting !== null) await this.starting;
    this.assertUp();
    await this.redis.set(this.pKey(profile.id), bytes);
  }

  async putProfiles(profiles: readonly Profile[]): Promise<void> {
    // Encode everything first: a profile that cannot be encoded writes nothing.
    const encoded = profiles.map((p) => [this.pKey(p.id), encodeProfile(p)] as const);
    if (this.starting !== null) await this.starting;
    this.assertUp();
    for (let i = 0; i < encoded.length; i += this.batchSize) {
      const pipe = this.redis.pipeline();
      const end = Math.min(encoded.length, i + this.batchSize);
      for (let j = i; j < end; j++) {
        const [key, bytes] = encoded[j]!;
        pipe.set(key, bytes);
      }
      checked(await pipe.exec(), end - i);
    }
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
    const axKey = this.axKey(pid);
    // Atomically: the aliases the person had, and everything kept under the person's hash tag.
    const [members, deleted] = checked(
      await this.redis.multi().smembers(axKey).del(this.pKey(pid), this.fcKey(pid), axKey).exec(),
      2,
    ) as [string[], number];
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

  async ping(): Promise<void> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
    await this.redis.ping();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
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
      connectionErrors: this.connectionErrors,
      corruptValues: this.corruptValues,
    };
  }

  /** The keys of a person and of an alias, as stored (with the prefix). */
  keysOf(pid: string): { profile: string; counters: string; aliases: string } {
    return { profile: this.pKey(pid), counters: this.fcKey(pid), aliases: this.axKey(pid) };
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
  aliasKey(member: string): string {
    return `${this.prefix}a:{${member}}`;
  }

  private decodeProfileReply(reply: unknown): Profile | null {
    if (reply === null || reply === undefined) return null;
    if (!(reply instanceof Uint8Array)) {
      this.corruptValues++;
      return null;
    }
    const profile = decodeProfile(reply);
    if (profile === null) this.corruptValues++;
    return profile;
  }

  private decodeCounters(hash: Record<string, Buffer> | null): FrequencyCounters {
    const out: Record<string, number[]> = {};
    if (hash === null) return out;
    for (const campaign in hash) {
      const times = decodeTimes(hash[campaign]!);
      if (times === null) this.corruptValues++;
      else setCounter(out, campaign, times);
    }
    return out;
  }
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
