/**
 * The rule-set language: what campaign managers write (after parsing and validation),
 * what a person looks like to the evaluator, and what a decision is.
 *
 * Semantics worth knowing (documented in docs/rules.md too):
 * - A condition object may hold several keys; a leaf (`tag`, `attr`, `clv`, `stage`, `segment`)
 *   holds exactly one leaf key plus its operators, and every operator given must hold (AND).
 *   Combinators (`all`, `any`, `not`) may sit side by side in one object and are AND-ed.
 *   `all: []` is true, `any: []` is false.
 * - Comparisons on a missing attribute or CLV are false, including `ne` (fail closed).
 *   Ordered comparisons (`gt gte lt lte between`) need numbers on both sides; a string
 *   attribute compared with a number is false. `between: [lo, hi]` is inclusive.
 * - `stage` compares the person's stage for a brand along the funnel ladder: `eq ne in` by name,
 *   `gt gte lt lte between` by position. A person with no stage for a brand is at `defaultStage`
 *   (the first stage of the ladder unless the rule set says otherwise).
 * - `{tag: "circle:*"}` matches any tag starting with `circle:`; only a trailing `*` is special.
 */

/**
 * Keys refused in every document we take (rule sets, profiles, requests): they would reach an
 * object's prototype when copied into one.
 */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export const CHANNELS = ['display', 'video', 'native', 'app_push', 'sms', 'email'] as const;
export type Channel = (typeof CHANNELS)[number];
/** Shown at once, in the placement that asked. */
export const REALTIME_CHANNELS: readonly Channel[] = ['display', 'video', 'native'];
/** Sent to the person: timed to their active hours, never in quiet hours. */
export const PUSH_CHANNELS: readonly Channel[] = ['app_push', 'sms', 'email'];

export const MESSAGE_TYPES = ['brand', 'selling-point', 'promotion', 'loyalty'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export const EVENT_TYPES = ['impression', 'click', 'conversion', 'purchase'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type Scalar = string | number | boolean;

export interface CompareOps<T> {
  eq?: T;
  ne?: T;
  gt?: T;
  gte?: T;
  lt?: T;
  lte?: T;
  in?: T[];
  between?: [T, T];
}

export interface TagCondition {
  /** An exact tag, or a prefix ending in `*` (`circle:*`). */
  tag: string;
}
export interface AttrCondition extends CompareOps<Scalar> {
  attr: string;
}
export interface ClvCondition extends CompareOps<number> {
  /** The brand whose CLV is compared. */
  clv: string;
}
export interface StageCondition extends CompareOps<string> {
  /** The brand whose funnel stage is compared. */
  stage: string;
}
export interface SegmentRefCondition {
  /** The id of another segment, which must match too. */
  segment: string;
}
export interface Combinators {
  all?: Condition[];
  any?: Condition[];
  not?: Condition;
}

export type Condition =
  | TagCondition
  | AttrCondition
  | ClvCondition
  | StageCondition
  | SegmentRefCondition
  | Combinators;

export interface Segment {
  id: string;
  description?: string;
  when: Condition;
}

export interface Flight {
  /** ISO 8601 date-time; without an offset it is read in `timezone` (else the campaign's). */
  start?: string;
  end?: string;
  timezone?: string;
}

export interface FrequencyCap {
  /** At most this many impressions of the campaign per person (across all their devices)... */
  max: number;
  /**
   * ...in any rolling window this long: `30m`, `12h`, `1d`, `7d`; or per calendar `day` or `week`
   * (Monday to Sunday) in `zone`.
   */
  per: string;
  /** For a calendar `per`: the campaign's time zone (default) or the person's (`timezone` of the profile, else the campaign's). */
  zone?: 'campaign' | 'person';
}

export interface Timing {
  /** IANA time zone of the campaign (quiet hours, flights without offsets). Default UTC. */
  timezone?: string;
  /** `HH:MM-HH:MM` in the campaign's time zone; may cross midnight (`22:00-08:00`). */
  quietHours?: string;
}

export interface Creative {
  id: string;
  message: MessageType;
  /** Selling-point labels this creative illustrates. */
  sellingPoints?: string[];
  /** Stages this creative is meant for; absent means every stage the campaign serves. */
  stages?: string[];
  /** Channels this creative can run on; absent means the campaign's channels. */
  channels?: Channel[];
  /** Formats (`banner-300x250`); absent means any format. */
  formats?: string[];
  /** Rotation weight among equally good creatives. Default 1. */
  weight?: number;
  /** OpenRTB: this creative's CPM bid, overriding the campaign's. */
  bid?: number;
  /** OpenRTB: the currency of `bid` (ISO 4217, `USD`); default the campaign's. */
  currency?: string;
  /** OpenRTB: the ad markup sent in a bid (`adm`); default a small HTML snippet naming the creative. */
  adm?: string;
  /** OpenRTB: IAB creative attributes of this creative (`attr`, 1 to 17), matched against `battr`. */
  attr?: number[];
  /** OpenRTB: the video file of a video creative; a bid carries it in VAST 3.0 (or `vast`). */
  video?: CreativeVideo;
  /** OpenRTB: the creative's own VAST document, sent as `adm` instead of the one built from `video`. */
  vast?: string;
  /** OpenRTB: the assets of a native creative, answered to a native request's assets (Native 1.2). */
  native?: CreativeNative;
  /** This creative's own budget, beside the campaign's (both must have room). */
  budget?: Budget;
}

export interface CreativeVideo {
  url: string;
  /** The media file's type, `video/mp4`. */
  mime: string;
  /** Seconds. */
  duration: number;
  width?: number;
  height?: number;
}

export interface NativeImage {
  url: string;
  w: number;
  h: number;
}

export interface CreativeNative {
  title: string;
  /** Where a click goes. */
  clickUrl: string;
  body?: string;
  /** The advertiser's name as shown (`sponsored by`). */
  sponsored?: string;
  /** Call to action, `Shop now`. */
  cta?: string;
  image?: NativeImage;
  icon?: NativeImage;
}

export interface Campaign {
  id: string;
  brand: string;
  description?: string;
  /** The person must be in any of these segments; absent means every person. */
  segments?: string[];
  /** The person's stage for `brand` must be one of these; absent means any stage. */
  stages?: string[];
  /** Higher wins before any score is looked at. Default 0. */
  priority?: number;
  /** Multiplies the score. Default 1. */
  weight?: number;
  flight?: Flight;
  frequencyCap?: FrequencyCap[];
  /** The channels it may run on; absent means every channel. */
  channels?: Channel[];
  timing?: Timing;
  /** Share of the campaign's audience kept as a control group, 0 to 0.5. Default 0. */
  holdout?: number;
  /**
   * How long after an exposure (shown, or held out when it would have been shown) the person's
   * conversions and purchases count for the campaign's lift: `1h` to `90d`. Default `7d`.
   */
  attributionWindow?: string;
  /** OpenRTB: the CPM bid of the campaign's creatives; without one (here or on a creative), no bid. */
  bid?: number;
  /** OpenRTB: the currency of `bid` (ISO 4217). Default `USD`. */
  currency?: string;
  /** OpenRTB: the advertiser's domains (`adomain`), matched against `badv`. */
  adomain?: string[];
  /** OpenRTB: IAB content categories of the campaign (`IAB2-1`), matched against `bcat`. */
  cat?: string[];
  /** OpenRTB: private-marketplace deal ids the campaign buys; a private auction takes only these. */
  deals?: string[];
  /** At most this much delivered per day and in all, paced through the day; absent: no limit. */
  budget?: Budget;
  creatives: Creative[];
}

/** What a budget counts. */
export const BUDGET_UNITS = ['impressions', 'clicks', 'spend'] as const;
export type BudgetUnit = (typeof BUDGET_UNITS)[number];

/**
 * A campaign's (or a creative's) budget: a daily and/or a total amount of its unit. Days are the
 * campaign's (its time zone); `spend` is in the campaign's currency.
 */
export interface Budget {
  /** At most this much a day. */
  daily?: number;
  /** At most this much over the whole flight. */
  total?: number;
  /** Default `impressions`. */
  unit?: BudgetUnit;
  /**
   * `even` (default): spread across the day following the traffic's shape over the day (and a
   * total budget across the flight's days); `asap`: as fast as the traffic allows.
   */
  pacing?: 'asap' | 'even';
  /**
   * For `unit: spend`: what an impression decided by /v1/decide costs, per thousand (a CPM in the
   * campaign's currency); default the creative's or the campaign's `bid`.
   */
  cpm?: number;
}

export interface StageMove {
  /** The event that moves the person. */
  on: EventType;
  /** Only people at these stages move; absent means anyone (never backwards unless listed). */
  from?: string[];
  to: string;
  /** Only for these brands; absent means every brand. */
  brands?: string[];
}

export interface Scoring {
  /** Weight of the CLV term (clv / (clv + clvScale)). Default 1. */
  clv?: number;
  /** CLV at which the CLV term reaches one half. Default 1000. */
  clvScale?: number;
  /** Weight of the selling-point match term. Default 1. */
  sellingPoints?: number;
  /** Weight of the channel-affinity term. Default 1. */
  affinity?: number;
}

export interface RuleSet {
  name?: string;
  description?: string;
  /** The stage ladder, first to last (`[aware, appeal, act, advocate]`). */
  funnel: string[];
  /** The stage of a person with no stage recorded for a brand. Default: the first stage. */
  defaultStage?: string;
  /** Per brand, the stage of a person with none recorded for it, instead of `defaultStage`. */
  defaultStages?: Record<string, string>;
  segments: Segment[];
  /** Per segment, the selling points its people care about, best first. */
  sellingPoints?: Record<string, string[]>;
  campaigns: Campaign[];
  stageMoves?: StageMove[];
  scoring?: Scoring;
}

/** One person as the evaluator sees them. */
export interface Profile {
  id: string;
  tags: string[];
  /** Funnel stage per brand. */
  stages?: Record<string, string>;
  /** Predicted spend per brand. */
  clv?: Record<string, number>;
  attrs?: Record<string, Scalar>;
  /** Affinity per channel, 0 to 1; a channel not listed is 0. */
  channels?: Partial<Record<Channel, number>>;
  /** Hours of the day (0-23, in `timezone`) when the person is usually active. */
  activeHours?: number[];
  /** IANA time zone of the person; default the campaign's. */
  timezone?: string;
  updatedAt?: number;
}

/** Impression times (epoch milliseconds) per campaign id, for one person across devices. */
export type FrequencyCounters = Readonly<Record<string, readonly number[]>>;

export interface Placement {
  id: string;
  /** Channels this placement can deliver; absent means every channel. */
  channels?: Channel[];
  /** Formats this placement takes; absent means any. */
  formats?: string[];
}

export interface DecisionRequest {
  placements: Placement[];
  /** Tags true for this request only (`scene:commute`). */
  contextTags?: string[];
  explain?: boolean;
  /**
   * False for a request about nobody in particular (decided on context alone): a hold-out needs a
   * person who stays in it, so none is drawn. Default true.
   */
  holdouts?: boolean;
}

/**
 * Always `treatment`: a person in a campaign's hold-out is given the next best campaign instead
 * (the held-out one is a Ghost), so every filled decision is shown.
 */
export type Variant = 'treatment';

export interface FilledDecision {
  placement: string;
  campaign: string;
  creative: string;
  brand: string;
  segment: string;
  stage: string;
  sellingPoints: string[];
  message: MessageType;
  channel: Channel;
  /** ISO 8601, UTC. */
  sendAt: string;
  variant: Variant;
}
export interface EmptyDecision {
  placement: string;
  campaign: null;
}
export type PlacementDecision = FilledDecision | EmptyDecision;

export const DROP_REASONS = [
  'no_segment',
  'stage',
  'flight',
  'frequency_cap',
  'channel',
  'format',
  'holdout',
  'outranked',
  'floor',
  'currency',
  'blocked',
  'deal',
  'budget',
  'pace',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface CampaignExplanation {
  campaign: string;
  /**
   * `chosen`: the campaign filled a placement. `dropped`: it did not, for `reason`; a person in
   * the campaign's hold-out is `dropped` with reason `holdout` (with the placement it would have
   * filled), and that placement went to the next best campaign.
   */
  status: 'chosen' | 'dropped';
  placement?: string;
  reason?: DropReason;
  detail?: string;
  /** For campaigns that competed: the ranking inputs and score. */
  rank?: { priority: number; score: number; clv: number; sellingPoints: number; affinity: number };
}

export interface Explanation {
  segments: string[];
  campaigns: CampaignExplanation[];
}

/**
 * A campaign that won a placement for a person in its hold-out: what it would have shown. The
 * placement went to the next best campaign; the ghost is the control group's exposure.
 */
export interface Ghost {
  placement: string;
  campaign: string;
  creative: string;
  channel: Channel;
}

export interface DecisionResult {
  decisions: PlacementDecision[];
  /** Campaigns held out of this decision (absent when none). */
  ghosts?: Ghost[];
  explain?: Explanation;
}

/** A validation problem; every problem in a rule set is reported at once. */
export interface RuleError {
  code: string;
  /** Where in the rule set: `campaigns[2].creatives[0].stages[1]`; empty for the whole set. */
  path: string;
  message: string;
  /** For syntax errors in YAML or JSON text, 1-based. */
  line?: number;
  column?: number;
}

export type Validated<T> =
  | {
      ok: true;
      value: T;
      /** What probably was not meant (rules/warnings.ts), when asked for; never a refusal. */
      warnings?: RuleError[];
    }
  | { ok: false; errors: RuleError[] };
