/**
 * Parses and checks the body of POST /v1/decide (JSON or MessagePack) into a DecideInput.
 * Hand-written rather than schema-driven: it runs on every decision. Every problem is a
 * ClientError with a code and the path of the field at fault.
 */
import { isUtf8 } from 'node:buffer';
import { Packr } from 'msgpackr';
import type { EligibilityFilter } from '../../rules/decide.js';
import type { Channel, Placement } from '../../rules/types.js';
import { CHANNELS, FORBIDDEN_KEYS } from '../../rules/types.js';
import { ALIAS_KIND_PATTERN, LIMITS as CONTRACT_LIMITS } from '../contracts/schemas.js';
import { ClientError } from '../errors.js';

export type BodyFormat = 'json' | 'msgpack';

export type UserRef =
  | { kind: 'id'; id: string }
  | { kind: 'aliases'; aliases: Array<[kind: string, value: string]> }
  /**
   * Nobody may be looked up (a request without a lawful basis for personal data): decided on the
   * request's context alone. `seed` stands in for the person in hold-out draws and tie-breaks.
   */
  | { kind: 'anonymous'; seed: string };

export interface DecideInput {
  user: UserRef;
  placements: Placement[];
  contextTags: string[] | undefined;
  explain: boolean;
  /** The caller's own deadline, if tighter than the server's. */
  deadlineMs: number | undefined;
  /** Extra eligibility checks of this request (OpenRTB floors, blocks, deals). */
  filter?: EligibilityFilter;
  /** A bid (OpenRTB): a spend budget reserves the bid's price rather than the rule set's CPM. */
  bidding?: boolean;
}

/** The request contract's bounds (server/contracts/schemas.ts), and what only deciding needs. */
export const LIMITS = {
  idLength: CONTRACT_LIMITS.idLength,
  placements: CONTRACT_LIMITS.placements,
  placementChannels: CHANNELS.length,
  formats: CONTRACT_LIMITS.formats,
  contextTags: CONTRACT_LIMITS.contextTags,
  tagLength: CONTRACT_LIMITS.tagLength,
  aliases: CONTRACT_LIMITS.aliases,
  maxDeadlineMs: 60_000,
} as const;

/** msgpackr decodes a `__proto__` map key as `__proto_`: refused with the others. */
const REFUSED_KEYS: ReadonlySet<string> = new Set([...FORBIDDEN_KEYS, '__proto_']);
const CHANNEL_SET: ReadonlySet<string> = new Set(CHANNELS);
const ALIAS_KIND = new RegExp(ALIAS_KIND_PATTERN);

export const msgpack = new Packr({ useRecords: false, mapsAsObjects: true });

/** The body format from a Content-Type header; null for a type we do not take. */
export function bodyFormat(contentType: string): BodyFormat | null {
  if (contentType === '') return 'json';
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (type === 'application/json') return 'json';
  if (
    type === 'application/msgpack' ||
    type === 'application/x-msgpack' ||
    type === 'application/vnd.msgpack'
  ) {
    return 'msgpack';
  }
  return null;
}

export function decodeBody(body: Buffer, format: BodyFormat): unknown {
  if (format === 'json') {
    // toString would turn broken bytes into U+FFFD silently; the control plane refuses them too.
    if (!isUtf8(body)) throw new ClientError('bad_request', 'The body is not valid UTF-8');
    try {
      return JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new ClientError('bad_json', `The body is not valid JSON: ${(e as Error).message}`);
    }
  }
  try {
    return msgpack.unpack(body);
  } catch (e) {
    throw new ClientError('bad_msgpack', `The body is not valid MessagePack: ${(e as Error).message}`);
  }
}

export function parseDecideBody(body: Buffer, format: BodyFormat): DecideInput {
  return checkDecideRequest(decodeBody(body, format));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (!isObject(v)) throw new ClientError('invalid_field', `${path || 'the body'} must be an object`, path);
  return v;
}

/** Refuses forbidden keys, and keys outside `allowed` when given. */
function keys(o: Record<string, unknown>, path: string, allowed: ReadonlySet<string> | null): void {
  for (const k of Object.keys(o)) {
    const at = path === '' ? k : `${path}.${k}`;
    if (REFUSED_KEYS.has(k)) throw new ClientError('forbidden_key', `${at}: key "${k}" is not allowed`, at);
    if (allowed !== null && !allowed.has(k)) {
      throw new ClientError(
        'unknown_field',
        `${at}: unknown field; expected one of ${[...allowed].join(', ')}`,
        at,
      );
    }
  }
}

function string(v: unknown, path: string, max: number): string {
  if (typeof v !== 'string') throw new ClientError('invalid_field', `${path} must be a string`, path);
  if (v.length === 0 || v.length > max) {
    throw new ClientError('invalid_field', `${path} must have 1 to ${max} characters`, path);
  }
  return v;
}

function array(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw new ClientError('invalid_field', `${path} must be an array`, path);
  if (v.length > max) throw new ClientError('invalid_field', `${path} has more than ${max} items`, path);
  return v;
}

const TOP = new Set(['user', 'placements', 'context', 'explain', 'deadlineMs']);
const USER = new Set(['id', 'ids']);
const PLACEMENT = new Set(['id', 'channels', 'formats']);
const CONTEXT = new Set(['tags']);

/**
 * Placement ids are unique within a request: `id`, of placements[i], added to the ids `seen`
 * before it; the second use of an id is refused at its path. The data plane and the preview
 * check requests with it.
 */
export function notePlacementId(seen: Set<string>, id: string, i: number): void {
  if (seen.has(id)) {
    throw new ClientError(
      'invalid_field',
      `placements[${i}].id: "${id}" appears twice`,
      `placements[${i}].id`,
    );
  }
  seen.add(id);
}

export function checkDecideRequest(data: unknown): DecideInput {
  const top = object(data, '');
  keys(top, '', TOP);
  if (top.user === undefined) throw new ClientError('missing_field', 'user is required', 'user');
  const user = checkUser(top.user);
  if (top.placements === undefined)
    throw new ClientError('missing_field', 'placements is required', 'placements');
  const rawPlacements = array(top.placements, 'placements', LIMITS.placements);
  if (rawPlacements.length === 0) {
    throw new ClientError('invalid_field', 'placements must list at least one placement', 'placements');
  }
  const seen = new Set<string>();
  const placements = rawPlacements.map((p, i) => {
    const placement = checkPlacement(p, `placements[${i}]`);
    notePlacementId(seen, placement.id, i);
    return placement;
  });
  let contextTags: string[] | undefined;
  if (top.context !== undefined) {
    const ctx = object(top.context, 'context');
    keys(ctx, 'context', CONTEXT);
    if (ctx.tags !== undefined) {
      contextTags = array(ctx.tags, 'context.tags', LIMITS.contextTags).map((t, i) =>
        string(t, `context.tags[${i}]`, LIMITS.tagLength),
      );
    }
  }
  if (top.explain !== undefined && typeof top.explain !== 'boolean') {
    throw new ClientError('invalid_field', 'explain must be true or false', 'explain');
  }
  let deadlineMs: number | undefined;
  if (top.deadlineMs !== undefined) {
    const d = top.deadlineMs;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > LIMITS.maxDeadlineMs) {
      throw new ClientError(
        'invalid_field',
        `deadlineMs must be a whole number from 1 to ${LIMITS.maxDeadlineMs}`,
        'deadlineMs',
      );
    }
    deadlineMs = d;
  }
  return { user, placements, contextTags, explain: top.explain === true, deadlineMs };
}

function checkUser(v: unknown): UserRef {
  const u = object(v, 'user');
  keys(u, 'user', USER);
  if (u.id !== undefined && u.ids !== undefined) {
    throw new ClientError('invalid_field', 'user takes either id or ids, not both', 'user');
  }
  if (u.id !== undefined) return { kind: 'id', id: string(u.id, 'user.id', LIMITS.idLength) };
  if (u.ids === undefined) throw new ClientError('missing_field', 'user needs id or ids', 'user');
  const ids = object(u.ids, 'user.ids');
  keys(ids, 'user.ids', null);
  const aliases: Array<[string, string]> = [];
  for (const [kind, value] of Object.entries(ids)) {
    const at = `user.ids.${kind}`;
    if (!ALIAS_KIND.test(kind)) {
      throw new ClientError(
        'invalid_field',
        `${at}: an alias kind is lower-case letters, digits, - or _`,
        at,
      );
    }
    aliases.push([kind, string(value, at, LIMITS.idLength)]);
  }
  if (aliases.length === 0)
    throw new ClientError('invalid_field', 'user.ids must name at least one alias', 'user.ids');
  if (aliases.length > LIMITS.aliases) {
    throw new ClientError('invalid_field', `user.ids has more than ${LIMITS.aliases} aliases`, 'user.ids');
  }
  return { kind: 'aliases', aliases };
}

function checkPlacement(v: unknown, path: string): Placement {
  const p = object(v, path);
  keys(p, path, PLACEMENT);
  if (p.id === undefined) throw new ClientError('missing_field', `${path}.id is required`, `${path}.id`);
  const placement: Placement = { id: string(p.id, `${path}.id`, LIMITS.idLength) };
  if (p.channels !== undefined) {
    const list = array(p.channels, `${path}.channels`, LIMITS.placementChannels);
    placement.channels = list.map((c, i) => {
      const at = `${path}.channels[${i}]`;
      if (typeof c !== 'string' || !CHANNEL_SET.has(c)) {
        throw new ClientError(
          'invalid_field',
          `${at}: unknown channel ${JSON.stringify(c)}; use one of ${CHANNELS.join(', ')}`,
          at,
        );
      }
      return c as Channel;
    });
  }
  if (p.formats !== undefined) {
    placement.formats = array(p.formats, `${path}.formats`, LIMITS.formats).map((f, i) =>
      string(f, `${path}.formats[${i}]`, LIMITS.tagLength),
    );
  }
  return placement;
}
