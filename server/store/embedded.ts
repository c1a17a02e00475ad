/**
 * The profile store in process: for the demo (no Redis) and for tests. It behaves like the Redis
 * store: profiles are kept encoded with the same codec (so a returned object is always a fresh
 * copy and nobody can change stored state through it), counters follow the same keep/ttl rules
 * and expire as a whole, and aliases move between people the same way.
 */
import type { FrequencyCounters, Profile } from '../../rules/types.js';
import {
  aliasMember,
  appendImpression,
  decodeProfile,
  decodeTimes,
  encodeProfile,
  encodeTimes,
  impressionLimits,
  setCounter,
} from './codec.js';
import type { PersonRecord, ProfileStore } from './types.js';

export interface EmbeddedStoreOptions {
  /** The clock counters expire by (tests inject one). Default Date.now. */
  now?: () => number;
}

interface CounterHash {
  fields: Map<string, Buffer>;
  expiresAt: number;
}

export class EmbeddedStore implements ProfileStore {
  readonly kind = 'embedded' as const;
  private readonly now: () => number;
  private readonly profiles = new Map<string, Buffer>();
  private readonly counters = new Map<string, CounterHash>();
  /** `kind:value` -> pid */
  private readonly aliases = new Map<string, string>();
  /** pid -> its `kind:value` aliases */
  private readonly aliasesOf = new Map<string, Set<string>>();
  private closed = false;
  /** Values that did not decode (never expected in process; kept for parity with Redis). */
  corruptValues = 0;

  constructor(opts: EmbeddedStoreOptions = {}) {
    this.now = opts.now ?? Date.now;
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
    this.profiles.set(profile.id, encodeProfile(profile));
  }

  async putProfiles(profiles: readonly Profile[]): Promise<void> {
    this.check();
    // Encode everything first: a bad profile leaves the store as it was.
    const encoded = profiles.map((p) => [p.id, encodeProfile(p)] as const);
    for (const [id, bytes] of encoded) this.profiles.set(id, bytes);
  }

  async linkAliases(pid: string, aliases: Readonly<Record<string, string>>): Promise<void> {
    this.check();
    for (const [kind, value] of Object.entries(aliases)) {
      const member = aliasMember(kind, value);
      const previous = this.aliases.get(member);
      if (previous !== undefined && previous !== pid) {
        const set = this.aliasesOf.get(previous);
        set?.delete(member);
        if (set !== undefined && set.size === 0) this.aliasesOf.delete(previous);
      }
      this.aliases.set(member, pid);
      let mine = this.aliasesOf.get(pid);
      if (mine === undefined) this.aliasesOf.set(pid, (mine = new Set()));
      mine.add(member);
    }
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
    const mine = this.aliasesOf.get(pid);
    if (mine !== undefined) {
      for (const member of mine) {
        if (this.aliases.get(member) === pid) {
          this.aliases.delete(member);
          found = true;
        }
      }
      this.aliasesOf.delete(pid);
    }
    return found;
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
    if (bytes === undefined) return null;
    const profile = decodeProfile(bytes);
    if (profile === null) this.corruptValues++;
    return profile;
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
