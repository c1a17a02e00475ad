/**
 * Time in the rule-set language: durations (`30m`, `1d`), quiet hours (`22:00-08:00`), date-times
 * with or without an offset, and IANA time-zone offsets. Pure: every function takes the instant
 * it is asked about; nothing reads the clock.
 */

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** Offsets are cached per quarter hour of UTC: zone transitions fall on quarter hours. */
const BUCKET_MS = 15 * MINUTE_MS;
const MAX_CACHED_BUCKETS = 4096;

const DURATION = /^(\d{1,6})(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: MINUTE_MS,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** A duration such as `90s`, `30m`, `12h`, `1d`, `2w`, in ms; null when malformed or zero. */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text);
  if (m === null) return null;
  const n = Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  return n > 0 ? n : null;
}

const CLOCK = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Minutes after midnight of `HH:MM`, or null. */
export function parseClock(text: string): number | null {
  const m = CLOCK.exec(text);
  return m === null ? null : Number(m[1]) * 60 + Number(m[2]);
}

/**
 * Quiet hours `HH:MM-HH:MM` as minutes after midnight; may cross midnight (`22:00-08:00`).
 * Null when malformed or empty (start equal to end).
 */
export function parseQuietHours(text: string): { start: number; end: number } | null {
  const dash = text.indexOf('-');
  if (dash < 0) return null;
  const start = parseClock(text.slice(0, dash).trim());
  const end = parseClock(text.slice(dash + 1).trim());
  if (start === null || end === null || start === end) return null;
  return { start, end };
}

interface Zone {
  readonly format: Intl.DateTimeFormat;
  readonly offsets: Map<number, number>;
}
const zones = new Map<string, Zone | null>();

function zone(tz: string): Zone | null {
  let z = zones.get(tz);
  if (z !== undefined) return z;
  try {
    const format = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    z = { format, offsets: new Map() };
  } catch {
    z = null;
  }
  zones.set(tz, z);
  return z;
}

/** Whether `tz` is an IANA time zone this runtime knows (`Asia/Shanghai`, `UTC`). */
export function isTimeZone(tz: string): boolean {
  return tz.length > 0 && zone(tz) !== null;
}

/**
 * The offset of `tz` from UTC at instant `t`, in minutes (Shanghai: 480). An unknown zone is
 * UTC. Cached per quarter hour, so the hot path rarely formats a date.
 */
export function tzOffsetMinutes(tz: string, t: number): number {
  const z = zone(tz);
  if (z === null) return 0;
  const bucket = Math.floor(t / BUCKET_MS);
  const hit = z.offsets.get(bucket);
  if (hit !== undefined) return hit;
  const at = bucket * BUCKET_MS;
  let y = 0;
  let mo = 0;
  let d = 0;
  let h = 0;
  let mi = 0;
  let s = 0;
  for (const part of z.format.formatToParts(at)) {
    const v = Number(part.value);
    switch (part.type) {
      case 'year':
        y = v;
        break;
      case 'month':
        mo = v;
        break;
      case 'day':
        d = v;
        break;
      case 'hour':
        h = v;
        break;
      case 'minute':
        mi = v;
        break;
      case 'second':
        s = v;
        break;
    }
  }
  const offset = Math.round((Date.UTC(y, mo - 1, d, h, mi, s) - at) / MINUTE_MS);
  if (z.offsets.size >= MAX_CACHED_BUCKETS) z.offsets.clear();
  z.offsets.set(bucket, offset);
  return offset;
}

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * An ISO 8601 date or date-time as epoch ms. With `Z` or an offset it is that instant; without,
 * it is wall-clock time in `tz` (a bare date is midnight there). Null when malformed or when a
 * field is out of range (`2026-02-30`).
 */
export function parseDateTime(text: string, tz: string): number | null {
  const m = DATE_TIME.exec(text.trim());
  if (m === null) return null;
  const [, ys, mos, ds, hs, mis, ss, frac, off] = m;
  const y = Number(ys);
  const mo = Number(mos);
  const d = Number(ds);
  const h = hs === undefined ? 0 : Number(hs);
  const mi = mis === undefined ? 0 : Number(mis);
  const s = ss === undefined ? 0 : Number(ss);
  const ms = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const wall = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  if (new Date(wall).getUTCDate() !== d) return null; // 30 February and the like
  if (off !== undefined) {
    if (off === 'Z') return wall;
    const sign = off[0] === '-' ? -1 : 1;
    const digits = off.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2));
    if (oh > 23 || om > 59) return null;
    return wall - sign * (oh * 60 + om) * MINUTE_MS;
  }
  if (!isTimeZone(tz)) return null;
  // Wall-clock time in a zone: guess with the offset at that wall time read as UTC, then correct
  // once (right everywhere but inside a DST gap, where the later reading wins).
  const first = wall - tzOffsetMinutes(tz, wall) * MINUTE_MS;
  const second = wall - tzOffsetMinutes(tz, first) * MINUTE_MS;
  return second;
}

/** A campaign's attribution window (`attributionWindow`): default, shortest and longest, ms. */
const BARE_DATE = /^(\d{4})-(\d{2})-(\d{2})(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * A flight's start or end: a date-time as parseDateTime reads it, except that a date alone is the
 * whole of that day: as the start its first instant, as the end its last millisecond, so
 * `end: "2026-11-11"` keeps the 11th.
 */
export function parseFlightBound(text: string, tz: string, edge: 'start' | 'end'): number | null {
  const t = parseDateTime(text, tz);
  const m = BARE_DATE.exec(text.trim());
  if (t === null || m === null) return t;
  // A date alone in a zone starts when the day does (midnight, unless a DST change skips it).
  if (edge === 'start')
    return m[4] === undefined && isTimeZone(tz) ? startOfDay(`${m[1]}-${m[2]}-${m[3]}`, tz) : t;
  const next = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1))
    .toISOString()
    .slice(0, 10);
  // With an offset, the next midnight at that offset; else the next day's start in the zone.
  const end =
    m[4] !== undefined ? parseDateTime(`${next}${m[4]}`, tz) : isTimeZone(tz) ? startOfDay(next, tz) : null;
  return end === null ? t : end - 1;
}

/**
 * The first instant of a local day (`2026-11-24`) in a zone. Usually its midnight; where a DST
 * change skips midnight (Santiago, Havana, Beirut: clocks go from 23:59 to 01:00), the moment the
 * day begins, found by halving the hour after the reading of midnight that lands on the day before.
 */
export function startOfDay(day: string, tz: string): number {
  const guess = parseDateTime(`${day}T00:00:00`, tz);
  if (guess === null) return Date.parse(`${day}T00:00:00Z`);
  if (localDay(tz, guess) === day && localDay(tz, guess - 1) !== day) return guess;
  // The guess is off (inside a skipped hour): the day starts within three hours after it.
  let lo = localDay(tz, guess) < day ? guess : guess - 3 * 3_600_000;
  let hi = lo + 3 * 3_600_000;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDay(tz, mid) < day) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The calendar periods found last, per kind and zone: a decision's cap check reuses them. */
const periods = new Map<string, { start: number; end: number }>();

/**
 * The calendar day or week (Monday to Sunday) holding `t` in zone `tz`, as [start, end) epoch ms
 * (23 to 25 hours for a day across a DST change). Remembered until `t` leaves it, so that checking
 * a calendar frequency cap costs a map look-up, not a time-zone conversion.
 */
export function calendarPeriod(kind: 'day' | 'week', tz: string, t: number): { start: number; end: number } {
  const key = `${kind}|${tz}`;
  const known = periods.get(key);
  if (known !== undefined && t >= known.start && t < known.end) return known;
  const day = Date.parse(`${localDay(tz, t)}T00:00:00Z`);
  const back = kind === 'week' ? (new Date(day).getUTCDay() + 6) % 7 : 0;
  const first = day - back * DAY_MS;
  const next = first + (kind === 'week' ? 7 : 1) * DAY_MS;
  const period = {
    start: startOfDay(new Date(first).toISOString().slice(0, 10), tz),
    end: startOfDay(new Date(next).toISOString().slice(0, 10), tz),
  };
  if (periods.size >= 1024) periods.clear();
  periods.set(key, period);
  return period;
}

/** How long a calendar period lasts at most (a DST change lengthens a day by an hour). */
export const CALENDAR_MAX_MS = { day: 25 * 3_600_000, week: 7 * 24 * 3_600_000 + 3_600_000 } as const;

export const DEFAULT_ATTRIBUTION_MS = 7 * 86_400_000;
export const MIN_ATTRIBUTION_MS = 3_600_000;
export const MAX_ATTRIBUTION_MS = 90 * 86_400_000;

/** The day (`2026-11-24`) a moment falls on in a time zone (an unknown zone reads as UTC). */
export function localDay(tz: string, t: number): string {
  const local = tz === 'UTC' ? t : t + tzOffsetMinutes(tz, t) * 60_000;
  return new Date(local).toISOString().slice(0, 10);
}

/** The UTC day of the last `isoTime`, and its text up to the `T`. */
let isoDay = Number.NaN;
let isoDayText = '';

const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/**
 * `new Date(t).toISOString()`, as every decision's send time is written: that call costs 2.2 µs
 * on this project's 2-core machine (a loop of a million), a tenth of a bid's decision. Here the
 * date's text is kept per UTC day and the time of day written with integer arithmetic. Throws as
 * toISOString does for a time no Date holds.
 */
export function isoTime(t: number): string {
  const ms = Math.trunc(t);
  if (!(Math.abs(ms) <= 8.64e15)) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS);
  if (day !== isoDay) {
    const text = new Date(day * DAY_MS).toISOString();
    isoDayText = text.slice(0, text.indexOf('T') + 1);
    isoDay = day;
  }
  let rest = ms - day * DAY_MS;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / MINUTE_MS);
  rest -= m * MINUTE_MS;
  const s = Math.floor(rest / 1000);
  const milli = rest - s * 1000;
  return `${isoDayText}${pad2(h)}:${pad2(m)}:${pad2(s)}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
