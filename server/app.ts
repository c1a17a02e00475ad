/**
 * Wires a running server: the backend (Redis, or embedded with demo data) with its rule-set
 * versions and fleet bus, a cache in front of the profiles, the active rule set kept in step with
 * the fleet, the decision service, the data plane (uWebSockets.js) and the control plane (Hono).
 */
import { type Config, describeRedis } from './config.js';
import { createControlApp } from './control/app.js';
import { decideAuthorizer } from './control/auth.js';
import { createConsoleApp } from './control/console.js';
import { BudgetGate, type BudgetLineReport, campaignBudgetReport } from './decision/budgets.js';
import { DecisionRecorder } from './decision/recorder.js';
import { DecisionService } from './decision/service.js';
import { demoAliases, demoProfile } from './demo/profiles.js';
import { createAdminApp, listenAdmin } from './http/admin.js';
import { createDataPlane, type DataListener, type Listener, listen } from './http/data-plane.js';
import { createLogger, type Logger, lineDestination, lineLogger, requestIdOf } from './log.js';
import { instrumentStore, Metrics } from './metrics.js';
import { Bidder } from './openrtb/bidder.js';
import { CurrencyRates, ratesAgeSeconds } from './openrtb/rates.js';
import { initialRuleSet, type LoadedRuleSet, loadStoredRuleSet, RuleSetSync } from './ruleset-sync.js';
import { announcer, EmbeddedBus } from './store/bus.js';
import { CachedStore } from './store/cached.js';
import { EmbeddedStore, type EmbeddedStoreOptions } from './store/embedded.js';
import { RedisStore, type StoreReset } from './store/redis.js';
import { RedisBus } from './store/redis-bus.js';
import { isTransient } from './store/redis-client.js';
import { RedisRuleSets } from './store/redis-rulesets.js';
import { retryDelay } from './store/resp.js';
import { EmbeddedRuleSets } from './store/rulesets.js';
import type { Bus, LiftCounts, PersonStore, RuleSetStore } from './store/types.js';

/** Where profiles, rule-set versions and fleet announcements live. */
export interface Backend {
  readonly people: PersonStore;
  readonly rulesets: RuleSetStore;
  readonly bus: Bus;
  /** Sets what to do when the bus is back after a disconnection (announcements may be lost). */
  onBusReconnect?(handler: () => void): void;
  /** Hears of the store losing its data (Redis: its identity changed). */
  onReset?(handler: (reset: StoreReset) => void): () => void;
  close(): Promise<void>;
}

/**
 * What one server instance runs. `all`: everything in this thread. With data-plane worker
 * threads, the main thread is `admin` (control plane, health and metrics; it stores the rule-set
 * file on an empty store) and every worker is `data` (the data plane only; it decides with the
 * store's active rule set and follows the fleet bus on its own connections).
 */
export type ServerRole = 'all' | 'data' | 'admin';

export interface RunningServer {
  readonly role: ServerRole;
  /** The data plane's port (0 for the `admin` role: no data plane in this thread). */
  readonly dataPort: number;
  /** The control plane's port (0 for the `data` role). */
  readonly adminPort: number;
  readonly service: DecisionService;
  readonly store: CachedStore;
  readonly backend: Backend;
  readonly sync: RuleSetSync;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Not ready from now on (`/readyz` 503, `mindshare_draining` 1); `close()` follows. */
  beginDrain(): void;
  /**
   * Drains: not ready at once, then (after `delayMs`, default DRAIN_DELAY_MS) stops accepting,
   * lets requests in flight finish (up to `timeoutMs`, default DRAIN_TIMEOUT_MS) and closes the
   * stores.
   */
  close(timeoutMs?: number, delayMs?: number): Promise<void>;
}

export interface StartOptions {
  /** Where log lines (JSON) go instead of standard output (tests silence them). */
  log?: (line: string) => void;
  /** The logger to use; default one at LOG_LEVEL, writing to `log` or standard output. */
  logger?: Logger;
  /** The clock of decisions (tests pin it). */
  now?: () => number;
  /**
   * A backend to share instead of opening one from the configuration (several servers in one
   * process, as tests run a fleet). The caller closes it.
   */
  backend?: Backend;
  /** How often the active rule-set version is checked besides the bus, ms. */
  rulesetPollMs?: number;
  /** What this instance runs; default `all`. */
  role?: ServerRole;
  /** The number of the data-plane worker thread this instance is (its metrics say so). */
  worker?: number;
  /** For an `admin` instance: whether the data plane (served by worker threads) serves, or why not. */
  dataPlane?: () => string;
}

/**
 * The backend from the configuration: Redis (single, Cluster or Sentinel) when configured, else
 * embedded demo data. With `metrics`, the Redis store's operations are timed and its connection
 * state reported. `role` decides who gathers the funnel counts in the background (the control
 * plane's instance, not data-plane workers).
 */
export async function openBackend(
  config: Config,
  log: (line: string) => void,
  metrics?: Metrics,
  warn: (line: string) => void = log,
  role: ServerRole = 'all',
): Promise<Backend> {
  if (config.redis !== undefined) {
    const people = new RedisStore({
      topology: config.redis,
      keyPrefix: config.redisKeyPrefix,
      waitReplicas: config.redisWaitReplicas,
      waitTimeoutMs: config.redisWaitTimeoutMs,
      leanReads: config.redisLeanReads,
      foldEveryMs: role === 'data' ? 0 : FOLD_EVERY_MS,
      sweepEveryMs: role === 'data' ? 0 : config.dictionarySweepMs,
      eventDedupeMs: config.eventDedupeMs,
      measureRetentionMs: config.measureRetentionMs,
      log: warn,
    });
    let reconnected: () => void = () => {};
    const bus = new RedisBus({ store: people, log: warn, onReconnect: () => reconnected() });
    const rulesets = new RedisRuleSets({ store: people, bus });
    if (metrics !== undefined) {
      metrics.setSources({ redisUp: () => redisReady(people.stats()), storeIntegrity: () => people.stats() });
      instrumentStore(people, metrics);
    }
    log(`profile store: ${describeRedis(config.redis)}`);
    return {
      people,
      rulesets,
      bus,
      onBusReconnect(handler) {
        reconnected = handler;
      },
      onReset: (handler) => people.onReset(handler),
      async close() {
        await bus.close();
        await people.close();
      },
    };
  }
  const people = await embeddedDemo(config.demoPeople, {
    eventDedupeMs: config.eventDedupeMs,
    measureRetentionMs: config.measureRetentionMs,
  });
  log(
    `profile store: embedded, ${config.demoPeople} synthetic demo profiles loaded (p-0 .. p-${config.demoPeople - 1})`,
  );
  return embeddedBackend(people);
}

/** An in-process backend around an embedded store. */
export function embeddedBackend(people: EmbeddedStore = new EmbeddedStore()): Backend {
  const bus = new EmbeddedBus();
  const rulesets = new EmbeddedRuleSets({ bus });
  return {
    people,
    rulesets,
    bus,
    async close() {
      await bus.close();
      await people.close();
    },
  };
}

async function embeddedDemo(count: number, opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  const store = new EmbeddedStore(opts);
  const batch = [];
  for (let i = 0; i < count; i++) batch.push(demoProfile(i));
  await store.putProfiles(batch);
  for (let i = 0; i < count; i++) await store.linkAliases(`p-${i}`, demoAliases(i));
  return store;
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const logger =
    opts.logger ??
    createLogger({
      level: config.logLevel,
      ...(opts.log === undefined ? {} : { destination: lineDestination(opts.log) }),
    });
  const log = lineLogger(logger);
  const warn = lineLogger(logger, 'warn');
  const role = opts.role ?? 'all';
  const metrics = new Metrics(
    opts.worker === undefined ? {} : { worker: opts.worker, processMetrics: false },
  );
  const ownsBackend = opts.backend === undefined;
  const backend = opts.backend ?? (await openBackend(config, log, metrics, warn, role));
  const people = backend.people;
  if (!ownsBackend && people instanceof RedisStore) {
    metrics.setSources({ redisUp: () => redisReady(people.stats()), storeIntegrity: () => people.stats() });
  }
  // Every write through this instance is announced to the fleet before it is acknowledged.
  const store = new CachedStore(backend.people, {
    maxPeople: config.cacheMaxPeople,
    maxAliases: config.cacheMaxAliases,
    ttlMs: config.cacheTtlMs,
    admitAfter: config.cacheAdmitAfter,
    announce: announcer(backend.bus, warn),
  });
  // What decisions deliver, sent to the store in batches off the decision path.
  let lastRecorderWarning = 0;
  const recorder = new DecisionRecorder(backend.people, {
    flushEveryMs: config.measureFlushMs,
    onError: (err) => {
      const now = Date.now();
      if (now - lastRecorderWarning < 60_000) return;
      lastRecorderWarning = now;
      warn(
        `delivery counts and exposures could not be written (dropped, counted in mindshare_measure_dropped_total): ${String(err)}`,
      );
    },
  });
  // Budgets and pacing: leases renewed off the decision path, one call per budget line.
  let lastBudgetWarning = 0;
  const budgets = new BudgetGate(backend.people, {
    leaseMs: config.budgetLeaseMs,
    settleMs: Math.max(config.budgetSettleMs, 3 * config.budgetLeaseMs + 1),
    ...(opts.now === undefined ? {} : { now: opts.now }),
    onError: (err) => {
      const now = Date.now();
      if (now - lastBudgetWarning < 60_000) return;
      lastBudgetWarning = now;
      warn(
        `budget leases could not be renewed (campaigns with budgets pause until the store answers): ${String(err)}`,
      );
    },
  });
  let service: DecisionService;
  let sync: RuleSetSync;
  let unsubscribe: () => void = () => {};
  try {
    // A worker thread never stores the rule-set file: the main thread has done so before it started.
    // A store that is away at start (restarting, failing over) is waited for, as a running
    // instance waits for it; a store of the wrong kind, or an invalid rule set, stops the start.
    const initial = await untilStoreAnswers(
      () =>
        role === 'data'
          ? activeRuleSet(backend.rulesets, log)
          : initialRuleSet(backend.rulesets, config.rulesetFile, Date.now(), log),
      warn,
    );
    service = new DecisionService(store, initial.active, {
      deadlineMs: config.deadlineMs,
      recorder,
      budgets,
      ...(opts.now === undefined ? {} : { now: opts.now }),
    });
    sync = new RuleSetSync(
      service,
      {
        rulesets: backend.rulesets,
        bootstrapFile: config.rulesetFile,
        log,
        error: lineLogger(logger, 'error'),
        pollMs: opts.rulesetPollMs ?? 5000,
        checkTimeoutMs: config.rulesetCheckTimeoutMs,
        // The control plane's instance restores the rule set of a store that lost it.
        restore: role !== 'data',
      },
      initial,
    );
    const liveSync = sync;
    // Writes made on any instance drop cached copies here; activations reach every instance.
    unsubscribe = await backend.bus.subscribe((m) => {
      switch (m.type) {
        case 'ruleset':
          liveSync.request(m.version, m.checksum);
          break;
        case 'person':
          store.invalidatePerson(m.pid);
          break;
        case 'people':
          for (const pid of m.pids) store.invalidatePerson(pid);
          break;
        case 'alias':
          store.invalidateAlias(m.kind, m.value);
          break;
        case 'aliases':
          for (const member of m.members) store.invalidateAliasMember(member);
          break;
      }
    });
    // Announcements made while the bus was away are lost: forget cached people and catch up
    // with the active rule set at once rather than at the next poll.
    backend.onBusReconnect?.(() => {
      store.clear();
      liveSync.check().catch(() => {});
    });
    // A store that lost its data: nothing cached here is true any more, and its rule set may be
    // gone (restored by the control plane's instance).
    const stopResets = backend.onReset?.(() => {
      store.clear();
      liveSync.check().catch(() => {});
    });
    if (stopResets !== undefined) {
      const off = unsubscribe;
      unsubscribe = () => {
        off();
        stopResets();
      };
    }
    sync.start();
  } catch (e) {
    await Promise.all([recorder.close(), budgets.close()]);
    if (ownsBackend) await backend.close();
    throw e;
  }

  const rates = new CurrencyRates(backend.rulesets, { log, warn });
  try {
    await rates.start(config.openrtb.ratesFile, role !== 'data');
  } catch (e) {
    sync.stop();
    unsubscribe();
    await Promise.all([recorder.close(), budgets.close()]);
    if (ownsBackend) await backend.close();
    throw e;
  }

  // Lift counts of the campaigns with a hold-out, read once a minute by the instance that serves
  // the control plane, for Prometheus (the lift report itself reads them fresh).
  let liftSnapshot: Array<{ id: string; counts: LiftCounts }> = [];
  const readLift = async () => {
    const campaigns = service.ruleSet.compiled.campaigns
      .filter((c) => c.holdout > 0)
      .slice(0, MAX_LIFT_GAUGES);
    // Together: on Redis the reads share one fold of the pending counts.
    const counts = await Promise.all(campaigns.map((c) => backend.people.lift(c.id)));
    liftSnapshot = campaigns.map((c, i) => ({ id: c.id, counts: counts[i]! }));
  };
  const liftTimer =
    role === 'data'
      ? null
      : setInterval(() => {
          readLift().catch(() => {});
        }, LIFT_GAUGES_EVERY_MS);
  liftTimer?.unref();
  if (role !== 'data') readLift().catch(() => {});
  // Budget lines, read every 15 s by the same instance, for Prometheus (the route reads them fresh).
  let budgetSnapshot: BudgetLineReport[] = [];
  const readBudgets = async () => {
    const campaigns = service.ruleSet.compiled.campaigns.filter((c) => c.budgeted).slice(0, MAX_LIFT_GAUGES);
    const now = opts.now?.() ?? Date.now();
    const lines = await Promise.all(
      campaigns.map((c) => campaignBudgetReport(backend.people, c, now, budgets.settleWindowMs)),
    );
    budgetSnapshot = lines.flat();
  };
  const budgetTimer =
    role === 'data'
      ? null
      : setInterval(() => {
          readBudgets().catch(() => {});
        }, BUDGET_GAUGES_EVERY_MS);
  budgetTimer?.unref();
  if (role !== 'data') readBudgets().catch(() => {});
  let inFlight = 0;
  let draining = false;
  let closing = false;
  let idle: (() => void) | null = null;
  metrics.setSources({
    ratesAgeSeconds: () => ratesAgeSeconds(rates.current, Date.now()),
    cache: () => store.stats(),
    ruleset: () => {
      const s = sync.stats();
      return { version: service.ruleSet.version, ...s, inStep: sync.health().inStep };
    },
    draining: () => draining,
    measure: () => recorder.stats(),
    budgets: () => ({ lines: budgetSnapshot, failedReports: budgets.failedReports }),
    lift: () => liftSnapshot,
    campaigns: () => {
      const now = Date.now();
      return service.ruleSet.compiled.campaigns.map((c) => ({
        id: c.id,
        inFlight: now >= c.flightStart && now <= c.flightEnd,
        holdout: c.holdout,
      }));
    },
  });
  if (role !== 'admin' && !config.openrtb.secretConfigured && opts.worker === undefined) {
    warn('OPENRTB_SECRET is unset: OpenRTB notices only work on this process, and not after a restart');
  }
  // With tokens configured, deciding needs a token with the decide scope too.
  const authorizeDecide = decideAuthorizer(config.tokens);
  const sample = config.logDecisionsSample;
  const dataApp =
    role === 'admin'
      ? null
      : createDataPlane({
          service,
          maxBodyBytes: config.maxBodyBytes,
          ...(authorizeDecide === undefined ? {} : { authorize: authorizeDecide }),
          onDecision: (outcome, status, elapsedMs, code, requestIdHeader) => {
            const label = metrics.decision(outcome, status, elapsedMs, code);
            if (sample > 0 && Math.random() < sample) {
              const ms = Math.round(elapsedMs * 1000) / 1000;
              logger.info(
                {
                  requestId: requestIdOf(requestIdHeader),
                  outcome: label,
                  status,
                  ms,
                  ...(code ? { code } : {}),
                },
                'decision',
              );
            }
            inFlight--;
            if (inFlight === 0 && idle !== null) idle();
          },
          onRequest: () => {
            inFlight++;
          },
          onOtherRoute: (route, status, code) => metrics.dataAnswer(route, status, code),
          openrtb: !config.openrtb.enabled
            ? undefined
            : {
                bidder: new Bidder({
                  service,
                  store,
                  config: config.openrtb,
                  rates: () => rates.current,
                  budgets,
                }),
                onRequest: () => {
                  inFlight++;
                },
                onBid: (answer, status, elapsedMs, code) => {
                  metrics.bidRequest(answer, status, code, elapsedMs);
                  inFlight--;
                  if (inFlight === 0 && idle !== null) idle();
                },
                onNotice: (kind, result, status, code) => metrics.notice(kind, result, status, code),
              },
          draining: () => draining,
          onError: (err, requestId) => logger.error({ err, requestId }, 'decision failed'),
        });
  const control = createControlApp({
    profiles: store,
    budgets,
    rulesets: backend.rulesets,
    tokens: config.tokens,
    bodyTimeoutMs: config.adminBodyTimeoutMs,
    rulesetCheckTimeoutMs: config.rulesetCheckTimeoutMs,
    allowOpen: config.allowOpenControlPlane,
    eventDedupeMs: config.eventDedupeMs,
    measureRetentionMs: config.measureRetentionMs,
    active: () => service.ruleSet,
    rates,
    log,
  });
  let data: DataListener | null = null;
  let admin: Listener | null = null;
  try {
    if (dataApp !== null) data = await listen(dataApp, config.host, config.port);
    if (role !== 'data') {
      admin = await listenAdmin(
        createAdminApp({
          service,
          store,
          draining: () => draining,
          control,
          console: createConsoleApp({ tokens: config.tokens }),
          metrics,
          logger,
          rulesetHealth: () => sync.health(),
          ...(opts.dataPlane === undefined ? {} : { dataPlane: opts.dataPlane }),
        }),
        config.host,
        config.adminPort,
        {
          headersTimeoutMs: config.adminHeadersTimeoutMs,
          maxConnections: config.adminMaxConnections,
          maxConnectionsPerClient: config.adminMaxConnectionsPerClient,
        },
      );
    }
  } catch (e) {
    data?.close();
    sync.stop();
    rates.stop();
    if (liftTimer !== null) clearInterval(liftTimer);
    if (budgetTimer !== null) clearInterval(budgetTimer);
    unsubscribe();
    await Promise.all([recorder.close(), budgets.close()]);
    if (ownsBackend) await backend.close();
    throw e;
  }

  return {
    role,
    dataPort: data?.port ?? 0,
    adminPort: admin?.port ?? 0,
    service,
    store,
    backend,
    sync,
    metrics,
    logger,
    beginDrain() {
      draining = true;
    },
    async close(timeoutMs = config.drainTimeoutMs, delayMs = config.drainDelayMs) {
      if (closing) return;
      closing = true;
      // Not ready from now on; a load balancer gets `delayMs` to notice while everything is
      // still served. Then the data plane stops accepting, answers close their connections,
      // and requests in flight finish (up to `timeoutMs`) before the stores close.
      draining = true;
      logger.info({ inFlight, delayMs }, 'draining');
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      data?.close();
      if (inFlight > 0) {
        const finished = await new Promise<boolean>((resolve) => {
          idle = () => resolve(true);
          setTimeout(() => resolve(false), timeoutMs).unref();
        });
        if (!finished) logger.warn({ inFlight, timeoutMs }, 'stopping with requests still in flight');
      }
      data?.terminate();
      admin?.close();
      sync.stop();
      rates.stop();
      if (liftTimer !== null) clearInterval(liftTimer);
      if (budgetTimer !== null) clearInterval(budgetTimer);
      if (budgetTimer !== null) clearInterval(budgetTimer);
      unsubscribe();
      await Promise.all([recorder.close(), budgets.close()]);
      if (ownsBackend) await backend.close();
    },
  };
}

/** The store's active rule set, compiled; an error when the store has none. */
async function activeRuleSet(rulesets: RuleSetStore, log: (line: string) => void): Promise<LoadedRuleSet> {
  const active = await rulesets.activeRuleSet();
  if (active === null) throw new NoActiveRuleSetYet();
  log(`rule set: version ${active.version}, active in the store`);
  return loadStoredRuleSet(rulesets, active.version, Date.now());
}

/**
 * How often the control plane's instance tries for a turn at gathering the funnel counts of a
 * sixteenth of the slots, ms: the fleet sweeps every slot in about 16 s, at about 1 ms of Redis
 * time a turn (reads gather everything first, so they are exact whatever this is).
 */
const FOLD_EVERY_MS = 1000;
/** How often lift counts are read for Prometheus, and for how many campaigns at most. */
const LIFT_GAUGES_EVERY_MS = 60_000;
const MAX_LIFT_GAUGES = 100;
/** How often budget gauges are read from the store. */
const BUDGET_GAUGES_EVERY_MS = 15_000;

/**
 * A data-plane worker found no active rule set: the store lost its data (a Redis restarted empty
 * while the process started) and the main thread, which restores it, has not done so yet.
 */
class NoActiveRuleSetYet extends Error {
  constructor() {
    super('the store has no active rule set yet (the control plane stores it again when it lost its data)');
  }
}

/**
 * `task`, tried again with a capped backoff for as long as it fails because the store is away
 * for now (isTransient) or has not got its rule set back; said in a line every few seconds.
 */
async function untilStoreAnswers<T>(task: () => Promise<T>, warn: (line: string) => void): Promise<T> {
  let lastSaid = Number.NEGATIVE_INFINITY;
  for (let attempt = 1; ; attempt++) {
    try {
      return await task();
    } catch (e) {
      if (!isTransient(e) && !(e instanceof NoActiveRuleSetYet)) throw e;
      if (performance.now() - lastSaid >= 5000) {
        lastSaid = performance.now();
        warn(`waiting for the store to answer before serving: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, retryDelay(attempt, 2000)));
    }
  }
}

/** Both Redis connections of a store can take commands. */
function redisReady(s: { status: string; readStatus: string | null }): boolean {
  return s.status === 'ready' && (s.readStatus === null || s.readStatus === 'ready');
}
