/**
 * Versioned rule sets in process, for the embedded store (RedisRuleSets is the same on Redis).
 * Several servers in one process share one EmbeddedRuleSets and one bus.
 */
import {
  ACTIVATION_LOG_LENGTH,
  type ActivateOptions,
  type Activation,
  type ActiveVersion,
  type Bus,
  type RuleSetMeta,
  type RuleSetStore,
} from './types.js';

export type NewRuleSet = Omit<RuleSetMeta, 'version' | 'activatedAt' | 'activatedBy'>;

/** Throws when the meta of a new rule set cannot be stored as given. */
export function checkRuleSetMeta(source: string, meta: NewRuleSet): void {
  if (typeof source !== 'string') throw new TypeError('a rule set source must be a string');
  if (meta.format !== 'yaml' && meta.format !== 'json') throw new TypeError('format must be yaml or json');
  if (typeof meta.checksum !== 'string' || typeof meta.createdBy !== 'string')
    throw new TypeError('checksum and createdBy must be strings');
  if (!Number.isFinite(meta.createdAt) || !Number.isFinite(meta.bytes))
    throw new TypeError('createdAt and bytes must be numbers');
}

export interface EmbeddedRuleSetsOptions {
  /** Where activations are announced. */
  bus: Bus;
}

interface Stored {
  meta: RuleSetMeta;
  source: string;
}

export class EmbeddedRuleSets implements RuleSetStore {
  private readonly bus: Bus;
  private readonly versions: Stored[] = [];
  private active: number | null = null;
  private readonly documents = new Map<string, string>();
  /** Oldest first. */
  private readonly log: Activation[] = [];

  constructor(opts: EmbeddedRuleSetsOptions) {
    this.bus = opts.bus;
  }

  async addRuleSet(source: string, meta: NewRuleSet): Promise<number> {
    checkRuleSetMeta(source, meta);
    const version = this.versions.length + 1;
    this.versions.push({
      source,
      meta: {
        version,
        checksum: meta.checksum,
        format: meta.format,
        createdBy: meta.createdBy,
        createdAt: meta.createdAt,
        bytes: meta.bytes,
      },
    });
    return version;
  }

  async listRuleSets(): Promise<RuleSetMeta[]> {
    return this.versions.map((v) => ({ ...v.meta })).reverse();
  }

  async getRuleSet(version: number): Promise<{ meta: RuleSetMeta; source: string } | null> {
    const stored = this.find(version);
    return stored === undefined ? null : { meta: { ...stored.meta }, source: stored.source };
  }

  async activeRuleSet(): Promise<ActiveVersion | null> {
    const stored = this.active === null ? undefined : this.find(this.active);
    return stored === undefined ? null : { version: stored.meta.version, checksum: stored.meta.checksum };
  }

  async getDocument(name: string): Promise<string | null> {
    return this.documents.get(name) ?? null;
  }

  async putDocument(name: string, text: string): Promise<void> {
    if (typeof text !== 'string') throw new TypeError('a document is text');
    this.documents.set(name, text);
  }

  async activateRuleSet(
    version: number,
    by: string,
    at: number,
    opts: ActivateOptions = {},
  ): Promise<boolean> {
    const stored = this.find(version);
    if (stored === undefined) return false;
    if (opts.ifNoneActive === true && this.active !== null) return false;
    if (opts.ifActive !== undefined && this.active !== opts.ifActive) return false;
    stored.meta.activatedAt = at;
    stored.meta.activatedBy = by;
    this.active = version;
    this.log.push({ version, by, at, rollback: opts.rollback === true });
    if (this.log.length > ACTIVATION_LOG_LENGTH) this.log.shift();
    // The version is active from here on: a lost announcement is not a failed activation (every
    // instance's poll of the active version picks it up), so it is not reported as one.
    await this.bus
      .publish({ type: 'ruleset', version, checksum: stored.meta.checksum })
      .catch(() => undefined);
    return true;
  }

  async activations(limit = ACTIVATION_LOG_LENGTH): Promise<Activation[]> {
    const n = Math.max(0, Math.min(limit, ACTIVATION_LOG_LENGTH));
    if (n === 0) return [];
    return this.log
      .slice(-n)
      .reverse()
      .map((a) => ({ ...a }));
  }

  private find(version: number): Stored | undefined {
    if (!Number.isSafeInteger(version) || version < 1) return undefined;
    return this.versions[version - 1];
  }
}
