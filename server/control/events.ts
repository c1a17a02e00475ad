/**
 * POST /v1/events: impressions count against a campaign's frequency caps; clicks, conversions
 * and purchases move the person along the brand's ladder (the rule set's stageMoves). The whole
 * batch is checked before anything is applied; the store applies each event atomically and
 * once per eventId, so a retried batch counts nothing twice.
 */
import type { CompiledRuleSet } from '../../rules/compile.js';
import { stageAfterEvent } from '../../rules/stage-moves.js';
import { localDay } from '../../rules/time.js';
import type { EventType } from '../../rules/types.js';
import { check } from '../contracts/check.js';
import { type EventBody, eventBatchSchema, eventSchema, instantMs, LIMITS } from '../contracts/schemas.js';
import { ClientError } from '../errors.js';
import { DEFAULT_EVENT_DEDUPE_MS } from '../store/person.js';
import type { EventResult, EventWrite } from '../store/types.js';
import type { ControlContext, Register } from './context.js';

/** A checked event, as the schema describes it. */
type EventIn = EventBody;

type Outcome = EventResult['outcome'] | 'unknown_person' | 'unknown_campaign' | 'unknown_brand';

interface EventOut {
  eventId: string;
  outcome: Outcome;
  moved?: { brand: string; from: string; to: string };
  detail?: string;
}

/** One event, an array of them, or `{events: [...]}`; paths name `events[i]` for batches. */
export function checkEvents(data: unknown): EventIn[] {
  if (Array.isArray(data)) {
    return check(eventBatchSchema, { events: data }).events;
  }
  if (data !== null && typeof data === 'object' && 'events' in data) {
    return check(eventBatchSchema, data).events;
  }
  return [check(eventSchema, data)];
}

/** How far ahead of the server's clock an event may be dated (clients' clocks drift). */
export const MAX_FUTURE_MS = 5 * 60_000;
/**
 * When each event happened, epoch ms; the whole batch is refused when one is dated in the future
 * (a single future time would make every real impression of that campaign look expired) or
 * further back than event ids are remembered (`windowMs`): such an event, sent again, would count
 * twice. (This also catches seconds or microseconds sent as ms.)
 */
export function eventTimes(
  events: readonly EventIn[],
  now: number,
  batch: boolean,
  windowMs = DEFAULT_EVENT_DEDUPE_MS,
): number[] {
  return events.map((e, i) => {
    const at = e.at === undefined ? now : instantMs(e.at);
    const path = batch ? `events[${i}].at` : 'at';
    if (!Number.isFinite(at) || at > now + MAX_FUTURE_MS || at < now - windowMs) {
      const back =
        windowMs % 86_400_000 === 0
          ? `${windowMs / 86_400_000} days`
          : `${Math.floor(windowMs / 3_600_000)} hours`;
      throw new ClientError(
        'invalid_field',
        `${path}: ${JSON.stringify(e.at)} is not a time from ${back} ago to 5 minutes from now (epoch milliseconds or ISO 8601); event ids are remembered ${back} (EVENT_DEDUPE_MS), so an older event could count twice`,
        path,
      );
    }
    return at;
  });
}

/** The delivery count each event type adds to. */
const DELIVERY_METRIC_OF = {
  impression: 'impressions',
  click: 'clicks',
  conversion: 'conversions',
  purchase: 'purchases',
} as const satisfies Record<EventType, string>;

/** A stage ladder never has this name: stands for "a stage off the ladder". */
const OFF_LADDER = '\u0000off-ladder';

/** Where an event moves a person from each stage (and `*` from a stage off the ladder). */
export function stageMoveMap(
  compiled: CompiledRuleSet,
  brand: string,
  type: EventType,
): Record<string, string> {
  const next: Record<string, string> = {};
  // Every ladder stage is listed (a stage that does not move maps to itself), so that `*` only
  // ever stands for stages off the ladder.
  for (const stage of compiled.funnel) {
    next[stage] = stageAfterEvent(compiled, brand, stage, type)?.to ?? stage;
  }
  const off = stageAfterEvent(compiled, brand, OFF_LADDER, type);
  if (off !== null) next['*'] = off.to;
  return next;
}

export function registerEvents(register: Register, ctx: ControlContext): void {
  const store = ctx.deps.profiles;

  register<unknown>('postEvents', async ({ c, body }) => {
    const events = checkEvents(body);
    if (events.length > LIMITS.events) {
      throw new ClientError('invalid_field', `events has more than ${LIMITS.events} items`, 'events');
    }
    const now = ctx.now();
    const times = eventTimes(
      events,
      now,
      Array.isArray(body) || 'events' in (body as object),
      ctx.deps.eventDedupeMs,
    );
    const compiled = ctx.deps.active().compiled;
    const out: EventOut[] = events.map((e) => ({ eventId: e.eventId, outcome: 'applied' }));

    // Resolve aliases, once per distinct alias.
    const aliasKeys = new Map<string, [string, string]>();
    for (const e of events) {
      if (e.user.ids === undefined) continue;
      for (const [k, v] of Object.entries(e.user.ids)) aliasKeys.set(`${k}:${v}`, [k, v]);
    }
    const resolved = new Map<string, string | null>();
    if (aliasKeys.size > 0) {
      const entries = [...aliasKeys];
      const pids = await ctx.storeCall('resolve aliases', () =>
        Promise.all(entries.map(([, [k, v]]) => store.resolveAlias(k, v))),
      );
      entries.forEach(([key], i) => {
        resolved.set(key, pids[i] ?? null);
      });
    }

    const writes: EventWrite[] = [];
    const writeOf: number[] = [];
    events.forEach((e, i) => {
      let pid = e.user.id ?? null;
      if (pid === null) {
        for (const [k, v] of Object.entries(e.user.ids ?? {})) {
          pid = resolved.get(`${k}:${v}`) ?? null;
          if (pid !== null) break;
        }
      }
      if (pid === null) {
        out[i] = { eventId: e.eventId, outcome: 'unknown_person', detail: 'no person has these aliases' };
        return;
      }
      const at = times[i] ?? now;
      const write: EventWrite = { eventId: e.eventId, pid, at };
      const ci = e.campaign === undefined ? undefined : compiled.campaignIndex.get(e.campaign);
      const campaign = ci === undefined ? undefined : compiled.campaigns[ci];
      if (
        e.creative !== undefined &&
        (campaign === undefined || !campaign.creatives.some((cr) => cr.id === e.creative))
      ) {
        out[i] = {
          eventId: e.eventId,
          outcome: 'unknown_campaign',
          detail:
            campaign === undefined
              ? 'a creative needs the campaign it belongs to'
              : `campaign ${JSON.stringify(campaign.id)} has no creative ${JSON.stringify(e.creative)}`,
        };
        return;
      }
      // The campaign's delivery row of the day (in its time zone) counts what the event names.
      if (campaign !== undefined) {
        write.delivery = [
          {
            campaign: campaign.id,
            day: localDay(campaign.timezone, at),
            creative: e.creative ?? '',
            channel: e.channel ?? '',
            metric: DELIVERY_METRIC_OF[e.type],
            n: 1,
          },
        ];
      }
      // Lift: a conversion or purchase counts for every campaign the person was exposed to.
      if (e.type === 'conversion' || e.type === 'purchase') write.outcome = DELIVERY_METRIC_OF[e.type];
      if (e.type === 'impression') {
        if (campaign === undefined) {
          out[i] = {
            eventId: e.eventId,
            outcome: 'unknown_campaign',
            detail:
              e.campaign === undefined
                ? 'an impression needs the campaign it was of'
                : `the active rule set has no campaign ${JSON.stringify(e.campaign)}`,
          };
          return;
        }
        // A campaign without caps has nothing to count; the event is still recorded once.
        if (campaign.keepImpressions > 0 && campaign.longestCapMs > 0) {
          write.impression = {
            campaign: campaign.id,
            keep: campaign.keepImpressions,
            ttlMs: campaign.longestCapMs,
          };
        }
      } else {
        const brand = e.brand ?? campaign?.brand;
        if (brand !== undefined && !compiled.knowsBrand(brand)) {
          // A funnel of its own for a misspelt or foreign brand would count nobody real.
          out[i] = {
            eventId: e.eventId,
            outcome: 'unknown_brand',
            detail: `the active rule set names no brand ${JSON.stringify(brand)} (no campaign, stage condition or stage move)`,
          };
          return;
        }
        if (brand === undefined) {
          out[i] = {
            eventId: e.eventId,
            outcome: 'unknown_campaign',
            detail:
              e.campaign === undefined
                ? `a ${e.type} needs a brand or a campaign`
                : `the active rule set has no campaign ${JSON.stringify(e.campaign)}; name the brand`,
          };
          return;
        }
        const next = stageMoveMap(compiled, brand, e.type);
        if (Object.entries(next).some(([from, to]) => from !== to))
          write.stage = {
            brand,
            defaultStage: compiled.defaultStageOf(brand),
            next,
            day: localDay(compiled.brandTimezone(brand), at),
          };
      }
      writes.push(write);
      writeOf.push(i);
    });

    // Everything that names a person and a campaign or brand goes to the store in one call.
    const results =
      writes.length === 0 ? [] : await ctx.storeCall('apply the events', () => store.applyEvents(writes));
    // The store has dropped the people the events changed from every instance's cache.
    const budgets = ctx.deps.budgets;
    results.forEach((r, j) => {
      const i = writeOf[j]!;
      const e = events[i]!;
      // What the event delivered counts against the campaign's budgets (once: not duplicates).
      if (
        budgets !== undefined &&
        r.outcome === 'applied' &&
        e.campaign !== undefined &&
        (e.type === 'impression' || e.type === 'click')
      )
        budgets.delivered(compiled, e.campaign, e.creative, e.type, writes[j]!.at);
      const o: EventOut = { eventId: events[i]!.eventId, outcome: r.outcome };
      if (r.moved !== undefined) o.moved = r.moved;
      out[i] = o;
    });
    const metrics = c.get('metrics');
    if (metrics !== undefined) {
      out.forEach((o, i) => {
        metrics.event(events[i]!.type, o.outcome);
      });
    }
    const count = (k: Outcome) => out.filter((o) => o.outcome === k).length;
    return c.json({
      applied: count('applied'),
      duplicates: count('duplicate'),
      skipped: out.length - count('applied') - count('duplicate'),
      results: out,
    });
  });
}
