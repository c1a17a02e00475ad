/**
 * The OpenAPI 3.1 document of the control plane (GET /openapi.json), built from the route table
 * (server/control/routes.ts) and the request contracts' schemas, named once as components.
 */
import {
  aliasesSchema,
  decideRequestSchema,
  decideResponseSchema,
  errorSchema,
  eventSchema,
  eventsResponseSchema,
  funnelResponseSchema,
  importLineSchema,
  importResponseSchema,
  type JsonSchema,
  placementSchema,
  previewRequestSchema,
  previewResponseSchema,
  profilePatchSchema,
  profileSchema,
  ruleErrorsSchema,
  ruleSetMetaSchema,
  userRefSchema,
} from '../contracts/schemas.js';
import { ERRORS, type ErrorCode } from '../errors.js';
import { errorCodesOf, JSON_TYPES, ROUTES } from './routes.js';

const COMPONENTS: Record<string, JsonSchema> = {
  Profile: profileSchema,
  ProfilePatch: profilePatchSchema,
  ImportLine: importLineSchema,
  Aliases: aliasesSchema,
  UserRef: userRefSchema,
  Placement: placementSchema,
  Event: eventSchema,
  PreviewRequest: previewRequestSchema,
  PreviewResponse: previewResponseSchema,
  DecideRequest: decideRequestSchema,
  DecideResponse: decideResponseSchema,
  EventsResponse: eventsResponseSchema,
  Funnel: funnelResponseSchema,
  ImportResult: importResponseSchema,
  RuleSetMeta: ruleSetMetaSchema,
  Error: errorSchema,
  RuleSetErrors: ruleErrorsSchema,
};

/** A copy of `schema` with the named components replaced by `$ref`s (except at `self`). */
function withRefs(schema: JsonSchema, self?: JsonSchema): JsonSchema {
  const names = new Map<unknown, string>(Object.entries(COMPONENTS).map(([k, v]) => [v, k]));
  const copy = (v: unknown, root: boolean): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (!root && v !== self && names.has(v)) return { $ref: `#/components/schemas/${names.get(v)}` };
    if (Array.isArray(v)) return v.map((x) => copy(x, false));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      out[k] = k === 'format' && x === 'iana-timezone' ? 'timezone' : copy(x, false);
    }
    return out;
  };
  return copy(schema, self !== undefined) as JsonSchema;
}

const PATH_ERRORS = new Set<ErrorCode>(['invalid_field', 'missing_field', 'unknown_field', 'forbidden_key']);

export interface OpenApiOptions {
  /** Base URLs of the two listeners, for the `servers` lists. */
  controlUrl?: string;
  dataUrl?: string;
  version?: string;
}

/** The OpenAPI 3.1 document of every route in the table. */
export function buildOpenApi(opts: OpenApiOptions = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of ROUTES) {
    const op: Record<string, unknown> = {
      operationId: spec.id,
      summary: spec.summary,
      tags: [spec.tag],
    };
    if (spec.description !== undefined) op.description = spec.description;
    if (spec.scope === null) op.security = [];
    else {
      op.security = [{ bearer: [spec.scope] }];
      op['x-scope'] = spec.scope;
    }
    if (spec.servedBy === 'data') {
      op.servers = [{ url: opts.dataUrl ?? 'http://localhost:8080', description: 'data plane (PORT)' }];
    }
    if (spec.params !== undefined) {
      op.parameters = spec.params.map((p) => ({
        name: p.name,
        in: p.in,
        description: p.description,
        required: p.required ?? p.in === 'path',
        schema: p.schema,
      }));
    }
    if (spec.body !== undefined) {
      const content: Record<string, unknown> = {};
      for (const type of spec.body.contentTypes) {
        content[type] = { schema: withRefs(spec.body.schema ?? {}) };
      }
      op.requestBody = {
        required: true,
        ...(spec.body.description === undefined ? {} : { description: spec.body.description }),
        content,
      };
    }
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(spec.responses)) {
      const out: Record<string, unknown> = { description: r.description };
      if (r.schema !== undefined) {
        out.content = Object.fromEntries(
          (r.contentTypes ?? JSON_TYPES).map((t) => [t, { schema: withRefs(r.schema!) }]),
        );
      }
      if (r.headers !== undefined) {
        out.headers = Object.fromEntries(
          Object.entries(r.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }]),
        );
      }
      responses[status] = out;
    }
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of errorCodesOf(spec)) {
      const status = ERRORS[code].status;
      byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    }
    for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      const ref = codes.includes('invalid_ruleset') ? 'RuleSetErrors' : 'Error';
      const paths = codes.some((c) => PATH_ERRORS.has(c)) ? ' (`path` names the field)' : '';
      responses[String(status)] = {
        description: `${codes.map((c) => `\`${c}\``).join(', ')}${paths}`,
        content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } },
      };
    }
    op.responses = responses;
    (paths[spec.path] ??= {})[spec.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Mindshare',
      version: opts.version ?? '0.1.0',
      description:
        'Real-time ad decisioning with stage-aware brand targeting. The control plane (ADMIN_PORT) manages rule sets, profiles, events and funnels; the data plane (PORT) decides. See docs/control-plane.md.',
    },
    servers: [{ url: opts.controlUrl ?? 'http://localhost:8081', description: 'control plane (ADMIN_PORT)' }],
    security: [{ bearer: [] }],
    tags: [...new Set(ROUTES.map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description:
            'Authorization: Bearer <secret>. Each token has scopes: decide, rules:read, rules:write, profiles:read, profiles:write, events:write, admin (every scope).',
        },
      },
      schemas: Object.fromEntries(Object.entries(COMPONENTS).map(([k, v]) => [k, withRefs(v, v)])),
    },
  };
}
