/**
 * Delivery and lift counts: the rules both stores follow (MeasureStore in types.ts), the names
 * Redis gives them, and the in-process ledger of the embedded store.
 *
 * A person's exposure to a campaign is one record, `arm,start,window,flags,until`: the arm of the
 * first exposure (`t` or `c`), when the open attribution window started and how long it lasts
 * (ms), which outcomes were counted (1 conversions, 2 purchases) and when the record is forgotten.
 * Redis keeps the records of a person in one hash, `x:{pid}`, field per campaign; the Lua scripts
 * (lua.ts) apply the same rules as `expose` and `attribute` below.
 */
import { MAX_ATTRIBUTION_MS } from '../../rules/time.js';
import { daysBetween, setOwn } from './person.js';
import type {
  Arm,
  ArmCounts,
  DeliveryAdd,
  DeliveryRow,
  ExposureWrite,
  LiftCounts,
  LiftOutcome,
} from './types.js';

/** How long delivery rows, lift counts and exposure records live after their last change. */
export const DEFAULT_MEASURE_RETENTION_MS = 400 * 86_400_000;

export const OUTCOME_BITS: Readonly<Record<LiftOutcome, number>> = { conversions: 1, purchases: 2 };

export interface ExposureRecord {
  arm: Arm;
  start: number;
  window: number;
  flags: number;
}

export function encodeExposure(r: ExposureRecord): string {
  return `${r.arm === 'treatment' ? 't' : 'c'},${r.start},${r.window},${r.flags}`;
}

export function decodeExposure(text: string): ExposureRecord | null {
  const [arm, start, window, flags] = text.split(',');
  if ((arm !== 't' && arm !== 'c') || start === undefined || window === undefined || flags === undefined)
    return null;
  const r = {
    arm: arm === 't' ? 'treatment' : 'control',
    start: Number(start),
    window: Number(window),
    flags: Number(flags),
  } as const;
  return Number.isFinite(r.start) && Number.isFinite(r.window) && Number.isFinite(r.flags) ? r : null;
}

/** What an exposure changes: the new record (null: none) and the counts to add for its arm. */
export function expose(
  have: ExposureRecord | null,
  arm: Arm,
  at: number,
  windowMs: number,
): { record: ExposureRecord | null; people: number; exposures: number } {
  if (have === null)
    return { record: { arm, start: at, window: windowMs, flags: 0 }, people: 1, exposures: 1 };
  // The first arm holds: a person moved by a changed hold-out share would count on both sides.
  if (have.arm !== arm) return { record: null, people: 0, exposures: 0 };
  if (at > have.start + have.window)
    return { record: { ...have, start: at, window: windowMs }, people: 0, exposures: 1 };
  return { record: null, people: 0, exposures: 0 };
}

/** Whether an outcome at `at` counts for the record's arm: inside the open window, not yet counted. */
export function attribute(have: ExposureRecord, outcome: LiftOutcome, at: number): ExposureRecord | null {
  const bit = OUTCOME_BITS[outcome];
  if ((have.flags & bit) !== 0 || at < have.start || at > have.start + have.window) return null;
  return { ...have, flags: have.flags | bit };
}

// ---- names of pending counts (Redis) ----------------------------------------------------------

/**
 * Pending count fields of measurement, beside the funnel's (`s|…`, `m|…`): JSON arrays, so that
 * campaign and creative ids may hold any character. The Lua scripts make the lift ones with
 * cjson, the same encoding.
 */
export function deliveryField(a: DeliveryAdd): string {
  return JSON.stringify(['d', a.campaign, a.day, a.creative, a.channel, a.metric]);
}
export function liftField(campaign: string, arm: Arm, what: keyof ArmCounts): string {
  return JSON.stringify(['l', campaign, arm, what]);
}

/** A pending measurement field read back; null for one that is not (a funnel field). */
export function parseMeasureField(
  field: string,
):
  | { kind: 'd'; campaign: string; day: string; creative: string; channel: string; metric: string }
  | { kind: 'l'; campaign: string; arm: string; what: string }
  | null {
  if (!field.startsWith('[')) return null;
  let parts: unknown;
  try {
    parts = JSON.parse(field);
  } catch {
    return null;
  }
  if (!Array.isArray(parts) || !parts.every((p) => typeof p === 'string')) return null;
  const p = parts as string[];
  if (p[0] === 'd' && p.length === 6)
    return { kind: 'd', campaign: p[1]!, day: p[2]!, creative: p[3]!, channel: p[4]!, metric: p[5]! };
  if (p[0] === 'l' && p.length === 4) return { kind: 'l', campaign: p[1]!, arm: p[2]!, what: p[3]! };
  return null;
}

/** The field of a delivery count inside a campaign's day hash: creative, channel, metric. */
export function deliveryRowField(creative: string, channel: string, metric: string): string {
  return JSON.stringify([creative, channel, metric]);
}

/** A campaign's day hashes (field -> count, as stored) as rows, by day, creative, channel. */
export function deliveryRows(
  days: readonly string[],
  hashes: readonly Record<string, string>[],
): DeliveryRow[] {
  const rows: DeliveryRow[] = [];
  days.forEach((day, i) => {
    const byRow = new Map<string, DeliveryRow>();
    const hash = hashes[i] ?? {};
    for (const field of Object.keys(hash)) {
      let parts: unknown;
      try {
        parts = JSON.parse(field);
      } catch {
        continue;
      }
      if (!Array.isArray(parts) || parts.length !== 3 || !parts.every((p) => typeof p === 'string')) continue;
      const [creative, channel, metric] = parts as [string, string, string];
      const key = `${creative}\u0000${channel}`;
      let row = byRow.get(key);
      if (row === undefined) byRow.set(key, (row = { day, creative, channel, counts: {} }));
      setOwn(row.counts, metric, (row.counts[metric] ?? 0) + Number(hash[field]));
    }
    rows.push(...[...byRow.values()].sort(byCreativeChannel));
  });
  return rows;
}

function byCreativeChannel(a: DeliveryRow, b: DeliveryRow): number {
  return a.creative < b.creative
    ? -1
    : a.creative > b.creative
      ? 1
      : a.channel < b.channel
        ? -1
        : a.channel > b.channel
          ? 1
          : 0;
}

export function emptyLift(): LiftCounts {
  return {
    treatment: { people: 0, exposures: 0, conversions: 0, purchases: 0 },
    control: { people: 0, exposures: 0, conversions: 0, purchases: 0 },
  };
}

/** Lift counts from a campaign's hash (`arm|what` -> count). */
export function liftFromHash(hash: Readonly<Record<string, string>>): LiftCounts {
  const out = emptyLift();
  for (const arm of ['treatment', 'control'] as const)
    for (const what of ['people', 'exposures', 'conversions', 'purchases'] as const)
      out[arm][what] = Number(hash[`${arm}|${what}`] ?? 0);
  return out;
}

export function checkExposure(e: ExposureWrite): void {
  if (typeof e.pid !== 'string' || e.pid === '') throw new TypeError('an exposure needs a person id');
  if (typeof e.campaign !== 'string' || e.campaign === '')
    throw new TypeError('an exposure needs a campaign');
  if (e.arm !== 'treatment' && e.arm !== 'control') throw new TypeError(`not an arm: ${String(e.arm)}`);
  if (!Number.isFinite(e.at) || !(e.windowMs > 0) || e.windowMs > MAX_ATTRIBUTION_MS)
    throw new RangeError('an exposure needs a time and a window of at most 90 days');
}

/** `n` of `items` drawn uniformly without replacement (a partial Fisher-Yates shuffle, in place). */
export function sampleOf<T>(items: T[], n: number): T[] {
  const take = Math.min(n, items.length);
  for (let i = 0; i < take; i++) {
    const j = i + Math.floor(Math.random() * (items.length - i));
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items.slice(0, take);
}

// ---- the embedded store's ledger --------------------------------------------------------------

interface Expiring<T> {
  value: T;
  until: number;
}

/** Delivery rows, lift counts and exposure records in process, forgotten `retentionMs` after their last change. */
export class MeasureLedger {
  /** campaign -> day -> row field -> count */
  private readonly days = new Map<string, Map<string, Expiring<Map<string, number>>>>();
  private readonly lifts = new Map<string, Expiring<LiftCounts>>();
  /** pid -> campaign -> record */
  private readonly exposures = new Map<string, Map<string, Expiring<ExposureRecord>>>();
  private changes = 0;

  constructor(
    private readonly retentionMs: number,
    private readonly now: () => number,
  ) {}

  addDelivery(a: DeliveryAdd): void {
    const until = this.now() + this.retentionMs;
    let byDay = this.days.get(a.campaign);
    if (byDay === undefined) this.days.set(a.campaign, (byDay = new Map()));
    let day = byDay.get(a.day);
    if (day === undefined || day.until <= this.now()) byDay.set(a.day, (day = { value: new Map(), until }));
    day.until = until;
    const field = deliveryRowField(a.creative, a.channel, a.metric);
    day.value.set(field, (day.value.get(field) ?? 0) + a.n);
    this.sweepSometimes();
  }

  expose(e: ExposureWrite): void {
    const now = this.now();
    let mine = this.exposures.get(e.pid);
    if (mine === undefined) this.exposures.set(e.pid, (mine = new Map()));
    const have = mine.get(e.campaign);
    const live = have !== undefined && have.until > now ? have.value : null;
    const change = expose(live, e.arm, e.at, e.windowMs);
    if (change.record === null) return;
    mine.set(e.campaign, { value: change.record, until: now + this.retentionMs });
    const counts = this.liftOf(e.campaign, now);
    counts[e.arm].people += change.people;
    counts[e.arm].exposures += change.exposures;
    this.sweepSometimes();
  }

  /** An outcome of a person: counted for each campaign whose open window it falls in. */
  attribute(pid: string, outcome: LiftOutcome, at: number): void {
    const mine = this.exposures.get(pid);
    if (mine === undefined) return;
    const now = this.now();
    for (const [campaign, have] of mine) {
      if (have.until <= now) continue;
      const next = attribute(have.value, outcome, at);
      if (next === null) continue;
      mine.set(campaign, { value: next, until: now + this.retentionMs });
      this.liftOf(campaign, now)[next.arm][outcome] += 1;
    }
  }

  forget(pid: string): boolean {
    return this.exposures.delete(pid);
  }

  delivery(campaign: string, fromDay: string, toDay: string): DeliveryRow[] {
    const days = daysBetween(fromDay, toDay);
    const now = this.now();
    const byDay = this.days.get(campaign);
    const hashes = days.map((d) => {
      const day = byDay?.get(d);
      const out: Record<string, string> = {};
      if (day !== undefined && day.until > now) for (const [f, n] of day.value) setOwn(out, f, String(n));
      return out;
    });
    return deliveryRows(days, hashes);
  }

  lift(campaign: string): LiftCounts {
    const have = this.lifts.get(campaign);
    return have !== undefined && have.until > this.now() ? structuredClone(have.value) : emptyLift();
  }

  private liftOf(campaign: string, now: number): LiftCounts {
    let have = this.lifts.get(campaign);
    if (have === undefined || have.until <= now)
      this.lifts.set(campaign, (have = { value: emptyLift(), until: 0 }));
    have.until = now + this.retentionMs;
    return have.value;
  }

  /** Drops what expired, once per 4,096 changes: the ledger stays as big as what is live. */
  private sweepSometimes(): void {
    if (++this.changes % 4096 !== 0) return;
    const now = this.now();
    for (const [campaign, byDay] of this.days) {
      for (const [d, day] of byDay) if (day.until <= now) byDay.delete(d);
      if (byDay.size === 0) this.days.delete(campaign);
    }
    for (const [campaign, l] of this.lifts) if (l.until <= now) this.lifts.delete(campaign);
    for (const [pid, mine] of this.exposures) {
      for (const [c, r] of mine) if (r.until <= now) mine.delete(c);
      if (mine.size === 0) this.exposures.delete(pid);
    }
  }
}
