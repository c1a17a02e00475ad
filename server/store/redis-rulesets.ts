/**
 * Versioned rule sets on Redis, behind the store's key prefix:
 *   rs:seq          the last version given out (INCR)
 *   rs:v:<version>  hash: source, checksum, format, createdBy, createdAt, bytes, and once
 *                   activated activatedAt, activatedBy
 *   rs:active       the active version
 * Adding (INCR + HSET) and activating (check + HSET + SET) are each one Lua script; an
 * activation is then announced on the bus as `{type: 'ruleset', version}`.
 */
import type { Redis } from 'ioredis';
import { ACTIVATE_RULESET_LUA, ADD_RULESET_LUA } from './lua.js';
import { RedisStore, type RedisStoreOptions } from './redis.js';
import { checkRuleSetMeta, type NewRuleSet } from './rulesets.js';
import type { Bus, RuleSetMeta, RuleSetStore } from './types.js';

export type RedisRuleSetsOptions = (
  | {
      /** Use this store's connection and key prefix. */
      store: RedisStore;
    }
  | {
      /** Connect by itself (closed with close()). */
      redis: RedisStoreOptions;
    }
) & {
  /** Where activations are announced. */
  bus: Bus;
};

interface RuleSetScripts {
  msRsAdd(seqKey: string, prefix: string, ...fields: Array<string | number>): Promise<number>;
  msRsActivate(
    versionKey: string,
    activeKey: string,
    version: number,
    by: string,
    at: number,
  ): Promise<number>;
}

const META_FIELDS = [
  'checksum',
  'format',
  'createdBy',
  'createdAt',
  'bytes',
  'activatedAt',
  'activatedBy',
] as const;

export class RedisRuleSets implements RuleSetStore {
  private readonly store: RedisStore;
  private readonly ownsStore: boolean;
  private readonly bus: Bus;
  private readonly prefix: string;
  private defined = new WeakSet<Redis>();

  constructor(opts: RedisRuleSetsOptions) {
    if ('store' in opts) {
      this.store = opts.store;
      this.ownsStore = false;
    } else {
      this.store = new RedisStore(opts.redis);
      this.ownsStore = true;
    }
    this.bus = opts.bus;
    this.prefix = this.store.keyPrefix;
  }

  async addRuleSet(source: string, meta: NewRuleSet): Promise<number> {
    checkRuleSetMeta(source, meta);
    const scripts = await this.scripts();
    const version = await scripts.msRsAdd(
      `${this.prefix}rs:seq`,
      this.prefix,
      'source',
      source,
      'checksum',
      meta.checksum,
      'format',
      meta.format,
      'createdBy',
      meta.createdBy,
      'createdAt',
      meta.createdAt,
      'bytes',
      meta.bytes,
    );
    return Number(version);
  }

  async listRuleSets(): Promise<RuleSetMeta[]> {
    const redis = await this.store.connection();
    const last = Number((await redis.get(`${this.prefix}rs:seq`)) ?? 0);
    if (!Number.isSafeInteger(last) || last <= 0) return [];
    const pipe = redis.pipeline();
    for (let v = last; v >= 1; v--) pipe.hmget(this.versionKey(v), ...META_FIELDS);
    const replies = (await pipe.exec()) ?? [];
    const out: RuleSetMeta[] = [];
    replies.forEach(([err, values], i) => {
      if (err !== null) throw err;
      const meta = toMeta(last - i, META_FIELDS, values as Array<string | null>);
      if (meta !== null) out.push(meta);
    });
    return out;
  }

  async getRuleSet(version: number): Promise<{ meta: RuleSetMeta; source: string } | null> {
    if (!Number.isSafeInteger(version) || version < 1) return null;
    const redis = await this.store.connection();
    const hash = await redis.hgetall(this.versionKey(version));
    const source = hash.source;
    if (source === undefined) return null;
    const meta = toMeta(
      version,
      META_FIELDS,
      META_FIELDS.map((f) => hash[f] ?? null),
    );
    return meta === null ? null : { meta, source };
  }

  async activeRuleSet(): Promise<number | null> {
    const redis = await this.store.connection();
    const value = await redis.get(`${this.prefix}rs:active`);
    const version = value === null ? Number.NaN : Number(value);
    return Number.isSafeInteger(version) && version > 0 ? version : null;
  }

  async activateRuleSet(version: number, by: string, at: number): Promise<boolean> {
    if (!Number.isSafeInteger(version) || version < 1) return false;
    const scripts = await this.scripts();
    const done = await scripts.msRsActivate(
      this.versionKey(version),
      `${this.prefix}rs:active`,
      version,
      by,
      at,
    );
    if (done !== 1) return false;
    // The version is active from here on: a lost announcement is not a failed activation (every
    // instance's poll of the active version picks it up), so it is not reported as one.
    await this.bus.publish({ type: 'ruleset', version }).catch(() => undefined);
    return true;
  }

  async close(): Promise<void> {
    if (this.ownsStore) await this.store.close();
  }

  private versionKey(version: number): string {
    return `${this.prefix}rs:v:${version}`;
  }

  private async scripts(): Promise<RuleSetScripts> {
    const redis = await this.store.connection();
    if (!this.defined.has(redis)) {
      redis.defineCommand('msRsAdd', { numberOfKeys: 1, lua: ADD_RULESET_LUA });
      redis.defineCommand('msRsActivate', { numberOfKeys: 2, lua: ACTIVATE_RULESET_LUA });
      this.defined.add(redis);
    }
    return redis as unknown as RuleSetScripts;
  }
}

/** The meta of a version from its hash fields; null when the version is not stored. */
function toMeta(
  version: number,
  fields: readonly string[],
  values: ReadonlyArray<string | null | undefined>,
): RuleSetMeta | null {
  const get = (name: string) => values[fields.indexOf(name)] ?? null;
  const checksum = get('checksum');
  const format = get('format');
  if (checksum === null || (format !== 'yaml' && format !== 'json')) return null;
  const meta: RuleSetMeta = {
    version,
    checksum,
    format,
    createdBy: get('createdBy') ?? '',
    createdAt: Number(get('createdAt') ?? 0),
    bytes: Number(get('bytes') ?? 0),
  };
  const activatedAt = get('activatedAt');
  if (activatedAt !== null) meta.activatedAt = Number(activatedAt);
  const activatedBy = get('activatedBy');
  if (activatedBy !== null) meta.activatedBy = activatedBy;
  return meta;
}
