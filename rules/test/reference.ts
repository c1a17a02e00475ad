/**
 * A plain interpreter of the rule-set language, written for clarity rather than speed, used by
 * the property tests as the meaning the compiled evaluator must agree with. It walks the
 * condition tree of every segment for every person, exactly as rules/types.ts and docs/rules.md
 * describe the language. Odd profile values (a number where a tag should be, a string where a
 * number is compared) count as missing; nothing here throws on them.
 */
import type {
  Campaign,
  Channel,
  Condition,
  Creative,
  FrequencyCounters,
  Placement,
  Profile,
  RuleSet,
  Scalar,
} from '../types.js';
import { CHANNELS, PUSH_CHANNELS } from '../types.js';

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null;
}

function isScalar(v: unknown): v is Scalar {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** An own property of an object-valued profile field, or undefined. */
function field(container: unknown, name: string): unknown {
  return isObject(container) && Object.hasOwn(container, name) ? container[name] : undefined;
}

/** The tags of a person for one request: the profile's string tags and the context tags. */
export function personTags(profile: Profile, contextTags?: readonly string[]): string[] {
  const out: string[] = [];
  const tags: unknown = profile.tags;
  if (Array.isArray(tags)) for (const t of tags) if (typeof t === 'string') out.push(t);
  if (Array.isArray(contextTags)) for (const t of contextTags) if (typeof t === 'string') out.push(t);
  return out;
}

/** The person's stage for a brand: the recorded one when it is a string, else the default. */
export function referenceStage(ruleSet: RuleSet, profile: Profile, brand: string): string {
  const s = field(profile.stages, brand);
  if (typeof s === 'string') return s;
  const own = ruleSet.defaultStages !== undefined && Object.hasOwn(ruleSet.defaultStages, brand);
  return (
    (own ? ruleSet.defaultStages?.[brand] : undefined) ?? ruleSet.defaultStage ?? ruleSet.funnel[0] ?? ''
  );
}

interface Env {
  ruleSet: RuleSet;
  profile: Profile;
  tags: string[];
  /** segment id -> result, filled as segments are evaluated */
  memo: Map<string, boolean>;
  /** segment ids being evaluated (a cycle counts as false) */
  open: Set<string>;
}

/** Whether a comparison leaf holds for value `v`; every operator given must hold. */
function compare(o: Obj, v: unknown): boolean {
  const ops = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'between'].filter((k) => k in o);
  for (const op of ops) {
    const x = o[op];
    let ok: boolean;
    switch (op) {
      case 'eq':
        ok = isScalar(v) && v === x;
        break;
      case 'ne':
        ok = isScalar(v) && v !== x;
        break;
      case 'gt':
        ok = typeof v === 'number' && typeof x === 'number' && v > x;
        break;
      case 'gte':
        ok = typeof v === 'number' && typeof x === 'number' && v >= x;
        break;
      case 'lt':
        ok = typeof v === 'number' && typeof x === 'number' && v < x;
        break;
      case 'lte':
        ok = typeof v === 'number' && typeof x === 'number' && v <= x;
        break;
      case 'in':
        ok = isScalar(v) && Array.isArray(x) && x.some((y) => y === v);
        break;
      default: {
        const lo: unknown = Array.isArray(x) ? x[0] : undefined;
        const hi: unknown = Array.isArray(x) ? x[1] : undefined;
        ok = typeof v === 'number' && typeof lo === 'number' && typeof hi === 'number' && lo <= v && v <= hi;
      }
    }
    if (!ok) return false;
  }
  return true;
}

/** A stage leaf: `eq ne in` by name, the ordered operators by position on the ladder. */
function compareStage(o: Obj, stage: string, funnel: readonly string[]): boolean {
  const at = funnel.indexOf(stage);
  const position = (x: unknown) => (typeof x === 'string' ? funnel.indexOf(x) : -1);
  const ordered = (x: unknown, cmp: (a: number, b: number) => boolean) =>
    at >= 0 && position(x) >= 0 && cmp(at, position(x));
  if ('eq' in o && stage !== o.eq) return false;
  if ('ne' in o && stage === o.ne) return false;
  if ('in' in o && !(Array.isArray(o.in) && o.in.includes(stage))) return false;
  if ('gt' in o && !ordered(o.gt, (a, b) => a > b)) return false;
  if ('gte' in o && !ordered(o.gte, (a, b) => a >= b)) return false;
  if ('lt' in o && !ordered(o.lt, (a, b) => a < b)) return false;
  if ('lte' in o && !ordered(o.lte, (a, b) => a <= b)) return false;
  if ('between' in o) {
    const b = Array.isArray(o.between) ? o.between : [];
    if (!(ordered(b[0], (a, lo) => a >= lo) && ordered(b[1], (a, hi) => a <= hi))) return false;
  }
  return true;
}

function holds(c: Condition, env: Env): boolean {
  const o = c as Obj;
  // Every part of one condition object must hold.
  if (typeof o.tag === 'string') {
    const tag = o.tag;
    const ok = tag.endsWith('*')
      ? env.tags.some((t) => t.startsWith(tag.slice(0, -1)))
      : env.tags.includes(tag);
    if (!ok) return false;
  } else if (typeof o.attr === 'string') {
    if (!compare(o, field(env.profile.attrs, o.attr))) return false;
  } else if (typeof o.clv === 'string') {
    const v = field(env.profile.clv, o.clv);
    if (!compare(o, typeof v === 'number' ? v : undefined)) return false;
  } else if (typeof o.stage === 'string') {
    const stage = referenceStage(env.ruleSet, env.profile, o.stage);
    if (!compareStage(o, stage, env.ruleSet.funnel)) return false;
  } else if (typeof o.segment === 'string') {
    if (!segmentHolds(o.segment, env)) return false;
  }
  if (Array.isArray(o.all) && !o.all.every((x) => holds(x as Condition, env))) return false;
  if (Array.isArray(o.any) && !o.any.some((x) => holds(x as Condition, env))) return false;
  if (isObject(o.not) && holds(o.not as Condition, env)) return false;
  return true;
}

function segmentHolds(id: string, env: Env): boolean {
  const known = env.memo.get(id);
  if (known !== undefined) return known;
  const seg = env.ruleSet.segments.find((s) => s.id === id);
  if (seg === undefined || env.open.has(id)) return false;
  env.open.add(id);
  const ok = holds(seg.when, env);
  env.open.delete(id);
  env.memo.set(id, ok);
  return ok;
}

/** Ids of the segments the person matches, in rule-set order. */
export function referenceMatch(
  ruleSet: RuleSet,
  profile: Profile,
  contextTags?: readonly string[],
): string[] {
  const env: Env = {
    ruleSet,
    profile,
    tags: personTags(profile, contextTags),
    memo: new Map(),
    open: new Set(),
  };
  return ruleSet.segments.filter((s) => segmentHolds(s.id, env)).map((s) => s.id);
}

// ---- time ------------------------------------------------------------------------------------

const UNIT_MS: Record<string, number> = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };

/** `30m`, `1d`: the length in ms. */
export function durationMs(text: string): number {
  const m = /^(\d+)([smhdw])$/.exec(text);
  return m === null ? 0 : Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
}

/** Offset of a zone from UTC at an instant, in minutes, read straight from Intl. */
export function offsetMinutes(timeZone: string, t: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(t);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return Math.round((wall - (t - (((t % 1000) + 1000) % 1000))) / 60000);
}

export function isKnownZone(tz: unknown): tz is string {
  if (typeof tz !== 'string' || tz.length === 0) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * A flight bound: an ISO date-time with `Z` or an offset is that instant; without one it is the
 * wall-clock time in `tz`. Only zones without daylight saving are used for the latter in the
 * tests, so one offset lookup is exact.
 */
export function flightInstant(text: string | undefined, tz: string, fallback: number): number {
  if (text === undefined) return fallback;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?(Z|[+-]\d{2}:\d{2})?$/.exec(text);
  if (m === null) return fallback;
  const wall = Date.UTC(
    Number(m[1]),
    Number(m[2]) - 1,
    Number(m[3]),
    Number(m[4] ?? 0),
    Number(m[5] ?? 0),
    Number(m[6] ?? 0),
  );
  const off = m[7];
  if (off === 'Z') return wall;
  if (off !== undefined) {
    const sign = off.startsWith('-') ? -1 : 1;
    return wall - sign * (Number(off.slice(1, 3)) * 60 + Number(off.slice(4, 6))) * 60000;
  }
  return wall - offsetMinutes(tz, wall) * 60000;
}

/** Quiet hours `HH:MM-HH:MM` as minutes after midnight. */
export function quietWindow(text: string | undefined): { start: number; end: number } | null {
  if (text === undefined) return null;
  const m = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(text);
  if (m === null) return null;
  const start = Number(m[1]) * 60 + Number(m[2]);
  const end = Number(m[3]) * 60 + Number(m[4]);
  return start === end ? null : { start, end };
}

/** Whether minute-of-day `minute` falls in quiet hours (which may cross midnight). */
export function inQuietHours(minute: number, q: { start: number; end: number }): boolean {
  return q.start < q.end ? minute >= q.start && minute < q.end : minute >= q.start || minute < q.end;
}

/** The person's active hours as a set; every hour when none valid are given. */
export function activeHourSet(profile: Profile): Set<number> {
  const hours: unknown = profile.activeHours;
  const set = new Set<number>();
  if (Array.isArray(hours))
    for (const h of hours) if (typeof h === 'number' && Number.isInteger(h) && h >= 0 && h < 24) set.add(h);
  if (set.size === 0) for (let h = 0; h < 24; h++) set.add(h);
  return set;
}

/** The zone a push time is judged in: the person's when known, else the campaign's. */
export function personZone(profile: Profile, campaign: Campaign): string {
  return isKnownZone(profile.timezone) ? profile.timezone : (campaign.timing?.timezone ?? 'UTC');
}

/** Local hour of an instant in a zone. */
export function localHour(t: number, tz: string): number {
  const local = t + offsetMinutes(tz, t) * 60000;
  return Math.floor((((local % 864e5) + 864e5) % 864e5) / 36e5);
}

/** Local minute of the day of an instant in a zone. */
export function localMinute(t: number, tz: string): number {
  const local = t + offsetMinutes(tz, t) * 60000;
  return Math.floor((((local % 864e5) + 864e5) % 864e5) / 6e4);
}

// ---- eligibility -------------------------------------------------------------------------------

export type FirstFailure = 'no_segment' | 'stage' | 'flight' | 'frequency_cap' | null;

export interface CampaignCheck {
  campaign: Campaign;
  /** The first check the campaign fails for this person, or null when it passes them all. */
  failure: FirstFailure;
  /** The first of the campaign's segments (in the campaign's order) the person is in. */
  segment: string | null;
  stage: string;
  flightStart: number;
  flightEnd: number;
}

export function flightOf(c: Campaign): { start: number; end: number } {
  const tz = c.flight?.timezone ?? c.timing?.timezone ?? 'UTC';
  return {
    start: flightInstant(c.flight?.start, tz, Number.NEGATIVE_INFINITY),
    end: flightEnd(c.flight?.end, tz),
  };
}

/** A flight's end: a date alone means the whole day, so the end is just before the next midnight. */
function flightEnd(text: string | undefined, tz: string): number {
  const m = text === undefined ? null : /^(\d{4})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?$/.exec(text);
  if (m === null) return flightInstant(text, tz, Number.POSITIVE_INFINITY);
  const next = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1));
  return flightInstant(`${next.toISOString().slice(0, 10)}${m[4] ?? ''}`, tz, Number.POSITIVE_INFINITY) - 1;
}

/**
 * The first instant of the calendar day or week (from Monday) holding `now` in `tz`: step back to
 * the local midnight by whole hours and minutes read from Intl, then to Monday for a week.
 */
export function calendarStart(kind: string, tz: string, now: number): number {
  const wall = now + offsetMinutes(tz, now) * 60000;
  const d = new Date(wall);
  let day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (kind === 'week') day -= ((d.getUTCDay() + 6) % 7) * 86_400_000;
  // The local midnight of that day, as an instant (two passes settle the offset there).
  let t = day - offsetMinutes(tz, day) * 60000;
  t = day - offsetMinutes(tz, t) * 60000;
  return t;
}

/** Whether some frequency cap of the campaign is reached by the impressions in `counters`. */
export function capReached(
  c: Campaign,
  counters: FrequencyCounters,
  now: number,
  profile?: Profile,
): boolean {
  const times: unknown = Object.hasOwn(counters, c.id) ? counters[c.id] : undefined;
  const list = Array.isArray(times) ? times.filter((t): t is number => typeof t === 'number') : [];
  return (c.frequencyCap ?? []).some((cap) => {
    if (cap.per !== 'day' && cap.per !== 'week') {
      return list.filter((t) => t > now - durationMs(cap.per)).length >= cap.max;
    }
    const own = cap.zone === 'person' ? profile?.timezone : undefined;
    const tz = typeof own === 'string' && validZone(own) ? own : (c.timing?.timezone ?? 'UTC');
    const start = calendarStart(cap.per, tz, now);
    return list.filter((t) => t >= start).length >= cap.max;
  });
}

function validZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The person-level checks of every campaign, in the order decide() applies them. */
export function referenceChecks(
  ruleSet: RuleSet,
  profile: Profile,
  counters: FrequencyCounters,
  now: number,
  contextTags?: readonly string[],
): CampaignCheck[] {
  const matched = new Set(referenceMatch(ruleSet, profile, contextTags));
  return ruleSet.campaigns.map((c) => {
    // A campaign without segments is for every person (it names no segment in its decisions).
    const segment = c.segments === undefined ? '' : (c.segments.find((s) => matched.has(s)) ?? null);
    const stage = referenceStage(ruleSet, profile, c.brand);
    const { start, end } = flightOf(c);
    let failure: FirstFailure = null;
    if (segment === null) failure = 'no_segment';
    else if (c.stages !== undefined && !c.stages.includes(stage)) failure = 'stage';
    else if (now < start || now > end) failure = 'flight';
    else if (capReached(c, counters, now, profile)) failure = 'frequency_cap';
    return { campaign: c, failure, segment, stage, flightStart: start, flightEnd: end };
  });
}

/** The channels a creative of a campaign may use in a placement. */
export function creativeChannels(c: Campaign, cr: Creative, placement: Placement): Channel[] {
  return CHANNELS.filter(
    (ch) =>
      (c.channels === undefined || c.channels.includes(ch)) &&
      (cr.channels === undefined || cr.channels.includes(ch)) &&
      (placement.channels === undefined || placement.channels.includes(ch)),
  );
}

/** Creatives of a campaign that fit the person's stage and the placement's channels and formats. */
export function fittingCreatives(c: Campaign, stage: string, placement: Placement): Creative[] {
  return c.creatives.filter((cr) => {
    if (cr.stages !== undefined && !cr.stages.includes(stage)) return false;
    if (creativeChannels(c, cr, placement).length === 0) return false;
    const pf = placement.formats ?? [];
    const cf = cr.formats ?? [];
    return pf.length === 0 || cf.length === 0 || pf.some((f) => cf.includes(f));
  });
}

/**
 * Whether the campaign, once it wins the placement, is sure to fill it: every creative that fits
 * can be shown on a real-time channel, which needs no send time.
 */
export function surelyDeliverable(c: Campaign, stage: string, placement: Placement): boolean {
  const fit = fittingCreatives(c, stage, placement);
  return (
    fit.length > 0 &&
    fit.every((cr) => creativeChannels(c, cr, placement).some((ch) => !PUSH_CHANNELS.includes(ch)))
  );
}

/** Share of the segment's selling points a creative illustrates, weighted best first. */
export function sellingPointScore(labels: readonly string[], creative: Creative): number {
  const n = labels.length;
  const has = creative.sellingPoints ?? [];
  if (n === 0 || has.length === 0) return 0;
  let sum = 0;
  labels.forEach((l, r) => {
    if (has.includes(l)) sum += n - r;
  });
  return sum / ((n * (n + 1)) / 2);
}

/** A channel affinity of the person, clamped to 0..1; odd values are 0. */
export function affinity(profile: Profile, channel: Channel): number {
  const v = field(profile.channels, channel);
  return typeof v === 'number' && v > 0 ? Math.min(v, 1) : 0;
}
