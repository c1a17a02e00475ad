/**
 * Configuration from environment variables, validated at start. A bad value stops the server
 * with a message naming the variable. README.md has the same table.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { LOG_LEVELS, type LogLevel, projectRoot } from './project.js';
import { type ApiToken, SCOPES, type Scope } from './scopes.js';
import { DEFAULT_EVENT_DEDUPE_MS } from './store/person.js';
import type { RedisTopology } from './store/redis-client.js';

export interface Config {
  host: string;
  port: number;
  adminPort: number;
  /** Control plane: the longest a request body may take (an import: may send nothing), ms. */
  adminBodyTimeoutMs: number;
  /** Control plane: the longest a request's headers may take, ms. */
  adminHeadersTimeoutMs: number;
  /** Control plane: connections open at once (more are closed at once). */
  adminMaxConnections: number;
  /** Control plane: connections open at once from one client address. */
  adminMaxConnectionsPerClient: number;
  /** Without tokens, whether the control plane's API answers clients on other machines. */
  allowOpenControlPlane: boolean;
  /** How Redis is deployed (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS); unset: the embedded store with demo data. */
  redis: RedisTopology | undefined;
  redisKeyPrefix: string;
  /** Replicas an event or notice must reach before it is acknowledged: a number or `auto`. */
  redisWaitReplicas: number | 'auto';
  /** Longest wait for them, ms. */
  redisWaitTimeoutMs: number;
  /** Decision reads on the store's own lean connections (false: through ioredis, for comparison). */
  redisLeanReads: boolean;
  /** How often the control plane takes a turn at erasing deleted people's strings from the dictionary (0: never). */
  dictionarySweepMs: number;
  /** How long an event id is remembered; events older than that are refused (they could count twice). */
  eventDedupeMs: number;
  /** How long delivery rows, lift counts and exposure records live after their last change, ms. */
  measureRetentionMs: number;
  /** How often decisions' delivery and exposures are sent to the store, ms. */
  measureFlushMs: number;
  /** How often each thread renews its budget leases, ms. */
  budgetLeaseMs: number;
  /** How long a budget lease stays committed unless delivered or given back, ms. */
  budgetSettleMs: number;
  /** The longest a rule set may take to parse and check, on a thread of its own. */
  rulesetCheckTimeoutMs: number;
  /**
   * Threads serving the data plane (with Redis only: the embedded store lives in one thread's
   * memory). 1: one thread serves everything.
   */
  workers: number;
  rulesetFile: string;
  /** Default decision deadline; a request may ask for less. */
  deadlineMs: number;
  maxBodyBytes: number;
  cacheMaxPeople: number;
  /** Loads of a person within a recent window before the profile is cached. */
  cacheAdmitAfter: number;
  cacheMaxAliases: number;
  cacheTtlMs: number;
  /** Synthetic demo profiles loaded into the embedded store. */
  demoPeople: number;
  /** After SIGTERM: how long /readyz answers 503 while everything is still served, ms. */
  drainDelayMs: number;
  /** After that: the longest wait for requests in flight before exiting anyway, ms. */
  drainTimeoutMs: number;
  /** Bearer tokens of the API with their scopes; empty: the control plane is open. */
  tokens: ConfiguredToken[];
  /** Lowest level of the lines logged. */
  logLevel: LogLevel;
  /** Share of decisions logged (0..1); 0: the decision path does not log. */
  logDecisionsSample: number;
  /** OpenRTB bidder settings (POST /openrtb2/bid and its notices). */
  openrtb: OpenRtbConfig;
}

export interface OpenRtbConfig {
  /** Whether the data plane serves the bidder (POST /openrtb2/bid and its notices). */
  enabled: boolean;
  /** True when OPENRTB_NOTICE_URL was set (not the localhost default). */
  noticeUrlConfigured: boolean;
  /** Subtracted from a bid request's `tmax` for the way back to the exchange, ms. */
  marginMs: number;
  /** The seat id this bidder bids as (`seatbid[].seat`, checked against `wseat`/`bseat`). */
  seat: string;
  /** Base URL of win and billing notices (`nurl`, `burl`). */
  noticeUrl: string;
  /** The secret bid ids are sealed with; random per process when OPENRTB_SECRET is unset. */
  secret: string;
  /** True when `secret` was configured (notices then work across instances and restarts). */
  secretConfigured: boolean;
  /** How long after a bid its notices are accepted, ms. */
  bidTtlMs: number;
  /** Our id in the IAB Global Vendor List (GDPR consent is checked for it); null: none. */
  tcfVendorId: number | null;
  /** TCF purposes a GDPR request must consent to before personal data is used. */
  tcfPurposes: number[];
  /** A JSON file of currency rates that seeds the store's table when it has none. */
  ratesFile: string | undefined;
  /** The form of the bid ids issued (every form is read): see OPENRTB_BID_IDS. */
  bidIdForm: BidIdForm;
}

/** `xchacha20`: the current form; `aes-ctr`: the form releases before it read (a rolling upgrade). */
export const BID_ID_FORMS = ['xchacha20', 'aes-ctr'] as const;
export type BidIdForm = (typeof BID_ID_FORMS)[number];

/** A bearer token from the configuration (name: safe to log; secret: never logged). */
export type ConfiguredToken = ApiToken;

export interface ConfigVar {
  name: string;
  default: string;
  description: string;
}

export const DEMO_RULESET = join(projectRoot(), 'rules', 'examples', 'demo.yaml');

/** Every variable the server reads, with its default and meaning (the README table). */
export const CONFIG_VARS: readonly ConfigVar[] = [
  { name: 'HOST', default: '0.0.0.0', description: 'Address both listeners bind to' },
  { name: 'PORT', default: '8080', description: 'Data plane (POST /v1/decide), uWebSockets.js' },
  {
    name: 'ADMIN_PORT',
    default: '8081',
    description: 'Control plane (rule sets, profiles, events, funnels, health), Hono',
  },
  {
    name: 'ADMIN_BODY_TIMEOUT_MS',
    default: '10000',
    description:
      'Control plane: the longest a request body may take to arrive (408 after it); an NDJSON import may take as long as it keeps sending, but not send nothing for this long',
  },
  {
    name: 'ADMIN_HEADERS_TIMEOUT_MS',
    default: '10000',
    description:
      "Control plane: the longest a request's headers may take to arrive (the connection is closed after it)",
  },
  {
    name: 'ADMIN_MAX_CONNECTIONS',
    default: '256',
    description: 'Control plane: connections open at once; more are closed as they come',
  },
  {
    name: 'ADMIN_MAX_CONNECTIONS_PER_CLIENT',
    default: '32',
    description:
      'Control plane: connections open at once from one client address; more from it are closed as they come, so that one client cannot crowd out probes and scrapes',
  },
  {
    name: 'REDIS_URL',
    default: '(unset)',
    description:
      'A single Redis for profiles, `redis://[user:password@]host:port[/db]` or `rediss://…`; with `REDIS_SENTINELS`, the credentials, TLS and database of the master (its host is not used); unset with neither of the two below: embedded store with demo data',
  },
  {
    name: 'REDIS_CLUSTER_NODES',
    default: '(unset)',
    description:
      'Redis Cluster instead: some of its nodes, `host:port` separated by commas (a `redis://user:password@host:port` entry gives credentials and TLS for all)',
  },
  {
    name: 'REDIS_SENTINELS',
    default: '(unset)',
    description: 'Redis Sentinel instead: the sentinels, `host:port` separated by commas',
  },
  {
    name: 'REDIS_SENTINEL_MASTER',
    default: '(unset)',
    description: "With `REDIS_SENTINELS`: the master's name",
  },
  {
    name: 'REDIS_SENTINEL_PASSWORD',
    default: '(unset)',
    description: "With `REDIS_SENTINELS`: the sentinels' own password, when they have one",
  },
  { name: 'REDIS_KEY_PREFIX', default: '(empty)', description: 'Prefix for every Redis key' },
  {
    name: 'REDIS_WAIT_REPLICAS',
    default: 'auto',
    description:
      'Replicas an event or notice must reach (WAIT) before it is acknowledged; `auto`: one where the master has a replica, none where it has not',
  },
  {
    name: 'REDIS_WAIT_TIMEOUT_MS',
    default: '500',
    description: 'Longest wait for them; fewer in time: the call answers 503 and may be sent again',
  },
  {
    name: 'REDIS_LEAN_READS',
    default: 'true',
    description:
      "Decision reads on the server's own lean Redis connections (routed by slot on a cluster); `false`: through ioredis, as everything else (costs more CPU: bench/README.md)",
  },
  {
    name: 'DICTIONARY_SWEEP_MS',
    default: '600000',
    description:
      'Redis: how often the fleet checks whether strings of deleted people (a unique tag or attribute) are held by anyone else, and erases them from the string dictionary if not (0: never)',
  },
  {
    name: 'EVENT_DEDUPE_MS',
    default: '604800000',
    description:
      'How long an event id (and an OpenRTB notice) is remembered, so that a retry counts once: 1 hour to 400 days, 7 days by default. Events dated further back are refused (400), since they could count twice; raise it to load older history',
  },
  {
    name: 'MEASURE_RETENTION_DAYS',
    default: '400',
    description:
      "How long delivery rows, lift counts and people's exposure records are kept after their last change, days (90 to 3,660: at least the longest attribution window, so that no record expires inside its window). Delivery reports reach back this far",
  },
  {
    name: 'MEASURE_FLUSH_MS',
    default: '1000',
    description:
      'How often each thread sends what its decisions delivered (counts, exposures) to the store, ms (50 to 60,000): reports lag decisions by up to this much',
  },
  {
    name: 'BUDGET_LEASE_MS',
    default: '1000',
    description:
      'How often each thread reports what its budgets delivered and renews its leases of them, ms (100 to 10,000): a spent budget stops every instance within one lease (three when the store does not answer)',
  },
  {
    name: 'BUDGET_SETTLE_MS',
    default: '120000',
    description:
      'How long what a budget lease commits stays counted unless delivered or given back, ms (10,000 to 3,600,000; over three leases): a delivery (impression or click event, OpenRTB notice) reported later than this after its decision can take a budget over (docs/budgets.md)',
  },
  {
    name: 'RULESET_CHECK_TIMEOUT_MS',
    default: '30000',
    description:
      'The longest a rule set may take to parse and check (uploads, previews, activations), on a thread of its own so that probes, metrics and decisions go on meanwhile; longer: 422 `too_slow`',
  },
  {
    name: 'WORKERS',
    default: '(number of CPUs)',
    description:
      'Threads serving the data plane on PORT, 1 to 64; with Redis only (the embedded store runs in one thread)',
  },
  {
    name: 'RULESET_FILE',
    default: 'rules/examples/demo.yaml',
    description: 'Rule set loaded at start (YAML or JSON)',
  },
  {
    name: 'DECISION_DEADLINE_MS',
    default: '10',
    description: 'Deadline of a decision; requests may ask for less',
  },
  { name: 'MAX_BODY_BYTES', default: '65536', description: 'Largest request body accepted (413 above)' },
  { name: 'CACHE_MAX_PEOPLE', default: '100000', description: 'Profiles kept in the in-process cache' },
  { name: 'CACHE_MAX_ALIASES', default: '100000', description: 'Alias resolutions kept in the cache' },
  { name: 'CACHE_TTL_MS', default: '2000', description: 'Longest a cached profile or alias is used' },
  {
    name: 'CACHE_ADMIT_AFTER',
    default: '2',
    description:
      "Loads of a person or of an alias, within a recent window, before the profile or the alias's resolution is cached (1: at once); keeps thinly spread traffic from churning the cache",
  },
  { name: 'DEMO_PEOPLE', default: '10000', description: 'Synthetic profiles loaded into the embedded store' },
  {
    name: 'DRAIN_DELAY_MS',
    default: '0',
    description:
      'On SIGTERM/SIGINT, how long /readyz says 503 while all is still served, before listeners close (behind a load balancer: its probe interval)',
  },
  {
    name: 'DRAIN_TIMEOUT_MS',
    default: '10000',
    description: 'Then the longest wait for requests in flight before the process exits anyway',
  },
  {
    name: 'TOKENS',
    default: '(unset)',
    description:
      'API tokens, `name:secret:scope+scope` separated by commas; unset with no file: no token is asked for, and the API answers its own machine only',
  },
  {
    name: 'ALLOW_OPEN_CONTROL_PLANE',
    default: 'false',
    description:
      "Without tokens, the control plane's API answers only clients on its own machine (probes, metrics and the OpenAPI document answer everyone); `true` opens it to every client",
  },
  {
    name: 'TOKENS_FILE',
    default: '(unset)',
    description: 'A JSON file of tokens, `[{"name", "token", "scopes": [...]}]`, added to `TOKENS`',
  },
  {
    name: 'LOG_LEVEL',
    default: 'info',
    description: 'Lowest level logged: fatal, error, warn, info, debug, trace or silent',
  },
  {
    name: 'LOG_DECISIONS_SAMPLE',
    default: '0',
    description: 'Share of decisions logged, 0 to 1 (0: decisions are not logged, errors are)',
  },
  {
    name: 'OPENRTB_BIDDER',
    default: 'true',
    description:
      'OpenRTB: whether the data plane serves the bidder (POST /openrtb2/bid, its win and billing notices); with a Redis store it then needs OPENRTB_NOTICE_URL',
  },
  {
    name: 'OPENRTB_MARGIN_MS',
    default: '20',
    description:
      "OpenRTB: milliseconds kept from a bid request's `tmax` for the network; no bid (204) rather than late",
  },
  {
    name: 'OPENRTB_SEAT',
    default: 'mindshare',
    description: 'OpenRTB: the seat id bids carry, checked against `wseat` and `bseat`',
  },
  {
    name: 'OPENRTB_NOTICE_URL',
    default: 'http://localhost:<PORT>',
    description:
      'OpenRTB: base URL of the win (`nurl`) and billing (`burl`) notices, as the exchange reaches this server; required to start with a Redis store while the bidder is on (the default only suits the embedded demo)',
  },
  {
    name: 'OPENRTB_SECRET',
    default: '(random)',
    description:
      'OpenRTB: the secret sealing bid ids (16 characters or more); unset: random per process, so notices only work on the process that bid and not after a restart',
  },
  {
    name: 'OPENRTB_BID_TTL_MS',
    default: '3600000',
    description: 'OpenRTB: how long after a bid its win and billing notices are accepted',
  },
  {
    name: 'OPENRTB_TCF_VENDOR_ID',
    default: '(none)',
    description:
      "OpenRTB: this bidder's id in the IAB Global Vendor List; GDPR requests use personal data only when their TCF consent names it. Unset: GDPR requests are decided on context alone",
  },
  {
    name: 'OPENRTB_RATES_FILE',
    default: '(none)',
    description:
      'OpenRTB: a JSON file of currency rates, `{"date": "2026-11-27", "base": "USD", "rates": {"EUR": 0.92}}`, stored for the fleet when the store has no table yet (PUT /v1/openrtb/rates replaces it). Without rates, floors and bids in different currencies do not meet',
  },
  {
    name: 'OPENRTB_BID_IDS',
    default: 'xchacha20',
    description:
      'OpenRTB: the form of the bid ids issued, `xchacha20` or `aes-ctr` (the only form earlier releases read). Every form is read. Set `aes-ctr` while a fleet is upgraded from such a release, so that instances not yet upgraded can read the notices of upgraded ones; unset it once all are',
  },
  {
    name: 'OPENRTB_TCF_PURPOSES',
    default: '1,3,4',
    description:
      'OpenRTB: the TCF purposes a GDPR request must have consent for before personal data is used (1 store and access, 3 build an ad profile, 4 select personalised ads)',
  },
];

export class ConfigError extends Error {}

/** TCF purposes, `1,3,4`: distinct whole numbers from 1 to 24 (the TCF's purpose bits). */
function purposes(raw: string | undefined, problems: string[]): number[] {
  if (raw === undefined || raw.trim() === '') return [1, 3, 4];
  const list = raw.split(',').map((p) => p.trim());
  const ok = list.every((p) => /^\d+$/.test(p) && Number(p) >= 1 && Number(p) <= 24);
  if (!ok || new Set(list).size !== list.length) {
    problems.push(
      `OPENRTB_TCF_PURPOSES=${JSON.stringify(raw)}: expected distinct purpose numbers 1-24, e.g. 1,3,4`,
    );
    return [1, 3, 4];
  }
  return list.map(Number);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const waitRaw = (env.REDIS_WAIT_REPLICAS ?? '').trim();
  let redisWaitReplicas: number | 'auto' = 'auto';
  if (waitRaw !== '' && waitRaw !== 'auto') {
    if (/^\d{1,2}$/.test(waitRaw)) redisWaitReplicas = Number(waitRaw);
    else
      problems.push(`REDIS_WAIT_REPLICAS=${JSON.stringify(waitRaw)}: expected auto or a number of replicas`);
  }
  const config: Config = {
    host: env.HOST === undefined || env.HOST === '' ? '0.0.0.0' : env.HOST,
    port: int('PORT', 8080, 0, 65535),
    adminPort: int('ADMIN_PORT', 8081, 0, 65535),
    adminBodyTimeoutMs: int('ADMIN_BODY_TIMEOUT_MS', 10_000, 100, 3_600_000),
    adminHeadersTimeoutMs: int('ADMIN_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
    adminMaxConnections: int('ADMIN_MAX_CONNECTIONS', 256, 1, 1_000_000),
    adminMaxConnectionsPerClient: int('ADMIN_MAX_CONNECTIONS_PER_CLIENT', 32, 1, 1_000_000),
    redis: redisTopology(env, problems),
    redisKeyPrefix: env.REDIS_KEY_PREFIX ?? '',
    redisWaitReplicas,
    redisWaitTimeoutMs: int('REDIS_WAIT_TIMEOUT_MS', 500, 1, 60_000),
    redisLeanReads: bool('REDIS_LEAN_READS', env.REDIS_LEAN_READS, true, problems),
    dictionarySweepMs: int('DICTIONARY_SWEEP_MS', 600_000, 0, 86_400_000),
    eventDedupeMs: int('EVENT_DEDUPE_MS', DEFAULT_EVENT_DEDUPE_MS, 3_600_000, 400 * 86_400_000),
    measureRetentionMs: int('MEASURE_RETENTION_DAYS', 400, 90, 3660) * 86_400_000,
    measureFlushMs: int('MEASURE_FLUSH_MS', 1000, 50, 60_000),
    budgetLeaseMs: int('BUDGET_LEASE_MS', 1000, 100, 10_000),
    budgetSettleMs: int('BUDGET_SETTLE_MS', 120_000, 10_000, 3_600_000),
    rulesetCheckTimeoutMs: int('RULESET_CHECK_TIMEOUT_MS', 30_000, 1000, 600_000),
    workers: int('WORKERS', Math.min(64, availableParallelism()), 1, 64),
    rulesetFile: env.RULESET_FILE === undefined || env.RULESET_FILE === '' ? DEMO_RULESET : env.RULESET_FILE,
    deadlineMs: int('DECISION_DEADLINE_MS', 10, 1, 60_000),
    maxBodyBytes: int('MAX_BODY_BYTES', 65_536, 1024, 16 * 1024 * 1024),
    cacheMaxPeople: int('CACHE_MAX_PEOPLE', 100_000, 1, 100_000_000),
    cacheMaxAliases: int('CACHE_MAX_ALIASES', 100_000, 1, 100_000_000),
    cacheTtlMs: int('CACHE_TTL_MS', 2000, 1, 3_600_000),
    cacheAdmitAfter: int('CACHE_ADMIT_AFTER', 2, 1, 100),
    demoPeople: int('DEMO_PEOPLE', 10_000, 0, 10_000_000),
    drainDelayMs: int('DRAIN_DELAY_MS', 0, 0, 600_000),
    drainTimeoutMs: int('DRAIN_TIMEOUT_MS', 10_000, 0, 600_000),
    tokens: loadTokens(env, problems),
    allowOpenControlPlane: bool('ALLOW_OPEN_CONTROL_PLANE', env.ALLOW_OPEN_CONTROL_PLANE, false, problems),
    logLevel: logLevel(env.LOG_LEVEL, problems),
    logDecisionsSample: share('LOG_DECISIONS_SAMPLE', env.LOG_DECISIONS_SAMPLE, problems),
    openrtb: {
      enabled: bool('OPENRTB_BIDDER', env.OPENRTB_BIDDER, true, problems),
      noticeUrlConfigured: false,
      marginMs: int('OPENRTB_MARGIN_MS', 20, 0, 10_000),
      seat: env.OPENRTB_SEAT === undefined || env.OPENRTB_SEAT === '' ? 'mindshare' : env.OPENRTB_SEAT,
      noticeUrl: '',
      secret: '',
      secretConfigured: false,
      bidTtlMs: int('OPENRTB_BID_TTL_MS', 3_600_000, 1000, 7 * 86_400_000),
      tcfVendorId: env.OPENRTB_TCF_VENDOR_ID ? int('OPENRTB_TCF_VENDOR_ID', 0, 1, 65_535) : null,
      tcfPurposes: purposes(env.OPENRTB_TCF_PURPOSES, problems),
      ratesFile: env.OPENRTB_RATES_FILE ? env.OPENRTB_RATES_FILE : undefined,
      bidIdForm: bidIdForm(env.OPENRTB_BID_IDS, problems),
    },
  };
  const o = config.openrtb;
  const noticeUrl = env.OPENRTB_NOTICE_URL;
  if (noticeUrl === undefined || noticeUrl === '') o.noticeUrl = `http://localhost:${config.port}`;
  else if (!/^https?:\/\/[^\s?#]+$/.test(noticeUrl))
    problems.push(`OPENRTB_NOTICE_URL=${JSON.stringify(noticeUrl)}: expected http(s)://host[:port][/path]`);
  else {
    o.noticeUrl = noticeUrl.replace(/\/+$/, '');
    o.noticeUrlConfigured = true;
  }
  const secret = env.OPENRTB_SECRET;
  if (secret === undefined || secret === '') o.secret = randomBytes(32).toString('hex');
  else if (secret.length < MIN_SECRET)
    problems.push(`OPENRTB_SECRET: must have at least ${MIN_SECRET} characters`);
  else {
    o.secret = secret;
    o.secretConfigured = true;
  }
  if (config.openrtb.bidTtlMs > config.eventDedupeMs) {
    problems.push(
      `OPENRTB_BID_TTL_MS (${config.openrtb.bidTtlMs}) is longer than EVENT_DEDUPE_MS (${config.eventDedupeMs}): a notice sent again after its id was forgotten would count twice`,
    );
  }
  if (config.port !== 0 && config.port === config.adminPort) {
    problems.push(`PORT and ADMIN_PORT are both ${config.port}: the two listeners need different ports`);
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  return config;
}

function logLevel(raw: string | undefined, problems: string[]): LogLevel {
  if (raw === undefined || raw === '') return 'info';
  const level = raw.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  problems.push(`LOG_LEVEL=${JSON.stringify(raw)}: expected one of ${LOG_LEVELS.join(', ')}`);
  return 'info';
}

function bidIdForm(raw: string | undefined, problems: string[]): BidIdForm {
  if (raw === undefined || raw.trim() === '') return 'xchacha20';
  const form = raw.trim().toLowerCase();
  if ((BID_ID_FORMS as readonly string[]).includes(form)) return form as BidIdForm;
  problems.push(`OPENRTB_BID_IDS=${JSON.stringify(raw)}: expected one of ${BID_ID_FORMS.join(', ')}`);
  return 'xchacha20';
}

/** `true` or `false` (also 1 and 0). */
function bool(name: string, raw: string | undefined, fallback: boolean, problems: string[]): boolean {
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  problems.push(`${name}=${JSON.stringify(raw)}: expected true or false`);
  return fallback;
}

/** A number from 0 to 1. */
function share(name: string, raw: string | undefined, problems: string[]): number {
  if (raw === undefined || raw === '') return 0;
  const n = Number(raw);
  if (!/^\s*(?:\d+(?:\.\d*)?|\.\d+)\s*$/.test(raw) || !(n >= 0 && n <= 1)) {
    problems.push(`${name}=${JSON.stringify(raw)}: expected a number from 0 to 1`);
    return 0;
  }
  return n;
}

const SCOPE_SET: ReadonlySet<string> = new Set(SCOPES);
const TOKEN_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const MIN_SECRET = 16;

/** Tokens from TOKENS and TOKENS_FILE; problems name the variable and the token, never a secret. */
function loadTokens(env: NodeJS.ProcessEnv, problems: string[]): ConfiguredToken[] {
  const tokens: ConfiguredToken[] = [];
  const add = (where: string, name: unknown, secret: unknown, scopes: unknown): void => {
    if (typeof name !== 'string' || !TOKEN_NAME.test(name)) {
      problems.push(`${where}: a token name is 1 to 64 letters, digits, dots, dashes or underscores`);
      return;
    }
    if (typeof secret !== 'string' || secret.length < MIN_SECRET || /[\s,:]/.test(secret)) {
      problems.push(
        `${where}: the secret of token "${name}" must have at least ${MIN_SECRET} characters, no spaces, commas or colons`,
      );
      return;
    }
    const list = Array.isArray(scopes) ? scopes : [];
    const bad = list.filter((x) => typeof x !== 'string' || !SCOPE_SET.has(x));
    if (list.length === 0 || bad.length > 0) {
      problems.push(
        `${where}: token "${name}" needs scopes from ${SCOPES.join(', ')}${bad.length > 0 ? `; unknown: ${bad.map(String).join(', ')}` : ''}`,
      );
      return;
    }
    if (tokens.some((t) => t.name === name)) {
      problems.push(`${where}: two tokens are named "${name}"`);
      return;
    }
    if (tokens.some((t) => t.secret === secret)) {
      problems.push(`${where}: token "${name}" has the same secret as another token`);
      return;
    }
    tokens.push({ name, secret, scopes: list as Scope[] });
  };
  const inline = env.TOKENS ?? '';
  for (const [i, entry] of inline
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
    .entries()) {
    // name:secret:scopes, where scopes (`rules:read+events:write`) may hold colons themselves.
    const first = entry.indexOf(':');
    const second = first < 0 ? -1 : entry.indexOf(':', first + 1);
    if (second < 0) {
      problems.push(`TOKENS: entry ${i + 1} is not name:secret:scope+scope`);
      continue;
    }
    add('TOKENS', entry.slice(0, first), entry.slice(first + 1, second), entry.slice(second + 1).split('+'));
  }
  const file = env.TOKENS_FILE ?? '';
  if (file !== '') {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      problems.push(`TOKENS_FILE=${JSON.stringify(file)}: cannot read it as JSON (${(e as Error).message})`);
      return tokens;
    }
    if (!Array.isArray(data)) {
      problems.push(`TOKENS_FILE=${JSON.stringify(file)}: expected a JSON array of {name, token, scopes}`);
      return tokens;
    }
    for (const [i, t] of data.entries()) {
      const o = (t !== null && typeof t === 'object' ? t : {}) as Record<string, unknown>;
      add(`TOKENS_FILE[${i}]`, o.name, o.token, o.scopes);
    }
  }
  return tokens;
}

/** A connection URL with any password replaced, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/** Where the Redis of a topology is, for logs and messages (no secrets). */
export function describeRedis(topology: RedisTopology): string {
  switch (topology.kind) {
    case 'single':
      return `Redis at ${redactUrl(topology.url)}`;
    case 'cluster':
      return `Redis Cluster through ${topology.nodes.join(', ')}`;
    case 'sentinel':
      return `Redis Sentinel master "${topology.master}" through ${topology.sentinels.join(', ')}`;
  }
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;

/** The Redis deployment the environment names (at most one of the three), or undefined. */
function redisTopology(env: NodeJS.ProcessEnv, problems: string[]): RedisTopology | undefined {
  const value = (name: string) => {
    const raw = (env[name] ?? '').trim();
    return raw === '' ? undefined : raw;
  };
  const url = value('REDIS_URL');
  const cluster = value('REDIS_CLUSTER_NODES');
  const sentinels = value('REDIS_SENTINELS');
  if (url !== undefined && !/^rediss?:\/\/[^\s]*$/.test(url)) {
    problems.push(`REDIS_URL=${JSON.stringify(url)}: expected redis://host:port or rediss://...`);
    return undefined;
  }
  if (cluster !== undefined && sentinels !== undefined) {
    problems.push('REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: name one way to reach Redis');
    return undefined;
  }
  if (cluster !== undefined) {
    if (url !== undefined) {
      problems.push(
        "REDIS_URL and REDIS_CLUSTER_NODES are both set: give the cluster's credentials as a redis://user:password@host:port entry of REDIS_CLUSTER_NODES",
      );
      return undefined;
    }
    const nodes: string[] = [];
    let auth = 'redis://localhost';
    for (const entry of cluster
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e !== '')) {
      if (/^rediss?:\/\//.test(entry)) {
        let parsed: URL;
        try {
          parsed = new URL(entry);
        } catch {
          problems.push(`REDIS_CLUSTER_NODES: ${JSON.stringify(redactUrl(entry))} is not a URL`);
          continue;
        }
        if (auth === 'redis://localhost') auth = entry;
        nodes.push(`${parsed.hostname}:${parsed.port === '' ? 6379 : parsed.port}`);
      } else if (HOST_PORT.test(entry)) nodes.push(entry);
      else problems.push(`REDIS_CLUSTER_NODES: ${JSON.stringify(entry)} is not host:port`);
    }
    if (nodes.length === 0) problems.push('REDIS_CLUSTER_NODES: name at least one node, host:port');
    return { kind: 'cluster', nodes, url: auth };
  }
  if (sentinels !== undefined) {
    const list = sentinels
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e !== '');
    for (const s of list)
      if (!HOST_PORT.test(s)) problems.push(`REDIS_SENTINELS: ${JSON.stringify(s)} is not host:port`);
    const master = value('REDIS_SENTINEL_MASTER');
    if (master === undefined)
      problems.push("REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER (the master's name)");
    const topology: RedisTopology = {
      kind: 'sentinel',
      sentinels: list,
      master: master ?? '',
      url: url ?? 'redis://localhost',
    };
    const password = value('REDIS_SENTINEL_PASSWORD');
    if (password !== undefined) topology.sentinelPassword = password;
    return topology;
  }
  return url === undefined ? undefined : { kind: 'single', url };
}
