/**
 * The fields of a profile this version does not know. Both stored formats carry them, so that
 * nothing written is silently lost: format 1 (profile-format.ts) in the `extra` slot of its array,
 * format 2 (person-format.ts) as its `extra` field; both as a MessagePack map, written with
 * `packr` (which format 1 also writes whole profiles with).
 */
import { Packr } from 'msgpackr';
import type { Profile } from '../../rules/types.js';

/** The MessagePack both formats write with. */
export const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

const KNOWN_FIELDS = new Set([
  'id',
  'tags',
  'stages',
  'clv',
  'attrs',
  'channels',
  'activeHours',
  'timezone',
  'updatedAt',
]);

/** The fields of a profile this version does not know; null when there are none. */
export function extraFields(profile: Profile): Record<string, unknown> | null {
  let extra: Record<string, unknown> | null = null;
  for (const key of Object.keys(profile)) {
    if (KNOWN_FIELDS.has(key)) continue;
    const value = (profile as unknown as Record<string, unknown>)[key];
    if (value === undefined) continue;
    extra ??= {};
    extra[key] = value;
  }
  return extra;
}

/** Copies the fields of `extra` this version does not know onto a profile; false when it is no object. */
export function addExtra(profile: Profile, extra: unknown): boolean {
  if (!isPlainObject(extra)) return false;
  for (const key of Object.keys(extra)) {
    if (KNOWN_FIELDS.has(key)) continue;
    (profile as unknown as Record<string, unknown>)[key] = extra[key];
  }
  return true;
}

/** An object made by `{}` or `Object.create(null)`: no array, class instance or null. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
