/**
 * The control plane's routes as the console calls them: same origin, the session cookie, and
 * the session's CSRF token on every change. An error answer becomes an ApiError carrying the
 * API's code, message, path and (for rule sets) every error with its line and column.
 */
import type { RuleSetDiff } from '../../rules/diff';
import type { CampaignExplanation, Placement, RuleError } from '../../rules/types';

// The rule language's own types (type-only: nothing of it is bundled).
export type { CampaignExplanation, Placement, RuleError };

/** The diff routes' answer: the semantic diff, its two sides and the text diff. */
export interface RuleSetDiffAnswer extends RuleSetDiff {
  from: { version: number | null; checksum: string };
  to: { version: number | null; checksum: string };
  text: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly path?: string,
    readonly errors: RuleError[] = [],
  ) {
    super(message);
  }
}

export interface Session {
  name: string;
  scopes: string[];
  csrf: string;
  open: boolean;
  expiresAt: string | null;
}

let csrf = '';
/** Called with a 401 from any route (the session ended): the app shows the sign-in again. */
let onSignedOut: () => void = () => {};

export function bindSession(session: Session | null, signedOut: () => void): void {
  csrf = session?.csrf ?? '';
  onSignedOut = signedOut;
}

export interface CallOptions {
  method?: string;
  /** JSON (an object) or rule-set text (a string, sent as YAML unless `type` says). */
  body?: unknown;
  type?: string;
  signal?: AbortSignal;
}

async function errorOf(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON: the status says enough.
  }
  const e = (body as { error?: { code?: string; message?: string; path?: string } } | null)?.error;
  const errors = (body as { errors?: RuleError[] } | null)?.errors ?? [];
  return new ApiError(
    res.status,
    e?.code ?? `http_${res.status}`,
    e?.message ?? res.statusText ?? 'The server answered with an error',
    e?.path,
    Array.isArray(errors) ? errors : [],
  );
}

/** Calls a route; resolves with the answer (JSON, or text for a rule-set source). */
export async function call<T>(path: string, opts: CallOptions = {}): Promise<T> {
  const method = opts.method ?? (opts.body === undefined ? 'GET' : 'POST');
  const headers: Record<string, string> = { accept: 'application/json' };
  let body: string | undefined;
  if (opts.body !== undefined) {
    if (typeof opts.body === 'string') {
      body = opts.body;
      headers['content-type'] = opts.type ?? 'application/yaml';
    } else {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
  }
  if (method !== 'GET' && csrf !== '') headers['x-csrf-token'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body === undefined ? {} : { body }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', `The server did not answer: ${(e as Error).message}`);
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && !path.startsWith('/console/session')) onSignedOut();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  // A rule set's source (YAML or JSON) is kept as text; other answers are JSON.
  if (res.headers.get('x-ruleset-version') !== null) return (await res.text()) as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

/** A rule-set source's media type. */
export const sourceType = (text: string) =>
  /^\s*\{/.test(text.replace(/^\uFEFF/, '')) ? 'application/json' : 'application/yaml';

// The answers the console reads (the OpenAPI document at /openapi.json has them in full).

export interface VersionMeta {
  version: number;
  checksum: string;
  format: 'yaml' | 'json';
  createdBy: string;
  createdAt: string;
  bytes: number;
  activatedAt?: string;
  activatedBy?: string;
  active: boolean;
}

export interface Activation {
  version: number;
  by: string;
  at: string;
  rollback: boolean;
}

export interface VersionList {
  active: number | null;
  serving: number;
  versions: VersionMeta[];
  activations: Activation[];
  rollbackTo: number | null;
}

export interface Decision {
  placement: string;
  campaign: string | null;
  creative?: string;
  brand?: string;
  segment?: string;
  stage?: string;
  sellingPoints?: string[];
  message?: string;
  channel?: string;
  sendAt?: string;
}

export interface PreviewAnswer {
  ruleset: number | string;
  user: string;
  known: boolean;
  at: string;
  decisions: Decision[];
  ghosts: { placement: string; campaign: string; creative: string; channel?: string }[];
  explain?: { segments: string[]; campaigns: CampaignExplanation[] };
}

export interface WhatIfAnswer {
  exact: boolean;
  partial: boolean;
  sample: { people: number; population: number };
  decisions: number;
  changed: number;
  fill: { before: number; after: number };
  campaigns: { campaign: string; before: number; after: number; gained: number; lost: number }[];
  changes: {
    placement: string;
    from: { campaign: string; creative: string } | null;
    to: { campaign: string; creative: string } | null;
    decisions: number;
    examples?: string[];
  }[];
  elapsedMs: number;
}

export interface FunnelAnswer {
  brand: string;
  timezone: string;
  days: number;
  from: string;
  to: string;
  stages: { stage: string; people: number; onLadder: boolean }[];
  flow: { from: string; to: string; moved: number; rate: number | null }[];
  daily: { day: string; moves: Record<string, number> }[];
}

export interface DeliveryCounts {
  decisions: number;
  ghosts: number;
  impressions: number;
  clicks: number;
  conversions: number;
  purchases: number;
  spend: Record<string, number>;
}

export interface DeliveryAnswer {
  campaign: string;
  timezone: string;
  from: string;
  to: string;
  totals: DeliveryCounts;
  daily: (DeliveryCounts & { day: string })[];
}

export interface OutcomeLift {
  treatment: { people: number; converted: number; rate: number | null };
  control: { people: number; converted: number; rate: number | null };
  absolute: number | null;
  relative: number | null;
  interval: { level: number; low: number; high: number } | null;
  pValue: number | null;
  minimumDetectableEffect: number | null;
}

export interface LiftAnswer {
  campaign: string;
  holdout: number;
  arms: Record<
    'treatment' | 'control',
    { people: number; exposures: number; conversions: number; purchases: number }
  >;
  conversions: OutcomeLift;
  purchases: OutcomeLift;
}

/** GET /v1/campaigns/{id}/budget (server/contracts/schemas.ts budgetResponseSchema). */
export interface BudgetAnswer {
  campaign: string;
  currency: string;
  lines: BudgetLine[];
}

export interface BudgetLine {
  creative: string | null;
  unit: 'impressions' | 'clicks' | 'spend';
  pacing: 'even' | 'asap';
  daily: number | null;
  total: number | null;
  today: {
    day: string;
    spent: number;
    committed: number;
    limit: number | null;
    target: number | null;
    pace: number | null;
    opportunities: number[];
  };
  spentInAll: number;
  remaining: number | null;
  status: 'spent' | 'behind' | 'on_pace' | 'ahead' | 'unpaced';
  shape: number[];
}

export interface AudienceAnswer {
  exact: boolean;
  partial: boolean;
  interval: string;
  sample: { people: number; population: number };
  elapsedMs: number;
  segments: { segment: string; people: number; low: number; high: number }[];
}
