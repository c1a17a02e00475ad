/**
 * JSON Schemas of the control plane's bodies and answers, as plain objects. The same objects
 * validate requests (compiled once with ajv, server/contracts/check.ts) and make up the OpenAPI
 * document (server/control/openapi.ts), so the two never drift apart.
 */
import { CHANNELS, EVENT_TYPES, MESSAGE_TYPES } from '../../rules/types.js';
import { SCOPES } from '../scopes.js';

export type JsonSchema = Record<string, unknown>;

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
} as const;

/** Lower-case letters, digits, `-` or `_`, starting with a letter (as the data plane takes). */
export const ALIAS_KIND_PATTERN = '^[a-z][a-z0-9_-]{0,31}$';

const id = { type: 'string', minLength: 1, maxLength: LIMITS.idLength } as const;
const tag = { type: 'string', minLength: 1, maxLength: LIMITS.tagLength } as const;
const key = { type: 'string', minLength: 1, maxLength: LIMITS.keyLength } as const;
const channel = { type: 'string', enum: [...CHANNELS] } as const;
const hour = { type: 'integer', minimum: 0, maximum: 23 } as const;
const affinity = { type: 'number', minimum: 0, maximum: 1 } as const;
const scalar = {
  anyOf: [{ type: 'string', maxLength: LIMITS.stringValue }, { type: 'number' }, { type: 'boolean' }],
} as const;
const timezone = { type: 'string', format: 'iana-timezone', description: 'An IANA time zone' } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;

function map(values: JsonSchema, description: string): JsonSchema {
  return {
    type: 'object',
    description,
    maxProperties: LIMITS.mapEntries,
    propertyNames: key,
    additionalProperties: values,
  };
}

function nullable(schema: JsonSchema): JsonSchema {
  return { anyOf: [schema, { type: 'null' }] };
}

const profileProperties = {
  id: { ...id, description: 'The person id; optional in PUT, where it must match the path' },
  tags: { type: 'array', maxItems: LIMITS.tags, items: tag, description: 'Tags known about the person' },
  stages: map({ type: 'string', minLength: 1, maxLength: LIMITS.keyLength }, 'Funnel stage per brand'),
  clv: map({ type: 'number' }, 'Predicted spend per brand'),
  attrs: map(scalar, 'Numeric or text attributes (price_band, city_tier, ...)'),
  channels: {
    type: 'object',
    description: 'Affinity per channel, 0 to 1; a channel not listed is 0',
    additionalProperties: false,
    properties: Object.fromEntries(CHANNELS.map((c) => [c, affinity])),
  },
  activeHours: {
    type: 'array',
    maxItems: 24,
    uniqueItems: true,
    items: hour,
    description: 'Hours of the day (in timezone) when the person is usually active',
  },
  timezone,
  updatedAt: { type: 'integer', minimum: 0, description: 'Epoch ms; set by the server when absent' },
} as const;

export const profileSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: profileProperties,
};

export const aliasesSchema: JsonSchema = {
  type: 'object',
  description: 'Aliases by kind: `{"idfa": "…", "cookie": "…"}`',
  minProperties: 1,
  maxProperties: LIMITS.aliases,
  propertyNames: { type: 'string', pattern: ALIAS_KIND_PATTERN },
  additionalProperties: id,
};

/** One line of an NDJSON import: a profile with its id, and optionally its aliases. */
export const importLineSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { ...profileProperties, aliases: aliasesSchema },
};

export const profilePatchSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'In maps, null removes the entry. Tags are added after removals.',
  properties: {
    addTags: { type: 'array', maxItems: LIMITS.tags, items: tag },
    removeTags: { type: 'array', maxItems: LIMITS.tags, items: tag },
    stages: map(nullable({ type: 'string', minLength: 1, maxLength: LIMITS.keyLength }), 'Stage per brand'),
    clv: map(nullable({ type: 'number' }), 'CLV per brand'),
    attrs: map({ anyOf: [...scalar.anyOf, { type: 'null' }] }, 'Attributes'),
    channels: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(CHANNELS.map((c) => [c, nullable(affinity)])),
    },
    activeHours: nullable({ type: 'array', maxItems: 24, uniqueItems: true, items: hour }),
    timezone: nullable(timezone),
  },
};

/** `{id}` (a person id) or `{ids}` (aliases resolved to one person). */
export const userRefSchema: JsonSchema = {
  type: 'object',
  description: '`{"id": …}` or `{"ids": {"idfa": …}}`, not both',
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  properties: { id, ids: aliasesSchema },
};

export const placementSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id,
    channels: { type: 'array', maxItems: CHANNELS.length, items: channel },
    formats: { type: 'array', maxItems: LIMITS.formats, items: tag },
  },
};

const placements = { type: 'array', minItems: 1, maxItems: LIMITS.placements, items: placementSchema };
const context = {
  type: 'object',
  additionalProperties: false,
  properties: { tags: { type: 'array', maxItems: LIMITS.contextTags, items: tag } },
};

/**
 * The body of the data plane's POST /v1/decide, for documentation: the data plane parses it by
 * hand (server/decision/request.ts); a test keeps the two in agreement.
 */
export const decideRequestSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['user', 'placements'],
  properties: {
    user: userRefSchema,
    placements: { ...placements, description: 'Placement ids must be unique' },
    context,
    explain: { type: 'boolean' },
    deadlineMs: { type: 'integer', minimum: 1, maximum: 60_000 },
  },
};

export const previewRequestSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['placements'],
  description: 'Give `user` (a stored person) or `profile` (inline), not both',
  properties: {
    user: userRefSchema,
    profile: { ...profileSchema, required: ['id'] },
    placements,
    context,
    ruleset: {
      description:
        'A draft (rule-set text, or a rule-set object) or a stored version; default the active one',
      anyOf: [{ type: 'string', minLength: 1 }, { type: 'object' }, { type: 'integer', minimum: 1 }],
    },
    at: { ...dateTime, description: 'The moment to decide at; default now' },
  },
};

export const eventSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['eventId', 'type', 'user'],
  properties: {
    eventId: { ...id, description: 'Events are applied once per id' },
    type: { type: 'string', enum: [...EVENT_TYPES] },
    user: userRefSchema,
    campaign: id,
    brand: id,
    at: {
      description: 'When it happened: ISO 8601 or epoch ms; default now',
      anyOf: [dateTime, { type: 'integer', minimum: 0 }],
    },
  },
};

export const eventBatchSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['events'],
  properties: {
    events: { type: 'array', minItems: 1, maxItems: LIMITS.events, items: eventSchema },
  },
};

/** What POST /v1/events takes: one event, an array of them, or `{events: [...]}`. */
export const eventsRequestSchema: JsonSchema = {
  anyOf: [
    eventSchema,
    { type: 'array', minItems: 1, maxItems: LIMITS.events, items: eventSchema },
    eventBatchSchema,
  ],
};

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
    creative: { type: ['string', 'null'] },
    brand: { type: 'string' },
    segment: { type: 'string' },
    stage: { type: 'string' },
    sellingPoints: { type: 'array', items: { type: 'string' } },
    message: { type: ['string', 'null'], enum: [...MESSAGE_TYPES, null] },
    channel: channel,
    sendAt: dateTime,
    variant: { type: 'string', enum: ['treatment', 'control'] },
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

export const funnelResponseSchema: JsonSchema = {
  type: 'object',
  required: ['brand', 'ruleset', 'days', 'from', 'to', 'stages', 'flow', 'daily'],
  properties: {
    brand: { type: 'string' },
    ruleset: { type: 'integer' },
    days: { type: 'integer' },
    from: { type: 'string', description: 'First day of the window (UTC), YYYY-MM-DD' },
    to: { type: 'string', description: 'Last day of the window (UTC), today' },
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
