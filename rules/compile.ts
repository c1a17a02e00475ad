/**
 * Compiles a validated rule set once into flat tables and closures, so that a decision does
 * array and typed-array work only: no tree walking, no string parsing, no regex per request.
 *
 * Segment matching uses boolean-expression indexing. For every segment the compiler derives a
 * set of "keys" (a tag, a tag prefix, the presence of an attribute or of a brand's CLV, a brand's
 * stage) of which a matching person must hold at least one, picking the cheapest such set; the
 * segment is filed under those keys. A request looks up the keys the person holds and evaluates
 * only the segments filed under them, plus the few that no key can guard (`not`-only segments).
 * The cost therefore follows the number of segments a person could match, not the number of
 * segments in the rule set.
 *
 * Evaluation is split by how long things live:
 *  - this file: a CompiledRuleSet holds the tables, built once, immutable and shared by every
 *    decision on the thread, plus memos that depend on the tables alone (the preparation of
 *    frozen profiles, the keys of each tag seen);
 *  - evaluator.ts: the scratch one request works in, reused by the next request, so what an
 *    evaluation returns is valid until the next one. The compiled set builds one Evaluator when
 *    its build is done, and every decision uses that one (`compiled.evaluator`);
 *  - eval-state.ts: EvalState, what the compiled segment tests read and the evaluator fills.
 */
import { type CompiledSegment, type EvalState, evalSegment, type Predicate } from './eval-state.js';
import { Evaluator, type PreparedPerson, type RuleTables } from './evaluator.js';
import {
  CALENDAR_MAX_MS,
  DEFAULT_ATTRIBUTION_MS,
  parseDuration,
  parseFlightBound,
  parseQuietHours,
} from './time.js';
import type {
  Budget,
  BudgetUnit,
  Channel,
  Condition,
  CreativeNative,
  CreativeVideo,
  MessageType,
  Profile,
  RuleSet,
  Scalar,
  Scoring,
} from './types.js';
import { CHANNELS, PUSH_CHANNELS } from './types.js';

export type { CompiledSegment } from './eval-state.js';

export interface CompiledCreative {
  readonly index: number;
  readonly id: string;
  readonly message: MessageType;
  readonly sellingPoints: ReadonlySet<string>;
  /** Bit per ladder position (and one for off-ladder stages); all bits when unrestricted. */
  readonly stageMask: number;
  /** Bit per channel (CHANNELS order), already intersected with the campaign's channels. */
  readonly channelMask: number;
  readonly formats: readonly string[] | null;
  readonly weight: number;
  readonly hash: number;
  /** OpenRTB: the CPM bid (the creative's, else the campaign's); 0 when there is none. */
  readonly bid: number;
  /** OpenRTB: the currency of `bid`. */
  readonly currency: string;
  /** OpenRTB: the ad markup, or null for the default snippet. */
  readonly adm: string | null;
  /** OpenRTB: IAB creative attributes. */
  readonly attr: readonly number[];
  /** OpenRTB: the video file of a video creative; null when it has none. */
  readonly video: Readonly<CreativeVideo> | null;
  /** OpenRTB: the creative's own VAST document; null to build one from `video`. */
  readonly vast: string | null;
  /** OpenRTB: the assets of a native creative; null when it has none. */
  readonly native: Readonly<CreativeNative> | null;
  /** The creative's own budget; null when it has none. */
  readonly budget: CompiledBudget | null;
  /**
   * What an impression of it decided by /v1/decide costs a `spend` budget, in millionths of the
   * campaign's currency: the budget's `cpm` (the creative's, else the campaign's), else its bid.
   */
  readonly impressionCost: number;
}

/**
 * A budget, in millionths of its unit (integers all the way to the store: a daily budget of 500
 * USD is 500,000,000), so that counts add exactly.
 */
export interface CompiledBudget {
  readonly daily: number | null;
  readonly total: number | null;
  readonly unit: BudgetUnit;
  readonly pacing: 'asap' | 'even';
}

/** Millionths: the unit budgets are counted in. */
export const BUDGET_SCALE = 1_000_000;

function compileBudget(b: Budget | undefined): CompiledBudget | null {
  if (b === undefined) return null;
  const scaled = (n: number | undefined) => (n === undefined ? null : Math.round(n * BUDGET_SCALE));
  return {
    daily: scaled(b.daily),
    total: scaled(b.total),
    unit: b.unit ?? 'impressions',
    pacing: b.pacing ?? 'even',
  };
}

/** What one impression at a CPM costs, in millionths of the currency. */
function impressionCost(cpm: number): number {
  return Math.round((cpm / 1000) * BUDGET_SCALE);
}

export interface CompiledCap {
  readonly max: number;
  /** A rolling window's length; for a calendar cap, the longest its period can be (kept that long). */
  readonly windowMs: number;
  /** A calendar cap's period, null for a rolling window. */
  readonly calendar: 'day' | 'week' | null;
  /** A calendar cap counted in the person's time zone (when their profile has one). */
  readonly personZone: boolean;
  /**
   * The calendar period this cap last counted in (a decision's scratch, like the evaluator's):
   * most decisions fall in it, and then skip even the time-zone look-up. Measured on the demo's
   * x90 campaign with `day` and `week` caps (mitata, five runs each): 2.51 µs a decision through
   * calendarPeriod's map, 2.20 µs with this, 2.37-2.46 µs with the rolling `1d`, `7d` caps.
   */
  readonly period: { tz: string; start: number; end: number };
}

export interface CompiledCampaign {
  readonly index: number;
  readonly id: string;
  readonly brand: string;
  /** index into CompiledRuleSet.brands */
  readonly brandIndex: number;
  readonly segments: Int32Array;
  readonly stageMask: number;
  readonly priority: number;
  readonly weight: number;
  readonly flightStart: number;
  readonly flightEnd: number;
  readonly caps: readonly CompiledCap[];
  /** The most impressions any cap looks at: how many times the store must keep. */
  readonly keepImpressions: number;
  /** The longest cap window, in ms (0 without caps). */
  readonly longestCapMs: number;
  readonly channelMask: number;
  readonly timezone: string;
  /** Quiet hours in minutes after midnight in `timezone`, or null. */
  readonly quietStart: number;
  readonly quietEnd: number;
  readonly hasQuietHours: boolean;
  readonly holdout: number;
  /** How long after an exposure outcomes count for lift, ms. */
  readonly attributionMs: number;
  readonly hash: number;
  readonly creatives: readonly CompiledCreative[];
  /** OpenRTB: the advertiser's domains (lower case) and IAB categories. */
  readonly adomain: readonly string[];
  readonly cat: readonly string[];
  /** OpenRTB: deal ids the campaign buys (empty: none). */
  readonly deals: ReadonlySet<string>;
  /** The campaign's budget; null when it has none. */
  readonly budget: CompiledBudget | null;
  /** Whether the campaign or any of its creatives has a budget. */
  readonly budgeted: boolean;
  /**
   * What an impression that names no creative costs a `spend` budget: its `cpm`, else its `bid`,
   * else the dearest of its creatives' (a budget never counts an impression as free).
   */
  readonly impressionCost: number;
  /** The campaign's currency (`currency`, default USD): what a spend budget counts in. */
  readonly currency: string;
}

export interface ResolvedScoring {
  readonly clv: number;
  readonly clvScale: number;
  readonly sellingPoints: number;
  readonly affinity: number;
}

/** Key kinds: the prefix of a key's name in the key table (for explain and debugging). */
enum KeyKind {
  Tag = 0,
  Prefix = 1,
  Attr = 2,
  Clv = 3,
  Stage = 4,
}

/**
 * The build yields every 256 segments or keys: a few hundred microseconds of compilation apart at
 * most (a 50,000-segment set takes about 0.7 s in all on the machine this was written on).
 */
const STEP_MASK = 255;

type Writable<T> = { -readonly [K in keyof T]: T[K] };
/** Tags remembered with their keys per compiled rule set, at most. */
const TAG_MEMO_MAX = 200_000;
const NO_KEYS: readonly number[] = Object.freeze([]);

export const CHANNEL_BIT: ReadonlyMap<string, number> = new Map(CHANNELS.map((c, i) => [c, 1 << i]));
export const ALL_CHANNELS_MASK = (1 << CHANNELS.length) - 1;
export const PUSH_MASK = PUSH_CHANNELS.reduce((m, c) => m | (CHANNEL_BIT.get(c) ?? 0), 0);

export function channelMaskOf(channels: readonly string[] | undefined): number {
  if (channels === undefined) return ALL_CHANNELS_MASK;
  let mask = 0;
  for (let i = 0; i < channels.length; i++) mask |= CHANNEL_BIT.get(channels[i] as string) ?? 0;
  return mask;
}

/** 32-bit FNV-1a of a string; stable across processes and versions. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mixes two 32-bit hashes into one well-spread unsigned 32-bit value (murmur3 finaliser). */
export function mixHash(a: number, b: number): number {
  let h = (a ^ Math.imul(b, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Guard {
  keys: number[];
  cost: number;
}

/** A rule set compiled into immutable tables, with the one evaluator that reads them. */
export class CompiledRuleSet implements RuleTables {
  readonly source: RuleSet;
  readonly funnel: readonly string[];
  readonly stageIndex: ReadonlyMap<string, number>;
  readonly defaultStage: string;
  /** Per brand, its own default stage (defaultStages); others have defaultStage. */
  private readonly brandDefaultStage: ReadonlyMap<string, string>;
  /** The default stage's position per stage-brand (made on first use, once the build is done). */
  private defaultStagePos: Int32Array | null = null;
  readonly segments: readonly CompiledSegment[] = [];
  readonly segmentIndex: ReadonlyMap<string, number>;
  readonly campaigns: readonly CompiledCampaign[] = [];
  readonly campaignIndex: ReadonlyMap<string, number> = new Map();
  readonly brands: readonly string[] = [];
  readonly scoring: ResolvedScoring;
  /** segment index -> campaigns listing it */
  readonly campaignsBySegment: readonly Int32Array[] = [];
  /** Campaigns without segments: every person may get them. */
  readonly everyoneCampaigns: Int32Array = new Int32Array(0);
  /** key id -> segments filed under it */
  readonly postings: readonly Int32Array[] = [];
  /** segments that no key guards: evaluated for everyone */
  readonly unguarded: Int32Array = new Int32Array(0);
  /** The same two, restricted to segments some campaign lists: all a decision needs. */
  readonly campaignPostings: readonly Int32Array[] = [];
  readonly campaignUnguarded: Int32Array = new Int32Array(0);
  /**
   * Evaluates this rule set for one person at a time, in scratch reused by every request. One is
   * enough: evaluation is synchronous and a thread runs one at a time. Set when the build is done.
   */
  readonly evaluator!: Evaluator;

  /** Exact tags the rules mention -> key id. */
  private readonly tagKeys = new Map<string, number>();
  /** Brands the rule set names anywhere: campaigns, stage conditions, stage moves. */
  private knownBrands: ReadonlySet<string> | null = null;
  /** Tag prefixes (without `*`) -> key id, and the distinct prefix lengths, longest first. */
  private readonly prefixKeys = new Map<string, number>();
  private prefixLengths: number[] = [];
  private readonly attrKeys = new Map<string, number>();
  private readonly clvKeys = new Map<string, number>();
  /** brands named in stage conditions, with their key ids per ladder position (+1 off-ladder) */
  private readonly stageBrands: string[] = [];
  private readonly stageBrandIndex = new Map<string, number>();
  private stageKeyBase: number[] = [];
  private keyCount = 0;

  /**
   * Preparations of frozen profiles (those a cache shares between decisions): frozen, they
   * cannot change, so the work is kept as long as the profile lives. Any other profile is
   * prepared afresh by each evaluation.
   */
  private readonly prepared = new WeakMap<Profile, PreparedPerson>();
  /** Tag -> the keys it is filed under (most tags of a person: none). */
  private readonly tagMemo = new Map<string, readonly number[]>();

  /**
   * Compiles `ruleSet` at once (`now`), or only starts to (`stepwise`): then the build runs as
   * `compileRuleSetInSlices` drives `buildSteps`, and the object is not used before it is done.
   */
  constructor(ruleSet: RuleSet, compile: 'now' | 'stepwise' = 'now') {
    this.source = ruleSet;
    this.funnel = ruleSet.funnel.slice();
    this.stageIndex = new Map(this.funnel.map((s, i) => [s, i]));
    this.defaultStage = ruleSet.defaultStage ?? this.funnel[0] ?? '';
    this.brandDefaultStage = new Map(Object.entries(ruleSet.defaultStages ?? {}));
    this.scoring = resolveScoring(ruleSet.scoring);

    const segIndex = new Map<string, number>();
    for (let i = 0; i < ruleSet.segments.length; i++) segIndex.set(ruleSet.segments[i]!.id, i);
    this.segmentIndex = segIndex;
    if (compile === 'now') for (const _ of this.buildSteps()) void _;
  }

  /**
   * The compilation, in steps: each `yield` is a point where the caller may let other work run
   * (a few hundred microseconds of work apart at most). Assigns the tables the constructor left
   * empty; only the constructor and compileRuleSetInSlices run it, once.
   */
  buildSteps(): Generator<void, void, void> {
    if (this.built) throw new Error('this rule set is compiled already');
    this.built = true;
    return this.build(this as unknown as Writable<CompiledRuleSet>);
  }

  private built = false;

  private *build(out: Writable<CompiledRuleSet>): Generator<void, void, void> {
    const ruleSet = this.source;
    const segIndex = this.segmentIndex;
    // Collect stage brands first: their key ids are laid out as one block per brand.
    for (let i = 0; i < ruleSet.segments.length; i++) {
      this.collectStageBrands(ruleSet.segments[i]!.when);
      if ((i & STEP_MASK) === STEP_MASK) yield;
    }
    yield;
    for (let b = 0; b < this.stageBrands.length; b++) {
      this.stageKeyBase.push(this.keyCount);
      this.keyCount += this.funnel.length + 1;
    }

    const segments: CompiledSegment[] = [];
    const sp = ruleSet.sellingPoints ?? {};
    for (let i = 0; i < ruleSet.segments.length; i++) {
      const seg = ruleSet.segments[i]!;
      segments.push({
        index: i,
        id: seg.id,
        test: this.compileCondition(seg.when),
        sellingPoints: Object.hasOwn(sp, seg.id) ? (sp[seg.id] ?? []).slice() : [],
      });
      if ((i & STEP_MASK) === STEP_MASK) yield;
    }
    out.segments = segments;
    yield;

    // Index segments by their cheapest guard.
    const guards = new Map<number, Guard | null>();
    const buckets: number[][] = [];
    const unguarded: number[] = [];
    for (let i = 0; i < segments.length; i++) {
      const g = this.guardOfSegment(i, guards, new Set());
      if (g === null) unguarded.push(i);
      else for (const k of g.keys) (buckets[k] ??= []).push(i);
      if ((i & STEP_MASK) === STEP_MASK) yield;
    }
    const postings: Int32Array[] = [];
    for (let k = 0; k < this.keyCount; k++) {
      postings.push(Int32Array.from(buckets[k] ?? []));
      if ((k & STEP_MASK) === STEP_MASK) yield;
    }
    out.postings = postings;
    out.unguarded = Int32Array.from(unguarded);
    yield;

    // Campaigns.
    const brands: string[] = [];
    const brandIndex = new Map<string, number>();
    const bySegment: number[][] = segments.map(() => []);
    const everyone: number[] = [];
    const campaigns: CompiledCampaign[] = [];
    for (let ci = 0; ci < ruleSet.campaigns.length; ci++) {
      const c = ruleSet.campaigns[ci]!;
      let bi = brandIndex.get(c.brand);
      if (bi === undefined) {
        bi = brands.length;
        brands.push(c.brand);
        brandIndex.set(c.brand, bi);
      }
      const segs = (c.segments ?? []).map((id) => segIndex.get(id) ?? -1).filter((i) => i >= 0);
      for (const s of new Set(segs)) bySegment[s]!.push(ci);
      if (c.segments === undefined) everyone.push(ci);
      const timezone = c.timing?.timezone ?? 'UTC';
      const flightTz = c.flight?.timezone ?? timezone;
      const quiet = c.timing?.quietHours === undefined ? null : parseQuietHours(c.timing.quietHours);
      const caps = (c.frequencyCap ?? []).map((cap): CompiledCap => {
        const calendar = cap.per === 'day' || cap.per === 'week' ? cap.per : null;
        return {
          max: cap.max,
          windowMs: calendar === null ? (parseDuration(cap.per) ?? 0) : CALENDAR_MAX_MS[calendar],
          calendar,
          personZone: calendar !== null && cap.zone === 'person',
          period: { tz: '', start: 0, end: 0 },
        };
      });
      const campaignChannels = channelMaskOf(c.channels);
      const campaignCurrency = c.currency ?? 'USD';
      const creatives: CompiledCreative[] = c.creatives.map((cr, i) => ({
        index: i,
        id: cr.id,
        message: cr.message,
        sellingPoints: new Set(cr.sellingPoints ?? []),
        stageMask: this.stageMaskOf(cr.stages),
        channelMask:
          cr.channels === undefined ? campaignChannels : channelMaskOf(cr.channels) & campaignChannels,
        formats: cr.formats === undefined || cr.formats.length === 0 ? null : cr.formats.slice(),
        weight: cr.weight ?? 1,
        hash: hashString(cr.id),
        bid: cr.bid ?? c.bid ?? 0,
        currency: cr.currency ?? campaignCurrency,
        adm: cr.adm ?? null,
        attr: (cr.attr ?? []).slice(),
        video: cr.video === undefined ? null : { ...cr.video },
        vast: cr.vast ?? null,
        native: cr.native === undefined ? null : { ...cr.native },
        budget: compileBudget(cr.budget),
        impressionCost: impressionCost(cr.budget?.cpm ?? c.budget?.cpm ?? cr.bid ?? c.bid ?? 0),
      }));
      const budget = compileBudget(c.budget);
      campaigns.push({
        index: ci,
        id: c.id,
        brand: c.brand,
        brandIndex: bi,
        segments: Int32Array.from(segs),
        stageMask: this.stageMaskOf(c.stages),
        priority: c.priority ?? 0,
        weight: c.weight ?? 1,
        flightStart: parseFlight(c.flight?.start, flightTz, 'start', Number.NEGATIVE_INFINITY),
        flightEnd: parseFlight(c.flight?.end, flightTz, 'end', Number.POSITIVE_INFINITY),
        caps,
        keepImpressions: caps.reduce((m, cap) => Math.max(m, cap.max), 0),
        longestCapMs: caps.reduce((m, cap) => Math.max(m, cap.windowMs), 0),
        channelMask: campaignChannels,
        timezone,
        quietStart: quiet?.start ?? 0,
        quietEnd: quiet?.end ?? 0,
        hasQuietHours: quiet !== null,
        holdout: c.holdout ?? 0,
        attributionMs: parseDuration(c.attributionWindow ?? '7d') ?? DEFAULT_ATTRIBUTION_MS,
        hash: hashString(c.id),
        creatives,
        adomain: (c.adomain ?? []).map((d) => d.toLowerCase()),
        cat: (c.cat ?? []).slice(),
        deals: new Set(c.deals ?? []),
        budget,
        budgeted: budget !== null || creatives.some((cr) => cr.budget !== null),
        impressionCost:
          c.budget?.cpm !== undefined || c.bid !== undefined
            ? impressionCost(c.budget?.cpm ?? c.bid ?? 0)
            : creatives.reduce((m, cr) => Math.max(m, cr.impressionCost), 0),
        currency: campaignCurrency,
      });
      yield;
    }
    out.campaigns = campaigns;
    out.campaignIndex = new Map(campaigns.map((c) => [c.id, c.index]));
    out.brands = brands;
    const bySegmentArrays: Int32Array[] = [];
    for (let i = 0; i < bySegment.length; i++) {
      bySegmentArrays.push(Int32Array.from(bySegment[i]!));
      if ((i & STEP_MASK) === STEP_MASK) yield;
    }
    out.campaignsBySegment = bySegmentArrays;
    out.everyoneCampaigns = Int32Array.from(everyone);
    const listed = (s: number) => bySegment[s]!.length > 0;
    const campaignPostings: Int32Array[] = [];
    for (let k = 0; k < postings.length; k++) {
      campaignPostings.push(postings[k]!.filter(listed));
      if ((k & STEP_MASK) === STEP_MASK) yield;
    }
    out.campaignPostings = campaignPostings;
    out.campaignUnguarded = this.unguarded.filter(listed);

    out.evaluator = new Evaluator(this);
  }

  /** Position of `stage` on the ladder, or -1. */
  stagePosition(stage: unknown): number {
    return typeof stage === 'string' ? (this.stageIndex.get(stage) ?? -1) : -1;
  }

  /**
   * The time zone a brand's days are counted in (funnel moves): that of its first campaign in
   * rule order (`timing.timezone`), else UTC.
   */
  brandTimezone(brand: string): string {
    for (const c of this.campaigns) if (c.brand === brand) return c.timezone;
    return 'UTC';
  }

  /** Whether the rule set names `brand`: in a campaign, a stage condition or a stage move. */
  knowsBrand(brand: string): boolean {
    if (this.knownBrands === null) {
      const known = new Set([...this.brands, ...this.stageBrands]);
      for (const m of this.source.stageMoves ?? []) for (const b of m.brands ?? []) known.add(b);
      this.knownBrands = known;
    }
    return this.knownBrands.has(brand);
  }

  /** The person's stage name for a brand (the default stage when none is recorded). */
  stageOf(profile: Profile, brand: string): string {
    const stages = profile.stages as Record<string, unknown> | undefined;
    const s = stages === undefined || stages === null ? undefined : stages[brand];
    return typeof s === 'string' ? s : this.defaultStageOf(brand);
  }

  /** The stage of a person with none recorded for `brand`. */
  defaultStageOf(brand: string): string {
    return this.brandDefaultStage.size === 0
      ? this.defaultStage
      : (this.brandDefaultStage.get(brand) ?? this.defaultStage);
  }

  /** Bit of a stage in stage masks: its ladder position, or the last bit off the ladder. */
  stageBit(stage: string): number {
    const p = this.stageIndex.get(stage);
    return 1 << (p === undefined ? this.funnel.length : p);
  }

  /**
   * Ids of the segments the person matches, in rule-set order: `evaluator.matchSegments`, here
   * for callers that want the answer and have no use for the evaluator's scratch.
   */
  matchSegments(profile: Profile, contextTags?: readonly string[]): string[] {
    return this.evaluator.matchSegments(profile, contextTags);
  }

  // ---- per-person look-ups (the evaluator's) ------------------------------------------------

  /**
   * The person's keys, id hash and stage positions: kept with a frozen profile, worked out
   * afresh for any other.
   */
  preparePerson(profile: Profile): PreparedPerson {
    const frozen = Object.isFrozen(profile);
    let p = frozen ? this.prepared.get(profile) : undefined;
    if (p !== undefined) return p;
    const keys: number[] = [];
    const tags = profile.tags;
    if (Array.isArray(tags)) {
      for (let i = 0; i < tags.length; i++) {
        const t: unknown = tags[i];
        if (typeof t === 'string') this.tagKeysOf(t, keys);
      }
    }
    const attrs = profile.attrs as Record<string, unknown> | undefined;
    if (attrs !== null && typeof attrs === 'object' && this.attrKeys.size > 0) {
      for (const name in attrs) {
        const k = this.attrKeys.get(name);
        if (k !== undefined && isScalar(attrs[name])) keys.push(k);
      }
    }
    const clv = profile.clv as Record<string, unknown> | undefined;
    if (clv !== null && typeof clv === 'object' && this.clvKeys.size > 0) {
      for (const brand in clv) {
        const k = this.clvKeys.get(brand);
        if (k !== undefined && typeof clv[brand] === 'number') keys.push(k);
      }
    }
    // Stage positions: the default for every stage-brand, then the person's own entries (a few),
    // rather than a keyed probe per stage-brand (dozens, mostly misses).
    this.defaultStagePos ??= Int32Array.from(this.stageBrands, (b) =>
      this.stagePosition(this.defaultStageOf(b)),
    );
    const stagePos = this.defaultStagePos.slice();
    const stages = profile.stages as Record<string, unknown> | undefined;
    if (stages !== null && typeof stages === 'object' && stagePos.length > 0) {
      for (const brand in stages) {
        const b = this.stageBrandIndex.get(brand);
        const s = b === undefined ? undefined : stages[brand];
        if (typeof s === 'string') stagePos[b!] = this.stagePosition(s);
      }
    }
    for (let b = 0; b < stagePos.length; b++) {
      const pos = stagePos[b]!;
      keys.push(this.stageKeyBase[b]! + (pos < 0 ? this.funnel.length : pos));
    }
    p = {
      keys: Int32Array.from(keys),
      hash: hashString(typeof profile.id === 'string' ? profile.id : ''),
      stagePos,
    };
    if (frozen) this.prepared.set(profile, p);
    return p;
  }

  /** Appends the keys `tag` is filed under to `out` (remembered per tag). */
  tagKeysOf(tag: string, out: number[]): void {
    let found = this.tagMemo.get(tag);
    if (found === undefined) {
      found = this.lookUpTag(tag);
      // Vocabularies are bounded, but not by us: start over rather than grow without end.
      if (this.tagMemo.size >= TAG_MEMO_MAX) this.tagMemo.clear();
      this.tagMemo.set(tag, found);
    }
    for (let i = 0; i < found.length; i++) out.push(found[i]!);
  }

  /** The keys a tag is filed under: itself, and each prefix the rule set names. */
  private lookUpTag(tag: string): readonly number[] {
    let out: number[] | null = null;
    const k = this.tagKeys.get(tag);
    if (k !== undefined) out = [k];
    const lens = this.prefixLengths;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i]!;
      if (tag.length < len) continue;
      const pk = this.prefixKeys.get(tag.length === len ? tag : tag.slice(0, len));
      if (pk !== undefined) (out ??= []).push(pk);
    }
    return out ?? NO_KEYS;
  }

  // ---- private: compilation -----------------------------------------------------------------

  private newKey(map: Map<string, number>, name: string): number {
    let k = map.get(name);
    if (k === undefined) {
      k = this.keyCount++;
      map.set(name, k);
    }
    return k;
  }

  private tagKey(tag: string): { kind: KeyKind; key: number } {
    if (tag.endsWith('*')) {
      const prefix = tag.slice(0, -1);
      const key = this.newKey(this.prefixKeys, prefix);
      if (!this.prefixLengths.includes(prefix.length)) {
        this.prefixLengths.push(prefix.length);
        this.prefixLengths.sort((a, b) => b - a);
      }
      return { kind: KeyKind.Prefix, key };
    }
    return { kind: KeyKind.Tag, key: this.newKey(this.tagKeys, tag) };
  }

  private collectStageBrands(c: Condition): void {
    const o = c as Record<string, unknown>;
    if (typeof o.stage === 'string' && !this.stageBrandIndex.has(o.stage)) {
      this.stageBrandIndex.set(o.stage, this.stageBrands.length);
      this.stageBrands.push(o.stage);
    }
    if (Array.isArray(o.all)) for (const x of o.all) this.collectStageBrands(x as Condition);
    if (Array.isArray(o.any)) for (const x of o.any) this.collectStageBrands(x as Condition);
    if (o.not !== undefined && o.not !== null) this.collectStageBrands(o.not as Condition);
  }

  private stageMaskOf(stages: readonly string[] | undefined): number {
    if (stages === undefined) return (1 << (this.funnel.length + 1)) - 1;
    let m = 0;
    for (const s of stages) {
      const p = this.stageIndex.get(s);
      if (p !== undefined) m |= 1 << p;
    }
    return m;
  }

  private compileCondition(c: Condition): Predicate {
    const o = c as Record<string, unknown>;
    const parts: Predicate[] = [];
    if (typeof o.tag === 'string') {
      const { key } = this.tagKey(o.tag);
      parts.push((s) => s.keyStamp[key] === s.epoch);
    } else if (typeof o.attr === 'string') {
      parts.push(...compileComparisons(o, attrReader(o.attr)));
      this.newKey(this.attrKeys, o.attr);
    } else if (typeof o.clv === 'string') {
      parts.push(...compileComparisons(o, clvReader(o.clv)));
      this.newKey(this.clvKeys, o.clv);
    } else if (typeof o.stage === 'string') {
      const b = this.stageBrandIndex.get(o.stage)!;
      parts.push(...this.compileStage(o, b));
    } else if (typeof o.segment === 'string') {
      const target = this.segmentIndex.get(o.segment);
      if (target === undefined) parts.push(() => false);
      else parts.push((s) => evalSegment(s, target));
    }
    if (Array.isArray(o.all)) {
      const kids = (o.all as Condition[]).map((x) => this.compileCondition(x));
      parts.push(...kids); // AND-ed with the rest below
    }
    if (Array.isArray(o.any)) {
      const kids = (o.any as Condition[]).map((x) => this.compileCondition(x));
      parts.push(anyOf(kids));
    }
    if (o.not !== undefined && o.not !== null && typeof o.not === 'object') {
      const inner = this.compileCondition(o.not as Condition);
      parts.push((s) => !inner(s));
    }
    return allOf(parts);
  }

  private compileStage(o: Record<string, unknown>, brand: number): Predicate[] {
    // Evaluate the condition once per possible position (-1 = off the ladder) into a bitmask.
    const n = this.funnel.length;
    const pos = (v: unknown) => (typeof v === 'string' ? (this.stageIndex.get(v) ?? -2) : -2);
    let mask = 0;
    for (let p = -1; p < n; p++) {
      if (stageSatisfies(o, p, pos)) mask |= 1 << (p + 1);
    }
    return [(s) => (mask & (1 << (s.stagePos[brand]! + 1))) !== 0];
  }

  private stageKeysFor(o: Record<string, unknown>, brand: number): number[] {
    const n = this.funnel.length;
    const pos = (v: unknown) => (typeof v === 'string' ? (this.stageIndex.get(v) ?? -2) : -2);
    const keys: number[] = [];
    const base = this.stageKeyBase[brand]!;
    for (let p = -1; p < n; p++) {
      if (stageSatisfies(o, p, pos)) keys.push(base + (p < 0 ? n : p));
    }
    return keys;
  }

  private guardOfSegment(i: number, memo: Map<number, Guard | null>, visiting: Set<number>): Guard | null {
    if (memo.has(i)) return memo.get(i) ?? null;
    if (visiting.has(i)) return null;
    visiting.add(i);
    const g = this.guardOf(this.source.segments[i]!.when, memo, visiting);
    visiting.delete(i);
    memo.set(i, g);
    return g;
  }

  /** A cheapest set of keys one of which every matching person holds; null when none exists. */
  private guardOf(c: Condition, memo: Map<number, Guard | null>, visiting: Set<number>): Guard | null {
    const o = c as Record<string, unknown>;
    const options: Guard[] = [];
    if (typeof o.tag === 'string') {
      const { kind, key } = this.tagKey(o.tag);
      options.push({ keys: [key], cost: kind === KeyKind.Tag ? 1 : 4 });
    } else if (typeof o.attr === 'string') {
      options.push({ keys: [this.newKey(this.attrKeys, o.attr)], cost: 50 });
    } else if (typeof o.clv === 'string') {
      options.push({ keys: [this.newKey(this.clvKeys, o.clv)], cost: 20 });
    } else if (typeof o.stage === 'string') {
      const keys = this.stageKeysFor(o, this.stageBrandIndex.get(o.stage)!);
      options.push({ keys, cost: 10 * keys.length });
    } else if (typeof o.segment === 'string') {
      const t = this.segmentIndex.get(o.segment);
      if (t === undefined) options.push({ keys: [], cost: 0 });
      else {
        const g = this.guardOfSegment(t, memo, visiting);
        if (g !== null) options.push(g);
      }
    }
    if (Array.isArray(o.all)) {
      for (const x of o.all as Condition[]) {
        const g = this.guardOf(x, memo, visiting);
        if (g !== null) options.push(g);
      }
    }
    if (Array.isArray(o.any)) {
      const kids = (o.any as Condition[]).map((x) => this.guardOf(x, memo, visiting));
      if (kids.every((g) => g !== null)) {
        const keys = new Set<number>();
        let cost = 0;
        for (const g of kids as Guard[]) {
          for (const k of g.keys) keys.add(k);
          cost += g.cost;
        }
        options.push({ keys: [...keys], cost });
      }
    }
    // `not` guards nothing. The parts of one object are AND-ed: any one part's guard will do.
    let best: Guard | null = null;
    for (const g of options) if (best === null || g.cost < best.cost) best = g;
    return best;
  }
}

function allOf(parts: Predicate[]): Predicate {
  switch (parts.length) {
    case 0:
      return () => true;
    case 1:
      return parts[0]!;
    case 2: {
      const a = parts[0]!;
      const b = parts[1]!;
      return (s) => a(s) && b(s);
    }
    case 3: {
      const a = parts[0]!;
      const b = parts[1]!;
      const c = parts[2]!;
      return (s) => a(s) && b(s) && c(s);
    }
    default:
      return (s) => {
        for (let i = 0; i < parts.length; i++) if (!parts[i]!(s)) return false;
        return true;
      };
  }
}

function anyOf(parts: Predicate[]): Predicate {
  switch (parts.length) {
    case 0:
      return () => false;
    case 1:
      return parts[0]!;
    case 2: {
      const a = parts[0]!;
      const b = parts[1]!;
      return (s) => a(s) || b(s);
    }
    default:
      return (s) => {
        for (let i = 0; i < parts.length; i++) if (parts[i]!(s)) return true;
        return false;
      };
  }
}

type Reader = (s: EvalState) => unknown;

function attrReader(name: string): Reader {
  return (s) => s.attrs[name];
}
/** A CLV that is not a number counts as missing. */
function clvReader(brand: string): Reader {
  return (s) => {
    const v = s.clv[brand];
    return typeof v === 'number' ? v : undefined;
  };
}

function isScalar(v: unknown): v is Scalar {
  const t = typeof v;
  return t === 'number' || t === 'string' || t === 'boolean';
}

/** Comparison operators of an attr or clv leaf, each a predicate (all must hold). */
function compileComparisons(o: Record<string, unknown>, read: Reader): Predicate[] {
  const out: Predicate[] = [];
  if ('eq' in o) {
    const x = o.eq;
    out.push((s) => {
      const v = read(s);
      return isScalar(v) && v === x;
    });
  }
  if ('ne' in o) {
    const x = o.ne;
    out.push((s) => {
      const v = read(s);
      return isScalar(v) && v !== x;
    });
  }
  const num = (key: string, cmp: (v: number, x: number) => boolean) => {
    if (!(key in o)) return;
    const x = o[key];
    if (typeof x !== 'number') {
      out.push(() => false);
      return;
    }
    out.push((s) => {
      const v = read(s);
      return typeof v === 'number' && cmp(v, x);
    });
  };
  num('gt', (v, x) => v > x);
  num('gte', (v, x) => v >= x);
  num('lt', (v, x) => v < x);
  num('lte', (v, x) => v <= x);
  if ('between' in o) {
    const b = o.between;
    const lo = Array.isArray(b) ? b[0] : undefined;
    const hi = Array.isArray(b) ? b[1] : undefined;
    if (typeof lo !== 'number' || typeof hi !== 'number') out.push(() => false);
    else
      out.push((s) => {
        const v = read(s);
        return typeof v === 'number' && v >= lo && v <= hi;
      });
  }
  if ('in' in o) {
    const list = Array.isArray(o.in) ? (o.in as unknown[]) : [];
    if (list.length <= 8) {
      out.push((s) => {
        const v = read(s);
        if (!isScalar(v)) return false;
        for (let i = 0; i < list.length; i++) if (list[i] === v) return true;
        return false;
      });
    } else {
      const set = new Set(list);
      out.push((s) => {
        const v = read(s);
        return isScalar(v) && set.has(v);
      });
    }
  }
  return out;
}

/**
 * Whether a stage leaf holds for a person at ladder position `p` (-1: a stage not on the
 * ladder). `pos` maps a stage name in the rule to its position (-2 when unknown).
 */
function stageSatisfies(o: Record<string, unknown>, p: number, pos: (v: unknown) => number): boolean {
  if ('eq' in o && !(p >= 0 && pos(o.eq) === p)) return false;
  if ('ne' in o && p >= 0 && pos(o.ne) === p) return false;
  const ord = p >= 0;
  if ('gt' in o && !(ord && p > pos(o.gt) && pos(o.gt) >= 0)) return false;
  if ('gte' in o && !(ord && p >= pos(o.gte) && pos(o.gte) >= 0)) return false;
  if ('lt' in o && !(ord && p < pos(o.lt) && pos(o.lt) >= 0)) return false;
  if ('lte' in o && !(ord && p <= pos(o.lte) && pos(o.lte) >= 0)) return false;
  if ('between' in o) {
    const b = Array.isArray(o.between) ? o.between : [];
    const lo = pos(b[0]);
    const hi = pos(b[1]);
    if (!(ord && lo >= 0 && hi >= 0 && p >= lo && p <= hi)) return false;
  }
  if ('in' in o) {
    const list = Array.isArray(o.in) ? o.in : [];
    if (!(p >= 0 && list.some((x) => pos(x) === p))) return false;
  }
  return true;
}

function parseFlight(v: unknown, tz: string, edge: 'start' | 'end', fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (v instanceof Date) return v.getTime();
  if (typeof v !== 'string') return fallback;
  return parseFlightBound(v, tz, edge) ?? fallback;
}

function resolveScoring(s: Scoring | undefined): ResolvedScoring {
  return {
    clv: s?.clv ?? 1,
    clvScale: s?.clvScale ?? 1000,
    sellingPoints: s?.sellingPoints ?? 1,
    affinity: s?.affinity ?? 1,
  };
}

export function compileRuleSet(ruleSet: RuleSet): CompiledRuleSet {
  return new CompiledRuleSet(ruleSet);
}

/**
 * Compiles `ruleSet` in slices of about `sliceMs` of work, letting the event loop run between
 * them, so that a thread that decides keeps deciding while a long rule set is compiled for it
 * (a 100,000-segment set is over a second of work). Resolves with the compiled set.
 */
export async function compileRuleSetInSlices(ruleSet: RuleSet, sliceMs = 5): Promise<CompiledRuleSet> {
  const compiled = new CompiledRuleSet(ruleSet, 'stepwise');
  const steps = compiled.buildSteps();
  let until = performance.now() + sliceMs;
  while (!steps.next().done) {
    if (performance.now() < until) continue;
    await new Promise<void>((resolve) => setImmediate(resolve));
    until = performance.now() + sliceMs;
  }
  return compiled;
}

export type { Channel };
