/**
 * How the Redis store lays out a person in bytes: format 2, which lives only here (the Lua side
 * of it is in lua.ts; format 1, the embedded store's, is in profile-format.ts).
 *
 * One value per person, every string (tags, map keys, string attribute values, the time zone,
 * brand and stage names) an id into the string dictionary (dictionary.ts), numbers as varints
 * where they are integers (or two-decimal fractions), the stages first so that Lua scripts can
 * move them without knowing the rest. Varints: 7 bits a byte, least significant first, the high
 * bit set on every byte but the last.
 *
 *   byte 0         format 2 in bits 0-2, the number of stages n in bits 3-7 (31: n - 31 follows
 *                  in a varint)
 *   stages         n pairs: varint brand id, varint stage id (the profile's order)
 *   varint flags   which fields follow (bits below); the body starts here
 *   clv            bit 0: a map of numbers
 *   attrs          bit 1: a map of scalars
 *   channels       bit 2: the known channels (rules/types.ts) in their order: a byte, bits 0-5
 *                  the channels present, bits 6-7 the value mode, then the values;
 *                  bit 6: a map of numbers (other keys, or another order)
 *   activeHours    bit 3: 3 bytes, bit h set for hour h (whole hours 0-23, ascending, distinct);
 *                  bit 7: varint count, then tagged values (any other list)
 *   timezone       bit 4: varint id
 *   updatedAt      bit 5: varint (a non-negative integer); bit 8: a tagged value (any other)
 *   id             bit 9: varint length, UTF-8 (only when it differs from the person id of the key)
 *   extra          bit 10: varint length, MessagePack of the fields this version does not know
 *                  (extra-fields.ts)
 *   tags           always, last, to the end of the value (see writeTags): a byte whose bits 0-1
 *                  say how, then 0: varint ids in the profile's order; 3: the same ids packed at
 *                  the width in bits 2-7 of the first byte; 1 (ids ascending): the first id, then
 *                  each gap minus one; 2 (ids ascending): a bitmap
 * The flags of a typical profile take one byte, its tags 7 bits each (for a dictionary of under
 * 127 strings): about 63 bytes for a demo person with 27 tags.
 *
 * A map is a varint header (count * 4 + mode), then count pairs of varint key id and value. Mode 0:
 * every value a non-negative integer, written as a varint; mode 1: every value a non-negative
 * number with at most two decimals, written as a varint of value * 100; mode 2: tagged values.
 * A tagged value is a varint whose low 3 bits say what it is and whose upper bits carry it:
 * 0 integer n >= 0 (n), 1 integer n < 0 (-n - 1), 2 two-decimal fraction (value * 100, zigzag),
 * 3 anything else (upper bits 0; 8 bytes of IEEE-754 double, little-endian, follow),
 * 4 string (its id), 5 boolean (0 false, 1 true). Numbers come back exactly as written (-0 too);
 * a number that is not finite, or a value of the wrong type, is refused when encoding.
 *
 * Decoding never throws: a value that is not what this module wrote decodes to null, and the
 * caller counts it.
 */
import { CHANNELS, type Profile, type Scalar } from '../../rules/types.js';
import { addExtra, extraFields, packr } from './extra-fields.js';
import { setOwn } from './person.js';

/** The format of a person's value in Redis: the low 3 bits of its first byte. */
export const PERSON_FORMAT = 2;
/** The stage count in the first byte (above the format) that says a varint with the rest follows. */
const STAGES_MORE = 31;

/** What encoding needs of the string dictionary. */
export interface StringIds {
  /** The id of a string; undefined when the dictionary of this process does not have it (yet). */
  idOf(name: string): number | undefined;
}

/** Decoding met ids the dictionary of this process does not have: load them, then decode again. */
export class MissingStrings {
  constructor(readonly ids: readonly number[]) {}
}

// Flags of the body. What most profiles have comes first, so that their flags take one byte.
const F_CLV = 1 << 0;
const F_ATTRS = 1 << 1;
const F_CHANNELS_SET = 1 << 2;
const F_HOURS_SET = 1 << 3;
const F_TIMEZONE = 1 << 4;
const F_UPDATED = 1 << 5;
const F_CHANNELS_MAP = 1 << 6;
const F_HOURS_LIST = 1 << 7;
const F_UPDATED_TAGGED = 1 << 8;
const F_ID = 1 << 9;
const F_EXTRA = 1 << 10;
const KNOWN_FLAGS = (1 << 11) - 1;

// How the tags are written (the low 2 bits of their first byte; the tags run to the end).
const TAGS_LIST = 0;
const TAGS_GAPS = 1;
const TAGS_BITMAP = 2;
const TAGS_PACKED = 3;
/** The widest id packed tags take, in bits. */
const MAX_PACKED_WIDTH = 24;

const MODE_UINT = 0;
const MODE_CENTS = 1;
const MODE_TAGGED = 2;

const KIND_UINT = 0;
const KIND_NEGATIVE = 1;
const KIND_CENTS = 2;
const KIND_FLOAT = 3;
const KIND_STRING = 4;
const KIND_BOOLEAN = 5;
/** Payloads of tagged values stay below this, so that payload * 8 + kind is a safe integer. */
const TAGGED_LIMIT = 2 ** 50;

/** Bytes being written; one per module, reused (encoding is synchronous). */
class Writer {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(2 * this.buf.length, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.len++] = b;
  }

  /** A varint: 7 bits a byte, least significant first (any safe non-negative integer). */
  uint(n: number): void {
    this.room(8);
    const buf = this.buf;
    while (n >= 0x80) {
      buf[this.len++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[this.len++] = n;
  }

  float(x: number): void {
    this.room(8);
    this.view.setFloat64(this.len, x, true);
    this.len += 8;
  }

  /** Writes n zero bytes; returns where they start. */
  zeros(n: number): number {
    this.room(n);
    const at = this.len;
    this.buf.fill(0, at, at + n);
    this.len += n;
    return at;
  }

  /** Sets bits in a byte written before. */
  setBits(at: number, bits: number): void {
    this.buf[at]! |= bits;
  }

  bytes(b: Uint8Array): void {
    this.uint(b.length);
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** The bytes written since the last take, as a Buffer of their own. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.len);
    out.set(this.buf.subarray(0, this.len));
    this.len = 0;
    return out;
  }
}

const writer = new Writer();
const tagIds: number[] = [];

function uintBytes(n: number): number {
  if (n < 0x80) return 1;
  let k = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    k++;
  }
  return k;
}

/** The id of a string; 0 (and the string noted as missing) when the dictionary lacks it. */
function idOf(dict: StringIds, name: unknown, missing: Set<string>, what: string): number {
  if (typeof name !== 'string') throw new TypeError(`${what} must be a string, got ${JSON.stringify(name)}`);
  const id = dict.idOf(name);
  if (id !== undefined) return id;
  missing.add(name);
  return 0;
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && (v > 0 || Object.is(v, 0));
}

function centsOf(v: unknown): number {
  if (typeof v !== 'number' || !(v > 0 || Object.is(v, 0))) return -1;
  const c = Math.round(v * 100);
  return c <= Number.MAX_SAFE_INTEGER && c / 100 === v ? c : -1;
}

function writeTaggedNumber(w: Writer, v: number, what: string): void {
  if (!Number.isFinite(v)) throw new TypeError(`${what} must be a finite number, got ${v}`);
  if (Number.isInteger(v) && !Object.is(v, -0)) {
    if (v >= 0 && v < TAGGED_LIMIT) {
      w.uint(v * 8 + KIND_UINT);
      return;
    }
    if (v < 0 && -v <= TAGGED_LIMIT) {
      w.uint((-v - 1) * 8 + KIND_NEGATIVE);
      return;
    }
  } else if (!Number.isInteger(v)) {
    const c = Math.round(v * 100);
    if (c / 100 === v && Math.abs(c) < TAGGED_LIMIT / 2) {
      w.uint((c >= 0 ? 2 * c : -2 * c - 1) * 8 + KIND_CENTS);
      return;
    }
  }
  w.byte(KIND_FLOAT);
  w.float(v);
}

function writeTaggedScalar(w: Writer, v: unknown, dict: StringIds, missing: Set<string>, what: string): void {
  if (typeof v === 'number') writeTaggedNumber(w, v, what);
  else if (typeof v === 'string') w.uint(idOf(dict, v, missing, what) * 8 + KIND_STRING);
  else if (typeof v === 'boolean') w.uint((v ? 8 : 0) + KIND_BOOLEAN);
  else throw new TypeError(`${what} must be a string, number or boolean, got ${JSON.stringify(v)}`);
}

function writeMap(
  w: Writer,
  map: Readonly<Record<string, unknown>>,
  scalars: boolean,
  dict: StringIds,
  missing: Set<string>,
  what: string,
): void {
  const keys = Object.keys(map);
  const mode = valueMode(map, keys);
  w.uint(keys.length * 4 + mode);
  for (const key of keys) {
    w.uint(idOf(dict, key, missing, `${what} key`));
    writeValue(w, map[key], mode, scalars, dict, missing, `${what}.${key}`);
  }
}

/** How the values of a map are written: all as varints, all as cents, or each tagged. */
function valueMode(map: Readonly<Record<string, unknown>>, keys: readonly string[]): number {
  let mode = MODE_UINT;
  for (const key of keys) {
    if (!isUint(map[key])) {
      mode = MODE_CENTS;
      break;
    }
  }
  if (mode === MODE_CENTS) {
    for (const key of keys) if (centsOf(map[key]) < 0) return MODE_TAGGED;
  }
  return mode;
}

function writeValue(
  w: Writer,
  v: unknown,
  mode: number,
  scalars: boolean,
  dict: StringIds,
  missing: Set<string>,
  what: string,
): void {
  if (mode === MODE_UINT) w.uint(v as number);
  else if (mode === MODE_CENTS) w.uint(centsOf(v));
  else if (scalars) writeTaggedScalar(w, v, dict, missing, what);
  else if (typeof v === 'number') writeTaggedNumber(w, v, what);
  else throw new TypeError(`${what} must be a number, got ${JSON.stringify(v)}`);
}

/**
 * Channels named by the known channels (rules/types.ts), in their order: a byte, bits 0-5 the
 * channels present and bits 6-7 the value mode, then the values. The set as that byte's low
 * bits; -1 when the keys are not known channels in that order.
 */
function channelsSet(channels: Readonly<Record<string, unknown>>): number {
  let set = 0;
  let last = -1;
  for (const key of Object.keys(channels)) {
    const i = CHANNEL_INDEX.get(key);
    if (i === undefined || i <= last) return -1;
    set |= 1 << i;
    last = i;
  }
  return set;
}

function writeChannels(w: Writer, channels: Readonly<Record<string, unknown>>, set: number): void {
  const keys = Object.keys(channels);
  const mode = valueMode(channels, keys);
  w.byte(set | (mode << 6));
  for (const key of keys) writeValue(w, channels[key], mode, false, NO_IDS, NO_MISSING, `channels.${key}`);
}

const CHANNEL_INDEX = new Map<string, number>(CHANNELS.map((c, i) => [c, i]));
/** For values that are never strings. */
const NO_IDS: StringIds = { idOf: () => undefined };
const NO_MISSING = new Set<string>();

/** The hours as a 24-bit set, or -1 when they are not whole hours 0-23, ascending and distinct. */
function hourSet(hours: readonly number[]): number {
  if (hours.length === 0) return -1;
  let set = 0;
  let last = -1;
  for (const h of hours) {
    if (!Number.isInteger(h) || h <= last || h > 23 || Object.is(h, -0)) return -1;
    set |= 1 << h;
    last = h;
  }
  return set;
}

/**
 * The head of a value: the first byte (format, stage count) and the `[brand, stage]` pairs as
 * ids. Strings the dictionary lacks are added to `missing` (the bytes are then of no use: assign
 * them and encode again).
 */
export function encodeStages(
  stages: ReadonlyArray<readonly [string, string]>,
  dict: StringIds,
  missing: Set<string>,
): Buffer {
  const w = writer;
  w.len = 0;
  const n = stages.length;
  w.byte(PERSON_FORMAT | (Math.min(n, STAGES_MORE) << 3));
  if (n >= STAGES_MORE) w.uint(n - STAGES_MORE);
  for (const [brand, stage] of stages) {
    w.uint(idOf(dict, brand, missing, 'a brand'));
    w.uint(idOf(dict, stage, missing, `stage of brand ${JSON.stringify(brand)}`));
  }
  return w.take();
}

/**
 * The body of a value: everything but the stages (a `stages` field of the profile is ignored),
 * for the person `pid` (the profile's id is written only when it differs). Strings the dictionary
 * lacks are added to `missing` (the bytes are then of no use: assign them and encode again).
 * Throws a TypeError on a field of the wrong type.
 */
export function encodeBody(profile: Profile, pid: string, dict: StringIds, missing: Set<string>): Buffer {
  const w = writer;
  w.len = 0;
  const { clv, attrs, channels, activeHours, timezone, updatedAt } = profile;
  let flags = 0;
  if (clv != null) flags |= F_CLV;
  if (attrs != null) flags |= F_ATTRS;
  let channelSet = -1;
  if (channels != null) {
    channelSet = channelsSet(checkedMap(channels, 'channels'));
    flags |= channelSet >= 0 ? F_CHANNELS_SET : F_CHANNELS_MAP;
  }
  let hours = -1;
  if (activeHours != null) {
    if (!Array.isArray(activeHours)) throw new TypeError('active hours must be an array of numbers');
    hours = hourSet(activeHours);
    flags |= hours >= 0 ? F_HOURS_SET : F_HOURS_LIST;
  }
  if (timezone != null) flags |= F_TIMEZONE;
  if (updatedAt != null) flags |= isUint(updatedAt) ? F_UPDATED : F_UPDATED_TAGGED;
  if (profile.id !== pid) flags |= F_ID;
  const extra = extraFields(profile);
  if (extra !== null) flags |= F_EXTRA;

  w.uint(flags);
  if (clv != null) writeMap(w, checkedMap(clv, 'clv'), false, dict, missing, 'clv');
  if (attrs != null) writeMap(w, checkedMap(attrs, 'attrs'), true, dict, missing, 'attrs');
  if (channels != null) {
    if (channelSet >= 0) writeChannels(w, channels as Readonly<Record<string, unknown>>, channelSet);
    else writeMap(w, checkedMap(channels, 'channels'), false, dict, missing, 'channels');
  }
  if (activeHours != null) {
    if (hours >= 0) {
      w.byte(hours & 0xff);
      w.byte((hours >> 8) & 0xff);
      w.byte((hours >> 16) & 0xff);
    } else {
      w.uint(activeHours.length);
      for (const h of activeHours) {
        if (typeof h !== 'number') throw new TypeError('active hours must be numbers');
        writeTaggedNumber(w, h, 'an active hour');
      }
    }
  }
  if (timezone != null) w.uint(idOf(dict, timezone, missing, 'the time zone'));
  if (updatedAt != null) {
    if (typeof updatedAt !== 'number') throw new TypeError('updatedAt must be a number');
    if (flags & F_UPDATED) w.uint(updatedAt);
    else writeTaggedNumber(w, updatedAt, 'updatedAt');
  }
  if (flags & F_ID) {
    if (typeof profile.id !== 'string') throw new TypeError('the profile id must be a string');
    w.bytes(Buffer.from(profile.id, 'utf8'));
  }
  if (extra !== null) w.bytes(packr.pack(extra));
  writeTags(w, profile.tags, dict, missing);
  return w.take();
}

/**
 * The tags, last: a byte (form in the low 2 bits; for packed ids, their width in bits above),
 * then to the end of the value: varint ids in order; ascending ids as the first and then each
 * gap minus one; a bitmap (varint first byte b, then bytes, bit j of byte k meaning id
 * (b + k) * 8 + j); or ids in order packed at a fixed width, least significant bit first, the
 * last byte filled with 1 bits (no id is all ones at its width). The shortest form is written.
 */
function writeTags(w: Writer, tags: unknown, dict: StringIds, missing: Set<string>): void {
  if (!Array.isArray(tags)) throw new TypeError('tags must be an array of strings');
  const ids = tagIds;
  ids.length = 0;
  let ascending = true;
  let max = 0;
  let list = 0;
  for (let i = 0; i < tags.length; i++) {
    const id = idOf(dict, tags[i], missing, 'a tag');
    if (i > 0 && id <= ids[i - 1]!) ascending = false;
    if (id > max) max = id;
    list += uintBytes(id);
    ids.push(id);
  }
  let form = TAGS_LIST;
  let best = list;
  let width = 1;
  while (2 ** width - 1 <= max) width++;
  const packed = Math.ceil((ids.length * width) / 8);
  if (width <= MAX_PACKED_WIDTH && packed < best) {
    form = TAGS_PACKED;
    best = packed;
  }
  let lo = 0;
  let span = 0;
  if (ascending && ids.length > 1) {
    let gaps = uintBytes(ids[0]!);
    for (let i = 1; i < ids.length; i++) gaps += uintBytes(ids[i]! - ids[i - 1]! - 1);
    if (gaps < best) {
      form = TAGS_GAPS;
      best = gaps;
    }
    lo = Math.floor(ids[0]! / 8);
    span = Math.floor(ids[ids.length - 1]! / 8) - lo + 1;
    if (uintBytes(lo) + span < best) form = TAGS_BITMAP;
  }
  if (form === TAGS_PACKED) {
    w.byte(TAGS_PACKED | (width << 2));
    // Whole int32 arithmetic: at most 24 + 7 bits are ever held.
    let acc = 0;
    let bits = 0;
    for (const id of ids) {
      acc |= id << bits;
      bits += width;
      while (bits >= 8) {
        w.byte(acc & 0xff);
        acc >>>= 8;
        bits -= 8;
      }
    }
    if (bits > 0) w.byte(acc | ((0xff << bits) & 0xff));
  } else if (form === TAGS_BITMAP) {
    w.byte(TAGS_BITMAP);
    w.uint(lo);
    const at = w.zeros(span);
    for (const id of ids) {
      const bit = id - lo * 8;
      w.setBits(at + Math.floor(bit / 8), 1 << (bit % 8));
    }
  } else if (form === TAGS_GAPS) {
    w.byte(TAGS_GAPS);
    w.uint(ids[0]!);
    for (let i = 1; i < ids.length; i++) w.uint(ids[i]! - ids[i - 1]! - 1);
  } else {
    w.byte(TAGS_LIST);
    for (const id of ids) w.uint(id);
  }
}

function checkedMap(v: unknown, what: string): Readonly<Record<string, unknown>> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new TypeError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

/** A whole value: the head (encodeStages) and the body (encodeBody). */
export function personValue(stages: Uint8Array, body: Uint8Array): Buffer {
  return Buffer.concat([stages, body]);
}

/** Where the body of a format-2 value starts (after its stages); -1 when it is not such a value. */
export function bodyStart(bytes: Uint8Array): number {
  try {
    const r = new Reader(bytes, EMPTY_NAMES, []);
    const n = r.stageCount();
    if (n < 0) return -1;
    for (let i = 0; i < 2 * n; i++) r.uint();
    return r.pos;
  } catch {
    return -1;
  }
}

const EMPTY_NAMES: readonly (string | undefined)[] = [];
const EMPTY_TAGS: string[] = [];
/** Thrown inside the decoder at bytes it cannot read; never leaves it. */
const CORRUPT = new Error('corrupt value');

class Reader {
  pos = 0;
  private view: DataView | null = null;
  constructor(
    readonly bytes: Uint8Array,
    readonly names: readonly (string | undefined)[],
    readonly missing: number[],
  ) {}

  uint(): number {
    const b = this.bytes[this.pos++];
    if (b === undefined) throw CORRUPT;
    if (b < 0x80) return b;
    let n = b & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < 8; i++) {
      const next = this.bytes[this.pos++];
      if (next === undefined) throw CORRUPT;
      n += (next & 0x7f) * scale;
      if (next < 0x80) {
        if (n > Number.MAX_SAFE_INTEGER) throw CORRUPT;
        return n;
      }
      scale *= 0x80;
    }
    throw CORRUPT;
  }

  /** The stage count from the first byte; -1 when the value is not of this format. */
  stageCount(): number {
    const head = this.byte();
    if ((head & 7) !== PERSON_FORMAT) return -1;
    const n = head >> 3;
    return n === STAGES_MORE ? n + this.uint() : n;
  }

  byte(): number {
    const b = this.bytes[this.pos++];
    if (b === undefined) throw CORRUPT;
    return b;
  }

  float(): number {
    if (this.pos + 8 > this.bytes.length) throw CORRUPT;
    this.view ??= new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    const x = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return x;
  }

  /** The string of an id; '' (and the id noted as missing) when the dictionary lacks it. */
  name(id: number): string {
    const s = this.names[id];
    if (s !== undefined) return s;
    this.missing.push(id);
    return '';
  }

  raw(): Uint8Array {
    const n = this.uint();
    if (this.pos + n > this.bytes.length) throw CORRUPT;
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A tagged value; strings and booleans only when `scalars`. */
  tagged(scalars: boolean): Scalar {
    const h = this.uint();
    const kind = h % 8;
    const payload = (h - kind) / 8;
    switch (kind) {
      case KIND_UINT:
        return payload;
      case KIND_NEGATIVE:
        return -payload - 1;
      case KIND_CENTS:
        return (payload % 2 === 0 ? payload / 2 : -(payload + 1) / 2) / 100;
      case KIND_FLOAT: {
        if (payload !== 0) throw CORRUPT;
        const x = this.float();
        if (!Number.isFinite(x)) throw CORRUPT;
        return x;
      }
      case KIND_STRING:
        if (!scalars) throw CORRUPT;
        return this.name(payload);
      case KIND_BOOLEAN:
        if (!scalars || payload > 1) throw CORRUPT;
        return payload === 1;
      default:
        throw CORRUPT;
    }
  }

  /** Channels written as a set of the known channels. */
  channels(): Record<string, number> {
    const head = this.byte();
    const mode = head >> 6;
    const out: Record<string, number> = {};
    for (let i = 0; i < CHANNELS.length; i++) {
      if ((head & (1 << i)) === 0) continue;
      if (mode === MODE_UINT) out[CHANNELS[i]!] = this.uint();
      else if (mode === MODE_CENTS) out[CHANNELS[i]!] = this.uint() / 100;
      else if (mode === MODE_TAGGED) out[CHANNELS[i]!] = this.tagged(false) as number;
      else throw CORRUPT;
    }
    return out;
  }

  /** The tags: the rest of the value (see writeTags). */
  tags(): string[] {
    const bytes = this.bytes;
    const head = this.byte();
    const form = head & 3;
    const tags: string[] = [];
    if (form === TAGS_PACKED) {
      const width = head >> 2;
      if (width < 1 || width > MAX_PACKED_WIDTH) throw CORRUPT;
      // Whole int32 arithmetic: at most 24 + 7 bits are ever held.
      const ones = (1 << width) - 1;
      const end = bytes.length;
      let pos = this.pos;
      let acc = 0;
      let bits = 0;
      for (;;) {
        while (bits < width && pos < end) {
          acc |= bytes[pos++]! << bits;
          bits += 8;
        }
        if (bits < width) break;
        const id = acc & ones;
        if (id === ones) break;
        tags.push(this.name(id));
        acc >>>= width;
        bits -= width;
      }
      this.pos = pos;
      // What is left is the fill of the last byte: all ones.
      if (pos !== end || acc !== (1 << bits) - 1) throw CORRUPT;
      return tags;
    }
    if (head > 3) throw CORRUPT;
    if (form === TAGS_BITMAP) {
      const lo = this.uint();
      for (let k = 0; this.pos < bytes.length; k++) {
        const b = bytes[this.pos++]!;
        for (let j = 0; j < 8; j++) if (b & (1 << j)) tags.push(this.name((lo + k) * 8 + j));
      }
    } else if (form === TAGS_GAPS) {
      let id = this.uint();
      tags.push(this.name(id));
      while (this.pos < bytes.length) {
        id += this.uint() + 1;
        tags.push(this.name(id));
      }
    } else {
      while (this.pos < bytes.length) tags.push(this.name(this.uint()));
    }
    return tags;
  }

  map(scalars: boolean): Record<string, Scalar> {
    const header = this.uint();
    const mode = header % 4;
    const n = (header - mode) / 4;
    const out: Record<string, Scalar> = {};
    for (let i = 0; i < n; i++) {
      const key = this.name(this.uint());
      let v: Scalar;
      if (mode === MODE_UINT) v = this.uint();
      else if (mode === MODE_CENTS) v = this.uint() / 100;
      else if (mode === MODE_TAGGED) v = this.tagged(scalars);
      else throw CORRUPT;
      if (key === '__proto__') setOwn(out, key, v);
      else out[key] = v;
    }
    return out;
  }
}

/**
 * The profile in a format-2 value of the person `pid`, with strings from `names` (id -> string).
 * Null when the bytes are not such a value; MissingStrings when they need ids `names` lacks.
 */
export function decodePerson(
  bytes: Uint8Array,
  pid: string,
  names: readonly (string | undefined)[],
): Profile | MissingStrings | null {
  const missing: number[] = [];
  const r = new Reader(bytes, names, missing);
  try {
    const n = r.stageCount();
    if (n < 0) return null;
    let stages: Record<string, string> | undefined;
    if (n > 0) {
      stages = {};
      for (let i = 0; i < n; i++) {
        const brand = r.name(r.uint());
        const stage = r.name(r.uint());
        if (brand === '__proto__') setOwn(stages, brand, stage);
        else stages[brand] = stage;
      }
    }
    const flags = r.uint();
    if (
      flags > KNOWN_FLAGS ||
      (flags & F_CHANNELS_SET && flags & F_CHANNELS_MAP) ||
      (flags & F_HOURS_SET && flags & F_HOURS_LIST) ||
      (flags & F_UPDATED && flags & F_UPDATED_TAGGED)
    )
      return null;
    const profile: Profile = { id: pid, tags: EMPTY_TAGS };
    if (stages !== undefined) profile.stages = stages;
    if (flags & F_CLV) profile.clv = r.map(false) as Record<string, number>;
    if (flags & F_ATTRS) profile.attrs = r.map(true);
    if (flags & F_CHANNELS_SET) profile.channels = r.channels();
    else if (flags & F_CHANNELS_MAP) profile.channels = r.map(false) as Record<string, number>;
    if (flags & F_HOURS_SET) {
      const set = r.byte() | (r.byte() << 8) | (r.byte() << 16);
      const hours: number[] = [];
      for (let h = 0; h < 24; h++) if (set & (1 << h)) hours.push(h);
      profile.activeHours = hours;
    } else if (flags & F_HOURS_LIST) {
      const count = r.uint();
      if (count > bytes.length) return null;
      const hours = new Array<number>(count);
      for (let i = 0; i < count; i++) hours[i] = r.tagged(false) as number;
      profile.activeHours = hours;
    }
    if (flags & F_TIMEZONE) profile.timezone = r.name(r.uint());
    if (flags & F_UPDATED) profile.updatedAt = r.uint();
    else if (flags & F_UPDATED_TAGGED) profile.updatedAt = r.tagged(false) as number;
    if (flags & F_ID) profile.id = Buffer.from(r.raw()).toString('utf8');
    if (flags & F_EXTRA) {
      const extra: unknown = packr.unpack(r.raw());
      if (!addExtra(profile, extra)) return null;
    }
    profile.tags = r.tags();
    if (missing.length > 0) return new MissingStrings(missing);
    return profile;
  } catch {
    return null;
  }
}

/** Every dictionary id a format-2 value holds (with repeats); null when it is not such a value. */
export function personIds(bytes: Uint8Array): readonly number[] | null {
  const out = decodePerson(bytes, '', EMPTY_NAMES);
  if (out === null) return null;
  return out instanceof MissingStrings ? out.ids : [];
}
