/**
 * Versioned rule sets on Redis, in the global slot (redis-keys.ts), behind the store's prefix:
 *   rs:seq:{ms}          the last version given out (INCR)
 *   rs:v:{ms}:<version>  hash: source, checksum, format, createdBy, createdAt, bytes, and once
 *                        activated activatedAt, activatedBy
 *   rs:active:{ms}       the active version
 *   rs:log:{ms}          the activation log, newest first: JSON {version, by, at, rollback},
 *                        at most ACTIVATION_LOG_LENGTH entries
 *   rs:doc:{ms}:<name>   a named configuration document (the currency rates), as text
 * Adding (INCR + HSET) and activating (checks + HSET + SET + LPUSH) are each one Lua script; an
 * activation is then announced on the bus as `{type: 'ruleset', version, checksum}`.
 */
import { ACTIVATE_RULESET_LUA, ACTIVE_RULESET_LUA, ADD_RULESET_LUA } from './lua.js';
import { RedisStore, type RedisStoreOptions } from './redis.js';
import { luaScript } from './resp.js';
import { checkRuleSetMeta, type NewRuleSet } from './rulesets.js';
import {
  ACTIVATION_LOG_LENGTH,
  type ActivateOptions,
  type Activation,
  type ActiveVersion,
  type Bus,
  type RuleSetMeta,
  type RuleSetStore,
} from './types.js';

export type RedisRuleSetsOptions = (
  | {
      /** Use this store's connections and key prefix. */
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

const META_FIELDS = [
  'checksum',
  'format',
  'createdBy',
  'createdAt',
  'bytes',
  'activatedAt',
  'activatedBy',
] as const;

const ADD = luaScript(ADD_RULESET_LUA);
const ACTIVATE = luaScript(ACTIVATE_RULESET_LUA);
const ACTIVE = luaScript(ACTIVE_RULESET_LUA);

export class RedisRuleSets implements RuleSetStore {
  private readonly store: RedisStore;
  private readonly ownsStore: boolean;
  private readonly bus: Bus;

  constructor(opts: RedisRuleSetsOptions) {
    if ('store' in opts) {
      this.store = opts.store;
      this.ownsStore = false;
    } else {
      this.store = new RedisStore(opts.redis);
      this.ownsStore = true;
    }
    this.bus = opts.bus;
  }

  async addRuleSet(source: string, meta: NewRuleSet): Promise<number> {
    checkRuleSetMeta(source, meta);
    const { client, keys } = await this.connected();
    const version = await client.script(
      ADD,
      [keys.rulesetSeq],
      [
        keys.rulesetVersionBase,
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
      ],
    );
    return Number(version);
  }

  async listRuleSets(): Promise<RuleSetMeta[]> {
    const { client, keys } = await this.connected();
    const main = client.main;
    const last = Number((await main.get(keys.rulesetSeq)) ?? 0);
    if (!Number.isSafeInteger(last) || last <= 0) return [];
    const versions: number[] = [];
    for (let v = last; v >= 1; v--) versions.push(v);
    const replies = await Promise.all(
      versions.map((v) => main.hmget(keys.rulesetVersion(v), ...META_FIELDS)),
    );
    const out: RuleSetMeta[] = [];
    replies.forEach((values, i) => {
      const meta = toMeta(versions[i]!, META_FIELDS, values);
      if (meta !== null) out.push(meta);
    });
    return out;
  }

  async getRuleSet(version: number): Promise<{ meta: RuleSetMeta; source: string } | null> {
    if (!Number.isSafeInteger(version) || version < 1) return null;
    const { client, keys } = await this.connected();
    const hash = await client.main.hgetall(keys.rulesetVersion(version));
    const source = hash.source;
    if (source === undefined) return null;
    const meta = toMeta(
      version,
      META_FIELDS,
      META_FIELDS.map((f) => hash[f] ?? null),
    );
    return meta === null ? null : { meta, source };
  }

  async activeRuleSet(): Promise<ActiveVersion | null> {
    const { client, keys } = await this.connected();
    const [value, checksum] = (await client.script(
      ACTIVE,
      [keys.rulesetActive],
      [keys.rulesetVersionBase],
    )) as [string?, string?];
    const version = Number(value);
    if (!Number.isSafeInteger(version) || version <= 0 || typeof checksum !== 'string') return null;
    return { version, checksum };
  }

  async activateRuleSet(
    version: number,
    by: string,
    at: number,
    opts: ActivateOptions = {},
  ): Promise<boolean> {
    if (!Number.isSafeInteger(version) || version < 1) return false;
    const { client, keys } = await this.connected();
    const entry: Activation = { version, by, at, rollback: opts.rollback === true };
    const done = Number(
      await client.script(
        ACTIVATE,
        [keys.rulesetVersion(version), keys.rulesetActive, keys.rulesetLog],
        [
          version,
          by,
          at,
          opts.ifNoneActive === true ? '1' : '0',
          opts.ifActive === undefined ? '' : String(opts.ifActive),
          JSON.stringify(entry),
          ACTIVATION_LOG_LENGTH,
        ],
      ),
    );
    if (done !== 1) return false;
    const checksum = await client.main.hget(keys.rulesetVersion(version), 'checksum');
    // The version is active from here on: a lost announcement is not a failed activation (every
    // instance's poll of the active version picks it up), so it is not reported as one.
    await this.bus
      .publish(checksum === null ? { type: 'ruleset', version } : { type: 'ruleset', version, checksum })
      .catch(() => undefined);
    return true;
  }

  async activations(limit = ACTIVATION_LOG_LENGTH): Promise<Activation[]> {
    const n = Math.max(0, Math.min(limit, ACTIVATION_LOG_LENGTH));
    if (n === 0) return [];
    const { client, keys } = await this.connected();
    const lines = await client.main.lrange(keys.rulesetLog, 0, n - 1);
    const out: Activation[] = [];
    for (const line of lines) {
      const a = readActivation(line);
      if (a !== null) out.push(a);
    }
    return out;
  }

  async getDocument(name: string): Promise<string | null> {
    const { client, keys } = await this.connected();
    return client.main.get(keys.document(name));
  }

  async putDocument(name: string, text: string): Promise<void> {
    if (typeof text !== 'string') throw new TypeError('a document is text');
    const { client, keys } = await this.connected();
    await client.main.set(keys.document(name), text);
  }

  async close(): Promise<void> {
    if (this.ownsStore) await this.store.close();
  }

  /** The store's client and keys once it can be used (fails at once while Redis is down). */
  private async connected(): Promise<{ client: RedisStore['client']; keys: RedisStore['keys'] }> {
    await this.store.client.up();
    return { client: this.store.client, keys: this.store.keys };
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

/** An entry of the activation log, or null for one this version cannot read. */
function readActivation(line: string): Activation | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const { version, by, at, rollback } = v as Record<string, unknown>;
  if (!Number.isSafeInteger(version) || typeof by !== 'string' || typeof at !== 'number') return null;
  return { version: version as number, by, at, rollback: rollback === true };
}
