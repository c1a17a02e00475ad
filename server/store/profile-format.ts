/**
 * How the embedded store lays out a profile in bytes: format 1, which lives only here (format 2,
 * the Redis store's, is in person-format.ts; frequency counters are in impressions.ts).
 *
 * One MessagePack array per profile, positional, so field names cost nothing:
 *   [1, id, tags, stages, clv, attrs, channels, activeHours, timezone, updatedAt, extra]
 * Absent optional fields are nil; `extra` (nil when empty) keeps any field this version does not
 * know (extra-fields.ts), so nothing written is silently lost. The embedded store writes it
 * without stages (it keeps them apart); a blob with stages decodes with them.
 *
 * Decoding never throws: a value that is not what this module wrote decodes to null, and the
 * caller counts it.
 */
import type { Profile, Scalar } from '../../rules/types.js';
import { addExtra, extraFields, isPlainObject, packr } from './extra-fields.js';

/** The embedded store's layout. */
export const PROFILE_FORMAT = 1;

/** The stored bytes of a profile (format 1). */
export function encodeProfile(profile: Profile): Buffer {
  return packr.pack([
    PROFILE_FORMAT,
    profile.id,
    profile.tags,
    profile.stages ?? null,
    profile.clv ?? null,
    profile.attrs ?? null,
    profile.channels ?? null,
    profile.activeHours ?? null,
    profile.timezone ?? null,
    profile.updatedAt ?? null,
    extraFields(profile),
  ]);
}

/** The profile in format-1 bytes; null when the bytes are not a profile this module wrote. */
export function decodeProfile(bytes: Uint8Array): Profile | null {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    return null;
  }
  if (!Array.isArray(value) || value[0] !== PROFILE_FORMAT || value.length < 10) return null;
  const [, id, tags, stages, clv, attrs, channels, activeHours, timezone, updatedAt, extra] =
    value as unknown[];
  if (typeof id !== 'string' || !isStringArray(tags)) return null;
  const profile: Profile = { id, tags };
  if (stages != null) {
    if (!isRecordOf(stages, isString)) return null;
    profile.stages = stages;
  }
  if (clv != null) {
    if (!isRecordOf(clv, isNumber)) return null;
    profile.clv = clv;
  }
  if (attrs != null) {
    if (!isRecordOf(attrs, isScalar)) return null;
    profile.attrs = attrs;
  }
  if (channels != null) {
    if (!isRecordOf(channels, isNumber)) return null;
    profile.channels = channels;
  }
  if (activeHours != null) {
    if (!Array.isArray(activeHours) || !activeHours.every(isNumber)) return null;
    profile.activeHours = activeHours;
  }
  if (timezone != null) {
    if (typeof timezone !== 'string') return null;
    profile.timezone = timezone;
  }
  if (updatedAt != null) {
    if (!isNumber(updatedAt)) return null;
    profile.updatedAt = updatedAt;
  }
  if (extra != null && !addExtra(profile, extra)) return null;
  return profile;
}

// ---- shape checks -----------------------------------------------------------------------------

function isString(v: unknown): v is string {
  return typeof v === 'string';
}
function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
function isScalar(v: unknown): v is Scalar {
  return typeof v === 'string' || typeof v === 'boolean' || isNumber(v);
}
function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every(isString);
}
function isRecordOf<T>(v: unknown, check: (x: unknown) => x is T): v is Record<string, T> {
  if (!isPlainObject(v)) return false;
  for (const key of Object.keys(v)) if (!check(v[key])) return false;
  return true;
}
