/**
 * decide(): for one person and one or more placements, the campaign, creative, channel and send
 * time to deliver. Pure: same inputs, same answer; time comes in as `now`.
 *
 * Per placement, in request order, among the campaigns not yet used in this request:
 *  1. eligible: one of the campaign's segments matched; the person's stage for the brand is one
 *     the campaign serves; `now` is inside the flight; no frequency cap is reached; a creative
 *     fits the person's stage, the placement's channels and formats.
 *  2. creative: the one whose selling points best match the segment's (weighted by rank), then a
 *     stable weighted rotation by hash of (person, creative).
 *  3. channel: the person's highest affinity among the channels the placement, the campaign and
 *     the creative all allow (ties: display, video, native, app_push, sms, email); a push-type
 *     channel needs a send time inside the flight.
 *  4. ranking: priority first; then score = weight x (1 + clv x C + sellingPoints x S + affinity x A)
 *     with C = clv / (clv + clvScale); then a stable hash of (person, campaign); then rule order.
 *  5. hold-out: when the stable hash of (person, campaign) falls in the winner's hold-out share,
 *     the person is in that campaign's control group: the campaign is set aside for the whole
 *     request and recorded as a ghost (the creative and channel it would have shown), and the
 *     placement goes to the next best campaign, which may be held out in turn (or none: no fill).
 *     Ghost exposures are what lift is measured against (Johnson, Lewis & Nubbemeyer, "Ghost
 *     Ads", 2017): the control group's people are those who would have seen the campaign.
 *
 * An optional EligibilityFilter adds checks of the caller's (OpenRTB floors, blocks, deals): a
 * campaign it refuses does not compete (step 1), a creative it refuses for a placement is not
 * considered there (step 2); explain reports the filter's reason.
 */
import type { CompiledCampaign, CompiledCreative, CompiledRuleSet } from './compile.js';
import { ALL_CHANNELS_MASK, channelMaskOf, mixHash, PUSH_MASK } from './compile.js';
import { calendarPeriod, isoTime, isTimeZone, tzOffsetMinutes } from './time.js';
import type {
  CampaignExplanation,
  Channel,
  DecisionRequest,
  DecisionResult,
  DropReason,
  FilledDecision,
  FrequencyCounters,
  Ghost,
  PlacementDecision,
  Profile,
} from './types.js';
import { CHANNELS, DROP_REASONS } from './types.js';

const HOLDOUT_SALT = 0x5bd1e995;
const TIEBREAK_SALT = 0x27d4eb2f;
const TWO_32 = 4294967296;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
const ALL_HOURS = 0xffffff;
/** How far ahead a push send time is searched (in steps of at most an hour). */
const MAX_SEND_STEPS = 24 * 15;

enum Drop {
  None = 0,
  NoSegment = 1,
  Stage = 2,
  Flight = 3,
  Cap = 4,
  Channel = 5,
  Format = 6,
  Holdout = 7,
  Outranked = 8,
  Floor = 9,
  Currency = 10,
  Blocked = 11,
  Deal = 12,
  Budget = 13,
  Pace = 14,
}
/** Drop's names: its values are the positions in DROP_REASONS, plus one (0: not dropped). */
const DROP_NAMES: readonly (DropReason | undefined)[] = [undefined, ...DROP_REASONS];

/**
 * Extra per-request eligibility, beyond the rule set's own: each check answers null when the
 * campaign or creative may be used, else the reason it may not.
 */
export interface EligibilityFilter {
  /** Whether a campaign may compete in this request at all. */
  campaign?(c: CompiledCampaign): DropReason | null;
  /** Whether a creative may fill the placement at index `placement` of the request. */
  creative?(placement: number, c: CompiledCampaign, cr: CompiledCreative): DropReason | null;
}

function dropOf(reason: DropReason): Drop {
  const i = DROP_NAMES.indexOf(reason);
  return i <= 0 ? Drop.Blocked : (i as Drop);
}

/** A campaign that passed the person-level checks, with what ranking needs. */
interface Contender {
  readonly campaign: CompiledCampaign;
  /** the first of the campaign's segments the person is in */
  readonly segment: number;
  readonly stage: string;
  readonly stageBit: number;
  readonly clvTerm: number;
  readonly clv: number;
  readonly tie: number;
  used: boolean;
  /** why it did not fill any placement (Channel, Format, Flight, Outranked) */
  drop: Drop;
  /** why the filter last refused one of its creatives (None: it never did) */
  filtered: Drop;
  rank: CampaignExplanation['rank'] | undefined;
}

/** The best way one contender could fill one placement. */
interface Option {
  contender: Contender;
  creative: CompiledCreative;
  spMatch: number;
  /** channels still worth trying (a push channel without a send time is removed) */
  channels: number;
  channel: number;
  affinity: number;
  score: number;
}

export function decide(
  compiled: CompiledRuleSet,
  person: Profile,
  counters: FrequencyCounters,
  request: DecisionRequest,
  now: number,
  filter?: EligibilityFilter,
): DecisionResult {
  const placements = request.placements;
  const explain = request.explain === true;
  // The matched list and the marks below are the evaluator's scratch: valid until the next decision.
  const evaluator = compiled.evaluator;
  // Without explain, only the segments campaigns list need evaluating (others on reference).
  const { list, count } = evaluator.evaluate(person, request.contextTags, !explain);
  const personHash = evaluator.personHash(person);

  // Campaigns reachable from the matched segments (and those for everyone), in rule order.
  const campaigns = compiled.campaigns;
  const reached = evaluator.campaignScratch();
  let nReached = 0;
  const everyone = compiled.everyoneCampaigns;
  for (let i = 0; i < everyone.length; i++) {
    if (evaluator.markCampaign(everyone[i]!)) reached[nReached++] = everyone[i]!;
  }
  for (let i = 0; i < count; i++) {
    const cs = compiled.campaignsBySegment[list[i]!]!;
    for (let j = 0; j < cs.length; j++) {
      const ci = cs[j]!;
      if (evaluator.markCampaign(ci)) reached[nReached++] = ci;
    }
  }
  if (nReached > 1) reached.subarray(0, nReached).sort();

  const drops: Drop[] | null = explain ? new Array(campaigns.length).fill(Drop.NoSegment) : null;
  const contenders: Contender[] = [];
  const clvs = person.clv as Record<string, unknown> | undefined;
  for (let i = 0; i < nReached; i++) {
    const c = campaigns[reached[i]!]!;
    const stage = compiled.stageOf(person, c.brand);
    const stageBit = compiled.stageBit(stage);
    let drop = Drop.None;
    if ((c.stageMask & stageBit) === 0) drop = Drop.Stage;
    else if (now < c.flightStart || now > c.flightEnd) drop = Drop.Flight;
    else if (c.caps.length > 0 && capReached(c, counters, now, person)) drop = Drop.Cap;
    else if (filter?.campaign !== undefined) {
      const reason = filter.campaign(c);
      if (reason !== null) drop = dropOf(reason);
    }
    if (drop !== Drop.None) {
      if (drops !== null) drops[c.index] = drop;
      continue;
    }
    let segment = -1;
    for (let s = 0; s < c.segments.length; s++) {
      if (evaluator.segmentMatched(c.segments[s]!)) {
        segment = c.segments[s]!;
        break;
      }
    }
    const raw = clvs !== null && typeof clvs === 'object' ? clvs[c.brand] : undefined;
    const clv = typeof raw === 'number' && raw > 0 ? raw : 0;
    contenders.push({
      campaign: c,
      segment,
      stage,
      stageBit,
      clv,
      clvTerm: clv / (clv + compiled.scoring.clvScale),
      tie: mixHash(personHash, c.hash ^ TIEBREAK_SALT),
      used: false,
      drop: Drop.Channel,
      filtered: Drop.None,
      rank: undefined,
    });
  }

  const decisions: PlacementDecision[] = new Array(placements.length);
  let ghosts: Ghost[] | null = null;
  const ctx: SendContext = {
    now,
    personTz: personTimezone(person),
    activeHours: activeHoursMask(person),
  };
  for (let p = 0; p < placements.length; p++) {
    const placement = placements[p]!;
    const pid = placement.id;
    const pMask = placement.channels === undefined ? ALL_CHANNELS_MASK : channelMaskOf(placement.channels);
    const formats =
      placement.formats === undefined || placement.formats.length === 0 ? null : placement.formats;
    const options: Option[] = [];
    for (let i = 0; i < contenders.length; i++) {
      const k = contenders[i]!;
      if (k.used) continue;
      const o = bestOption(compiled, k, person, personHash, pMask, formats, filter, p);
      if (o !== null) options.push(o);
    }
    let decision: PlacementDecision | null = null;
    while (options.length > 0) {
      const bi = bestIndex(options);
      const o = options[bi]!;
      const c = o.contender.campaign;
      const ch = CHANNELS[o.channel]!;
      let sendAt = now;
      if (((1 << o.channel) & PUSH_MASK) !== 0) {
        const t = pushSendTime(c, ctx);
        if (t === null) {
          // No moment inside the flight for this push channel: try the campaign's next channel.
          o.channels &= ~(1 << o.channel);
          if (!pickChannel(o, person, compiled)) {
            options.splice(bi, 1);
            if (o.contender.drop === Drop.Channel || o.contender.drop === Drop.Format)
              o.contender.drop = Drop.Flight;
          }
          continue;
        }
        sendAt = t;
      }
      const k = o.contender;
      k.used = true;
      k.drop = Drop.None;
      if (explain) k.rank = rankOf(o);
      if (
        c.holdout > 0 &&
        request.holdouts !== false &&
        mixHash(personHash, c.hash ^ HOLDOUT_SALT) / TWO_32 < c.holdout
      ) {
        // The control group: what it would have shown is a ghost; the next best takes the slot.
        k.drop = Drop.Holdout;
        (ghosts ??= []).push({ placement: pid, campaign: c.id, creative: o.creative.id, channel: ch });
        options.splice(bi, 1);
        continue;
      }
      decision = filled(compiled, pid, o, ch, sendAt);
      // Everything else that could have filled this placement was outranked.
      for (let i = 0; i < options.length; i++) {
        if (i === bi) continue;
        const other = options[i]!.contender;
        if (other.drop === Drop.Channel || other.drop === Drop.Format) other.drop = Drop.Outranked;
        if (explain && other.rank === undefined) other.rank = rankOf(options[i]!);
      }
      break;
    }
    decisions[p] = decision ?? { placement: pid, campaign: null };
  }

  if (!explain || drops === null) return ghosts === null ? { decisions } : { decisions, ghosts };

  // Contenders that never got an option: tell channel from format.
  for (const k of contenders) {
    if (k.drop === Drop.Channel)
      k.drop = k.filtered !== Drop.None ? k.filtered : channelOrFormat(k, placements);
    drops[k.campaign.index] = k.drop;
  }
  const byCampaign = new Map<number, Contender>();
  for (const k of contenders) byCampaign.set(k.campaign.index, k);
  const chosenAt = new Map<string, string>();
  for (const d of decisions) if (d.campaign !== null) chosenAt.set(d.campaign, d.placement);
  if (ghosts !== null) for (const g of ghosts) chosenAt.set(g.campaign, g.placement);
  const explained: CampaignExplanation[] = campaigns.map((c) => {
    const k = byCampaign.get(c.index);
    const drop = drops[c.index]!;
    const entry: CampaignExplanation =
      drop === Drop.None ? { campaign: c.id, status: 'chosen' } : { campaign: c.id, status: 'dropped' };
    const placed = chosenAt.get(c.id);
    if (placed !== undefined) entry.placement = placed;
    const reason = DROP_NAMES[drop];
    if (reason !== undefined) entry.reason = reason;
    if (k?.rank !== undefined) entry.rank = k.rank;
    return entry;
  });
  const segments: string[] = new Array(count);
  for (let i = 0; i < count; i++) segments[i] = compiled.segments[list[i]!]!.id;
  const result: DecisionResult = { decisions, explain: { segments, campaigns: explained } };
  if (ghosts !== null) result.ghosts = ghosts;
  return result;
}

function capReached(c: CompiledCampaign, counters: FrequencyCounters, now: number, person: Profile): boolean {
  const times = (counters as Record<string, unknown>)[c.id];
  if (times === undefined || times === null || typeof times !== 'object') return false;
  const arr = times as ArrayLike<unknown>;
  const n = arr.length;
  if (typeof n !== 'number' || n === 0) return false;
  for (let i = 0; i < c.caps.length; i++) {
    const cap = c.caps[i]!;
    // A rolling window counts what is newer than its length; a calendar one, what is in its period.
    let seen = 0;
    if (cap.calendar === null) {
      const from = now - cap.windowMs;
      for (let j = 0; j < n; j++) {
        const t = arr[j];
        if (typeof t === 'number' && t > from) seen++;
      }
    } else {
      const tz = (cap.personZone ? personTimezone(person) : null) ?? c.timezone;
      const p = cap.period;
      if (p.tz !== tz || now < p.start || now >= p.end) {
        const found = calendarPeriod(cap.calendar, tz, now);
        p.tz = tz;
        p.start = found.start;
        p.end = found.end;
      }
      const from = p.start;
      for (let j = 0; j < n; j++) {
        const t = arr[j];
        if (typeof t === 'number' && t >= from) seen++;
      }
    }
    if (seen >= cap.max) return true;
  }
  return false;
}

/** The best creative and channel of a contender for one placement, or null when none fits. */
function bestOption(
  compiled: CompiledRuleSet,
  k: Contender,
  person: Profile,
  personHash: number,
  pMask: number,
  formats: readonly string[] | null,
  filter: EligibilityFilter | undefined,
  placement: number,
): Option | null {
  const labels = k.segment >= 0 ? compiled.segments[k.segment]!.sellingPoints : EMPTY_LABELS;
  const creatives = k.campaign.creatives;
  let best: CompiledCreative | null = null;
  let bestSp = -1;
  let bestRot = 0;
  for (let i = 0; i < creatives.length; i++) {
    const cr = creatives[i]!;
    if ((cr.stageMask & k.stageBit) === 0) continue;
    if ((cr.channelMask & pMask) === 0) continue;
    if (formats !== null && cr.formats !== null && !overlaps(formats, cr.formats)) continue;
    if (filter?.creative !== undefined) {
      const reason = filter.creative(placement, k.campaign, cr);
      if (reason !== null) {
        k.filtered = dropOf(reason);
        continue;
      }
    }
    const sp = sellingPointMatch(labels, cr.sellingPoints);
    if (sp < bestSp) continue;
    // Weighted rotation: the largest u^(1/weight) wins, u a stable hash of (person, creative).
    const u = (mixHash(personHash, cr.hash) + 1) / (TWO_32 + 1);
    const rot = Math.log(u) / cr.weight;
    if (sp > bestSp || rot > bestRot) {
      best = cr;
      bestSp = sp;
      bestRot = rot;
    }
  }
  if (best === null) return null;
  const o: Option = {
    contender: k,
    creative: best,
    spMatch: bestSp,
    channels: best.channelMask & pMask,
    channel: 0,
    affinity: 0,
    score: 0,
  };
  pickChannel(o, person, compiled);
  return o;
}

const EMPTY_LABELS: readonly string[] = [];

function overlaps(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) if (b.includes(a[i]!)) return true;
  return false;
}

/** Share of the segment's selling points the creative illustrates, weighted best first. */
function sellingPointMatch(labels: readonly string[], has: ReadonlySet<string>): number {
  const n = labels.length;
  if (n === 0 || has.size === 0) return 0;
  let sum = 0;
  for (let r = 0; r < n; r++) if (has.has(labels[r]!)) sum += n - r;
  return sum / ((n * (n + 1)) / 2);
}

/** Picks the highest-affinity channel left in `o.channels` and scores the option. */
function pickChannel(o: Option, person: Profile, compiled: CompiledRuleSet): boolean {
  if (o.channels === 0) return false;
  const aff = person.channels as Record<string, unknown> | undefined;
  let bestCh = -1;
  let bestAff = -1;
  for (let i = 0; i < CHANNELS.length; i++) {
    if ((o.channels & (1 << i)) === 0) continue;
    const raw = aff !== null && typeof aff === 'object' ? aff[CHANNELS[i]!] : undefined;
    const a = typeof raw === 'number' && raw > 0 ? Math.min(raw, 1) : 0;
    if (a > bestAff) {
      bestAff = a;
      bestCh = i;
    }
  }
  o.channel = bestCh;
  o.affinity = bestAff;
  const s = compiled.scoring;
  const k = o.contender;
  o.score = k.campaign.weight * (1 + s.clv * k.clvTerm + s.sellingPoints * o.spMatch + s.affinity * bestAff);
  return true;
}

function bestIndex(options: readonly Option[]): number {
  let bi = 0;
  for (let i = 1; i < options.length; i++) if (better(options[i]!, options[bi]!)) bi = i;
  return bi;
}

function better(a: Option, b: Option): boolean {
  const ca = a.contender.campaign;
  const cb = b.contender.campaign;
  if (ca.priority !== cb.priority) return ca.priority > cb.priority;
  if (a.score !== b.score) return a.score > b.score;
  if (a.contender.tie !== b.contender.tie) return a.contender.tie > b.contender.tie;
  return ca.index < cb.index;
}

function rankOf(o: Option): NonNullable<CampaignExplanation['rank']> {
  return {
    priority: o.contender.campaign.priority,
    score: round4(o.score),
    clv: o.contender.clv,
    sellingPoints: round4(o.spMatch),
    affinity: round4(o.affinity),
  };
}

function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}

function filled(
  compiled: CompiledRuleSet,
  placement: string,
  o: Option,
  channel: Channel,
  sendAt: number,
): FilledDecision {
  const k = o.contender;
  const c = k.campaign;
  const labels = k.segment >= 0 ? compiled.segments[k.segment]!.sellingPoints : EMPTY_LABELS;
  const stress: string[] = [];
  for (const l of labels) if (o.creative.sellingPoints.has(l)) stress.push(l);
  return {
    placement,
    campaign: c.id,
    creative: o.creative.id,
    brand: c.brand,
    segment: k.segment >= 0 ? compiled.segments[k.segment]!.id : '',
    stage: k.stage,
    sellingPoints: stress,
    message: o.creative.message,
    channel,
    sendAt: isoTime(sendAt),
    variant: 'treatment',
  };
}

/** Why a contender that fit no placement failed: no channel in common, or no format. */
function channelOrFormat(k: Contender, placements: DecisionRequest['placements']): Drop {
  for (const p of placements) {
    const pMask = p.channels === undefined ? ALL_CHANNELS_MASK : channelMaskOf(p.channels);
    for (const cr of k.campaign.creatives) {
      if ((cr.stageMask & k.stageBit) !== 0 && (cr.channelMask & pMask) !== 0) return Drop.Format;
    }
  }
  return k.campaign.creatives.some((cr) => (cr.stageMask & k.stageBit) !== 0) ? Drop.Channel : Drop.Stage;
}

// ---- send time -------------------------------------------------------------------------------

interface SendContext {
  readonly now: number;
  /** the person's own zone, or null to use the campaign's */
  readonly personTz: string | null;
  /** bit per local hour when the person is usually active */
  readonly activeHours: number;
}

function personTimezone(person: Profile): string | null {
  const tz = person.timezone;
  return typeof tz === 'string' && tz.length > 0 && isTimeZone(tz) ? tz : null;
}

function activeHoursMask(person: Profile): number {
  const hours = person.activeHours;
  if (!Array.isArray(hours) || hours.length === 0) return ALL_HOURS;
  let m = 0;
  for (const h of hours) if (typeof h === 'number' && Number.isInteger(h) && h >= 0 && h < 24) m |= 1 << h;
  return m === 0 ? ALL_HOURS : m;
}

/**
 * The first moment at or after `now` when the person is usually active (an active hour in their
 * time zone), outside the campaign's quiet hours (in the campaign's zone) and inside the flight.
 * Null when there is none within the search horizon or before the flight ends.
 */
export function pushSendTime(c: CompiledCampaign, ctx: SendContext): number | null {
  const personTz = ctx.personTz ?? c.timezone;
  let t = ctx.now;
  for (let step = 0; step < MAX_SEND_STEPS; step++) {
    if (t > c.flightEnd) return null;
    const offP = tzOffsetMinutes(personTz, t) * MINUTE_MS;
    const localP = t + offP;
    const hour = Math.floor(localP / HOUR_MS) % 24;
    if ((ctx.activeHours & (1 << (hour < 0 ? hour + 24 : hour))) === 0) {
      t = t - mod(localP, HOUR_MS) + HOUR_MS; // start of the next local hour
      continue;
    }
    if (c.hasQuietHours) {
      const offC = personTz === c.timezone ? offP : tzOffsetMinutes(c.timezone, t) * MINUTE_MS;
      const localC = t + offC;
      const minute = Math.floor(mod(localC, 86_400_000) / MINUTE_MS);
      const qs = c.quietStart;
      const qe = c.quietEnd;
      const quiet = qs < qe ? minute >= qs && minute < qe : minute >= qs || minute < qe;
      if (quiet) {
        const wait = mod(qe - minute, 1440);
        t = t - mod(localC, MINUTE_MS) + wait * MINUTE_MS; // the minute quiet hours end
        continue;
      }
    }
    return t;
  }
  return null;
}

function mod(a: number, m: number): number {
  const r = a % m;
  return r < 0 ? r + m : r;
}
