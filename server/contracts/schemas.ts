/**
 * JSON Schemas of the control plane's bodies and answers, as plain objects. The same objects
 * validate requests (compiled once with ajv, server/contracts/check.ts) and make up the OpenAPI
 * document (server/control/openapi.ts), so the two never drift apart.
 *
 * The request bodies are written with TypeBox, whose builders give both the JSON Schema and its
 * TypeScript type (`Type.Static`): a handler's body type is derived from the schema that checked
 * it, never written beside it, so the two cannot drift either. The answers, which are only
 * documented, stay plain objects.
 */
import Type from 'typebox';
import { CHANNELS, type Channel, EVENT_TYPES, type EventType, MESSAGE_TYPES } from '../../rules/types.js';
import { SCOPES } from '../scopes.js';

/** A JSON Schema: a plain object, or one built with TypeBox. */
export type JsonSchema = Record<string, unknown> | Type.TSchema;

export const LIMITS = {
  idLength: 256,
  tagLength: 128,
  tags: 2000,
  mapEntries: 256,
  keyLength: 128,
  stringValue: 1024,
  aliases: 8,
  placements: 16,
  formats: 32,
  contextTags: 64,
  events: 1000,
  fundays: 90,
  /** Days one delivery report may span. */
  deliveryDays: 400,
  /** People one audience count or what-if reads at most. */
  audienceSample: 100_000,
  whatIfSample: 10_000,
} as const;

/** Lower-case letters, digits, `-` or `_`, starting with a letter (as the data plane takes). */
export const ALIAS_KIND_PATTERN = '^[a-z][a-z0-9_-]{0,31}$';

const id = Type.String({ minLength: 1, maxLength: LIMITS.idLength });
const tag = Type.String({ minLength: 1, maxLength: LIMITS.tagLength });
const key = Type.String({ minLength: 1, maxLength: LIMITS.keyLength });
const tags = Type.Array(tag, { maxItems: LIMITS.tags });
const channel = Type.Unsafe<Channel>({ type: 'string', enum: [...CHANNELS] });
const hour = Type.Integer({ minimum: 0, maximum: 23 });
const activeHours = Type.Array(hour, { maxItems: 24, uniqueItems: true });
const affinity = Type.Number({ minimum: 0, maximum: 1 });
const scalar = Type.Union([Type.String({ maxLength: LIMITS.stringValue }), Type.Number(), Type.Boolean()]);
const timezone = Type.String({ format: 'iana-timezone', description: 'An IANA time zone' });
const dateTime = Type.String({ format: 'date-time' });
/** A moment, wherever a request gives one: ISO 8601 with its zone, or epoch milliseconds. */
const instant = (description: string) =>
  Type.Union([dateTime, Type.Integer({ minimum: 0, maximum: 8.64e15 })], { description });
/** The epoch ms of an `instant` field. */
export const instantMs = (v: string | number): number => (typeof v === 'number' ? v : Date.parse(v));

/** An object of `values` by key (bounded keys and entries). */
function map<V extends Type.TSchema>(values: V, description: string) {
  return Type.Unsafe<Record<string, Type.Static<V>>>({
    type: 'object',
    description,
    maxProperties: LIMITS.mapEntries,
    propertyNames: key,
    additionalProperties: values,
  });
}

/** One value per channel, each optional; no other keys. */
function perChannel<V extends Type.TSchema>(value: V, description?: string) {
  return Type.Unsafe<Partial<Record<Channel, Type.Static<V>>>>({
    type: 'object',
    ...(description === undefined ? {} : { description }),
    additionalProperties: false,
    properties: Object.fromEntries(CHANNELS.map((c) => [c, value])),
  });
}

const nullable = <S extends Type.TSchema>(schema: S) => Type.Union([schema, Type.Null()]);

const profileProperties = {
  tags: Type.Optional(Type.Array(tag, { maxItems: LIMITS.tags, description: 'Tags known about the person' })),
  stages: Type.Optional(map(key, 'Funnel stage per brand')),
  clv: Type.Optional(map(Type.Number(), 'Predicted spend per brand')),
  attrs: Type.Optional(map(scalar, 'Numeric or text attributes (price_band, city_tier, ...)')),
  channels: Type.Optional(perChannel(affinity, 'Affinity per channel, 0 to 1; a channel not listed is 0')),
  activeHours: Type.Optional(
    Type.Array(hour, {
      maxItems: 24,
      uniqueItems: true,
      description: 'Hours of the day (in timezone) when the person is usually active',
    }),
  ),
  timezone: Type.Optional(timezone),
  updatedAt: Type.Optional(
    Type.Integer({ minimum: 0, description: 'Epoch ms; set by the server when absent' }),
  ),
};
const personId = (description: string) =>
  Type.String({ minLength: 1, maxLength: LIMITS.idLength, description });

export const profileSchema = Type.Object(
  {
    id: Type.Optional(personId('The person id; optional in PUT, where it must match the path')),
    ...profileProperties,
  },
  { additionalProperties: false },
);
export type ProfileBody = Type.Static<typeof profileSchema>;

export const aliasesSchema = Type.Unsafe<Record<string, string>>({
  type: 'object',
  description: 'Aliases by kind: `{"idfa": "…", "cookie": "…"}`',
  minProperties: 1,
  maxProperties: LIMITS.aliases,
  propertyNames: { type: 'string', pattern: ALIAS_KIND_PATTERN },
  additionalProperties: id,
});
export type AliasesBody = Type.Static<typeof aliasesSchema>;

/** One line of an NDJSON import: a profile with its id, and optionally its aliases. */
export const importLineSchema = Type.Object(
  {
    id: personId('The person id'),
    ...profileProperties,
    aliases: Type.Optional(aliasesSchema),
  },
  { additionalProperties: false },
);
export type ImportLine = Type.Static<typeof importLineSchema>;

export const profilePatchSchema = Type.Object(
  {
    addTags: Type.Optional(tags),
    removeTags: Type.Optional(tags),
    stages: Type.Optional(map(nullable(key), 'Stage per brand')),
    clv: Type.Optional(map(nullable(Type.Number()), 'CLV per brand')),
    attrs: Type.Optional(
      map(
        Type.Union([
          Type.String({ maxLength: LIMITS.stringValue }),
          Type.Number(),
          Type.Boolean(),
          Type.Null(),
        ]),
        'Attributes',
      ),
    ),
    channels: Type.Optional(perChannel(nullable(affinity))),
    activeHours: Type.Optional(nullable(activeHours)),
    timezone: Type.Optional(nullable(timezone)),
  },
  {
    additionalProperties: false,
    description: 'In maps, null removes the entry. Tags are added after removals.',
  },
);
export type ProfilePatchBody = Type.Static<typeof profilePatchSchema>;

/** `{id}` (a person id) or `{ids}` (aliases resolved to one person). */
export const userRefSchema = Type.Object(
  { id: Type.Optional(id), ids: Type.Optional(aliasesSchema) },
  {
    description: '`{"id": …}` or `{"ids": {"idfa": …}}`, not both',
    additionalProperties: false,
    minProperties: 1,
    maxProperties: 1,
  },
);

export const placementSchema = Type.Object(
  {
    id,
    channels: Type.Optional(Type.Array(channel, { maxItems: CHANNELS.length })),
    formats: Type.Optional(Type.Array(tag, { maxItems: LIMITS.formats })),
  },
  { additionalProperties: false },
);

const placements = (description?: string) =>
  Type.Array(placementSchema, {
    minItems: 1,
    maxItems: LIMITS.placements,
    ...(description === undefined ? {} : { description }),
  });
const context = Type.Object(
  { tags: Type.Optional(Type.Array(tag, { maxItems: LIMITS.contextTags })) },
  { additionalProperties: false },
);

/**
 * The body of the data plane's POST /v1/decide, for documentation: the data plane parses it by
 * hand (server/decision/request.ts); a test keeps the two in agreement.
 */
export const decideRequestSchema = Type.Object(
  {
    user: userRefSchema,
    placements: placements('Placement ids must be unique'),
    context: Type.Optional(context),
    explain: Type.Optional(Type.Boolean()),
    deadlineMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
  },
  { additionalProperties: false },
);

export const previewRequestSchema = Type.Object(
  {
    user: Type.Optional(userRefSchema),
    profile: Type.Optional(
      Type.Object({ id: personId('The person id'), ...profileProperties }, { additionalProperties: false }),
    ),
    placements: placements(),
    context: Type.Optional(context),
    ruleset: Type.Optional(
      Type.Union(
        [
          Type.String({ minLength: 1 }),
          Type.Unsafe<Record<string, unknown>>({ type: 'object' }),
          Type.Integer({ minimum: 1 }),
        ],
        {
          description:
            'A draft (rule-set text, or a rule-set object) or a stored version; default the active one',
        },
      ),
    ),
    at: Type.Optional(instant('The moment to decide at: ISO 8601 or epoch ms; default now')),
  },
  {
    additionalProperties: false,
    description: 'Give `user` (a stored person) or `profile` (inline), not both',
  },
);
export type PreviewBody = Type.Static<typeof previewRequestSchema>;

/** How many people an audience or what-if reads, and for how long at most. */
const sampleSize = (max: number, dflt: number) =>
  Type.Integer({
    minimum: 1,
    maximum: max,
    description: `People to draw (all of them when the store holds fewer); default ${dflt}`,
  });
const timeBound = (dflt: number) =>
  Type.Integer({
    minimum: 100,
    maximum: 30_000,
    description: `Stop drawing after this long, ms (the answer says so with partial: true); default ${dflt}`,
  });

export const audienceRequestSchema = Type.Object(
  {
    segment: Type.Optional(Type.String({ minLength: 1, description: 'A segment of the active rule set' })),
    when: Type.Optional(
      Type.Unsafe<Record<string, unknown>>({
        type: 'object',
        description:
          'A draft condition, checked as a segment of the active rule set (it may refer to its segments)',
      }),
    ),
    segments: Type.Optional(
      Type.Literal('all', { description: 'Every segment of the active rule set, on one sample' }),
    ),
    context: Type.Optional(context),
    sample: Type.Optional(sampleSize(LIMITS.audienceSample, 10_000)),
    timeoutMs: Type.Optional(timeBound(2_000)),
  },
  { additionalProperties: false, description: 'Give one of segment, when or segments' },
);
export type AudienceBody = Type.Static<typeof audienceRequestSchema>;

export const whatIfRequestSchema = Type.Object(
  {
    ruleset: Type.Union(
      [Type.String({ minLength: 1 }), Type.Unsafe<Record<string, unknown>>({ type: 'object' })],
      { description: 'The draft: rule-set text (YAML or JSON) or a rule-set object' },
    ),
    placements: placements('The placements to decide, as a decision request names them'),
    context: Type.Optional(context),
    sample: Type.Optional(sampleSize(LIMITS.whatIfSample, 1_000)),
    timeoutMs: Type.Optional(timeBound(5_000)),
    at: Type.Optional(instant('The moment to decide at: ISO 8601 or epoch ms; default now')),
    examples: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10,
        description: 'Person ids shown per change (with profiles:read only); default 3',
      }),
    ),
  },
  { additionalProperties: false },
);
export type WhatIfBody = Type.Static<typeof whatIfRequestSchema>;

export const eventSchema = Type.Object(
  {
    eventId: Type.String({
      minLength: 1,
      maxLength: LIMITS.idLength,
      description: 'Events are applied once per id',
    }),
    type: Type.Unsafe<EventType>({ type: 'string', enum: [...EVENT_TYPES] }),
    user: userRefSchema,
    campaign: Type.Optional(id),
    creative: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: LIMITS.idLength,
        description: "The campaign's creative it was of (delivery rows by creative)",
      }),
    ),
    channel: Type.Optional(
      Type.Unsafe<Channel>({
        type: 'string',
        enum: [...CHANNELS],
        description: 'The channel it was on (delivery rows by channel)',
      }),
    ),
    brand: Type.Optional(id),
    at: Type.Optional(instant('When it happened: ISO 8601 or epoch ms; default now')),
  },
  { additionalProperties: false },
);
export type EventBody = Type.Static<typeof eventSchema>;

export const eventBatchSchema = Type.Object(
  { events: Type.Array(eventSchema, { minItems: 1, maxItems: LIMITS.events }) },
  { additionalProperties: false },
);

/** What POST /v1/events takes: one event, an array of them, or `{events: [...]}`. */
export const eventsRequestSchema = Type.Union([
  eventSchema,
  Type.Array(eventSchema, { minItems: 1, maxItems: LIMITS.events }),
  eventBatchSchema,
]);
export type EventsBody = Type.Static<typeof eventsRequestSchema>;

/** A currency: ISO 4217, three capital letters. */
const currency = Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217, e.g. USD' });

/** The bidder's currency rates: units of each currency one unit of `base` buys, on `date`. */
export const ratesSchema = Type.Object(
  {
    date: Type.String({ format: 'date', description: 'The day the rates are of, YYYY-MM-DD' }),
    base: currency,
    rates: Type.Unsafe<Record<string, number>>({
      type: 'object',
      description: 'Units of each currency one unit of base buys: {"EUR": 0.92, "GBP": 0.79}',
      maxProperties: 400,
      propertyNames: { type: 'string', pattern: '^[A-Z]{3}$' },
      additionalProperties: { type: 'number', exclusiveMinimum: 0 },
    }),
  },
  { additionalProperties: false },
);
export type RatesBody = Type.Static<typeof ratesSchema>;

// ---- answers ------------------------------------------------------------------------------------

const errorObject: JsonSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    path: { type: 'string', description: 'The field at fault: `events[3].type`' },
  },
};

export const errorSchema: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: { error: errorObject },
};

export const ruleErrorsSchema: JsonSchema = {
  type: 'object',
  required: ['error', 'errors'],
  properties: {
    error: errorObject,
    errors: {
      type: 'array',
      items: {
        type: 'object',
        required: ['code', 'message', 'path'],
        properties: {
          code: { type: 'string' },
          message: { type: 'string' },
          path: { type: 'string' },
          line: { type: 'integer' },
          column: { type: 'integer' },
        },
      },
    },
  },
};

export const ruleSetMetaSchema: JsonSchema = {
  type: 'object',
  required: ['version', 'checksum', 'format', 'createdBy', 'createdAt', 'bytes', 'active'],
  properties: {
    version: { type: 'integer' },
    checksum: { type: 'string', description: '`sha256:<hex>` of the text as uploaded' },
    format: { type: 'string', enum: ['yaml', 'json'] },
    createdBy: { type: 'string' },
    createdAt: dateTime,
    bytes: { type: 'integer' },
    activatedAt: dateTime,
    activatedBy: { type: 'string' },
    active: { type: 'boolean' },
  },
};

const decisionSchema: JsonSchema = {
  type: 'object',
  required: ['placement', 'campaign'],
  properties: {
    placement: { type: 'string' },
    campaign: { type: ['string', 'null'] },
    creative: { type: 'string' },
    brand: { type: 'string' },
    segment: { type: 'string' },
    stage: { type: 'string' },
    sellingPoints: { type: 'array', items: { type: 'string' } },
    message: { type: 'string', enum: [...MESSAGE_TYPES] },
    channel: channel,
    sendAt: dateTime,
    variant: {
      type: 'string',
      enum: ['treatment'],
      description:
        'Always `treatment`: a person in a hold-out gets the next best campaign (see `ghosts` in the preview)',
    },
  },
};

const ghostSchema: JsonSchema = {
  type: 'object',
  required: ['placement', 'campaign', 'creative', 'channel'],
  description:
    "A campaign the person is held out of, and what it would have shown (its control group's exposure)",
  properties: {
    placement: { type: 'string' },
    campaign: { type: 'string' },
    creative: { type: 'string' },
    channel: channel,
  },
};

const explainSchema: JsonSchema = {
  type: 'object',
  properties: {
    segments: { type: 'array', items: { type: 'string' } },
    campaigns: { type: 'array', items: { type: 'object' } },
  },
};

export const decideResponseSchema: JsonSchema = {
  type: 'object',
  required: ['ruleset', 'user', 'decisions'],
  properties: {
    ruleset: { type: 'integer' },
    user: { type: ['string', 'null'] },
    decisions: { type: 'array', items: decisionSchema },
    degraded: { type: 'boolean' },
    explain: explainSchema,
  },
};

export const previewResponseSchema: JsonSchema = {
  type: 'object',
  required: ['ruleset', 'user', 'profile', 'decisions', 'explain'],
  properties: {
    ruleset: { anyOf: [{ type: 'integer' }, { const: 'draft' }] },
    user: { type: ['string', 'null'] },
    known: { type: 'boolean', description: 'Whether the person has a stored profile' },
    profile: profileSchema,
    at: dateTime,
    decisions: { type: 'array', items: decisionSchema },
    ghosts: { type: 'array', items: ghostSchema },
    explain: explainSchema,
  },
};

export const eventsResponseSchema: JsonSchema = {
  type: 'object',
  required: ['applied', 'duplicates', 'results'],
  properties: {
    applied: { type: 'integer' },
    duplicates: { type: 'integer' },
    skipped: { type: 'integer', description: 'Events for unknown people or campaigns' },
    results: {
      type: 'array',
      items: {
        type: 'object',
        required: ['eventId', 'outcome'],
        properties: {
          eventId: { type: 'string' },
          outcome: {
            type: 'string',
            enum: ['applied', 'duplicate', 'unknown_person', 'unknown_campaign', 'unknown_brand'],
          },
          moved: {
            type: 'object',
            properties: { brand: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } },
          },
        },
      },
    },
  },
};

const deliveryCounts: Record<string, JsonSchema> = {
  decisions: {
    type: 'integer',
    description: 'Decisions (and OpenRTB bids) that filled a placement with the campaign',
  },
  ghosts: {
    type: 'integer',
    description: 'Placements the campaign won for a person in its hold-out (who saw the next best campaign)',
  },
  impressions: {
    type: 'integer',
    description: 'Impression events and OpenRTB win or billing notices (once per bid)',
  },
  clicks: { type: 'integer' },
  conversions: { type: 'integer', description: 'Conversion events naming the campaign' },
  purchases: { type: 'integer', description: 'Purchase events naming the campaign' },
  spend: {
    type: 'object',
    description: 'OpenRTB billed prices per currency (a CPM price / 1000 per impression)',
    additionalProperties: { type: 'number' },
  },
};

export const deliveryResponseSchema: JsonSchema = {
  type: 'object',
  required: ['campaign', 'ruleset', 'active', 'timezone', 'from', 'to', 'totals', 'daily', 'rows'],
  properties: {
    campaign: { type: 'string' },
    ruleset: { type: 'integer' },
    active: { type: 'boolean', description: 'Whether the active rule set has the campaign' },
    timezone: { type: 'string', description: "The campaign's time zone: what its days are" },
    from: { type: 'string', format: 'date' },
    to: { type: 'string', format: 'date' },
    totals: { type: 'object', properties: deliveryCounts },
    daily: {
      type: 'array',
      description: 'Every day of the range, with the sums of its rows',
      items: { type: 'object', properties: { day: { type: 'string' }, ...deliveryCounts } },
    },
    rows: {
      type: 'array',
      description: 'Per day, creative and channel (empty strings: an event that did not name them)',
      items: {
        type: 'object',
        properties: {
          day: { type: 'string' },
          creative: { type: 'string' },
          channel: { type: 'string' },
          ...deliveryCounts,
        },
      },
    },
  },
};

const armCounts: JsonSchema = {
  type: 'object',
  properties: {
    people: { type: 'integer', description: 'People exposed, once each' },
    exposures: { type: 'integer', description: 'Attribution windows opened' },
    conversions: { type: 'integer', description: 'People with a conversion inside a window' },
    purchases: { type: 'integer', description: 'People with a purchase inside a window' },
  },
};

const liftResult: JsonSchema = {
  type: 'object',
  properties: {
    treatment: { type: 'object', description: 'people, converted, rate' },
    control: { type: 'object', description: 'people, converted, rate' },
    absolute: { type: ['number', 'null'], description: 'Treatment rate minus control rate' },
    relative: { type: ['number', 'null'], description: 'absolute / control rate' },
    interval: {
      type: ['object', 'null'],
      description: '95% interval of the absolute lift (level, low, high, method)',
    },
    pValue: { type: ['number', 'null'] },
    minimumDetectableEffect: { type: ['number', 'null'] },
  },
};

const nullableNumber: JsonSchema = { type: ['number', 'null'] };

/** GET /v1/campaigns/{id}/budget: every budget line of the campaign (server/decision/budgets.ts). */
export const budgetResponseSchema: JsonSchema = {
  type: 'object',
  required: ['campaign', 'ruleset', 'currency', 'lines'],
  properties: {
    campaign: { type: 'string' },
    ruleset: { type: 'integer' },
    currency: { type: 'string' },
    lines: {
      type: 'array',
      items: {
        type: 'object',
        required: [
          'creative',
          'unit',
          'pacing',
          'daily',
          'total',
          'today',
          'spentInAll',
          'remaining',
          'status',
          'shape',
        ],
        properties: {
          creative: { type: ['string', 'null'] },
          unit: { enum: ['impressions', 'clicks', 'spend'] },
          pacing: { enum: ['even', 'asap'] },
          daily: nullableNumber,
          total: nullableNumber,
          today: {
            type: 'object',
            required: ['day', 'spent', 'committed', 'limit', 'target', 'pace', 'opportunities'],
            properties: {
              day: { type: 'string' },
              spent: { type: 'number' },
              committed: { type: 'number' },
              limit: nullableNumber,
              target: nullableNumber,
              pace: nullableNumber,
              opportunities: { type: 'array', items: { type: 'integer' }, minItems: 24, maxItems: 24 },
            },
          },
          spentInAll: { type: 'number' },
          remaining: nullableNumber,
          status: { enum: ['spent', 'behind', 'on_pace', 'ahead', 'unpaced'] },
          shape: { type: 'array', items: { type: 'number' }, minItems: 24, maxItems: 24 },
        },
      },
    },
  },
};

export const liftResponseSchema: JsonSchema = {
  type: 'object',
  required: ['campaign', 'ruleset', 'active', 'arms', 'conversions', 'purchases'],
  properties: {
    campaign: { type: 'string' },
    ruleset: { type: 'integer' },
    active: { type: 'boolean' },
    holdout: { type: ['number', 'null'] },
    attributionWindowMs: { type: ['integer', 'null'] },
    method: { type: 'object' },
    arms: { type: 'object', properties: { treatment: armCounts, control: armCounts } },
    conversions: liftResult,
    purchases: liftResult,
  },
};

const estimateProps: Record<string, JsonSchema> = {
  people: { type: 'integer', description: 'Stored people in the segment (estimated unless exact)' },
  low: { type: 'integer', description: 'Low end of the 95% interval' },
  high: { type: 'integer', description: 'High end of the 95% interval' },
};
const sampleSchema: JsonSchema = {
  type: 'object',
  properties: {
    people: { type: 'integer', description: 'Distinct people read' },
    draws: { type: 'integer' },
    population: { type: 'integer' },
    populationOf: { type: 'string', enum: ['people', 'keys'], description: 'What the draws were made from' },
  },
};

export const audienceResponseSchema: JsonSchema = {
  type: 'object',
  required: ['ruleset', 'exact', 'partial', 'sample', 'storeReads', 'elapsedMs'],
  properties: {
    ruleset: { type: 'integer' },
    exact: { type: 'boolean', description: 'Every stored person was read' },
    partial: { type: 'boolean', description: 'Stopped at timeoutMs before drawing the sample asked for' },
    sample: sampleSchema,
    storeReads: { type: 'integer', description: 'Commands sent to the store' },
    elapsedMs: { type: 'integer' },
    interval: { type: 'string' },
    ...estimateProps,
    segments: {
      type: 'array',
      items: { type: 'object', properties: { segment: { type: 'string' }, ...estimateProps } },
    },
  },
};

const whatIfChoice: JsonSchema = {
  type: ['object', 'null'],
  description: 'A campaign and creative; null for no fill',
  properties: { campaign: { type: 'string' }, creative: { type: 'string' } },
};

export const whatIfResponseSchema: JsonSchema = {
  type: 'object',
  required: ['active', 'sample', 'decisions', 'changed', 'fill', 'campaigns', 'changes'],
  properties: {
    active: { type: 'integer', description: 'The active version compared with' },
    sample: sampleSchema,
    exact: { type: 'boolean' },
    partial: { type: 'boolean' },
    decisions: { type: 'integer', description: 'People decided x placements' },
    changed: { type: 'integer', description: 'Decisions whose campaign or creative differ' },
    fill: {
      type: 'object',
      properties: { before: { type: 'number' }, after: { type: 'number' } },
      description: 'Share of decisions filled, active and draft',
    },
    campaigns: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          campaign: { type: 'string' },
          before: { type: 'integer' },
          after: { type: 'integer' },
          gained: {
            type: 'integer',
            description: 'Decisions the draft gives it that the active set did not',
          },
          lost: { type: 'integer' },
        },
      },
    },
    changes: {
      type: 'array',
      description: 'The most frequent changes, most first',
      items: {
        type: 'object',
        properties: {
          placement: { type: 'string' },
          from: whatIfChoice,
          to: whatIfChoice,
          decisions: { type: 'integer' },
          examples: {
            type: 'array',
            items: { type: 'string' },
            description: 'Person ids (profiles:read only)',
          },
        },
      },
    },
    storeReads: { type: 'integer' },
    elapsedMs: { type: 'integer' },
  },
};

export const funnelResponseSchema: JsonSchema = {
  type: 'object',
  required: ['brand', 'ruleset', 'days', 'from', 'to', 'stages', 'flow', 'daily'],
  properties: {
    brand: { type: 'string' },
    ruleset: { type: 'integer' },
    timezone: {
      type: 'string',
      description: "The brand's time zone (its first campaign's, else UTC): what its days are",
    },
    days: { type: 'integer' },
    from: { type: 'string', description: "First day of the window (the brand's time zone), YYYY-MM-DD" },
    to: { type: 'string', description: "Last day of the window, today in the brand's time zone" },
    stages: {
      type: 'array',
      items: {
        type: 'object',
        properties: { stage: { type: 'string' }, people: { type: 'integer' }, onLadder: { type: 'boolean' } },
      },
    },
    flow: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          from: { type: 'string' },
          to: { type: 'string' },
          moved: { type: 'integer' },
          rate: { type: ['number', 'null'], description: 'moved / (people now at `from` + moved)' },
        },
      },
    },
    daily: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          day: { type: 'string' },
          moves: { type: 'object', additionalProperties: { type: 'integer' } },
        },
      },
    },
  },
};

export const importResponseSchema: JsonSchema = {
  type: 'object',
  required: ['lines', 'imported', 'failed', 'errors'],
  properties: {
    lines: { type: 'integer', description: 'Lines read, blank ones included' },
    imported: { type: 'integer' },
    failed: { type: 'integer' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        required: ['line', 'code', 'message'],
        properties: {
          line: { type: 'integer', description: '1-based' },
          code: { type: 'string' },
          message: { type: 'string' },
          path: { type: 'string' },
        },
      },
    },
    moreErrors: { type: 'integer', description: 'Errors beyond the listed ones' },
  },
};

export const scopeSchema: JsonSchema = { type: 'string', enum: [...SCOPES] };
