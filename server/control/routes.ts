/**
 * The route table of the control plane: method, path, scope, request and answer schemas and
 * status codes of every route. The app registers its routes from it (server/control/app.ts:
 * auth, media types, size limits and validation come from the entry), and GET /openapi.json is
 * built from it (server/control/openapi.ts), so the document describes exactly what is served.
 * The data plane's POST /v1/decide and the admin listener's health routes are listed too, for
 * documentation.
 */

import {
  aliasesSchema,
  audienceRequestSchema,
  audienceResponseSchema,
  budgetResponseSchema,
  decideRequestSchema,
  decideResponseSchema,
  deliveryResponseSchema,
  eventsRequestSchema,
  eventsResponseSchema,
  funnelResponseSchema,
  importLineSchema,
  importResponseSchema,
  type JsonSchema,
  LIMITS,
  liftResponseSchema,
  previewRequestSchema,
  previewResponseSchema,
  profilePatchSchema,
  profileSchema,
  ratesSchema,
  ruleSetMetaSchema,
  whatIfRequestSchema,
  whatIfResponseSchema,
} from '../contracts/schemas.js';
import type { ErrorCode } from '../errors.js';
import type { Scope } from '../scopes.js';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** How a route takes its body. */
export type BodyKind =
  /** JSON, checked against `schema` (or by the handler when `checkedBy: 'handler'`). */
  | 'json'
  /** Rule-set text: YAML or JSON, validated by the rule-set parser. */
  | 'ruleset'
  /** Newline-delimited JSON, streamed to the handler. */
  | 'ndjson';

export interface ParamSpec {
  name: string;
  in: 'path' | 'query';
  description: string;
  schema: JsonSchema;
  required?: boolean;
  /** A Hono path pattern for the parameter (`[0-9]+`). */
  pattern?: string;
}

export interface ResponseSpec {
  description: string;
  schema?: JsonSchema;
  /** Default application/json. */
  contentTypes?: string[];
  headers?: Record<string, string>;
}

export interface RouteSpec {
  id: string;
  method: Method;
  /** OpenAPI style: `/v1/rulesets/{version}`. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  /** The scope a token needs; null for a public route. */
  scope: Scope | null;
  /** Which listener serves it: this app, the admin app it is mounted in, or the data plane. */
  servedBy: 'control' | 'admin' | 'data';
  params?: ParamSpec[];
  body?: {
    kind: BodyKind;
    contentTypes: string[];
    schema?: JsonSchema;
    description?: string;
    /** `handler`: the handler checks the parsed JSON itself (several accepted shapes). */
    checkedBy?: 'schema' | 'handler';
    /** Which limit applies: the JSON one, the rule-set one, or the import one. */
    limit?: 'json' | 'ruleset' | 'import';
  };
  responses: Record<number, ResponseSpec>;
  /** Error codes the route can answer, beyond those implied by auth and the body. */
  errors?: ErrorCode[];
}

export const JSON_TYPES = ['application/json'];
export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];
export const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl'];

const versionParam: ParamSpec = {
  name: 'version',
  in: 'path',
  description: 'A stored rule-set version',
  schema: { type: 'integer', minimum: 1 },
  required: true,
  pattern: '[0-9]+',
};
/** `?ifActive=N`: a change made only while version N is the active one. */
const ifActiveParam = (description: string): ParamSpec => ({
  name: 'ifActive',
  in: 'query',
  description,
  schema: { type: 'integer', minimum: 1 },
});
const campaignIdParam: ParamSpec = {
  name: 'id',
  in: 'path',
  description: 'The campaign id',
  schema: { type: 'string', minLength: 1, maxLength: LIMITS.idLength },
  required: true,
};
const profileIdParam: ParamSpec = {
  name: 'id',
  in: 'path',
  description: 'The person id',
  schema: { type: 'string', minLength: 1, maxLength: LIMITS.idLength },
  required: true,
};

const ruleSetUpload = {
  kind: 'ruleset' as const,
  contentTypes: [...YAML_TYPES, 'application/json'],
  schema: { type: 'string', description: 'Rule-set text (rules/ruleset.schema.json)' },
  description: 'The rule set as YAML or JSON; see docs/rules.md',
  limit: 'ruleset' as const,
};

/** What a valid rule set probably did not mean (rules/warnings.ts): never a refusal. */
const ruleWarnings: JsonSchema = {
  type: 'array',
  description:
    'Parts of a valid rule set that can never take effect (unused_segment, unused_selling_points, unillustrated_selling_point, flight_ended, stage_without_creative); never a refusal',
  items: {
    type: 'object',
    required: ['code', 'path', 'message'],
    properties: {
      code: { type: 'string' },
      path: { type: 'string' },
      message: { type: 'string' },
      line: { type: 'integer' },
      column: { type: 'integer' },
    },
  },
};

const activationSchema: JsonSchema = {
  type: 'object',
  required: ['version', 'by', 'at', 'rollback'],
  properties: {
    version: { type: 'integer' },
    by: { type: 'string' },
    at: { type: 'string', format: 'date-time' },
    rollback: { type: 'boolean' },
  },
};

const ids: JsonSchema = { type: 'array', items: { type: 'string' } };
const changedEntity: JsonSchema = {
  type: 'object',
  required: ['id', 'fields'],
  properties: { id: { type: 'string' }, fields: ids },
};
const entityDiff = (changed: JsonSchema): JsonSchema => ({
  type: 'object',
  required: ['added', 'removed', 'changed'],
  properties: { added: ids, removed: ids, changed: { type: 'array', items: changed } },
});
const sideSchema: JsonSchema = {
  type: 'object',
  required: ['version', 'checksum'],
  properties: {
    version: { type: ['integer', 'null'], description: 'null: the draft' },
    checksum: { type: 'string' },
  },
};
const ruleSetDiffSchema: JsonSchema = {
  type: 'object',
  required: ['from', 'to', 'changed', 'segments', 'campaigns', 'fields', 'text'],
  properties: {
    from: sideSchema,
    to: sideSchema,
    changed: {
      type: 'boolean',
      description: 'False when the two mean the same (key order, style and comments aside)',
    },
    segments: entityDiff(changedEntity),
    campaigns: entityDiff({
      type: 'object',
      required: ['id', 'fields'],
      properties: { id: { type: 'string' }, fields: ids, creatives: entityDiff(changedEntity) },
    }),
    fields: {
      ...ids,
      description: 'Other top-level fields that changed (`funnel`, `scoring`, `campaigns (order)`, …)',
    },
    text: { type: ['string', 'null'], description: 'Unified diff of the two sources; null when too costly' },
  },
};

/** A stored rule set's text, as the two read routes answer it. */
const ruleSetSource: ResponseSpec = {
  description: 'The source, with its media type',
  contentTypes: ['application/yaml', 'application/json'],
  schema: { type: 'string' },
  headers: { 'x-ruleset-version': 'The version', etag: 'The checksum' },
};

const ok = (description: string, schema?: JsonSchema): ResponseSpec =>
  schema === undefined ? { description } : { description, schema };

export const ROUTES: readonly RouteSpec[] = [
  {
    id: 'uploadRuleSet',
    method: 'post',
    path: '/v1/rulesets',
    tag: 'rule sets',
    summary: 'Upload a rule set (optionally activating it)',
    description:
      'Validates the rule set and stores it as a new version. Invalid: 422 with every error, and nothing is stored. With `?activate=true` the new version becomes active on every instance.',
    scope: 'rules:write',
    servedBy: 'control',
    params: [
      {
        name: 'activate',
        in: 'query',
        description: 'Activate the new version too',
        schema: { type: 'boolean', default: false },
      },
      ifActiveParam(
        'With activate: activate only while this version is the active one (409 ruleset_conflict otherwise; the new version stays stored)',
      ),
    ],
    body: ruleSetUpload,
    responses: {
      201: ok('Stored', {
        type: 'object',
        required: ['version', 'checksum', 'active'],
        properties: {
          version: { type: 'integer' },
          checksum: { type: 'string' },
          active: { type: 'boolean' },
          activatedAt: { type: 'string', format: 'date-time' },
          warnings: ruleWarnings,
        },
      }),
    },
    errors: ['invalid_ruleset', 'ruleset_conflict', 'store_unavailable'],
  },
  {
    id: 'validateRuleSet',
    method: 'post',
    path: '/v1/rulesets/validate',
    tag: 'rule sets',
    summary: 'Validate a rule set without storing it',
    scope: 'rules:write',
    servedBy: 'control',
    body: ruleSetUpload,
    responses: {
      200: ok('Valid', {
        type: 'object',
        required: ['valid'],
        properties: {
          valid: { const: true },
          checksum: { type: 'string' },
          segments: { type: 'integer' },
          campaigns: { type: 'integer' },
          funnel: { type: 'array', items: { type: 'string' } },
          warnings: ruleWarnings,
        },
      }),
    },
    errors: ['invalid_ruleset'],
  },
  {
    id: 'listRuleSets',
    method: 'get',
    path: '/v1/rulesets',
    tag: 'rule sets',
    summary: 'Stored versions, newest first',
    scope: 'rules:read',
    servedBy: 'control',
    responses: {
      200: ok('Versions', {
        type: 'object',
        required: ['active', 'serving', 'versions'],
        properties: {
          active: { type: ['integer', 'null'], description: 'The active version in the store' },
          serving: { type: 'integer', description: 'The version this instance decides with' },
          versions: { type: 'array', items: ruleSetMetaSchema },
          activations: {
            type: 'array',
            description: 'The latest 50 activations, newest first',
            items: activationSchema,
          },
          rollbackTo: {
            type: ['integer', 'null'],
            description: 'The version POST /v1/rulesets/rollback would activate (null: none)',
          },
        },
      }),
    },
    errors: ['store_unavailable'],
  },
  {
    id: 'diffRuleSets',
    method: 'get',
    path: '/v1/rulesets/diff',
    tag: 'rule sets',
    summary: 'What changes between two stored versions',
    description:
      'Segments, campaigns and creatives added, removed and changed (with the fields that changed), the other parts of the rule set that changed, and the unified text diff of the two sources (null when it would take longer than 2 s to compute).',
    scope: 'rules:read',
    servedBy: 'control',
    params: [
      {
        name: 'from',
        in: 'query',
        description: 'A version, or `active` (the default)',
        schema: { type: 'string', default: 'active' },
      },
      {
        name: 'to',
        in: 'query',
        description: 'A version, or `active` (the default)',
        schema: { type: 'string', default: 'active' },
      },
    ],
    responses: { 200: ok('The difference', ruleSetDiffSchema) },
    errors: ['ruleset_not_found', 'invalid_ruleset', 'store_unavailable'],
  },
  {
    id: 'diffDraft',
    method: 'post',
    path: '/v1/rulesets/diff',
    tag: 'rule sets',
    summary: 'What a draft would change against a stored version',
    description:
      'The same answer as GET /v1/rulesets/diff, from a stored version (`against`, default the active one) to the rule set in the body (validated first: 422 with every error). Nothing is stored.',
    scope: 'rules:read',
    servedBy: 'control',
    params: [
      {
        name: 'against',
        in: 'query',
        description: 'A version, or `active` (the default)',
        schema: { type: 'string', default: 'active' },
      },
    ],
    body: ruleSetUpload,
    responses: { 200: ok('The difference', ruleSetDiffSchema) },
    errors: ['ruleset_not_found', 'invalid_ruleset', 'store_unavailable'],
  },
  {
    id: 'rollbackRuleSet',
    method: 'post',
    path: '/v1/rulesets/rollback',
    tag: 'rule sets',
    summary: 'Go back to the version active before the current one',
    description:
      'Replays the activation log: a roll back undoes the last activation that was not undone yet, so a second roll back goes further back. It takes effect only if the active version did not change meanwhile (409 ruleset_conflict).',
    scope: 'rules:write',
    servedBy: 'control',
    params: [ifActiveParam('Roll back only while this version is the active one')],
    responses: {
      200: ok('Rolled back', {
        type: 'object',
        required: ['version', 'from', 'activatedAt'],
        properties: {
          version: { type: 'integer', description: 'Now active' },
          from: { type: 'integer', description: 'Active before' },
          activatedAt: { type: 'string', format: 'date-time' },
        },
      }),
    },
    errors: [
      'nothing_to_roll_back',
      'ruleset_conflict',
      'ruleset_not_found',
      'invalid_ruleset',
      'store_unavailable',
    ],
  },
  {
    id: 'getActiveRuleSet',
    method: 'get',
    path: '/v1/rulesets/active',
    tag: 'rule sets',
    summary: 'The active rule set, as uploaded',
    scope: 'rules:read',
    servedBy: 'control',
    responses: {
      200: ruleSetSource,
    },
    errors: ['ruleset_not_found', 'store_unavailable'],
  },
  {
    id: 'getRuleSet',
    method: 'get',
    path: '/v1/rulesets/{version}',
    tag: 'rule sets',
    summary: 'One stored version, as uploaded',
    scope: 'rules:read',
    servedBy: 'control',
    params: [versionParam],
    responses: {
      200: ruleSetSource,
    },
    errors: ['ruleset_not_found', 'store_unavailable'],
  },
  {
    id: 'activateRuleSet',
    method: 'post',
    path: '/v1/rulesets/{version}/activate',
    tag: 'rule sets',
    summary: 'Make a version active on every instance (also rollback)',
    description:
      'With `?ifActive=N`, only while version N is the active one (409 ruleset_conflict otherwise): a change confirmed against what was active does not undo another made meanwhile.',
    scope: 'rules:write',
    servedBy: 'control',
    params: [versionParam, ifActiveParam('Activate only while this version is the active one')],
    responses: {
      200: ok('Activated', {
        type: 'object',
        required: ['version', 'activatedAt'],
        properties: { version: { type: 'integer' }, activatedAt: { type: 'string', format: 'date-time' } },
      }),
    },
    errors: ['ruleset_not_found', 'ruleset_conflict', 'store_unavailable'],
  },
  {
    id: 'preview',
    method: 'post',
    path: '/v1/preview',
    tag: 'preview',
    summary: 'A decision with its explanation, against the active rule set or a draft',
    description:
      'For a stored person (`user`) or an inline profile (`profile`). A draft given as `ruleset` is validated (422 with every error) and never stored.',
    scope: 'rules:read',
    servedBy: 'control',
    body: { kind: 'json', contentTypes: JSON_TYPES, schema: previewRequestSchema, limit: 'ruleset' },
    responses: { 200: ok('The decision', previewResponseSchema) },
    errors: ['invalid_ruleset', 'ruleset_not_found', 'store_unavailable'],
  },
  {
    id: 'whatIf',
    method: 'post',
    path: '/v1/rulesets/what-if',
    tag: 'rulesets',
    summary:
      'What a draft would change: the draft and the active rule set decided side by side for a sample of stored people',
    description:
      'How many decisions change (campaign or creative), fill before and after, per campaign what it gains and loses, and the most frequent changes with example person ids (with profiles:read only). The draft is validated (422 with every error) and never stored.',
    scope: 'rules:read',
    servedBy: 'control',
    body: { kind: 'json', contentTypes: JSON_TYPES, schema: whatIfRequestSchema, limit: 'ruleset' },
    responses: { 200: ok('The comparison', whatIfResponseSchema) },
    errors: ['invalid_ruleset', 'store_unavailable'],
  },
  {
    id: 'postAudience',
    method: 'post',
    path: '/v1/audience',
    tag: 'campaigns',
    summary: 'How many stored people a segment (or a draft condition) holds',
    description:
      'Counted on a uniform sample of stored people: exact when the store holds no more than `sample` people, else an estimate with its 95% interval; within `timeoutMs`. `segments: "all"` sizes every segment of the active rule set on one sample. A draft condition is validated as a segment of the active rule set (422 with every error, paths under `when`).',
    scope: 'rules:read',
    servedBy: 'control',
    body: { kind: 'json', contentTypes: JSON_TYPES, schema: audienceRequestSchema },
    responses: { 200: ok('The size', audienceResponseSchema) },
    errors: ['invalid_ruleset', 'store_unavailable'],
  },
  {
    id: 'importProfiles',
    method: 'post',
    path: '/v1/profiles/import',
    tag: 'profiles',
    summary: 'Load profiles in bulk: NDJSON, one profile a line',
    description:
      'Streamed with bounded memory. Each line is a profile with its `id`, optionally with `aliases`. Valid lines are written even when others fail; blank lines are skipped.',
    scope: 'profiles:write',
    servedBy: 'control',
    body: {
      kind: 'ndjson',
      contentTypes: NDJSON_TYPES,
      schema: importLineSchema,
      description: 'One JSON object per line',
      limit: 'import',
    },
    responses: { 200: ok('Counts and per-line errors', importResponseSchema) },
    errors: ['store_unavailable'],
  },
  {
    id: 'putProfile',
    method: 'put',
    path: '/v1/profiles/{id}',
    tag: 'profiles',
    summary: 'Create or replace a profile',
    scope: 'profiles:write',
    servedBy: 'control',
    params: [profileIdParam],
    body: { kind: 'json', contentTypes: JSON_TYPES, schema: profileSchema },
    responses: { 200: ok('Replaced', profileSchema), 201: ok('Created', profileSchema) },
    errors: ['store_unavailable'],
  },
  {
    id: 'getProfile',
    method: 'get',
    path: '/v1/profiles/{id}',
    tag: 'profiles',
    summary: 'A profile and its aliases',
    scope: 'profiles:read',
    servedBy: 'control',
    params: [profileIdParam],
    responses: {
      200: ok('The profile', {
        type: 'object',
        required: ['profile', 'aliases'],
        properties: { profile: profileSchema, aliases: aliasesSchema },
      }),
    },
    errors: ['profile_not_found', 'store_unavailable'],
  },
  {
    id: 'patchProfile',
    method: 'patch',
    path: '/v1/profiles/{id}',
    tag: 'profiles',
    summary: 'Change part of a profile, atomically',
    scope: 'profiles:write',
    servedBy: 'control',
    params: [profileIdParam],
    body: { kind: 'json', contentTypes: JSON_TYPES, schema: profilePatchSchema },
    responses: { 200: ok('The new profile', profileSchema) },
    errors: ['profile_not_found', 'store_unavailable'],
  },
  {
    id: 'deleteProfile',
    method: 'delete',
    path: '/v1/profiles/{id}',
    tag: 'profiles',
    summary: 'Forget a person: profile, aliases and counters',
    scope: 'profiles:write',
    servedBy: 'control',
    params: [profileIdParam],
    responses: { 204: ok('Forgotten') },
    errors: ['profile_not_found', 'store_unavailable'],
  },
  {
    id: 'linkAliases',
    method: 'post',
    path: '/v1/profiles/{id}/aliases',
    tag: 'profiles',
    summary: 'Point aliases at a person',
    description: 'An alias that pointed at someone else moves to this person.',
    scope: 'profiles:write',
    servedBy: 'control',
    params: [profileIdParam],
    body: { kind: 'json', contentTypes: JSON_TYPES, schema: aliasesSchema },
    responses: {
      200: ok('Every alias of the person now', {
        type: 'object',
        required: ['aliases'],
        properties: { aliases: { type: 'object', additionalProperties: { type: 'string' } } },
      }),
    },
    errors: ['store_unavailable'],
  },
  {
    id: 'postEvents',
    method: 'post',
    path: '/v1/events',
    tag: 'events',
    summary: 'Record events: impressions count against caps; clicks, conversions, purchases move stages',
    description: `One event, an array, or \`{events: [...]}\` (at most ${LIMITS.events}). The whole batch is checked first: one invalid event and nothing is applied. Idempotent by \`eventId\`.`,
    scope: 'events:write',
    servedBy: 'control',
    body: {
      kind: 'json',
      contentTypes: JSON_TYPES,
      schema: eventsRequestSchema,
      checkedBy: 'handler',
    },
    responses: { 200: ok('What each event did', eventsResponseSchema) },
    errors: ['store_unavailable'],
  },
  {
    id: 'getFunnel',
    method: 'get',
    path: '/v1/funnels/{brand}',
    tag: 'funnels',
    summary: 'People per stage of a brand, and stage-to-stage flow',
    scope: 'rules:read',
    servedBy: 'control',
    params: [
      { name: 'brand', in: 'path', description: 'The brand', schema: { type: 'string' }, required: true },
      {
        name: 'days',
        in: 'query',
        description: `The window of moves, in days ending today (the brand's time zone: its first campaign's, else UTC); 1 to ${LIMITS.fundays}`,
        schema: { type: 'integer', minimum: 1, maximum: LIMITS.fundays, default: 7 },
      },
    ],
    responses: { 200: ok('Counts and flow', funnelResponseSchema) },
    errors: ['store_unavailable'],
  },
  {
    id: 'getCampaignDelivery',
    method: 'get',
    path: '/v1/campaigns/{id}/delivery',
    tag: 'campaigns',
    summary: 'What a campaign delivered, per day, creative and channel',
    description:
      "Days are the campaign's time zone's. Decisions and ghosts are counted as decided (sent to the store every MEASURE_FLUSH_MS); impressions, clicks, conversions and purchases from events and OpenRTB notices naming the campaign; spend from billing notices. JSON, or CSV with `format=csv` or `Accept: text/csv`.",
    scope: 'rules:read',
    servedBy: 'control',
    params: [
      campaignIdParam,
      {
        name: 'from',
        in: 'query',
        description: 'First day, YYYY-MM-DD; default six days before `to`',
        schema: { type: 'string', format: 'date' },
      },
      {
        name: 'to',
        in: 'query',
        description: `Last day, YYYY-MM-DD; default today. At most ${LIMITS.deliveryDays} days from \`from\`, not before the retention (MEASURE_RETENTION_DAYS)`,
        schema: { type: 'string', format: 'date' },
      },
      {
        name: 'format',
        in: 'query',
        description: 'json (default) or csv',
        schema: { type: 'string', enum: ['json', 'csv'] },
      },
    ],
    responses: {
      200: {
        description: 'Totals, daily sums and rows (JSON), or the rows (CSV)',
        schema: deliveryResponseSchema,
        contentTypes: ['application/json', 'text/csv'],
      },
    },
    errors: ['campaign_not_found', 'store_unavailable'],
  },
  {
    id: 'getCampaignLift',
    method: 'get',
    path: '/v1/campaigns/{id}/lift',
    tag: 'campaigns',
    summary: 'The lift of a campaign against its hold-out',
    description:
      "People exposed per arm (shown the campaign, or held out when it would have been shown: a ghost exposure), those with a conversion or a purchase inside the campaign's attribution window, the absolute and relative lift, a 95% Newcombe interval, a p-value and the minimum detectable effect.",
    scope: 'rules:read',
    servedBy: 'control',
    params: [campaignIdParam],
    responses: { 200: ok('Arms, outcomes and lift', liftResponseSchema) },
    errors: ['campaign_not_found', 'store_unavailable'],
  },
  {
    id: 'getCampaignBudget',
    method: 'get',
    path: '/v1/campaigns/{id}/budget',
    tag: 'campaigns',
    summary: "A campaign's budgets: spent, committed, and pace against target",
    description:
      "Every budget line of the campaign in the active rule set (its own, then its creatives'): today's spent and committed amounts (the campaign's day, in its time zone), the day's limit, where an even pace puts spending by now and the ratio of spent to it, what was spent in all and what a total has left, and the shape of the day the pace follows. Amounts are in the budget's unit (spend: the campaign's currency).",
    scope: 'rules:read',
    servedBy: 'control',
    params: [campaignIdParam],
    responses: { 200: ok('Budget lines', budgetResponseSchema) },
    errors: ['campaign_not_found', 'store_unavailable'],
  },
  {
    id: 'getRates',
    method: 'get',
    path: '/v1/openrtb/rates',
    tag: 'openrtb',
    summary: "The OpenRTB bidder's currency rates",
    description: 'The table floors and bids are converted with; 404 while there is none.',
    scope: 'rules:read',
    servedBy: 'control',
    responses: { 200: ok('The rates', ratesSchema) },
    errors: ['rates_not_found'],
  },
  {
    id: 'putRates',
    method: 'put',
    path: '/v1/openrtb/rates',
    tag: 'openrtb',
    summary: 'Replace the currency rates, for the whole fleet',
    description:
      'Stored beside the rule sets; this instance bids with it at once, the others within 10 seconds. The rate of `base` is 1.',
    scope: 'rules:write',
    servedBy: 'control',
    body: { kind: 'json', contentTypes: JSON_TYPES, schema: ratesSchema },
    responses: { 200: ok('The rates now in force', ratesSchema) },
    errors: ['store_unavailable'],
  },
  {
    id: 'openapi',
    method: 'get',
    path: '/openapi.json',
    tag: 'meta',
    summary: 'This document',
    scope: null,
    servedBy: 'control',
    responses: { 200: ok('OpenAPI 3.1', { type: 'object' }) },
  },
  {
    id: 'decide',
    method: 'post',
    path: '/v1/decide',
    tag: 'data plane',
    summary: 'Decide what to show a person in one or more placements (data plane, PORT)',
    description:
      'Served by the data plane listener. JSON or MessagePack both ways; the answer uses the request’s format. Every placement appears once, in request order; `campaign: null` is no fill.',
    scope: null,
    servedBy: 'data',
    body: {
      kind: 'json',
      contentTypes: ['application/json', 'application/msgpack'],
      schema: decideRequestSchema,
    },
    responses: { 200: ok('Decisions', decideResponseSchema) },
  },
  {
    id: 'healthz',
    method: 'get',
    path: '/healthz',
    tag: 'meta',
    summary: 'Alive',
    scope: null,
    servedBy: 'admin',
    responses: { 200: ok('Alive', { type: 'object', properties: { status: { const: 'ok' } } }) },
  },
  {
    id: 'readyz',
    method: 'get',
    path: '/readyz',
    tag: 'meta',
    summary: 'Ready: store reachable, rule set loaded, not draining',
    scope: null,
    servedBy: 'admin',
    responses: {
      200: ok('Ready', { type: 'object' }),
      503: ok('Not ready', { type: 'object' }),
    },
  },
  {
    id: 'metrics',
    method: 'get',
    path: '/metrics',
    tag: 'meta',
    summary: 'Prometheus metrics of this instance (text exposition format; docs/operations.md lists them)',
    scope: null,
    servedBy: 'admin',
    responses: {
      200: {
        description: 'Metrics',
        contentTypes: ['text/plain; version=0.0.4'],
        schema: { type: 'string' },
      },
    },
  },
];

export function routeSpec(id: string): RouteSpec {
  const spec = ROUTES.find((r) => r.id === id);
  if (spec === undefined) throw new Error(`no route ${id} in the route table`);
  return spec;
}

/** `/v1/rulesets/{version}` -> `/v1/rulesets/:version{[0-9]+}` */
export function honoPath(spec: RouteSpec): string {
  return spec.path.replace(/\{([A-Za-z]+)\}/g, (_, name: string) => {
    const p = spec.params?.find((x) => x.name === name && x.in === 'path');
    return p?.pattern === undefined ? `:${name}` : `:${name}{${p.pattern}}`;
  });
}

/** Every error code a route can answer, with its status. */
export function errorCodesOf(spec: RouteSpec): ErrorCode[] {
  const codes = new Set<ErrorCode>();
  if (spec.scope !== null) {
    codes.add('unauthorized');
    codes.add('forbidden');
  }
  if (spec.body !== undefined && spec.servedBy !== 'data') {
    codes.add('body_too_large');
    codes.add('unsupported_media_type');
    if (spec.body.kind === 'json') {
      for (const c of [
        'bad_json',
        'invalid_field',
        'missing_field',
        'unknown_field',
        'forbidden_key',
      ] as const) {
        codes.add(c);
      }
    }
    if (spec.body.kind === 'ruleset') codes.add('invalid_ruleset');
  }
  if (spec.params?.some((p) => p.in === 'query')) codes.add('invalid_field');
  for (const c of spec.errors ?? []) codes.add(c);
  return [...codes];
}
