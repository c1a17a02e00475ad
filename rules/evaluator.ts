/**
 * The per-request half of rule evaluation. compile.ts builds a CompiledRuleSet once: its tables
 * are immutable and every decision on the thread shares them. An Evaluator holds what changes
 * with every request (the person's key stamps, the segment results, the matched list, the
 * campaigns reached) in arrays sized once from those tables and reused, so a request allocates
 * next to nothing. What an evaluation returns points into that scratch: it is valid until the
 * next evaluation. Epochs tell the current request's marks from older ones, so nothing is cleared
 * between requests.
 *
 * Evaluation is synchronous and a thread runs one at a time, so one evaluator per compiled rule
 * set is enough: the compiled set builds it when its own build is done and every decision uses
 * that one (`compiled.evaluator`).
 *
 * This file does not import compile.ts (compile.ts imports it): what it reads of the compiled set
 * is the RuleTables interface below, and what compiled tests read is EvalState (eval-state.ts).
 */
import type { CompiledSegment, EvalState } from './eval-state.js';
import type { Profile } from './types.js';

/** A person's keys, derived once per profile object and reused while the object lives. */
export interface PreparedPerson {
  readonly keys: Int32Array;
  readonly hash: number;
  /** ladder position per stage-brand (-1 off the ladder) */
  readonly stagePos: Int32Array;
}

/** What an evaluator reads of its compiled rule set: tables fixed once the build is done. */
export interface RuleTables {
  readonly segments: readonly CompiledSegment[];
  readonly campaigns: readonly unknown[];
  /** key id -> segments filed under it (one list per key) */
  readonly postings: readonly Int32Array[];
  /** segments that no key guards: evaluated for everyone */
  readonly unguarded: Int32Array;
  /** The same two, restricted to segments some campaign lists: all a decision needs. */
  readonly campaignPostings: readonly Int32Array[];
  readonly campaignUnguarded: Int32Array;
  /** The person's keys, id hash and stage positions. */
  preparePerson(profile: Profile): PreparedPerson;
  /** Appends the keys `tag` is filed under to `out`. */
  tagKeysOf(tag: string, out: number[]): void;
}

const MAX_EPOCH = 0x3fffffff;
const EMPTY: Record<string, unknown> = Object.freeze(Object.create(null));

/** Evaluates a compiled rule set for one person at a time, in scratch reused between requests. */
export class Evaluator {
  private readonly rules: RuleTables;
  private readonly state: EvalState;
  /** Matched segment indices of the last evaluation. */
  private readonly matched: Int32Array;
  /** Key ids of the current request's context tags. */
  private readonly contextKeys: number[] = [];
  /** segment index -> epoch when put in the matched list */
  private readonly listed: Int32Array;
  /** campaign index -> epoch when reached in the current request */
  private readonly campaignMarks: Int32Array;
  private readonly reached: Int32Array;
  /** The last profile prepared, for the look-ups within one request. */
  private lastProfile: Profile | null = null;
  private lastPrepared: PreparedPerson | null = null;

  /** Scratch for `rules`, which must be fully built. */
  constructor(rules: RuleTables) {
    this.rules = rules;
    const segments = rules.segments.length;
    this.state = evalState(rules.postings.length, rules.segments);
    this.matched = new Int32Array(segments);
    this.listed = new Int32Array(segments);
    this.campaignMarks = new Int32Array(rules.campaigns.length);
    this.reached = new Int32Array(rules.campaigns.length);
  }

  /**
   * Evaluates every segment for a person. Returns the matched segment indices (ascending) in
   * a scratch array valid until the next call, and their count. Never throws on odd profiles.
   */
  evaluate(
    profile: Profile,
    contextTags: readonly string[] | undefined,
    campaignSegmentsOnly = false,
  ): { list: Int32Array; count: number } {
    const st = this.state;
    let epoch = st.epoch + 1;
    if (epoch > MAX_EPOCH) {
      st.keyStamp.fill(0);
      st.segSeen.fill(0);
      this.listed.fill(0);
      this.campaignMarks.fill(0);
      epoch = 1;
    }
    st.epoch = epoch;
    st.profile = profile;
    const attrs = profile.attrs as Record<string, unknown> | undefined;
    st.attrs = attrs !== null && typeof attrs === 'object' ? attrs : EMPTY;
    const clv = profile.clv as Record<string, unknown> | undefined;
    st.clv = clv !== null && typeof clv === 'object' ? clv : EMPTY;

    const rules = this.rules;
    const stamp = st.keyStamp;
    // A new evaluation: an unfrozen profile may have changed since the last one.
    this.lastProfile = null;
    const person = this.prepare(profile);
    const keys = person.keys;
    for (let i = 0; i < keys.length; i++) stamp[keys[i]!] = epoch;
    const ctxKeys = this.contextKeys;
    ctxKeys.length = 0;
    if (contextTags !== undefined) {
      for (let i = 0; i < contextTags.length; i++) {
        const t = contextTags[i];
        if (typeof t === 'string') rules.tagKeysOf(t, ctxKeys);
      }
      for (let i = 0; i < ctxKeys.length; i++) stamp[ctxKeys[i]!] = epoch;
    }
    // Stage positions per stage-brand were worked out with the prepared person (they depend on
    // the profile only), and so were their keys.
    st.stagePos = person.stagePos;

    // Candidates: the unguarded segments, then those filed under keys the person holds.
    // A segment may already have been evaluated as a reference from another one: `listed`
    // marks what is in the matched list, `segSeen` what has been evaluated.
    let count = this.visitList(campaignSegmentsOnly ? rules.campaignUnguarded : rules.unguarded, 0);
    const postings = campaignSegmentsOnly ? rules.campaignPostings : rules.postings;
    for (let i = 0; i < keys.length; i++) count = this.visitList(postings[keys[i]!]!, count);
    for (let i = 0; i < ctxKeys.length; i++) count = this.visitList(postings[ctxKeys[i]!]!, count);
    const matched = this.matched;
    if (count > 1) matched.subarray(0, count).sort();
    return { list: matched, count };
  }

  /** Ids of the segments the person matches, in rule-set order (a new array, the caller's). */
  matchSegments(profile: Profile, contextTags?: readonly string[]): string[] {
    const { list, count } = this.evaluate(profile, contextTags);
    const segments = this.rules.segments;
    const out: string[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = segments[list[i]!]!.id;
    return out;
  }

  /** Whether segment `index` matched in the last evaluation. */
  segmentMatched(index: number): boolean {
    const st = this.state;
    return st.segSeen[index] === st.epoch && st.segResult[index] === 1;
  }

  /** Scratch list for the campaigns reached in the current request. */
  campaignScratch(): Int32Array {
    return this.reached;
  }

  /** Marks a campaign as reached in the current request; false when it already was. */
  markCampaign(index: number): boolean {
    const epoch = this.state.epoch;
    if (this.campaignMarks[index] === epoch) return false;
    this.campaignMarks[index] = epoch;
    return true;
  }

  /** Stable 32-bit hash of a person id, cached with the prepared profile. */
  personHash(profile: Profile): number {
    return this.prepare(profile).hash;
  }

  /** Evaluates the segments of `list` not yet listed, appending those that hold to `matched`. */
  private visitList(list: Int32Array, count: number): number {
    const st = this.state;
    const epoch = st.epoch;
    const seen = st.segSeen;
    const listed = this.listed;
    const segs = st.segments;
    const matched = this.matched;
    for (let j = 0; j < list.length; j++) {
      const s = list[j]!;
      if (listed[s] === epoch) continue;
      listed[s] = epoch;
      let ok: boolean;
      if (seen[s] === epoch) ok = st.segResult[s] === 1;
      else {
        seen[s] = epoch;
        ok = segs[s]!.test(st);
        st.segResult[s] = ok ? 1 : 0;
      }
      if (ok) matched[count++] = s;
    }
    return count;
  }

  private prepare(profile: Profile): PreparedPerson {
    if (profile === this.lastProfile) return this.lastPrepared!;
    const p = this.rules.preparePerson(profile);
    this.lastProfile = profile;
    this.lastPrepared = p;
    return p;
  }
}

/** A fresh evaluation state for `keys` keys and `segments`. */
function evalState(keys: number, segments: readonly CompiledSegment[]): EvalState {
  return {
    profile: { id: '', tags: [] },
    attrs: EMPTY,
    clv: EMPTY,
    keyStamp: new Int32Array(keys),
    epoch: 0,
    // Each evaluation puts the prepared person's own positions here.
    stagePos: new Int32Array(0),
    segSeen: new Int32Array(segments.length),
    segResult: new Uint8Array(segments.length),
    segments,
  };
}
