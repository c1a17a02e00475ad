/**
 * The decision path of the server: resolve identity, load the person (cache, then store, under a
 * deadline), evaluate the active rule set, shape the answer. Knows nothing of HTTP.
 */
import type { CompiledRuleSet } from '../../rules/compile.js';
import { decide } from '../../rules/decide.js';
import type {
  DecisionRequest,
  Explanation,
  FrequencyCounters,
  Ghost,
  PlacementDecision,
  RuleSet,
} from '../../rules/types.js';
import type { CacheLookups, PersonRecord, ProfileStore } from '../store/types.js';
import type { BudgetGate } from './budgets.js';
import { findPerson, profileToDecide } from './identity.js';
import type { DecisionRecorder } from './recorder.js';
import type { DecideInput } from './request.js';

/** The rule set that decides, with what identifies it. Replaced as a whole, never mutated. */
export interface ActiveRuleSet {
  readonly version: number;
  readonly checksum: string;
  readonly compiled: CompiledRuleSet;
  readonly activatedAt: number;
  /**
   * The rule set as written, when it was not read from the store (a file); a stored version's is
   * read from the store by whoever needs it, rather than kept on every thread.
   */
  readonly definition?: RuleSet;
}

export interface DecideOutput {
  ruleset: number;
  /** The person id decided for; null when aliases resolved to nobody. */
  user: string | null;
  decisions: PlacementDecision[];
  /** Set when the store did not answer in time and only context tags were used. */
  degraded?: true;
  explain?: Explanation;
}

export interface DecisionOutcome {
  readonly output: DecideOutput;
  /**
   * Campaigns the person is held out of, with what each would have shown (the control group's
   * exposures; not part of the answer). Absent when none.
   */
  readonly ghosts?: readonly Ghost[];
  /** Why the person's data could not be used: `timeout` or `store_error`; null when it was. */
  readonly degradedBy: 'timeout' | 'store_error' | null;
}

export interface DecisionServiceOptions {
  /** Default deadline of a decision, ms; a request may ask for less. */
  deadlineMs: number;
  /** Time reserved after the store look-up for evaluation and writing, ms. */
  reserveMs?: number;
  /** Where what decisions deliver is noted (delivery counts, exposures); none: not recorded. */
  recorder?: DecisionRecorder;
  /** Budgets and pacing of the rule set's campaigns; none: budgets are not enforced. */
  budgets?: BudgetGate;
  now?: () => number;
}

const NO_COUNTERS: FrequencyCounters = Object.freeze({});
const TIMEOUT = Symbol('timeout');
const FAILED = Symbol('failed');
type Late = typeof TIMEOUT | typeof FAILED;

export class DecisionService {
  private active: ActiveRuleSet;
  private readonly store: ProfileStore & Partial<CacheLookups>;
  private readonly deadlineMs: number;
  private readonly reserveMs: number;
  private readonly now: () => number;
  private readonly recorder: DecisionRecorder | undefined;
  private readonly budgets: BudgetGate | undefined;

  constructor(
    store: ProfileStore & Partial<CacheLookups>,
    active: ActiveRuleSet,
    opts: DecisionServiceOptions,
  ) {
    this.store = store;
    this.active = active;
    this.deadlineMs = opts.deadlineMs;
    this.reserveMs = opts.reserveMs ?? Math.min(1, opts.deadlineMs / 4);
    this.now = opts.now ?? Date.now;
    this.recorder = opts.recorder;
    this.budgets = opts.budgets;
    this.budgets?.setRuleSet(active.compiled);
  }

  get ruleSet(): ActiveRuleSet {
    return this.active;
  }

  /** Swaps the rule set atomically; decisions already started finish on the one they began with. */
  setRuleSet(next: ActiveRuleSet): void {
    this.active = next;
    this.budgets?.setRuleSet(next.compiled);
  }

  /** Synchronous when the cache has everything; otherwise a promise that settles by the deadline. */
  decide(input: DecideInput): DecisionOutcome | Promise<DecisionOutcome> {
    const rs = this.active;
    const started = this.now();
    const store = this.store;
    let pid: string | null = null;
    if (input.user.kind === 'id') {
      pid = input.user.id;
    } else if (input.user.kind === 'anonymous') {
      return this.finish(rs, input, null, null, null, started);
    } else if (store.cachedAlias !== undefined) {
      let allMissed = true;
      for (const [kind, value] of input.user.aliases) {
        const hit = store.cachedAlias(kind, value);
        if (typeof hit === 'string') {
          pid = hit;
          break;
        }
        if (hit === undefined) allMissed = false;
      }
      if (pid === null && allMissed) return this.finish(rs, input, null, null, null, started);
    }
    if (pid !== null && store.cachedPerson !== undefined) {
      const hit = store.cachedPerson(pid);
      if (hit !== undefined) return this.finish(rs, input, pid, hit, null, started);
    }
    const budget = Math.max(
      0,
      Math.min(input.deadlineMs ?? this.deadlineMs, this.deadlineMs) - this.reserveMs,
    );
    return this.slowPath(rs, input, pid, budget, started);
  }

  /**
   * The store look-up under the deadline, then the decision. Written with one promise and one
   * timer per request rather than async functions: this runs for every cache miss.
   */
  private slowPath(
    rs: ActiveRuleSet,
    input: DecideInput,
    knownPid: string | null,
    budgetMs: number,
    started: number,
  ): Promise<DecisionOutcome> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (pid: string | null, record: PersonRecord | null, late: Late | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          const degradedBy = late === null ? null : late === TIMEOUT ? 'timeout' : 'store_error';
          resolve(this.finish(rs, input, pid, record, degradedBy, started));
        } catch (err) {
          reject(err);
        }
      };
      const fallbackPid = knownPid ?? (input.user.kind === 'id' ? input.user.id : null);
      const timer = setTimeout(() => settle(fallbackPid, null, TIMEOUT), budgetMs);
      const failed = () => settle(fallbackPid, null, FAILED);
      try {
        if (knownPid !== null)
          this.store.loadPerson(knownPid).then((record) => settle(knownPid, record, null), failed);
        else findPerson(this.store, input.user).then((got) => settle(got.pid, got.record, null), failed);
      } catch {
        failed();
      }
    });
  }

  private finish(
    rs: ActiveRuleSet,
    input: DecideInput,
    pid: string | null,
    record: PersonRecord | null,
    degradedBy: 'timeout' | 'store_error' | null,
    now: number,
  ): DecisionOutcome {
    const profile = profileToDecide(input.user, pid, record);
    const request: DecisionRequest = { placements: input.placements, explain: input.explain };
    if (input.user.kind === 'anonymous') request.holdouts = false;
    if (input.contextTags !== undefined) request.contextTags = input.contextTags;
    const counters = record?.counters ?? NO_COUNTERS;
    const budgets = this.budgets?.active === true ? this.budgets : undefined;
    const bidding = input.bidding === true;
    const filter = budgets === undefined ? input.filter : budgets.filter(input.filter, bidding);
    const result = decide(rs.compiled, profile, counters, request, now, filter);
    if (budgets !== undefined) consumeBudgets(budgets, rs.compiled, result.decisions, bidding);
    this.recorder?.record(
      rs.compiled,
      input.user.kind === 'anonymous' ? null : pid,
      result.decisions,
      result.ghosts,
      now,
    );
    const output: DecideOutput = { ruleset: rs.version, user: pid, decisions: result.decisions };
    if (degradedBy !== null) output.degraded = true;
    if (result.explain !== undefined) output.explain = result.explain;
    return result.ghosts === undefined
      ? { output, degradedBy }
      : { output, degradedBy, ghosts: result.ghosts };
  }
}

/** Takes what the filled placements can cost from their budget lines. */
function consumeBudgets(
  budgets: BudgetGate,
  rs: CompiledRuleSet,
  decisions: readonly PlacementDecision[],
  bidding: boolean,
): void {
  for (const d of decisions) {
    if (d.campaign === null) continue;
    const ci = rs.campaignIndex.get(d.campaign);
    const c = ci === undefined ? undefined : rs.campaigns[ci];
    if (c === undefined || !c.budgeted) continue;
    const cr = c.creatives.find((x) => x.id === d.creative);
    if (cr !== undefined) budgets.consume(c, cr, bidding);
  }
}
