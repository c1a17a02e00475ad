/**
 * What both stores do alike, in plain functions: splitting stages off a profile (they are kept
 * apart from the rest so that events can move them atomically: the first part of a person's
 * value in Redis, a map of their own in the embedded store), applying a patch, the stage an event
 * moves a person to, day arithmetic for funnel moves, and aliases as members (`kind:value`).
 */
import type { Profile } from '../../rules/types.js';
import type { DeliveryAdd, EventWrite, ProfilePatch } from './types.js';

/** Default dedupe window of event ids, ms (7 days). */
export const DEFAULT_EVENT_DEDUPE_MS = 7 * 86_400_000;
/** How long the moves of one day are kept, ms (about 400 days). */
export const DEFAULT_MOVES_TTL_MS = 400 * 86_400_000;
/** The longest span `funnel()` answers moves for, in days. */
export const MAX_FUNNEL_DAYS = 400;
/** The largest time a Date can hold, ms. */
const MAX_TIME_MS = 8.64e15;

const DAY_MS = 86_400_000;
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

/** Sets a key on a plain object, safe for any key (`__proto__` included). */
export function setOwn<T>(out: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true });
  else out[key] = value;
}

/**
 * The profile without its stages, and the stages as pairs; null when the profile does not say
 * (no `stages` field): the stored stages are then kept, since events move them and a profile
 * written without them must not reset anybody's funnel.
 */
export function splitStages(profile: Profile): { blob: Profile; stages: Array<[string, string]> | null } {
  if (profile.stages === undefined || profile.stages === null) {
    if (profile.stages === undefined) return { blob: profile, stages: null };
    const { stages: _none, ...bare } = profile;
    return { blob: bare as Profile, stages: null };
  }
  const stages: Array<[string, string]> = [];
  for (const brand of Object.keys(profile.stages)) {
    const stage = profile.stages[brand];
    if (typeof stage !== 'string')
      throw new TypeError(`stage of brand ${JSON.stringify(brand)} must be a string`);
    stages.push([brand, stage]);
  }
  const { stages: _omit, ...rest } = profile;
  return { blob: rest as Profile, stages };
}

/**
 * A stored profile with the stages kept apart merged in (the embedded store): they win over
 * stages the blob may carry. A person with stages but no profile blob is a profile with no tags.
 */
export function mergeStages(
  pid: string,
  blob: Profile | null,
  stages: Readonly<Record<string, string>> | null,
): Profile | null {
  const hasStages = stages !== null && Object.keys(stages).length > 0;
  if (blob === null) {
    if (!hasStages) return null;
    return { id: pid, tags: [], stages: copyRecord(stages) };
  }
  if (!hasStages) return blob;
  const merged: Record<string, string> = blob.stages === undefined ? {} : copyRecord(blob.stages);
  for (const brand of Object.keys(stages)) setOwn(merged, brand, stages[brand]!);
  blob.stages = merged;
  return blob;
}

function copyRecord<T>(from: Readonly<Record<string, T>>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const key of Object.keys(from)) setOwn(out, key, from[key]!);
  return out;
}

/**
 * The profile after a patch (a new object; `profile` is not changed). Tags: removals first, then
 * additions (a tag already present is not added twice). Maps: null removes an entry; a map left
 * empty by the patch is dropped. `activeHours` and `timezone`: a value replaces, null clears.
 */
export function applyPatch(profile: Profile, patch: ProfilePatch, now: number): Profile {
  const out: Profile = structuredClone(profile);
  if (patch.removeTags !== undefined || patch.addTags !== undefined) {
    const remove = new Set(patch.removeTags ?? []);
    const tags = out.tags.filter((t) => !remove.has(t));
    const have = new Set(tags);
    for (const tag of patch.addTags ?? []) {
      if (typeof tag !== 'string') throw new TypeError('tags must be strings');
      if (!have.has(tag)) {
        have.add(tag);
        tags.push(tag);
      }
    }
    out.tags = tags;
  }
  patchMap(out, 'stages', patch.stages, isString);
  patchMap(out, 'clv', patch.clv, isFiniteNumber);
  patchMap(out, 'attrs', patch.attrs, isScalar);
  patchMap(out, 'channels', patch.channels as Record<string, number | null> | undefined, isFiniteNumber);
  if (patch.activeHours !== undefined) {
    if (patch.activeHours === null) delete out.activeHours;
    else {
      if (!patch.activeHours.every(isFiniteNumber)) throw new TypeError('active hours must be numbers');
      out.activeHours = patch.activeHours.slice();
    }
  }
  if (patch.timezone !== undefined) {
    if (patch.timezone === null) delete out.timezone;
    else out.timezone = patch.timezone;
  }
  out.updatedAt = now;
  return out;
}

type MapField = 'stages' | 'clv' | 'attrs' | 'channels';

function patchMap<T>(
  out: Profile,
  field: MapField,
  changes: Readonly<Record<string, T | null>> | undefined,
  valid: (v: unknown) => v is T,
): void {
  if (changes === undefined || changes === null) return;
  const target = out as unknown as Record<string, Record<string, T> | undefined>;
  const map: Record<string, T> = target[field] ?? {};
  for (const key of Object.keys(changes)) {
    const value = changes[key];
    if (value === null) delete map[key];
    else if (valid(value)) setOwn(map, key, value);
    else throw new TypeError(`${field}.${key}: invalid value ${JSON.stringify(value)}`);
  }
  if (Object.keys(map).length === 0) delete target[field];
  else target[field] = map;
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}
function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
function isScalar(v: unknown): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'boolean' || isFiniteNumber(v);
}

/**
 * The stage an event moves a person to from `current`, or null when it does not move them:
 * `next[current]`, else `next['*']` when `current` is not a key of `next`; a move to the same
 * stage is no move.
 */
export function nextStage(next: Readonly<Record<string, string>>, current: string): string | null {
  let to: string | undefined;
  if (Object.hasOwn(next, current)) to = next[current];
  else if (Object.hasOwn(next, '*')) to = next['*'];
  if (to === undefined || to === current) return null;
  return to;
}

/** The UTC day (`2026-11-24`) of a time in epoch ms. */
export function utcDay(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}

/** Every day from `fromDay` to `toDay` inclusive; throws on a malformed day or too long a span. */
export function daysBetween(fromDay: string, toDay: string): string[] {
  const from = parseDay(fromDay);
  const to = parseDay(toDay);
  if (to < from) return [];
  const n = Math.round((to - from) / DAY_MS) + 1;
  if (n > MAX_FUNNEL_DAYS) throw new RangeError(`at most ${MAX_FUNNEL_DAYS} days of moves at once`);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(utcDay(from + i * DAY_MS));
  return out;
}

function parseDay(day: string): number {
  const t = DAY_RE.test(day) ? Date.parse(`${day}T00:00:00.000Z`) : Number.NaN;
  if (!Number.isFinite(t) || utcDay(t) !== day) throw new RangeError(`not a day (YYYY-MM-DD): ${day}`);
  return t;
}

/**
 * Alias kinds whose values are device advertising ids (IDFA, GAID, …): UUIDs that devices, SDKs
 * and exchanges write in either case, so they are kept and looked up in lower case.
 */
export const CASELESS_ALIAS_KINDS: ReadonlySet<string> = new Set(['idfa', 'ifa', 'gaid', 'aaid', 'adid']);

/**
 * An alias as the stores keep it: `kind:value` (the Redis key is `a:{kind:value}`); the value in
 * lower case for a kind in CASELESS_ALIAS_KINDS. Every store links and resolves through this.
 */
export function aliasMember(kind: string, value: string): string {
  return CASELESS_ALIAS_KINDS.has(kind) ? `${kind}:${value.toLowerCase()}` : `${kind}:${value}`;
}

/** `kind:value` alias members as `kind -> value` (the first value of a kind in sorted order). */
export function aliasRecord(members: Iterable<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const member of [...members].sort()) {
    const colon = member.indexOf(':');
    if (colon <= 0) continue;
    const kind = member.slice(0, colon);
    if (!Object.hasOwn(out, kind)) setOwn(out, kind, member.slice(colon + 1));
  }
  return out;
}

/** Throws when an event cannot be applied as written. */
export function checkEvent(event: EventWrite): void {
  if (typeof event.eventId !== 'string' || event.eventId === '')
    throw new TypeError('an event needs a non-empty eventId');
  if (typeof event.pid !== 'string' || event.pid === '') throw new TypeError('an event needs a person id');
  if (!Number.isFinite(event.at) || event.at < 0 || event.at > MAX_TIME_MS)
    throw new RangeError(`event time must be epoch milliseconds within the Date range, got ${event.at}`);
  if (event.stage !== undefined) {
    const { brand, defaultStage, next } = event.stage;
    if (typeof brand !== 'string' || typeof defaultStage !== 'string')
      throw new TypeError('a stage move needs a brand and a default stage');
    for (const key of Object.keys(next))
      if (typeof next[key] !== 'string') throw new TypeError(`stage move from ${key}: not a stage`);
    if (event.stage.day !== undefined) daysBetween(event.stage.day, event.stage.day);
  }
  if (event.impression !== undefined && typeof event.impression.campaign !== 'string')
    throw new TypeError('an impression needs a campaign id');
  if (event.delivery !== undefined) for (const a of event.delivery) checkDeliveryAdd(a);
  if (event.outcome !== undefined && event.outcome !== 'conversions' && event.outcome !== 'purchases')
    throw new TypeError(`not an outcome: ${String(event.outcome)}`);
}

/** A delivery count as stores take it: a campaign, a day, an integer. */
export function checkDeliveryAdd(a: DeliveryAdd): void {
  if (typeof a.campaign !== 'string' || a.campaign === '')
    throw new TypeError('a delivery count needs a campaign');
  if (!/^\d{4}-\d{2}-\d{2}$/.test(a.day)) throw new RangeError(`not a day (YYYY-MM-DD): ${a.day}`);
  daysBetween(a.day, a.day);
  if (!Number.isSafeInteger(a.n)) throw new RangeError(`a delivery count must be an integer, got ${a.n}`);
}
