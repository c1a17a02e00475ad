/**
 * Prometheus metrics of one server instance (prom-client), served at GET /metrics on the admin
 * listener. docs/operations.md lists every metric.
 *
 * One registry per instance (never prom-client's global one), so that several servers can run in
 * one process; process-wide metrics (prom-client's default ones: CPU, memory, GC, event-loop lag)
 * live in one registry per process and are appended to every instance's exposition.
 *
 * The hot path never goes through prom-client: a labelled prom-client child still hashes its label
 * values and checks them on every call (a few hundred ns). Instead, the children the decision
 * path and the Redis store use are bound once to plain accumulators (`HotCounter`,
 * `HotHistogram`): recording is an addition (a counter) or a short bucket scan (a histogram).
 * Counters are folded into their prom-client Counter when the registry is collected; the
 * accumulating histograms are metrics of their own that the registry reads like any other.
 *
 * prom-client's event-loop lag is the main thread's only; the data plane decides in worker
 * threads. So every instance (every thread) measures its own loop (`EventLoopDelay`) and reports
 * it under its own `thread` label, which keeps the threads apart when their series are merged.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  AggregatorRegistry,
  type CollectFunction,
  Counter,
  collectDefaultMetrics,
  Gauge,
  type Metric,
  Registry,
} from 'prom-client';
import type { BudgetLineReport } from './decision/budgets.js';
import type { DecisionOutcome } from './decision/service.js';
import type { ErrorCode } from './errors.js';
import {
  type BidAnswer,
  NO_BID_REASONS,
  type NoBidReason,
  type NoticeKind,
  type NoticeResult,
} from './openrtb/bidder.js';
import { PRIVACY_REASONS } from './openrtb/privacy.js';
import type { CacheStats } from './store/cached.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The metrics of the instance serving the request (set by the admin listener). */
    metrics?: Metrics;
  }
}

/** Buckets of `mindshare_decision_duration_seconds`, seconds. */
export const DECISION_BUCKETS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25,
];
/** Buckets of `mindshare_openrtb_tmax_used_ratio`: the share of a bid request's tmax used. */
export const TMAX_BUCKETS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.5];
/** Buckets of `mindshare_redis_command_duration_seconds`, seconds. */
export const REDIS_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

export const DECIDE_ROUTE = '/v1/decide';
export const BID_ROUTE = '/openrtb2/bid';
/** The route label of requests no route matched. */
export const UNMATCHED = 'unmatched';

export type DecisionLabel = 'filled' | 'no_fill' | 'degraded' | 'error';

/** How often the event-loop delay monitor samples, ms (prom-client's default metrics use the same). */
const LOOP_RESOLUTION_MS = 10;
const EVENT_LOOP_DELAY = 'mindshare_event_loop_delay_seconds';
const EVENT_LOOP_DELAY_HELP =
  'p99 of this thread’s event-loop delay since the previous scrape, by thread (main: the control plane, or everything without worker threads; worker-N: data-plane worker thread N)';

/**
 * The delay of the event loop of the thread that creates it: Node's histogram of how late a
 * 10 ms timer fires (perf_hooks.monitorEventLoopDelay measures its own thread), read and started
 * again at every scrape. The p99, not the maximum: one long garbage collection per scrape interval
 * would otherwise read as a loop that is always late; a loop that stalls often enough to delay
 * decisions moves the p99.
 */
export class EventLoopDelay {
  private readonly histogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });

  constructor() {
    this.histogram.enable();
  }

  /** p99 of the delays sampled since the previous call, seconds (0 when none was sampled). */
  takeP99(): number {
    const h = this.histogram;
    // The monitor records whole intervals between ticks: a loop that is never late reads 10 ms.
    const ms = h.count === 0 ? 0 : Math.max(0, h.percentile(99) / 1e6 - LOOP_RESOLUTION_MS);
    h.reset();
    return ms / 1000;
  }
}

/**
 * A data-plane worker that did not answer a scrape within `waitedMs`, as far as it is known: its
 * loop has been busy at least that long (a thread whose loop turns answers in microseconds).
 * Without this, a worker stuck in a long computation would simply vanish from the scrape.
 */
export function unansweredWorker(worker: number, waitedMs: number): MetricJSON[] {
  return [
    {
      name: EVENT_LOOP_DELAY,
      help: EVENT_LOOP_DELAY_HELP,
      type: 'gauge',
      aggregator: 'max',
      values: [{ value: waitedMs / 1000, labels: { thread: `worker-${worker}` } }],
    },
  ];
}

/** A counter bound to fixed label values: a number, added to its prom-client counter at collect. */
export class HotCounter {
  /** Counted since the last collect. */
  pending = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}
  inc(by = 1): void {
    this.pending += by;
  }
}

/** A histogram bound to fixed label values: bucket counts, a sum and a count. */
export class HotHistogram {
  /** Observations per bucket, not cumulative; the last one is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    this.counts[i]! += 1;
    this.sum += seconds;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/**
 * A Prometheus histogram whose children are HotHistograms. It is read by the registry like any
 * prom-client metric (`get()` answers the same shape prom-client's own histogram does).
 */
class AccumulatingHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly children = new Map<string, HotHistogram>();
  private readonly le: readonly string[];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly bounds: readonly number[],
  ) {
    this.le = [...bounds.map((b) => String(b)), '+Inf'];
  }

  /** The child of these label values (created once; keep it). */
  child(values: readonly string[]): HotHistogram {
    const key = values.join('\u0000');
    let h = this.children.get(key);
    if (h === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => {
        labels[name] = values[i] ?? '';
      });
      h = new HotHistogram(labels, this.bounds);
      this.children.set(key, h);
    }
    return h;
  }

  async get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    aggregator: 'sum';
    values: Array<{
      value: number;
      labels: Record<string, string>;
      metricName: string;
      sharedLabels: Readonly<Record<string, string>>;
    }>;
  }> {
    const values = [];
    for (const h of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.le.length; i++) {
        cumulative += h.counts[i]!;
        values.push({
          value: cumulative,
          labels: { le: this.le[i]! },
          metricName: `${this.name}_bucket`,
          sharedLabels: h.labels,
        });
      }
      values.push({ value: h.sum, labels: {}, metricName: `${this.name}_sum`, sharedLabels: h.labels });
      values.push({ value: h.count, labels: {}, metricName: `${this.name}_count`, sharedLabels: h.labels });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const h of this.children.values()) h.reset();
  }
}

/** A prom-client counter with HotCounter children folded in when it is collected. */
function hotCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
): { counter: Counter<L>; child: (labels: Record<L, string>) => HotCounter } {
  const children = new Map<string, HotCounter>();
  const counter = new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const c of children.values()) {
        if (c.pending > 0) {
          this.inc(c.labels as Record<L, string>, c.pending);
          c.pending = 0;
        }
      }
    },
  });
  const child = (labels: Record<L, string>): HotCounter => {
    const key = labelNames.map((l) => labels[l]).join('\u0000');
    let c = children.get(key);
    if (c === undefined) {
      c = new HotCounter(labels);
      children.set(key, c);
      counter.inc(labels, 0); // the series exists (at 0) before the first event
    }
    return c;
  };
  return { counter, child };
}

/** Where collect-time values come from; set once the server's parts exist. */
export interface MetricSources {
  cache?: () => CacheStats;
  ruleset?: () => {
    version: number;
    compileMs: number;
    activations: number;
    failures: number;
    /** Times this instance stored its rule set again in a store that had lost it. */
    restores: number;
    /** Whether the rule set served is the one the store says is active. */
    inStep: boolean;
  };
  /** Whether the Redis connection is ready (absent: no Redis behind this instance). */
  redisUp?: () => boolean;
  /** What the Redis store found lost (absent: no Redis behind this instance). */
  storeIntegrity?: () => {
    resets: number;
    lostValues: number;
    corruptValues: number;
    lostCountChanges: number;
    erasedStrings: number;
  };
  draining?: () => boolean;
  /** Data-plane worker threads serving now (absent: this thread serves the data plane). */
  workers?: () => number;
  /** Age of the OpenRTB currency rates, seconds; null without a table. */
  ratesAgeSeconds?: () => number | null;
  /** The active rule set's campaigns: inside their flight now, and their hold-out share. */
  campaigns?: () => ReadonlyArray<{ id: string; inFlight: boolean; holdout: number }>;
  /** Lift counts of the campaigns with a hold-out, as last read (once a minute). */
  budgets?: () => { lines: readonly BudgetLineReport[]; failedReports: number };
  lift?: () => ReadonlyArray<{
    id: string;
    counts: Record<'treatment' | 'control', { people: number; conversions: number; purchases: number }>;
  }>;
  /** What this thread's decisions delivered, as written to the store (DecisionRecorder). */
  measure?: () => {
    countsWritten: number;
    exposuresWritten: number;
    countsDropped: number;
    exposuresDropped: number;
  };
}

export interface MetricsOptions {
  /** Append prom-client's default process metrics to the exposition. Default true. */
  processMetrics?: boolean;
  /**
   * The number of the data-plane worker thread these metrics belong to (1..WORKERS): its
   * decisions are counted in `mindshare_worker_decisions_total{worker}`.
   */
  worker?: number;
}

/** One metric as `Registry.getMetricsAsJSON()` gives it, plain data (it crosses threads). */
export interface MetricJSON {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}

/** What one Redis store operation records: its latency when it succeeds, its failures. */
export interface OperationRecorder {
  observe(seconds: number): void;
  error(): void;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly processMetrics: boolean;
  private sources: MetricSources = {};
  /** The metrics of the other threads of this instance, merged into the exposition. */
  private peers: (() => Promise<MetricJSON[][]>) | null = null;

  // ---- the decision path ---------------------------------------------------------------------
  private readonly decisionFilled: HotHistogram;
  private readonly decisionNoFill: HotHistogram;
  private readonly decisionDegraded: HotHistogram;
  private readonly decisionError: HotHistogram;
  /** Bid requests on the decision histogram (route /openrtb2/bid): bid, no_bid, error (5xx). */
  private readonly bidMade: HotHistogram;
  private readonly bidNone: HotHistogram;
  private readonly bidError: HotHistogram;
  private readonly tmaxUsed: HotHistogram;
  /** Decision requests refused with a 4xx status: answered, but not timed. */
  private refusedDecisions = 0;
  private readonly degradedTimeout: HotCounter;
  private readonly degradedStore: HotCounter;
  private readonly decideOk: HotCounter;
  /**
   * Bid requests answered 200 (a bid) and 204 (no bid), counted without a look-up per request;
   * made at the first such answer (a server without the bidder shows no bid route).
   */
  private bidOk: HotCounter | null = null;
  private bidNoContent: HotCounter | null = null;
  private readonly noFill: HotCounter;
  private readonly filledBy = new Map<string, HotCounter>();
  private readonly ghostsBy = new Map<string, HotCounter>();
  private readonly requestChild: (labels: Record<'listener' | 'route' | 'status', string>) => HotCounter;
  private readonly errorChild: (labels: Record<'listener' | 'route' | 'code', string>) => HotCounter;
  private readonly placementChild: (labels: Record<'outcome' | 'campaign', string>) => HotCounter;
  private readonly ghostChild: (labels: Record<'campaign', string>) => HotCounter;
  /** Children for rarer data-plane answers, by `route status code`. */
  private readonly dataOther = new Map<string, { request: HotCounter; error: HotCounter | null }>();

  // ---- OpenRTB ---------------------------------------------------------------------------------
  private readonly bids: HotCounter;
  private readonly noBids = new Map<NoBidReason, HotCounter>();
  /** Requests decided on context alone, by privacy reason, then `bid` or `no_bid`. */
  private readonly contextOnly = new Map<string, HotCounter>();
  private readonly noticeChild: (labels: Record<'type' | 'outcome', string>) => HotCounter;
  private readonly noticeBy = new Map<string, HotCounter>();
  private readonly priceChild: (labels: Record<'type' | 'currency', string>) => HotCounter;
  private readonly priceBy = new Map<string, HotCounter>();

  // ---- Redis (registered once the instance has Redis behind it) ---------------------------------
  private redis: {
    duration: AccumulatingHistogram;
    errorChild: (labels: Record<'operation', string>) => HotCounter;
  } | null = null;

  // ---- control plane -------------------------------------------------------------------------
  private readonly events: Counter<'type' | 'outcome'>;
  private readonly imports: Counter<'result'>;

  constructor(opts: MetricsOptions = {}) {
    this.processMetrics = opts.processMetrics ?? true;
    const registry = this.registry;
    const sources = () => this.sources;

    const decisions = new AccumulatingHistogram(
      'mindshare_decision_duration_seconds',
      'Time from a decision request arriving to its answer being written, by route and outcome: /v1/decide filled (at least one placement filled), no_fill, degraded (decided without the profile), error (a 5xx error answer; 4xx answers are counted in mindshare_http_requests_total, not timed); /openrtb2/bid bid, no_bid, error',
      ['route', 'outcome'],
      DECISION_BUCKETS,
    );
    registry.registerMetric(decisions as unknown as Metric);
    this.decisionFilled = decisions.child([DECIDE_ROUTE, 'filled']);
    this.decisionNoFill = decisions.child([DECIDE_ROUTE, 'no_fill']);
    this.decisionDegraded = decisions.child([DECIDE_ROUTE, 'degraded']);
    this.decisionError = decisions.child([DECIDE_ROUTE, 'error']);
    this.bidMade = decisions.child([BID_ROUTE, 'bid']);
    this.bidNone = decisions.child([BID_ROUTE, 'no_bid']);
    this.bidError = decisions.child([BID_ROUTE, 'error']);
    const tmaxUsed = new AccumulatingHistogram(
      'mindshare_openrtb_tmax_used_ratio',
      "OpenRTB bid requests with a tmax: the time to the answer as a share of the request's tmax (above 1: answered after the exchange stopped waiting)",
      [],
      TMAX_BUCKETS,
    );
    registry.registerMetric(tmaxUsed as unknown as Metric);
    this.tmaxUsed = tmaxUsed.child([]);
    const answered = [this.decisionFilled, this.decisionNoFill, this.decisionDegraded, this.decisionError];
    if (opts.worker !== undefined) {
      const worker = String(opts.worker);
      const metrics = this;
      new Counter({
        name: 'mindshare_worker_decisions_total',
        help: 'Decision requests answered, by data-plane worker thread (1..WORKERS)',
        labelNames: ['worker'],
        registers: [registry],
        collect() {
          let n = metrics.refusedDecisions;
          for (const h of answered) n += h.count;
          this.reset();
          this.inc({ worker }, n);
        },
      });
    } else {
      new Gauge({
        name: 'mindshare_workers',
        help: 'Threads serving the data plane (WORKERS with Redis; 1 when one thread serves everything)',
        registers: [registry],
        aggregator: 'max',
        collect() {
          this.set(sources().workers?.() ?? 1);
        },
      });
    }

    const loop = new EventLoopDelay();
    const thread = opts.worker === undefined ? 'main' : `worker-${opts.worker}`;
    new Gauge({
      name: EVENT_LOOP_DELAY,
      help: EVENT_LOOP_DELAY_HELP,
      labelNames: ['thread'],
      registers: [registry],
      aggregator: 'max',
      collect() {
        this.set({ thread }, loop.takeP99());
      },
    });

    const requests = hotCounter(
      registry,
      'mindshare_http_requests_total',
      'HTTP requests answered, by listener (data, control), route pattern (unmatched: no route) and status',
      ['listener', 'route', 'status'],
    );
    this.requestChild = requests.child;
    this.decideOk = requests.child({ listener: 'data', route: DECIDE_ROUTE, status: '200' });

    const errors = hotCounter(
      registry,
      'mindshare_http_errors_total',
      'HTTP error answers, by listener, route pattern and error code (docs/errors.md)',
      ['listener', 'route', 'code'],
    );
    this.errorChild = errors.child;

    const degraded = hotCounter(
      registry,
      'mindshare_decisions_degraded_total',
      'Decisions made without the person’s data because the store was late (timeout) or failed (store_error)',
      ['reason'],
    );
    this.degradedTimeout = degraded.child({ reason: 'timeout' });
    this.degradedStore = degraded.child({ reason: 'store_error' });

    const placements = hotCounter(
      registry,
      'mindshare_placements_total',
      'Placements answered, by outcome (filled, no_fill) and campaign (empty for no fill)',
      ['outcome', 'campaign'],
    );
    this.placementChild = placements.child;
    this.ghostChild = hotCounter(
      registry,
      'mindshare_ghost_exposures_total',
      'Placements a campaign won for a person in its hold-out (the placement went to the next best campaign or none), by campaign',
      ['campaign'],
    ).child;
    this.noFill = placements.child({ outcome: 'no_fill', campaign: '' });

    const cacheStats = (read: (s: CacheStats, cache: 'people' | 'aliases') => number) =>
      function (this: Counter<'cache'> | Gauge<'cache'>) {
        const stats = sources().cache?.();
        if (stats === undefined) return;
        this.reset();
        for (const cache of ['people', 'aliases'] as const) {
          if (this instanceof Counter) this.inc({ cache }, read(stats, cache));
          else this.set({ cache }, read(stats, cache));
        }
      };
    new Counter({
      name: 'mindshare_cache_hits_total',
      help: 'Look-ups answered by the in-process cache, by cache (people, aliases)',
      labelNames: ['cache'],
      registers: [registry],
      collect: cacheStats((s, c) => s[c].hits),
    });
    new Counter({
      name: 'mindshare_cache_misses_total',
      help: 'Look-ups the in-process cache could not answer (a store read follows), by cache',
      labelNames: ['cache'],
      registers: [registry],
      collect: cacheStats((s, c) => s[c].misses),
    });
    new Gauge({
      name: 'mindshare_cache_entries',
      help: 'Entries held by the in-process cache (misses included), by cache',
      labelNames: ['cache'],
      registers: [registry],
      collect: cacheStats((s, c) => s[c].size),
    });
    new Counter({
      name: 'mindshare_cache_not_admitted_total',
      help: 'Loaded from the store but not cached: not asked for often enough lately (CACHE_ADMIT_AFTER), by cache',
      labelNames: ['cache'],
      registers: [registry],
      collect: cacheStats((s, c) => s[c].notAdmitted),
    });
    new Counter({
      name: 'mindshare_cache_bypassed_total',
      help: 'Misses sent straight to the store while the cache stood aside (hardly any look-up hit), by cache',
      labelNames: ['cache'],
      registers: [registry],
      collect: cacheStats((s, c) => s[c].bypassed),
    });
    new Gauge({
      name: 'mindshare_cache_aside',
      help: 'Threads whose cache stands aside: fewer than 5% of look-ups hit, so misses skip it',
      registers: [registry],
      collect: onlyWith(sources, 'cache', function (this: Gauge, cache) {
        this.set(cache().aside ? 1 : 0);
      }),
    });

    new Gauge({
      name: 'mindshare_ruleset_version',
      help: 'The rule-set version this instance decides with (the lowest of its threads)',
      registers: [registry],
      aggregator: 'min',
      collect: onlyWith(sources, 'ruleset', function (this: Gauge, rs) {
        this.set(rs().version);
      }),
    });
    new Gauge({
      name: 'mindshare_campaign_in_flight',
      help: "1 for a campaign of the active rule set inside its flight now, 0 outside it (by campaign: the rule set's, so bounded)",
      labelNames: ['campaign'],
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'campaigns', function (this: Gauge<'campaign'>, list) {
        this.reset();
        for (const c of list()) this.set({ campaign: c.id }, c.inFlight ? 1 : 0);
      }),
    });
    new Gauge({
      name: 'mindshare_campaign_holdout_ratio',
      help: "The hold-out share of each campaign of the active rule set (0: none), to compare with the ghosts' share of what it won",
      labelNames: ['campaign'],
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'campaigns', function (this: Gauge<'campaign'>, list) {
        this.reset();
        for (const c of list()) this.set({ campaign: c.id }, c.holdout);
      }),
    });
    new Gauge({
      name: 'mindshare_campaign_lift_people',
      help: 'People exposed to a campaign with a hold-out, by arm (treatment: shown; control: held out), and of them those with a conversion or purchase in the attribution window (outcome: exposed, conversions, purchases). Read from the store once a minute; GET /v1/campaigns/{id}/lift has the interval',
      labelNames: ['campaign', 'arm', 'outcome'],
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'lift', function (this: Gauge<'campaign' | 'arm' | 'outcome'>, list) {
        this.reset();
        for (const { id, counts } of list())
          for (const arm of ['treatment', 'control'] as const) {
            this.set({ campaign: id, arm, outcome: 'exposed' }, counts[arm].people);
            this.set({ campaign: id, arm, outcome: 'conversions' }, counts[arm].conversions);
            this.set({ campaign: id, arm, outcome: 'purchases' }, counts[arm].purchases);
          }
      }),
    });
    new Counter({
      name: 'mindshare_measure_writes_total',
      help: 'What decisions delivered, written to the store in batches: delivery count updates (counts) and exposures of people to campaigns with a hold-out (exposures)',
      labelNames: ['kind'],
      registers: [registry],
      collect: onlyWith(sources, 'measure', function (this: Counter<'kind'>, s) {
        const v = s();
        this.reset();
        this.inc({ kind: 'counts' }, v.countsWritten);
        this.inc({ kind: 'exposures' }, v.exposuresWritten);
      }),
    });
    new Counter({
      name: 'mindshare_measure_dropped_total',
      help: 'Delivery count updates and exposures not written: the store failed the batch, or too many exposures were waiting',
      labelNames: ['kind'],
      registers: [registry],
      collect: onlyWith(sources, 'measure', function (this: Counter<'kind'>, s) {
        const v = s();
        this.reset();
        this.inc({ kind: 'counts' }, v.countsDropped);
        this.inc({ kind: 'exposures' }, v.exposuresDropped);
      }),
    });
    const line = (l: BudgetLineReport) => ({ campaign: l.campaign, creative: l.creative ?? '' });
    new Gauge({
      name: 'mindshare_budget_spent',
      help: "What a budget line delivered (its unit: impressions, clicks, or spend in the campaign's currency): today (the campaign's day) or in all",
      labelNames: ['campaign', 'creative', 'period'],
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'budgets', function (this: Gauge<'campaign' | 'creative' | 'period'>, b) {
        this.reset();
        for (const l of b().lines) {
          this.set({ ...line(l), period: 'today' }, l.today.spent);
          this.set({ ...line(l), period: 'all' }, l.spentInAll);
        }
      }),
    });
    new Gauge({
      name: 'mindshare_budget_limit',
      help: "The most a budget line may deliver: today (its daily amount, or an even total's share of what is left) or in all (its total)",
      labelNames: ['campaign', 'creative', 'period'],
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'budgets', function (this: Gauge<'campaign' | 'creative' | 'period'>, b) {
        this.reset();
        for (const l of b().lines) {
          if (l.today.limit !== null) this.set({ ...line(l), period: 'today' }, l.today.limit);
          if (l.total !== null) this.set({ ...line(l), period: 'all' }, l.total);
        }
      }),
    });
    new Gauge({
      name: 'mindshare_budget_pace_target',
      help: "Where an even pace puts a budget line's spending by now (today's limit times the share of the day's opportunities so far)",
      labelNames: ['campaign', 'creative'],
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'budgets', function (this: Gauge<'campaign' | 'creative'>, b) {
        this.reset();
        for (const l of b().lines) if (l.today.target !== null) this.set(line(l), l.today.target);
      }),
    });
    new Gauge({
      name: 'mindshare_budget_pace_ratio',
      help: "A budget line's spending today over its even pace's target by now (1: on pace; absent before 1% of the day's target)",
      labelNames: ['campaign', 'creative'],
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'budgets', function (this: Gauge<'campaign' | 'creative'>, b) {
        this.reset();
        for (const l of b().lines) if (l.today.pace !== null) this.set(line(l), l.today.pace);
      }),
    });
    new Counter({
      name: 'mindshare_budget_lease_failures_total',
      help: 'Budget reports and lease renewals the store did not answer (campaigns with budgets pause on that thread until it does)',
      registers: [registry],
      collect: onlyWith(sources, 'budgets', function (this: Counter, b) {
        this.reset();
        this.inc(b().failedReports);
      }),
    });
    new Gauge({
      name: 'mindshare_ruleset_compile_seconds',
      help: 'Time the rule-set version in use took to compile, start to end (an activation while serving compiles in slices between decisions)',
      registers: [registry],
      aggregator: 'max',
      collect: onlyWith(sources, 'ruleset', function (this: Gauge, rs) {
        this.set(rs().compileMs / 1000);
      }),
    });
    new Counter({
      name: 'mindshare_ruleset_activations_total',
      help: 'Rule-set versions this instance switched to since start (ok) or could not load (failed)',
      labelNames: ['result'],
      registers: [registry],
      collect: onlyWith(sources, 'ruleset', function (this: Counter<'result'>, rs) {
        const s = rs();
        this.reset();
        this.inc({ result: 'ok' }, s.activations);
        this.inc({ result: 'failed' }, s.failures);
      }),
    });
    new Gauge({
      name: 'mindshare_ruleset_in_step',
      help: '1 while the rule set this instance serves is the one the store says is active (version and checksum), 0 otherwise',
      registers: [registry],
      aggregator: 'min',
      collect: onlyWith(sources, 'ruleset', function (this: Gauge, rs) {
        this.set(rs().inStep ? 1 : 0);
      }),
    });
    new Counter({
      name: 'mindshare_ruleset_restores_total',
      help: 'Times this instance stored its rule set again because the store had lost every active one',
      registers: [registry],
      collect: onlyWith(sources, 'ruleset', function (this: Counter, rs) {
        this.reset();
        this.inc(rs().restores);
      }),
    });

    this.bids = hotCounter(
      registry,
      'mindshare_openrtb_bids_total',
      'OpenRTB bids made (one per seatbid.bid; a request may carry several imps)',
      [],
    ).child({});
    const noBids = hotCounter(
      registry,
      'mindshare_openrtb_no_bids_total',
      'OpenRTB bid requests answered without a bid, by reason (no_fill, format, floor, currency, deal, blocked, holdout, timeout, invalid)',
      ['reason'],
    );
    for (const reason of NO_BID_REASONS) this.noBids.set(reason, noBids.child({ reason }));
    const contextOnly = hotCounter(
      registry,
      'mindshare_openrtb_context_only_total',
      'OpenRTB bid requests decided on context alone because a privacy signal forbade personal data, by reason (coppa, gdpr, us_privacy, gpp) and answer (bid, no_bid)',
      ['reason', 'answer'],
    );
    for (const reason of PRIVACY_REASONS) {
      for (const answer of ['bid', 'no_bid']) {
        this.contextOnly.set(`${reason} ${answer}`, contextOnly.child({ reason, answer }));
      }
    }
    this.noticeChild = hotCounter(
      registry,
      'mindshare_openrtb_notices_total',
      'OpenRTB win and billing notices, by type (win, bill) and outcome (counted, duplicate, unknown, invalid)',
      ['type', 'outcome'],
    ).child;
    this.priceChild = hotCounter(
      registry,
      'mindshare_openrtb_notice_price_total',
      'Sum of the clearing prices (CPM) of counted OpenRTB notices, by type and currency',
      ['type', 'currency'],
    ).child;

    this.events = new Counter({
      name: 'mindshare_events_total',
      help: 'Events received on POST /v1/events, by type and outcome (applied, duplicate, unknown_person, unknown_campaign)',
      labelNames: ['type', 'outcome'],
      registers: [registry],
    });
    this.imports = new Counter({
      name: 'mindshare_profile_imports_total',
      help: 'Profile import lines, by result (imported, failed)',
      labelNames: ['result'],
      registers: [registry],
    });
    this.imports.inc({ result: 'imported' }, 0);
    this.imports.inc({ result: 'failed' }, 0);

    new Gauge({
      name: 'mindshare_openrtb_rates_age_seconds',
      help: 'Age of the currency rates the OpenRTB bidder converts floors and bids with, seconds since their date (-1: no rates, so no conversion)',
      registers: [registry],
      aggregator: 'max',
      collect() {
        const age = sources().ratesAgeSeconds?.();
        this.set(age === undefined || age === null ? -1 : age);
      },
    });

    new Gauge({
      name: 'mindshare_draining',
      help: '1 while the instance drains before exit (not ready, finishing requests in flight)',
      registers: [registry],
      aggregator: 'max',
      collect() {
        this.set(sources().draining?.() === true ? 1 : 0);
      },
    });
  }

  /** Where the collect-time values come from (cache, rule set, Redis, draining). */
  setSources(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
    if (sources.redisUp !== undefined) this.redisMetrics();
  }

  /** The Redis metrics, registered the first time they are needed. */
  private redisMetrics(): NonNullable<Metrics['redis']> {
    if (this.redis !== null) return this.redis;
    const registry = this.registry;
    const sources = () => this.sources;
    const duration = new AccumulatingHistogram(
      'mindshare_redis_command_duration_seconds',
      'Time of profile-store operations on Redis that succeeded, by operation (store method)',
      ['operation'],
      REDIS_BUCKETS,
    );
    registry.registerMetric(duration as unknown as Metric);
    const errorChild = hotCounter(
      registry,
      'mindshare_redis_errors_total',
      'Profile-store operations on Redis that failed (Redis down, timeouts, script errors), by operation',
      ['operation'],
    ).child;
    new Gauge({
      name: 'mindshare_redis_up',
      help: '1 while the profile store reaches Redis (on Redis Cluster: the master of every slot), 0 otherwise',
      registers: [registry],
      aggregator: 'min',
      collect: onlyWith(sources, 'redisUp', function (this: Gauge, up) {
        this.set(up() ? 1 : 0);
      }),
    });
    new Counter({
      name: 'mindshare_store_resets_total',
      help: 'Times the store lost its data under this instance (its identity changed: a Redis restarted empty, a flushed database, a shard lost with its replicas)',
      registers: [registry],
      collect: onlyWith(sources, 'storeIntegrity', function (this: Counter, s) {
        this.reset();
        this.inc(s().resets);
      }),
    });
    new Counter({
      name: 'mindshare_store_lost_values_total',
      help: 'Stored values read as absent, by reason: lost (written with a string dictionary the store no longer has), corrupt (did not decode); and funnel changes that could not be counted (lost_count)',
      labelNames: ['reason'],
      registers: [registry],
      collect: onlyWith(sources, 'storeIntegrity', function (this: Counter<'reason'>, s) {
        const v = s();
        this.reset();
        this.inc({ reason: 'lost' }, v.lostValues);
        this.inc({ reason: 'corrupt' }, v.corruptValues);
        this.inc({ reason: 'lost_count' }, v.lostCountChanges);
      }),
    });
    new Counter({
      name: 'mindshare_store_erased_strings_total',
      help: "Strings erased from the Redis store's dictionary by this instance's sweeps: only deleted people held them",
      registers: [registry],
      collect: onlyWith(sources, 'storeIntegrity', function (this: Counter, s) {
        this.reset();
        this.inc(s().erasedStrings);
      }),
    });
    this.redis = { duration, errorChild };
    return this.redis;
  }

  // ---- the data plane (hot) --------------------------------------------------------------------

  /**
   * Records one decision request: its latency, outcome, placements and status. `outcome` is null
   * for an error answer (`code`) or an aborted request (status 499, counted as a request only).
   * Only 5xx error answers are timed: a 4xx is the client's mistake, refused before any deciding
   * (microseconds), and would pull the p99 and the degraded share down in proportion to how many
   * bad requests a client sends. Returns the outcome label.
   */
  decision(
    outcome: DecisionOutcome | null,
    status: number,
    elapsedMs: number,
    code: ErrorCode | null,
  ): DecisionLabel {
    const seconds = elapsedMs / 1000;
    if (outcome === null) {
      this.dataAnswer(DECIDE_ROUTE, status, code);
      if (status >= 500) this.decisionError.observe(seconds);
      else if (status !== 499) this.refusedDecisions++;
      return 'error';
    }
    this.decideOk.inc();
    let filled = false;
    const decisions = outcome.output.decisions;
    for (let i = 0; i < decisions.length; i++) {
      const d = decisions[i]!;
      if (d.campaign === null) {
        this.noFill.inc();
        continue;
      }
      filled = true;
      let c = this.filledBy.get(d.campaign);
      if (c === undefined) {
        c = this.placementChild({ outcome: 'filled', campaign: d.campaign });
        this.filledBy.set(d.campaign, c);
      }
      c.inc();
    }
    const ghosts = outcome.ghosts;
    if (ghosts !== undefined) {
      for (let i = 0; i < ghosts.length; i++) {
        const g = ghosts[i]!;
        let c = this.ghostsBy.get(g.campaign);
        if (c === undefined) {
          c = this.ghostChild({ campaign: g.campaign });
          this.ghostsBy.set(g.campaign, c);
        }
        c.inc();
      }
    }
    if (outcome.degradedBy !== null) {
      (outcome.degradedBy === 'timeout' ? this.degradedTimeout : this.degradedStore).inc();
      this.decisionDegraded.observe(seconds);
      return 'degraded';
    }
    if (filled) {
      this.decisionFilled.observe(seconds);
      return 'filled';
    }
    this.decisionNoFill.observe(seconds);
    return 'no_fill';
  }

  /** A data-plane answer other than a decision: a route (or `unmatched`), its status and code. */
  dataAnswer(route: string, status: number, code: ErrorCode | null): void {
    const key = `${route} ${status} ${code ?? ''}`;
    let c = this.dataOther.get(key);
    if (c === undefined) {
      c = {
        request: this.requestChild({ listener: 'data', route, status: String(status) }),
        error: code === null ? null : this.errorChild({ listener: 'data', route, code }),
      };
      this.dataOther.set(key, c);
    }
    c.request.inc();
    c.error?.inc();
  }

  // ---- OpenRTB (hot) ---------------------------------------------------------------------------

  /**
   * One bid request answered: a bid (200), no bid (204), an error (null, `code`) or an abort
   * (499). Bids, no bids and 5xx errors are timed on the decision histogram, as decisions are.
   */
  bidRequest(answer: BidAnswer | null, status: number, code: ErrorCode | null, elapsedMs: number): void {
    if (answer === null) {
      this.dataAnswer(BID_ROUTE, status, code);
      if (status >= 500) this.bidError.observe(elapsedMs / 1000);
      if (status === 400 || status === 413) this.noBids.get('invalid')?.inc();
      return;
    }
    if (answer.status === 200) {
      (this.bidOk ??= this.requestChild({ listener: 'data', route: BID_ROUTE, status: '200' })).inc();
    } else {
      (this.bidNoContent ??= this.requestChild({ listener: 'data', route: BID_ROUTE, status: '204' })).inc();
    }
    (answer.status === 200 ? this.bidMade : this.bidNone).observe(elapsedMs / 1000);
    if (answer.tmax !== undefined && answer.tmax > 0) this.tmaxUsed.observe(elapsedMs / answer.tmax);
    if (answer.privacy !== null) {
      this.contextOnly.get(`${answer.privacy} ${answer.status === 200 ? 'bid' : 'no_bid'}`)?.inc();
    }
    if (answer.status === 204) {
      this.noBids.get(answer.reason)?.inc();
      return;
    }
    const seatbid = answer.body.seatbid;
    for (let i = 0; i < seatbid.length; i++) this.bids.inc(seatbid[i]!.bid.length);
  }

  /** One win or billing notice answered. */
  notice(kind: NoticeKind, result: NoticeResult | null, status: number, code: ErrorCode | null): void {
    this.dataAnswer(`/openrtb2/${kind}`, status, code);
    const outcome =
      result !== null ? result.outcome : status === 404 ? 'unknown' : status === 400 ? 'invalid' : null;
    if (outcome === null) return;
    const key = `${kind} ${outcome}`;
    let c = this.noticeBy.get(key);
    if (c === undefined) {
      c = this.noticeChild({ type: kind, outcome });
      this.noticeBy.set(key, c);
    }
    c.inc();
    if (result?.outcome === 'counted' && result.price !== null) {
      const pk = `${kind} ${result.currency}`;
      let p = this.priceBy.get(pk);
      if (p === undefined) {
        p = this.priceChild({ type: kind, currency: result.currency });
        this.priceBy.set(pk, p);
      }
      p.inc(result.price);
    }
  }

  // ---- the control plane ----------------------------------------------------------------------

  /** One control-plane request answered: its route pattern, status and error code if any. */
  controlRequest(route: string, status: number, code: string | null): void {
    this.requestChild({ listener: 'control', route, status: String(status) }).inc();
    if (code !== null) this.errorChild({ listener: 'control', route, code }).inc();
  }

  event(type: string, outcome: string): void {
    this.events.inc({ type, outcome });
  }

  importedLines(imported: number, failed: number): void {
    if (imported > 0) this.imports.inc({ result: 'imported' }, imported);
    if (failed > 0) this.imports.inc({ result: 'failed' }, failed);
  }

  // ---- Redis ------------------------------------------------------------------------------------

  /** The recorder of one store operation (`load_person`); bind it once, use it per call. */
  redisOperation(operation: string): OperationRecorder {
    const redis = this.redisMetrics();
    const h = redis.duration.child([operation]);
    const e = redis.errorChild({ operation });
    return {
      observe: (seconds) => h.observe(seconds),
      error: () => e.inc(),
    };
  }

  // ---- exposition -------------------------------------------------------------------------------

  /** The Prometheus text exposition content type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Sets where the metrics of the instance's other threads come from: the exposition is then
   * one scrape of the whole instance, every thread's series merged by their aggregator
   * (counters and histograms summed; see the gauges for theirs).
   */
  setPeers(peers: () => Promise<MetricJSON[][]>): void {
    this.peers = peers;
  }

  /**
   * The instance's metrics as plain data (for another thread to merge): every value's labels
   * complete (the accumulating histograms' shared labels folded in).
   */
  async metricsJSON(): Promise<MetricJSON[]> {
    const metrics = await this.registry.getMetricsAsJSON();
    return metrics.map((m) => ({
      name: m.name,
      help: m.help,
      type: String(m.type),
      aggregator: m.aggregator,
      values: m.values.map((v) => {
        const shared = (v as { sharedLabels?: Record<string, string> }).sharedLabels;
        const out: MetricJSON['values'][number] = {
          value: v.value,
          labels: { ...shared, ...(v.labels as Record<string, string | number>) },
        };
        const name = (v as { metricName?: string }).metricName;
        if (name !== undefined) out.metricName = name;
        return out;
      }),
    }));
  }

  /** Every metric of the instance, then the process metrics, in the text exposition format. */
  async exposition(): Promise<string> {
    let own: string;
    if (this.peers === null) {
      own = await this.registry.metrics();
    } else {
      const [mine, others] = await Promise.all([this.metricsJSON(), this.peers()]);
      own = await AggregatorRegistry.aggregate([mine, ...others]).metrics();
    }
    if (!this.processMetrics) return own;
    return `${own}\n${await processRegistry().metrics()}`;
  }
}

/** A collect function that runs only when the named source is set. */
function onlyWith<K extends keyof MetricSources, M>(
  sources: () => MetricSources,
  key: K,
  run: (this: M, source: NonNullable<MetricSources[K]>) => void,
): CollectFunction<M> {
  return function (this: M) {
    const source = sources()[key];
    if (source !== undefined) run.call(this, source as NonNullable<MetricSources[K]>);
  };
}

let processReg: Registry | null = null;

/** prom-client's default metrics (process, heap, GC, event-loop lag), one registry per process. */
export function processRegistry(): Registry {
  if (processReg === null) {
    processReg = new Registry();
    collectDefaultMetrics({ register: processReg, eventLoopMonitoringPrecision: 10 });
  }
  return processReg;
}

/** Store methods that are timed, and their `operation` label. */
export const STORE_OPERATIONS = {
  loadPerson: 'load_person',
  resolveAlias: 'resolve_alias',
  getProfile: 'get_profile',
  putProfile: 'put_profile',
  putProfiles: 'put_profiles',
  linkAliases: 'link_aliases',
  linkManyAliases: 'link_many_aliases',
  recordImpression: 'record_impression',
  forgetPerson: 'forget_person',
  applyEvents: 'apply_events',
  patchProfile: 'patch_profile',
  funnel: 'funnel',
  aliasesOf: 'aliases_of',
  ping: 'ping',
} as const;

type AsyncMethod = (...args: never[]) => Promise<unknown>;

/**
 * Times the store's async methods named in STORE_OPERATIONS: each is replaced on this instance by
 * a wrapper that records the latency of calls that succeed and counts those that fail.
 */
export function instrumentStore<T extends object>(store: T, metrics: Metrics): T {
  const target = store as unknown as Record<string, AsyncMethod>;
  for (const [method, operation] of Object.entries(STORE_OPERATIONS)) {
    const original = target[method];
    if (typeof original !== 'function') continue;
    const rec = metrics.redisOperation(operation);
    const wrapped = function (this: unknown, ...args: never[]): Promise<unknown> {
      const t0 = performance.now();
      let p: Promise<unknown>;
      try {
        p = original.apply(store, args);
      } catch (e) {
        rec.error();
        throw e;
      }
      return p.then(
        (v) => {
          rec.observe((performance.now() - t0) / 1000);
          return v;
        },
        (e: unknown) => {
          rec.error();
          throw e;
        },
      );
    };
    target[method] = wrapped;
  }
  return store;
}

/** The route label of a control-plane request: the matched pattern (`/v1/profiles/:id`). */
export function routeLabel(matched: string | undefined): string {
  if (matched === undefined || matched === '' || matched === '*' || matched === '/*') return UNMATCHED;
  // `:version{[0-9]+}` -> `:version`
  return matched.replace(/(:[A-Za-z_][A-Za-z0-9_]*)\{[^}]*\}/g, '$1');
}
