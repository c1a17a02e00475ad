import type { FrequencyCounters, Profile } from '../../rules/types.js';

/** What one decision needs about one person, fetched in one round trip. */
export interface PersonRecord {
  /** null when the store has no profile for this id. */
  profile: Profile | null;
  /** Impression times (epoch ms) per campaign id; empty when there are none. */
  counters: FrequencyCounters;
}

/**
 * Where profiles, aliases and frequency counters live. Redis in production, an in-process map
 * for the demo and for tests; both pass the same contract suite (server/store/contract.ts).
 *
 * Keys of one person share a hash tag so that a Redis Cluster keeps them in one slot:
 *   p:{pid}   the profile, msgpackr-encoded
 *   fc:{pid}  frequency counters: a hash, campaign id -> packed impression times
 *   ax:{pid}  the set of alias keys that point at the person (so forgetting is complete)
 *   a:{kind:value}  alias -> pid
 */
export interface ProfileStore {
  readonly kind: 'redis' | 'embedded';
  /** Profile and counters of one person in one round trip. */
  loadPerson(pid: string): Promise<PersonRecord>;
  /** The person id an alias (`idfa`, `cookie`, `phone`, `member`, ...) points at, or null. */
  resolveAlias(kind: string, value: string): Promise<string | null>;
  getProfile(pid: string): Promise<Profile | null>;
  putProfile(profile: Profile): Promise<void>;
  /** Many profiles at once, pipelined; resolves when all are written. */
  putProfiles(profiles: readonly Profile[]): Promise<void>;
  /** Point aliases at a person (an alias moved from another person is unlinked there). */
  linkAliases(pid: string, aliases: Readonly<Record<string, string>>): Promise<void>;
  /**
   * Record one impression of a campaign for a person. Keeps at most `keep` most recent times
   * per campaign (the largest cap of the campaign is enough) and forgets counters not touched
   * for `ttlMs`.
   */
  recordImpression(pid: string, campaignId: string, at: number, keep: number, ttlMs: number): Promise<void>;
  /** Forget a person: profile, aliases and counters. True when there was anything to forget. */
  forgetPerson(pid: string): Promise<boolean>;
  /** Resolves when the store answers; rejects when it does not. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
