/**
 * How a person is laid out in bytes: one compact MessagePack value per profile, and packed
 * impression times per campaign for frequency counters. Every store (Redis, embedded) and the
 * Lua script that appends impressions agree on these formats, which live only here.
 *
 * Profile: a MessagePack array, positional, so field names cost nothing:
 *   [FORMAT, id, tags, stages, clv, attrs, channels, activeHours, timezone, updatedAt, extra]
 * Absent optional fields are nil; `extra` (nil when empty) keeps any field this version does not
 * know, so nothing written is silently lost. The stores now keep stages in a hash of their own
 * (`st:{pid}`) and write the blob without them; blobs written earlier may still carry stages,
 * which decode as before and are merged under the hash's. The leading format number leaves room for other
 * layouts (a dictionary-coded one, say) without rewriting stored data.
 *
 * Counter times: the impression times (epoch ms) of one campaign, ascending, each a big-endian
 * IEEE-754 double (8 bytes), concatenated. Lua in Redis reads and writes them with
 * `struct.unpack('>d')` / `struct.pack('>d')` (see RECORD_IMPRESSION_LUA).
 *
 * Decoding never throws: a value that is not what this module wrote decodes to null, and the
 * caller counts it.
 */
import { Packr } from 'msgpackr';
import type { Profile, Scalar } from '../../rules/types.js';

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

/** The layout written today. */
export const PROFILE_FORMAT = 1;

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

/** The stored bytes of a profile. */
export function encodeProfile(profile: Profile): Buffer {
  let extra: Record<string, unknown> | null = null;
  for (const key of Object.keys(profile)) {
    if (KNOWN_FIELDS.has(key)) continue;
    const value = (profile as unknown as Record<string, unknown>)[key];
    if (value === undefined) continue;
    extra ??= {};
    extra[key] = value;
  }
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
    extra,
  ]);
}

/** The profile in stored bytes; null when the bytes are not a profile this module wrote. */
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
  if (extra != null) {
    if (!isPlainObject(extra)) return null;
    for (const key of Object.keys(extra)) {
      if (KNOWN_FIELDS.has(key)) continue;
      (profile as unknown as Record<string, unknown>)[key] = extra[key];
    }
  }
  return profile;
}

// ---- frequency counters -----------------------------------------------------------------------

const TIME_BYTES = 8;

/** Packed impression times (ascending epoch ms). */
export function encodeTimes(times: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(times.length * TIME_BYTES);
  for (let i = 0; i < times.length; i++) buf.writeDoubleBE(times[i]!, i * TIME_BYTES);
  return buf;
}

/** The times in packed bytes; null when the bytes cannot be packed times. */
export function decodeTimes(bytes: Uint8Array): number[] | null {
  if (bytes.length % TIME_BYTES !== 0) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length / TIME_BYTES;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t = view.getFloat64(i * TIME_BYTES, false);
    if (!Number.isFinite(t)) return null;
    out[i] = t;
  }
  return out;
}

/**
 * The times of one campaign after one more impression at `at`: ascending, at most `keep` of the
 * most recent, and none older than `ttlMs` before the newest. RECORD_IMPRESSION_LUA does exactly
 * the same in Redis.
 */
export function appendImpression(
  times: readonly number[],
  at: number,
  keep: number,
  ttlMs: number,
): number[] {
  const all = times.slice();
  // Insert in order (times are usually appended in order, so scan from the end).
  let i = all.length;
  while (i > 0 && all[i - 1]! > at) i--;
  all.splice(i, 0, at);
  const newest = all[all.length - 1]!;
  const floor = newest - ttlMs;
  let from = Math.max(0, all.length - Math.max(1, keep));
  while (from < all.length && all[from]! < floor) from++;
  return from === 0 ? all : all.slice(from);
}

/** Clamps the arguments of recordImpression to what the stores accept. */
export function impressionLimits(keep: number, ttlMs: number): { keep: number; ttlMs: number } {
  return {
    keep: Number.isFinite(keep) ? Math.max(1, Math.floor(keep)) : 1,
    ttlMs: Number.isFinite(ttlMs) ? Math.max(1, Math.ceil(ttlMs)) : 1,
  };
}

/**
 * The Lua function behind RECORD_IMPRESSION_LUA, for scripts that append impressions as part of
 * more work (applying an event): `appendImpression(key, field, at, keep, ttl)`.
 */
export const APPEND_IMPRESSION_LUA_FN = `
local function appendImpression(key, field, at, keep, ttl)
  local times = {}
  local cur = redis.call('HGET', key, field)
  if cur then
    local n = math.floor(#cur / 8)
    for i = 0, n - 1 do
      times[#times + 1] = struct.unpack('>d', cur, i * 8 + 1)
    end
  end
  times[#times + 1] = at
  table.sort(times)
  local newest = times[#times]
  local floor = newest - ttl
  local from = #times - keep + 1
  if from < 1 then from = 1 end
  local out = {}
  for i = from, #times do
    if times[i] >= floor then out[#out + 1] = struct.pack('>d', times[i]) end
  end
  redis.call('HSET', key, field, table.concat(out))
  local pttl = redis.call('PTTL', key)
  if pttl < ttl then redis.call('PEXPIRE', key, ttl) end
  return #out
end
`;

/**
 * Appends one impression to a counters hash, atomically.
 * KEYS[1] the counters hash; ARGV: campaign id, time (ms), keep, ttl (ms).
 * Keeps the `keep` most recent times not older than ttl before the newest (as appendImpression),
 * and makes the hash live at least ttl ms from now (a shorter ttl of another campaign never cuts
 * a longer one short). Returns the number of times kept.
 */
export const RECORD_IMPRESSION_LUA = `${APPEND_IMPRESSION_LUA_FN}
return appendImpression(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
`;

/** Sets one campaign's times on a counters object (safe for any campaign id). */
export function setCounter(out: Record<string, number[]>, campaign: string, times: number[]): void {
  if (campaign === '__proto__')
    Object.defineProperty(out, campaign, { value: times, enumerable: true, writable: true });
  else out[campaign] = times;
}

/** An alias as the stores keep it: `kind:value` (the Redis key is `a:{kind:value}`). */
export function aliasMember(kind: string, value: string): string {
  return `${kind}:${value}`;
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
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
function isRecordOf<T>(v: unknown, check: (x: unknown) => x is T): v is Record<string, T> {
  if (!isPlainObject(v)) return false;
  for (const key of Object.keys(v)) if (!check(v[key])) return false;
  return true;
}
