/**
 * What the control plane's route modules share: the dependencies, the context handed to each
 * module, and the shape of a checked request.
 */
import type { Context } from 'hono';
import type { BudgetGate } from '../decision/budgets.js';
import type { ActiveRuleSet } from '../decision/service.js';
import type { CurrencyRates } from '../openrtb/rates.js';
import type { ApiToken } from '../scopes.js';
import type {
  BudgetStore,
  EventStore,
  MeasureStore,
  ProfileStore,
  RuleSetStore,
  SampleStore,
} from '../store/types.js';
import type { Caller } from './auth.js';

export interface ControlDeps {
  /** Profiles and events; writes through it are announced to the fleet by the store (CachedStore). */
  profiles: ProfileStore & EventStore & MeasureStore & SampleStore & BudgetStore;
  /** This thread's budget gate: what events deliver is reported through it (absent: not counted). */
  budgets?: BudgetGate;
  rulesets: RuleSetStore;
  tokens: ApiToken[];
  /** The rule set this instance decides with now. */
  active: () => ActiveRuleSet;
  /** The OpenRTB bidder's currency rates (absent: GET and PUT /v1/openrtb/rates answer 404). */
  rates?: Pick<CurrencyRates, 'current' | 'replace'>;
  now?: () => number;
  /** Largest JSON body, bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Largest rule set (upload, validate, or a draft in a preview), bytes. Default 8 MiB. */
  maxRuleSetBytes?: number;
  /** Largest NDJSON import, bytes. Default 4 GiB. */
  maxImportBytes?: number;
  /** Profiles written per store call during an import. Default 500. */
  importBatch?: number;
  /**
   * The longest a request body may take to arrive, ms (408 after it); for an NDJSON import, the
   * longest it may send nothing. Default 10 s.
   */
  bodyTimeoutMs?: number;
  /** The longest a rule set may take to check (RULESET_CHECK_TIMEOUT_MS). Default 30 s. */
  rulesetCheckTimeoutMs?: number;
  /**
   * Without tokens, whether the API answers clients on other machines too. Default false: only
   * loopback clients (probes, metrics and the OpenAPI document answer everyone).
   */
  allowOpen?: boolean;
  /**
   * How long the store remembers an event id (EVENT_DEDUPE_MS): events dated further back are
   * refused, since one sent again could not be told from the first. Default 7 days.
   */
  eventDedupeMs?: number;
  /** How long delivery and lift counts are kept (MEASURE_RETENTION_DAYS), ms. Default 400 days. */
  measureRetentionMs?: number;
  log?: (line: string) => void;
}

/** What route modules get: the dependencies with defaults filled in, and helpers. */
export interface ControlContext {
  readonly deps: ControlDeps;
  readonly now: () => number;
  readonly log: (line: string) => void;
  readonly importBatch: number;
  readonly maxImportBytes: number;
  readonly bodyTimeoutMs: number;
  readonly rulesetCheckTimeoutMs: number;
  /** Runs a store call; a failure becomes 503 store_unavailable (and is logged). */
  storeCall<T>(what: string, call: () => Promise<T>): Promise<T>;
}

/** A checked request, as route handlers see it. */
export interface RouteRequest<B> {
  c: Context;
  caller: Caller;
  body: B;
  /** The raw body stream, for `ndjson` routes. */
  stream: ReadableStream<Uint8Array> | null;
  /** For `ruleset` bodies: the format the media type names, or undefined to detect it. */
  format: 'yaml' | 'json' | undefined;
}

export type RouteHandler<B> = (req: RouteRequest<B>) => Response | Promise<Response>;

export type Register = <B = unknown>(id: string, handler: RouteHandler<B>) => void;
