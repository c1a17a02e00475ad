/**
 * What a campaign delivered and whether it worked:
 *
 * - GET /v1/campaigns/{id}/delivery?from=&to=: per day (the campaign's time zone) x creative x
 *   channel, the decisions that filled a placement, ghosts (won for a person in the hold-out),
 *   impressions, clicks, conversions and purchases (events and notices naming the campaign) and
 *   OpenRTB spend (billed prices, per currency); totals and per-day sums. JSON, or CSV with
 *   `format=csv` (or `Accept: text/csv`).
 * - GET /v1/campaigns/{id}/lift: people exposed per arm (shown, or held out when it would have
 *   been shown), those of them with a conversion or a purchase inside the attribution window,
 *   and the lift with its interval, p-value and minimum detectable effect (server/measure/lift.ts).
 *
 * A campaign not in the active rule set answers from what the store kept, and 404 when it kept
 * nothing: a misspelt id is told apart from a campaign that delivered nothing.
 */
import type { CompiledCampaign } from '../../rules/compile.js';
import { localDay } from '../../rules/time.js';
import { LIMITS } from '../contracts/schemas.js';
import { campaignBudgetReport, DEFAULT_SETTLE_MS } from '../decision/budgets.js';
import { ClientError } from '../errors.js';
import { INTERVAL_METHOD, lift } from '../measure/lift.js';
import { DEFAULT_MEASURE_RETENTION_MS } from '../store/measure.js';
import { daysBetween } from '../store/person.js';
import { DELIVERY_METRICS, type DeliveryRow, type LiftCounts } from '../store/types.js';
import type { ControlContext, Register } from './context.js';

const DAY = 86_400_000;
const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

type Counts = Record<(typeof DELIVERY_METRICS)[number], number> & { spend: Record<string, number> };

function zero(): Counts {
  const c = { spend: {} } as Counts;
  for (const m of DELIVERY_METRICS) c[m] = 0;
  return c;
}

function addInto(into: Counts, counts: Readonly<Record<string, number>>): void {
  for (const [metric, n] of Object.entries(counts)) {
    if (metric.startsWith('spend:')) {
      const cur = metric.slice(6);
      // Millionths of the currency as stored; answered in units, rounded to the millionth.
      into.spend[cur] = Math.round(((into.spend[cur] ?? 0) + n / 1e6) * 1e6) / 1e6;
    } else if ((DELIVERY_METRICS as readonly string[]).includes(metric)) {
      into[metric as keyof Omit<Counts, 'spend'>] += n;
    }
  }
}

export function registerCampaigns(register: Register, ctx: ControlContext): void {
  const retentionMs = ctx.deps.measureRetentionMs ?? DEFAULT_MEASURE_RETENTION_MS;
  const store = ctx.deps.profiles;
  const budgetSettleMs = ctx.deps.budgets?.settleWindowMs ?? DEFAULT_SETTLE_MS;

  const campaignParam = (id: string | undefined): string => {
    if (id === undefined || id.length === 0 || id.length > LIMITS.idLength)
      throw new ClientError('invalid_field', `id must have 1 to ${LIMITS.idLength} characters`, 'id');
    return id;
  };
  const activeCampaign = (id: string): { c: CompiledCampaign | undefined; ruleset: number } => {
    const active = ctx.deps.active();
    const i = active.compiled.campaignIndex.get(id);
    return { c: i === undefined ? undefined : active.compiled.campaigns[i], ruleset: active.version };
  };
  const notFound = (id: string) =>
    new ClientError(
      'campaign_not_found',
      `The active rule set has no campaign ${JSON.stringify(id)}, and nothing is kept for one by that id`,
      'id',
    );

  register('getCampaignDelivery', async ({ c }) => {
    const id = campaignParam(c.req.param('id'));
    const { c: campaign, ruleset } = activeCampaign(id);
    const tz = campaign?.timezone ?? 'UTC';
    const now = ctx.now();
    const today = localDay(tz, now);
    const day = (name: 'from' | 'to', fallback: string): string => {
      const v = c.req.query(name);
      if (v === undefined || v === '') return fallback;
      if (
        !DAY_PATTERN.test(v) ||
        Number.isNaN(Date.parse(`${v}T00:00:00Z`)) ||
        new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v
      )
        throw new ClientError(
          'invalid_field',
          `${name} must be a day, YYYY-MM-DD (in the campaign's time zone, ${tz})`,
          name,
        );
      return v;
    };
    const to = day('to', today);
    const from = day('from', localDay('UTC', Date.parse(`${to}T00:00:00Z`) - 6 * DAY));
    if (from > to) throw new ClientError('invalid_field', `from (${from}) is after to (${to})`, 'from');
    const span = Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY) + 1;
    if (span > LIMITS.deliveryDays)
      throw new ClientError(
        'invalid_field',
        `from .. to spans ${span} days; at most ${LIMITS.deliveryDays}`,
        'to',
      );
    const oldest = localDay(tz, now - retentionMs);
    if (to < oldest)
      throw new ClientError(
        'invalid_field',
        `to (${to}) is before ${oldest}: delivery is kept ${Math.round(retentionMs / DAY)} days (MEASURE_RETENTION_DAYS)`,
        'to',
      );
    const format = c.req.query('format') ?? (c.req.header('accept')?.includes('text/csv') ? 'csv' : 'json');
    if (format !== 'json' && format !== 'csv')
      throw new ClientError('invalid_field', 'format must be json or csv', 'format');

    const rows = await ctx.storeCall('read delivery', () => store.delivery(id, from, to));
    if (campaign === undefined && rows.length === 0) {
      // Nothing in this range for a campaign the rule set does not have: a misspelt id, or one
      // whose rows are on other days? What is kept is looked at before saying "not found".
      const reach = Math.min(retentionMs, (LIMITS.deliveryDays - 1) * DAY);
      const kept = async () =>
        !isEmpty(await store.lift(id)) ||
        (await store.delivery(id, localDay('UTC', now - reach), localDay('UTC', now))).length > 0;
      if (!(await ctx.storeCall('read what is kept', kept))) throw notFound(id);
    }
    if (format === 'csv') {
      c.header('content-type', 'text/csv; charset=utf-8');
      c.header('content-disposition', `attachment; filename="delivery-${safeName(id)}-${from}-${to}.csv"`);
      return c.body(toCsv(rows));
    }
    const totals = zero();
    const byDay = new Map<string, Counts>();
    for (const d of daysBetween(from, to)) byDay.set(d, zero());
    const out = rows.map((r) => {
      const counts = zero();
      addInto(counts, r.counts);
      addInto(totals, r.counts);
      addInto(byDay.get(r.day)!, r.counts);
      return { day: r.day, creative: r.creative, channel: r.channel, ...counts };
    });
    return c.json({
      campaign: id,
      ruleset,
      active: campaign !== undefined,
      timezone: tz,
      from,
      to,
      // Shown up to MEASURE_FLUSH_MS (and, across a fleet, a fold) after the decisions.
      totals,
      daily: [...byDay].map(([d, counts]) => ({ day: d, ...counts })),
      rows: out,
    });
  });

  register('getCampaignBudget', async ({ c }) => {
    const id = campaignParam(c.req.param('id'));
    const { c: campaign, ruleset } = activeCampaign(id);
    if (campaign === undefined)
      throw new ClientError(
        'campaign_not_found',
        `The active rule set has no campaign ${JSON.stringify(id)}`,
        'id',
      );
    const lines = await ctx.storeCall('read budgets', () =>
      campaignBudgetReport(store, campaign, ctx.now(), budgetSettleMs),
    );
    return c.json({
      campaign: id,
      ruleset,
      currency: campaign.currency,
      lines: lines.map(({ campaign: _, ...line }) => line),
    });
  });

  register('getCampaignLift', async ({ c }) => {
    const id = campaignParam(c.req.param('id'));
    const { c: campaign, ruleset } = activeCampaign(id);
    const counts = await ctx.storeCall('read lift', () => store.lift(id));
    if (campaign === undefined && isEmpty(counts)) throw notFound(id);
    const result = (what: 'conversions' | 'purchases') => {
      const arm = (a: 'treatment' | 'control') => ({
        people: counts[a].people,
        converted: Math.min(counts[a].people, counts[a][what]),
      });
      return lift(arm('treatment'), arm('control'));
    };
    return c.json({
      campaign: id,
      ruleset,
      active: campaign !== undefined,
      holdout: campaign?.holdout ?? null,
      attributionWindowMs: campaign?.attributionMs ?? null,
      method: {
        interval: INTERVAL_METHOD,
        pValue: "two-sided pooled z-test; Fisher's exact test when a cell expects fewer than 5",
        minimumDetectableEffect: '80% power, 5% two-sided level, at the current arms and control rate',
        exposure:
          'Both arms at the decision: treatment when the campaign was decided for the person, control when it would have been and the person is in its hold-out (a ghost exposure). A person counts once, in the arm of their first exposure.',
      },
      arms: counts,
      conversions: result('conversions'),
      purchases: result('purchases'),
    });
  });
}

function isEmpty(l: LiftCounts): boolean {
  return l.treatment.people === 0 && l.control.people === 0;
}

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
}

/** One line per row; spend in one column per currency seen (`spend_EUR`). Fields quoted as RFC 4180. */
function toCsv(rows: readonly DeliveryRow[]): string {
  const currencies = new Set<string>();
  for (const r of rows)
    for (const m of Object.keys(r.counts)) if (m.startsWith('spend:')) currencies.add(m.slice(6));
  const spend = [...currencies].sort();
  const lines = [
    ['day', 'creative', 'channel', ...DELIVERY_METRICS, ...spend.map((s) => `spend_${s}`)].join(','),
  ];
  for (const r of rows) {
    const cells = [r.day, csvCell(r.creative), csvCell(r.channel)];
    for (const m of DELIVERY_METRICS) cells.push(String(r.counts[m] ?? 0));
    for (const cur of spend) cells.push(String((r.counts[`spend:${cur}`] ?? 0) / 1e6));
    lines.push(cells.join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

function csvCell(s: string): string {
  // A leading =, +, -, @, tab or carriage return would be a formula to a spreadsheet: a leading '.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\r\n']/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
