/**
 * Checking parsed bodies against the request contracts: dangerous keys refused, and JSON Schemas
 * (server/contracts/schemas.ts) compiled once with ajv whose first error becomes our error body,
 * with paths such as `events[3].type` (dotted keys, bracket indices; the same style as
 * server/decision/request.ts). Used by the control plane and the profile import.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type Type from 'typebox';
import { isTimeZone } from '../../rules/time.js';
import { FORBIDDEN_KEYS } from '../../rules/types.js';
import { ClientError, type ErrorCode } from '../errors.js';
import type { JsonSchema } from './schemas.js';

/** Bodies nest far less deep than this; deeper JSON is refused before validation. */
const MAX_DEPTH = 64;

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/i;

const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true, verbose: true });
ajv.addFormat('iana-timezone', { type: 'string', validate: (s: string) => isTimeZone(s) });
ajv.addFormat('date', {
  type: 'string',
  validate: (s: string) => {
    const ms = /^\d{4}-\d{2}-\d{2}$/.test(s) ? Date.parse(`${s}T00:00:00Z`) : Number.NaN;
    // A real day: 2026-02-30 parses (to March 2nd) but does not print back the same.
    return Number.isFinite(ms) && new Date(ms).toISOString().startsWith(s);
  },
});
ajv.addFormat('date-time', {
  type: 'string',
  validate: (s: string) => ISO_DATE_TIME.test(s) && Number.isFinite(Date.parse(s)),
});

export interface Problem {
  code: ErrorCode;
  message: string;
  path: string;
}

export type Checker<T> = (
  data: unknown,
  base?: string,
) => { ok: true; value: T } | { ok: false; problem: Problem };

/**
 * What a body that passed `S` is: the type TypeBox derives from the schema; `unknown` for a
 * plain-object schema, which promises nothing the compiler can see.
 */
export type Checked<S extends JsonSchema> = S extends Type.TSchema ? Type.Static<S> : unknown;

/** A schema as ajv hands it back in an error: a plain object. */
type SchemaObject = Record<string, unknown>;

const compiled = new WeakMap<JsonSchema, ValidateFunction>();

/** A checker for a schema, compiled once. `base` prefixes paths (`events[3]`). */
export function checker<S extends JsonSchema>(schema: S): Checker<Checked<S>> {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  const fn = validate;
  return (data, base = '') => {
    const forbidden = findForbiddenKey(data, base);
    if (forbidden !== null) return { ok: false, problem: forbidden };
    if (fn(data)) return { ok: true, value: data as Checked<S> };
    const first = fn.errors?.[0];
    return {
      ok: false,
      problem:
        first === undefined
          ? { code: 'invalid_field', message: `${base || 'the body'} is not valid`, path: base }
          : describeError(first, data, base),
    };
  };
}

/** Validates or throws the first problem as a ClientError. */
export function check<S extends JsonSchema>(schema: S, data: unknown, base = ''): Checked<S> {
  const r = checker(schema)(data, base);
  if (!r.ok) throw new ClientError(r.problem.code, r.problem.message, r.problem.path);
  return r.value;
}

/**
 * Refuses keys that reach an object's prototype, anywhere; and absurd nesting. Paths are built
 * only for what is refused: building one per key and item (30 tags a profile) made this walk
 * a tenth of an import's CPU time, most of it in garbage collection.
 */
export function findForbiddenKey(data: unknown, base = ''): Problem | null {
  const trail: Array<string | number> = [];
  const pathOf = (last?: string): string => {
    let path = base;
    for (const step of trail) path = typeof step === 'number' ? `${path}[${step}]` : join(path, step);
    return last === undefined ? path : join(path, last);
  };
  let problem: Problem | null = null;
  const walk = (v: unknown, depth: number): boolean => {
    if (v === null || typeof v !== 'object') return true;
    if (depth > MAX_DEPTH) {
      const path = pathOf();
      problem = { code: 'invalid_field', message: `${path || 'the body'} nests too deep`, path };
      return false;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (item === null || typeof item !== 'object') continue;
        trail.push(i);
        if (!walk(item, depth + 1)) return false;
        trail.pop();
      }
      return true;
    }
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue;
      if (FORBIDDEN_KEYS.has(k)) {
        const at = pathOf(k);
        problem = { code: 'forbidden_key', message: `${at}: key "${k}" is not allowed`, path: at };
        return false;
      }
      const child: unknown = (v as Record<string, unknown>)[k];
      if (child === null || typeof child !== 'object') continue;
      trail.push(k);
      if (!walk(child, depth + 1)) return false;
      trail.pop();
    }
    return true;
  };
  walk(data, 0);
  return problem;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Our path (`events[3].user.id`) of a JSON pointer into `data`. */
export function pointerToPath(pointer: string, data: unknown, base = ''): string {
  if (pointer === '') return base;
  let path = base;
  let node: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      path += `[${seg}]`;
      node = node[Number(seg)];
    } else {
      path = join(path, seg);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined;
    }
  }
  return path;
}

function describeError(e: ErrorObject, data: unknown, base: string): Problem {
  const at = pointerToPath(e.instancePath, data, base);
  const name = at === '' ? 'the body' : at;
  const p = e.params as Record<string, unknown>;
  const bad = (message: string, path = at): Problem => ({ code: 'invalid_field', message, path });
  // A key that its object's `propertyNames` refuses (ajv reports the inner keyword first).
  const key = (e as ErrorObject & { propertyName?: string }).propertyName;
  if (key !== undefined) {
    const field = join(at, key);
    return bad(`${field}: the key ${JSON.stringify(key)} is not allowed here${keyRule(e)}`, field);
  }
  switch (e.keyword) {
    case 'required': {
      const field = join(at, String(p.missingProperty));
      return { code: 'missing_field', message: `${field} is required`, path: field };
    }
    case 'additionalProperties': {
      const field = join(at, String(p.additionalProperty));
      const allowed = Object.keys(
        ((e.parentSchema as SchemaObject | undefined)?.properties as SchemaObject | undefined) ?? {},
      );
      return {
        code: 'unknown_field',
        message: `${field}: unknown field${allowed.length > 0 ? `; expected one of ${allowed.join(', ')}` : ''}`,
        path: field,
      };
    }
    case 'propertyNames':
      return bad(`${name} has a key that is not allowed`);
    case 'minProperties':
      // `minProperties: 1, maxProperties: 1` says "exactly one of these fields" (`user`).
      if ((e.parentSchema as SchemaObject | undefined)?.maxProperties === 1) {
        const fields = Object.keys(((e.parentSchema as SchemaObject).properties as SchemaObject) ?? {});
        return { code: 'missing_field', message: `${name} needs ${fields.join(' or ')}`, path: at };
      }
      return bad(`${name} must have at least ${p.limit} ${p.limit === 1 ? 'entry' : 'entries'}`);
    case 'maxProperties':
      if (p.limit === 1) return bad(`${name} takes one of its fields, not several`);
      return bad(`${name} has more than ${p.limit} entries`);
    case 'type':
      return bad(`${name} must be ${article(String(p.type))}`);
    case 'enum':
      return bad(
        `${name}: ${JSON.stringify(valueAt(data, e.instancePath))} is not allowed; use one of ${(
          p.allowedValues as unknown[]
        )
          .map((v) => String(v))
          .join(', ')}`,
      );
    case 'const':
      return bad(`${name} must be ${JSON.stringify(p.allowedValue)}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return bad(`${name} must be ${p.comparison} ${p.limit}`);
    case 'minLength':
    case 'maxLength':
      return bad(
        `${name} must have ${e.keyword === 'minLength' ? 'at least' : 'at most'} ${p.limit} characters`,
      );
    case 'minItems':
      return bad(`${name} must have at least ${p.limit} item${p.limit === 1 ? '' : 's'}`);
    case 'maxItems':
      return bad(`${name} has more than ${p.limit} items`);
    case 'uniqueItems':
      return bad(`${name} lists the same value twice (items ${p.j} and ${p.i})`);
    case 'pattern':
      return bad(`${name} does not have the expected form`);
    case 'format':
      return bad(
        p.format === 'iana-timezone'
          ? `${name}: ${JSON.stringify(valueAt(data, e.instancePath))} is not a known IANA time zone`
          : p.format === 'date-time'
            ? `${name} must be an ISO 8601 date-time with a zone (2026-11-24T12:00:00Z)`
            : `${name} must be a ${p.format}`,
      );
    case 'anyOf':
    case 'oneOf':
      return bad(`${name} does not have any of the accepted forms`);
    default:
      return bad(`${name} ${e.message ?? 'is not valid'}`);
  }
}

function keyRule(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'pattern') return ' (lower-case letters, digits, - or _, starting with a letter)';
  if (e.keyword === 'maxLength') return ` (at most ${p.limit} characters)`;
  if (e.keyword === 'minLength') return ' (it is empty)';
  return '';
}

function article(type: string): string {
  const names = type
    .split(',')
    .map((t) =>
      t === 'integer'
        ? 'a whole number'
        : t === 'array'
          ? 'an array'
          : t === 'object'
            ? 'an object'
            : t === 'null'
              ? 'null'
              : `a ${t}`,
    );
  return names.join(' or ');
}

function valueAt(data: unknown, pointer: string): unknown {
  let node = data;
  if (pointer === '') return node;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[seg];
  }
  return node;
}
