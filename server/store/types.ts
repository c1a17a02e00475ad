import type { Channel, FrequencyCounters, Profile, Scalar } from '../../rules/types.js';

/** Aliases to link to one person: `[pid, {kind: value}]`. */
export type AliasLink = readonly [pid: string, aliases: Readonly<Record<string, string>>];

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
 * Keys of one person share a hash tag (Redis; the embedded store keeps the same in maps):
 *   p:{pid}   the person: funnel stages first (brand -> stage, which events move atomically),
 *             then the profile; every string an id into the string dictionary
 *             (person-format.ts, format 2)
 *   fc:{pid}  frequency counters: a hash, campaign id -> packed impression times
 *   ax:{pid}  the set of alias keys that point at the person (so forgetting is complete)
 *   a:{kind:value}  alias -> pid
 * and beside them (EventStore): fn:{brand} stage counts, fm:{brand}:<day> moves of a day,
 * ev:<eventId> event ids seen, and the string dictionary, dict (string -> id) and dict:r
 * (id -> string; dictionary.ts). A person moved by an event before any profile was written reads
 * as a profile with no tags.
 */
export interface ProfileStore {
  readonly kind: 'redis' | 'embedded';
  /** Profile and counters of one person in one round trip. */
  loadPerson(pid: string): Promise<PersonRecord>;
  /** The person id an alias (`idfa`, `cookie`, `phone`, `member`, ...) points at, or null. */
  resolveAlias(kind: string, value: string): Promise<string | null>;
  /**
   * The person an alias points at, with their record, in one round trip where the store can (a
   * single Redis); absent where it cannot, and then callers resolve, then load.
   */
  loadPersonByAlias?(kind: string, value: string): Promise<FoundByAlias>;
  getProfile(pid: string): Promise<Profile | null>;
  putProfile(profile: Profile): Promise<void>;
  /** Many profiles at once, pipelined; resolves when all are written. */
  putProfiles(profiles: readonly Profile[]): Promise<void>;
  /** Point aliases at a person (an alias moved from another person is unlinked there). */
  linkAliases(pid: string, aliases: Readonly<Record<string, string>>): Promise<void>;
  /** linkAliases for many people at once, pipelined (bulk imports). */
  linkManyAliases(links: readonly AliasLink[]): Promise<void>;
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

/**
 * A partial change to one profile, applied atomically (PATCH /v1/profiles/{id}). In maps, a
 * null value removes the entry. Tags are added after removals.
 */
export interface ProfilePatch {
  addTags?: string[];
  removeTags?: string[];
  /** Funnel stage per brand. */
  stages?: Record<string, string | null>;
  clv?: Record<string, number | null>;
  attrs?: Record<string, Scalar | null>;
  channels?: Partial<Record<Channel, number | null>>;
  /** Replaces the active hours; null clears them. */
  activeHours?: number[] | null;
  timezone?: string | null;
}

/**
 * One event to apply: idempotent by person and `eventId` (an event id seen for the person within
 * the store's dedupe window is not applied again; forgetting the person forgets their events
 * too). Each event is applied atomically: all of its effects or none.
 */
export interface EventWrite {
  eventId: string;
  pid: string;
  /** When it happened, epoch ms. */
  at: number;
  /** An impression counts against the campaign's frequency caps (see recordImpression). */
  impression?: { campaign: string; keep: number; ttlMs: number };
  /**
   * A stage move for a brand. `next` maps the person's current stage to the stage the event
   * moves them to; a current stage not listed does not move, except that `*` stands for any
   * stage not named (off the ladder). A person with no stage recorded is at `defaultStage`.
   */
  stage?: {
    brand: string;
    defaultStage: string;
    next: Readonly<Record<string, string>>;
    /** The day a move counts on (`YYYY-MM-DD`, the brand's time zone); default the UTC day of `at`. */
    day?: string;
  };
  /** Delivery counts the event adds (an impression, click, conversion or purchase of a campaign, spend). */
  delivery?: readonly DeliveryAdd[];
  /**
   * A conversion or a purchase: counted for the arm of every campaign the person was exposed to
   * within that campaign's attribution window, once per person and campaign.
   */
  outcome?: LiftOutcome;
}

// ---- measurement ------------------------------------------------------------------------------

/** What a delivery row counts; `spend:<currency>` sums billed prices in millionths of the currency. */
export const DELIVERY_METRICS = [
  'decisions',
  'ghosts',
  'impressions',
  'clicks',
  'conversions',
  'purchases',
] as const;
export type DeliveryMetric = (typeof DELIVERY_METRICS)[number] | `spend:${string}`;

/** An addition to one delivery count: campaign x day (the campaign's time zone) x creative x channel. */
export interface DeliveryAdd {
  campaign: string;
  /** `YYYY-MM-DD` in the campaign's time zone. */
  day: string;
  /** '' when unknown (an event that names only the campaign). */
  creative: string;
  /** '' when unknown. */
  channel: string;
  metric: DeliveryMetric;
  n: number;
}

/** One stored delivery row. */
export interface DeliveryRow {
  day: string;
  creative: string;
  channel: string;
  /** metric -> count (absent: 0). */
  counts: Record<string, number>;
}

export type Arm = 'treatment' | 'control';
export type LiftOutcome = 'conversions' | 'purchases';

/**
 * A person exposed to a campaign: shown it (`treatment`) or held out of it when it would have
 * been shown (`control`, a ghost exposure).
 */
export interface ExposureWrite {
  pid: string;
  campaign: string;
  arm: Arm;
  at: number;
  /** The campaign's attribution window, ms. */
  windowMs: number;
}

export interface ArmCounts {
  /** People exposed, each once. */
  people: number;
  /** Exposure windows opened (a person exposed again after a window closed opens another). */
  exposures: number;
  /** People with a conversion inside an exposure window, each once. */
  conversions: number;
  /** People with a purchase inside an exposure window, each once. */
  purchases: number;
}

export type LiftCounts = Record<Arm, ArmCounts>;

/**
 * Delivery and lift counts, kept by the person store (same backend). Counts of a person's
 * exposures and outcomes are exact and cluster-safe: each is changed in the same atomic step as
 * the person's own record. Rows and counts live `retentionMs` after their last change.
 *
 * Exposures: a person's first exposure to a campaign puts them in that arm for good (a later
 * exposure in the other arm, after the hold-out share changed, is not counted) and opens an
 * attribution window of the campaign's length; an exposure after the window closed opens
 * another. A conversion or purchase inside a window counts once per person and campaign.
 */
export interface MeasureStore {
  /** Adds to delivery counts that belong to no one person (decisions filled, ghosts). */
  addDelivery(adds: readonly DeliveryAdd[]): Promise<void>;
  recordExposures(exposures: readonly ExposureWrite[]): Promise<void>;
  /** The rows of a campaign for the days `fromDay` .. `toDay` (inclusive), by day then creative and channel. */
  delivery(campaign: string, fromDay: string, toDay: string): Promise<DeliveryRow[]>;
  lift(campaign: string): Promise<LiftCounts>;
}

// ---- budgets ----------------------------------------------------------------------------------

/**
 * One budget line's report and ask, made by one thread on its lease's schedule (BudgetStore). A
 * line is a campaign's budget (`creative` '') or a creative's. Amounts are millionths of the
 * budget's unit (whole numbers); days are the campaign's (`YYYY-MM-DD` in its time zone).
 */
export interface BudgetReport {
  campaign: string;
  /** '' for the campaign's own budget. */
  creative: string;
  /** What the line counts (`impressions`, `clicks`, `spend`): a line whose unit changes starts afresh. */
  unit: string;
  /** Today in the campaign's time zone: the day the grant is counted on. */
  day: string;
  /** The lease given back: the day and time it was granted at, and what was left of it. */
  returned?: { day: string; at: number; units: number };
  /** Consumed beyond the lease (one decision can overshoot it); counted as committed now. */
  overdraft: number;
  /**
   * Units delivered (impressions, clicks, spend of the line's unit) by the day they were delivered
   * on. `previous`: the day before, for a delivery within the settle window after midnight: it
   * settles that day's commitments first (and counts there), as its decision most likely was.
   */
  delivered: ReadonlyArray<{ day: string; units: number; previous?: string }>;
  /** Decisions that used the line since the last report (a clicks budget's click rate). */
  decisions: number;
  /** Opportunities since the last report by hour of `day` (0-23): the traffic's shape. */
  opportunities: ReadonlyArray<{ hour: number; n: number }>;
  /** Units wanted for the next lease. */
  ask: number;
  /** The budget's daily and total amounts; null when it has none. */
  dailyCap: number | null;
  totalCap: number | null;
  /** Even pacing of a total budget: days left of the flight, today included; null otherwise. */
  daysLeft: number | null;
  /** Even pacing: the share of today's amount that may be used by the end of the next lease, 0-1; 1 for asap. */
  paceShare: number;
}

/** A lease granted, and the line's counts after it. */
export interface BudgetGrant {
  /** Units granted (0: none) and the time they were granted at (the store's clock). */
  units: number;
  at: number;
  /** Why nothing (or less than asked) was granted: the budget is used up, or ahead of its pace. */
  limit: 'budget' | 'pace' | null;
  day: BudgetPeriodCounts;
  total: BudgetPeriodCounts;
  /** The most today's amount may reach (the daily budget, or an even total's share of it); null: no limit. */
  dayLimit: number | null;
}

export interface BudgetPeriodCounts {
  /** Delivered, as reported. */
  spent: number;
  /** Leased within the settle window and not yet delivered (nor given back). */
  committed: number;
  /** Decisions reported. */
  decisions: number;
}

/** A line's stored counts for some days (opportunities by hour of each day) and in all. */
export interface BudgetCounts {
  days: Record<string, BudgetPeriodCounts & { opportunities: number[] }>;
  total: BudgetPeriodCounts;
}

/**
 * Budget lines shared by the fleet. A lease is committed when granted and stays committed for the
 * settle window unless given back or turned into delivered units, so what is leased plus what is
 * delivered never exceeds the budget: `spent + committed <= cap` at every grant. On Redis a
 * campaign's lines live under the campaign's hash tag (one slot, cluster-safe); one call per line.
 */
export interface BudgetStore {
  /** Applies reports and grants leases, one per report, at `now` (the caller's clock, epoch ms). */
  leaseBudgets(reports: readonly BudgetReport[], now: number, settleMs: number): Promise<BudgetGrant[]>;
  budgetCounts(
    campaign: string,
    creative: string,
    unit: string,
    days: readonly string[],
    now: number,
    settleMs: number,
  ): Promise<BudgetCounts>;
}

export interface EventResult {
  /** `duplicate`: the event id was seen before; nothing was applied this time. */
  outcome: 'applied' | 'duplicate';
  /** The stage move made, when there was one. */
  moved?: { brand: string; from: string; to: string };
}

/** People per stage of one brand, and the moves between stages per day (UTC). */
export interface FunnelCounts {
  brand: string;
  /** stage -> people recorded at it (a person with no stage recorded for the brand is not counted) */
  stages: Record<string, number>;
  /** day (`2026-11-24`) -> `from>to` -> people moved that day */
  moves: Record<string, Record<string, number>>;
}

/**
 * What events and funnels need from the store (same backend as the profiles). Stage counts of a
 * brand change whenever a stored stage changes: through events, profile writes, patches,
 * imports and deletions alike, so `funnel()` is always the sum of what is stored.
 */
export interface EventStore {
  applyEvents(events: readonly EventWrite[]): Promise<EventResult[]>;
  /** Applies a patch; the new profile, or null when there is no such person. */
  patchProfile(pid: string, patch: ProfilePatch, now: number): Promise<Profile | null>;
  /** Counts for a brand, moves for the days from `fromDay` to `toDay` inclusive (`YYYY-MM-DD`). */
  funnel(brand: string, fromDay: string, toDay: string): Promise<FunnelCounts>;
  /** The aliases linked to a person, `kind -> value`. */
  aliasesOf(pid: string): Promise<Record<string, string>>;
  /**
   * Notes `key` for `ttlMs` unless it is noted already, for every instance sharing the store: true
   * the first time (a win notice of a bid to nobody in particular, counted once fleet-wide).
   */
  noteOnce(key: string, ttlMs: number): Promise<boolean>;
}

/** One stored version of a rule set, without its source. */
export interface RuleSetMeta {
  version: number;
  checksum: string;
  format: 'yaml' | 'json';
  /** Who uploaded it (the token's name) and when, epoch ms. */
  createdBy: string;
  createdAt: number;
  bytes: number;
  /** When it was last activated and by whom; absent when never. */
  activatedAt?: number;
  activatedBy?: string;
}

/** One activation of a rule-set version, as the store's activation log keeps it. */
export interface Activation {
  version: number;
  /** Who activated it (a token's name, `startup`, `restore`) and when, epoch ms. */
  by: string;
  at: number;
  /** True when it was a roll back to the version active before. */
  rollback: boolean;
}

/** Conditions and the kind of an activation (RuleSetStore.activateRuleSet). */
export interface ActivateOptions {
  /** Only when no version is active yet (a first start). */
  ifNoneActive?: boolean;
  /** Only while this version is the active one (a roll back that must not race another change). */
  ifActive?: number;
  /** Logged as a roll back. */
  rollback?: boolean;
}

/** How many activations the store's log keeps (the oldest are dropped). */
export const ACTIVATION_LOG_LENGTH = 1000;

/** The active rule set as the store names it: its version and the checksum of its source. */
export interface ActiveVersion {
  version: number;
  checksum: string;
}

/** Whether an instance serves what the store says is active. */
export interface RuleSetHealth {
  /** True when the served rule set is the store's active one (or the store was not reached yet). */
  inStep: boolean;
  /** What the store has active, as last seen (null: none; undefined: not read yet). */
  store: ActiveVersion | null | undefined;
  /** Since when (epoch ms) the served rule set has not been the store's active one. */
  outOfStepSince: number | null;
}

/** Rule sets, versioned: a counter, each version's meta and source, and the active version. */
export interface RuleSetStore {
  /** Stores a new version (validated by the caller); resolves with its number (1, 2, …). */
  addRuleSet(
    source: string,
    meta: Omit<RuleSetMeta, 'version' | 'activatedAt' | 'activatedBy'>,
  ): Promise<number>;
  /** Every version, newest first. */
  listRuleSets(): Promise<RuleSetMeta[]>;
  getRuleSet(version: number): Promise<{ meta: RuleSetMeta; source: string } | null>;
  /** The active version and its checksum, or null when none is active. */
  activeRuleSet(): Promise<ActiveVersion | null>;
  /**
   * Makes a stored version active and logs the activation; false when there is no such version, or
   * a condition of `opts` does not hold. Announces it on the bus.
   */
  activateRuleSet(version: number, by: string, at: number, opts?: ActivateOptions): Promise<boolean>;
  /** The activation log, newest first, at most `limit` (default and cap ACTIVATION_LOG_LENGTH). */
  activations(limit?: number): Promise<Activation[]>;
  /**
   * A named document of the fleet's configuration beside its rule sets (the currency rates), as
   * stored: text the caller checked; null when none was stored.
   */
  getDocument(name: string): Promise<string | null>;
  /** Stores (replaces) a named document. Instances read it again on their own schedule. */
  putDocument(name: string, text: string): Promise<void>;
}

/** What instances sharing a store tell each other. */
export type BusMessage =
  | { type: 'ruleset'; version: number; checksum?: string }
  | { type: 'person'; pid: string }
  | { type: 'people'; pids: string[] }
  | { type: 'alias'; kind: string; value: string }
  /** Aliases as the stores name them, `kind:value`. */
  | { type: 'aliases'; members: string[] };

/** Fleet-wide announcements (Redis pub/sub; in process for the embedded store). */
export interface Bus {
  publish(message: BusMessage): Promise<void>;
  /** Calls `handler` for every message, from this instance too; resolves once listening. */
  subscribe(handler: (message: BusMessage) => void): Promise<() => void>;
  close(): Promise<void>;
}

/** People drawn at random from a store (audience sizes, what-if). */
export interface PeopleSample {
  /** Distinct people drawn, with their records, and how many of the draws fell on each. */
  people: Array<{ pid: string; record: PersonRecord; draws: number }>;
  /**
   * What the draws were made from: every key of the store (Redis: keys drawn at random with
   * replacement; a draw that is not a person is a draw all the same), or every person (exact).
   * A share of the draws times `population` estimates a number of people.
   */
  population: number;
  /** What `population` counts. */
  populationOf: 'people' | 'keys';
  drawn: number;
  /** Every stored person was read: counts are exact. */
  exact: boolean;
  /** Whether it stopped at the deadline before drawing `n` people. */
  partial: boolean;
  /** Commands sent to the store, for the report. */
  reads: number;
}

export interface SampleStore {
  /**
   * About `n` distinct stored people drawn uniformly at random, every one when the store holds
   * few; stops drawing at `deadline` (performance.now() time).
   */
  samplePeople(n: number, deadline: number): Promise<PeopleSample>;
}

/** A profile store that also takes events, patches and answers funnels (both backends are one). */
export type PersonStore = ProfileStore & EventStore & MeasureStore & SampleStore & BudgetStore;

/** What loadPersonByAlias finds: both null when the alias names nobody. */
export interface FoundByAlias {
  pid: string | null;
  record: PersonRecord | null;
}

/**
 * Synchronous cache look-ups, when the store has a cache in front of it (CachedStore). A hit
 * counts as a use: it renews the entry's recency (lru-cache's `get`, not its `peek`), so people
 * decided often stay cached.
 */
export interface CacheLookups {
  /** A cached person, or undefined when not cached. */
  cachedPerson(pid: string): PersonRecord | undefined;
  /** A cached alias: the pid, null for a cached miss, undefined when not cached. */
  cachedAlias(kind: string, value: string): string | null | undefined;
}
