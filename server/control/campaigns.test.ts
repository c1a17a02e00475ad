import { describe, expect, it } from 'vitest';
import { prng } from '../../bench/synthetic.js';
import { compileRuleSet } from '../../rules/compile.js';
import type { RuleSet } from '../../rules/types.js';
import { DecisionRecorder } from '../decision/recorder.js';
import { DecisionService } from '../decision/service.js';
import { EmbeddedStore } from '../store/embedded.js';
import { makeKit, T0 } from './test-kit.js';

const DAY = 86_400_000;

describe('GET /v1/campaigns/{id}/delivery', () => {
  it("answers rows per day (the campaign's time zone), creative and channel, with totals, daily sums and CSV", async () => {
    const kit = await makeKit();
    await kit.store.putProfile({ id: 'p-1', tags: [] });
    await kit.store.addDelivery([
      {
        campaign: 'x90-launch',
        day: '2026-11-24',
        creative: 'x90-camera-hero',
        channel: 'display',
        metric: 'decisions',
        n: 7,
      },
      {
        campaign: 'x90-launch',
        day: '2026-11-24',
        creative: 'x90-camera-hero',
        channel: 'display',
        metric: 'ghosts',
        n: 1,
      },
    ]);
    const event = (eventId: string, type: string, at: number, extra: object = {}) => ({
      eventId,
      type,
      user: { id: 'p-1' },
      campaign: 'x90-launch',
      at,
      ...extra,
    });
    const shown = { creative: 'x90-camera-hero', channel: 'display' };
    kit.clock.now = Date.parse('2026-11-24T21:00:00Z');
    const r = await kit.req('POST', '/v1/events', {
      body: [
        event('i1', 'impression', T0, shown),
        event('c1', 'click', T0 + 1000, shown),
        // 20:00 UTC is 04:00 the next day in Shanghai, the campaign's zone.
        event('i2', 'impression', Date.parse('2026-11-24T20:00:00Z'), shown),
        event('v1', 'conversion', T0 + 2000),
        event('bad', 'impression', T0, { creative: 'not-ours' }),
      ],
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.results.at(-1)).toMatchObject({
      outcome: 'unknown_campaign',
      detail: expect.stringContaining('not-ours'),
    });
    kit.clock.now = Date.parse('2026-11-25T06:00:00Z');

    const res = await kit.req('GET', '/v1/campaigns/x90-launch/delivery?from=2026-11-23&to=2026-11-25');
    expect(res.status).toBe(200);
    const zero = {
      decisions: 0,
      ghosts: 0,
      impressions: 0,
      clicks: 0,
      conversions: 0,
      purchases: 0,
      spend: {},
    };
    expect(res.body).toMatchObject({
      campaign: 'x90-launch',
      active: true,
      timezone: 'Asia/Shanghai',
      from: '2026-11-23',
      to: '2026-11-25',
      totals: { ...zero, decisions: 7, ghosts: 1, impressions: 2, clicks: 1, conversions: 1 },
    });
    expect(res.body.daily).toEqual([
      { day: '2026-11-23', ...zero },
      { day: '2026-11-24', ...zero, decisions: 7, ghosts: 1, impressions: 1, clicks: 1, conversions: 1 },
      { day: '2026-11-25', ...zero, impressions: 1 },
    ]);
    expect(res.body.rows).toEqual([
      { day: '2026-11-24', creative: '', channel: '', ...zero, conversions: 1 },
      {
        day: '2026-11-24',
        creative: 'x90-camera-hero',
        channel: 'display',
        ...zero,
        decisions: 7,
        ghosts: 1,
        impressions: 1,
        clicks: 1,
      },
      { day: '2026-11-25', creative: 'x90-camera-hero', channel: 'display', ...zero, impressions: 1 },
    ]);
    // Default range: the last seven days to today in the campaign's zone.
    const week = await kit.req('GET', '/v1/campaigns/x90-launch/delivery');
    expect([week.body.from, week.body.to]).toEqual(['2026-11-19', '2026-11-25']);
    expect(week.body.totals.impressions).toBe(2);

    const csv = await kit.req(
      'GET',
      '/v1/campaigns/x90-launch/delivery?from=2026-11-24&to=2026-11-25&format=csv',
    );
    expect(csv.headers.get('content-type')).toContain('text/csv');
    expect(csv.text.split('\r\n')).toEqual([
      'day,creative,channel,decisions,ghosts,impressions,clicks,conversions,purchases',
      '2026-11-24,,,0,0,0,0,1,0',
      '2026-11-24,x90-camera-hero,display,7,1,1,1,0,0',
      '2026-11-25,x90-camera-hero,display,0,0,1,0,0,0',
      '',
    ]);
    const byAccept = await kit.req('GET', '/v1/campaigns/x90-launch/delivery', {
      headers: { accept: 'text/csv' },
    });
    expect(byAccept.text.startsWith('day,creative,channel')).toBe(true);
  });

  it('spends per currency and quotes CSV fields a spreadsheet would misread', async () => {
    const kit = await makeKit();
    await kit.store.addDelivery([
      {
        campaign: 'x90-launch',
        day: '2026-11-24',
        creative: '=HYPERLINK("x")',
        channel: 'display',
        metric: 'spend:EUR',
        n: 1_250_000,
      },
      {
        campaign: 'x90-launch',
        day: '2026-11-24',
        creative: '=HYPERLINK("x")',
        channel: 'display',
        metric: 'spend:USD',
        n: 500,
      },
    ]);
    const json = await kit.req('GET', '/v1/campaigns/x90-launch/delivery?from=2026-11-24&to=2026-11-24');
    expect(json.body.totals.spend).toEqual({ EUR: 1.25, USD: 0.0005 });
    const csv = await kit.req(
      'GET',
      '/v1/campaigns/x90-launch/delivery?from=2026-11-24&to=2026-11-24&format=csv',
    );
    expect(csv.text.split('\r\n').slice(0, 2)).toEqual([
      'day,creative,channel,decisions,ghosts,impressions,clicks,conversions,purchases,spend_EUR,spend_USD',
      `2026-11-24,"'=HYPERLINK(""x"")",display,0,0,0,0,0,0,1.25,0.0005`,
    ]);
  });

  it('refuses bad ranges, unknown campaigns and formats with a code and a path', async () => {
    const kit = await makeKit({ measureRetentionMs: 30 * DAY });
    const get = async (q: string, id = 'x90-launch') => {
      const r = await kit.req('GET', `/v1/campaigns/${id}/delivery${q}`);
      return [r.status, r.body.error?.code, r.body.error?.path];
    };
    expect(await get('', 'no-such-campaign')).toEqual([404, 'campaign_not_found', 'id']);
    expect(await get('?from=2026-11-25&to=2026-11-24')).toEqual([400, 'invalid_field', 'from']);
    expect(await get('?from=2026-02-30&to=2026-03-01')).toEqual([400, 'invalid_field', 'from']);
    expect(await get('?to=24.11.2026')).toEqual([400, 'invalid_field', 'to']);
    expect(await get('?from=2025-01-01&to=2026-11-24')).toEqual([400, 'invalid_field', 'to']);
    // Past the retention (30 days here).
    expect(await get('?from=2026-09-01&to=2026-10-01')).toEqual([400, 'invalid_field', 'to']);
    expect(await get('?format=xml')).toEqual([400, 'invalid_field', 'format']);
    expect((await kit.req('GET', '/v1/campaigns/x90-launch/lift', { token: 'events-secret' })).status).toBe(
      403,
    );
    // A campaign of an earlier rule set answers from what was kept.
    await kit.store.addDelivery([
      { campaign: 'retired', day: '2026-11-24', creative: 'a', channel: 'email', metric: 'decisions', n: 2 },
    ]);
    const retired = await kit.req('GET', '/v1/campaigns/retired/delivery?from=2026-11-24&to=2026-11-24');
    expect(retired.body).toMatchObject({ active: false, timezone: 'UTC', totals: { decisions: 2 } });
    // Its rows are on other days than those asked for: still known, nothing in the range.
    const elsewhere = await kit.req('GET', '/v1/campaigns/retired/delivery?from=2026-11-20&to=2026-11-21');
    expect([elsewhere.status, elsewhere.body.rows]).toEqual([200, []]);
  });
});

describe('GET /v1/campaigns/{id}/lift', () => {
  it('answers arms, outcomes and the lift, and 404 for a campaign nobody knows', async () => {
    const kit = await makeKit();
    const exposures = [];
    for (let i = 0; i < 40; i++)
      exposures.push({
        pid: `p-${i}`,
        campaign: 'x90-launch',
        arm: i < 30 ? ('treatment' as const) : ('control' as const),
        at: T0 - DAY,
        windowMs: 7 * DAY,
      });
    await kit.store.recordExposures(exposures);
    // 12 of 30 treated convert, 2 of 10 held out; 3 treated also buy.
    const events = [];
    for (let i = 0; i < 12; i++)
      events.push({ eventId: `c-${i}`, type: 'conversion', user: { id: `p-${i}` }, brand: 'vivo', at: T0 });
    for (const i of [30, 31])
      events.push({ eventId: `c-${i}`, type: 'conversion', user: { id: `p-${i}` }, brand: 'vivo', at: T0 });
    for (let i = 0; i < 3; i++)
      events.push({ eventId: `b-${i}`, type: 'purchase', user: { id: `p-${i}` }, brand: 'vivo', at: T0 });
    expect((await kit.req('POST', '/v1/events', { body: events })).body.applied).toBe(17);

    const r = await kit.req('GET', '/v1/campaigns/x90-launch/lift');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      campaign: 'x90-launch',
      active: true,
      holdout: 0.05,
      attributionWindowMs: 7 * DAY,
      arms: {
        treatment: { people: 30, exposures: 30, conversions: 12, purchases: 3 },
        control: { people: 10, exposures: 10, conversions: 2, purchases: 0 },
      },
      conversions: {
        treatment: { people: 30, converted: 12, rate: 0.4 },
        control: { people: 10, converted: 2, rate: 0.2 },
        interval: { level: 0.95, method: expect.stringContaining('Newcombe') },
      },
    });
    expect(r.body.conversions.absolute).toBeCloseTo(0.2, 10);
    expect(r.body.conversions.relative).toBeCloseTo(1, 10);
    expect(r.body.conversions.pValue).toBeGreaterThan(0);
    expect(r.body.purchases.treatment.converted).toBe(3);
    const none = await kit.req('GET', '/v1/campaigns/nobody/lift');
    expect([none.status, none.body.error.code, none.body.error.path]).toEqual([
      404,
      'campaign_not_found',
      'id',
    ]);
  });
});

describe('lift end to end: decisions, ghosts and outcomes of a simulated campaign', () => {
  // Everyone is in the segment; `promo` wins with a 30% hold-out, `fallback` is the next best.
  const RULES: RuleSet = {
    funnel: ['aware', 'act'],
    segments: [{ id: 'all', when: { not: { tag: 'never' } } }],
    campaigns: [
      {
        id: 'promo',
        brand: 'shop',
        segments: ['all'],
        priority: 1,
        channels: ['display'],
        holdout: 0.3,
        attributionWindow: '3d',
        creatives: [{ id: 'promo-a', message: 'promotion' }],
      },
      {
        id: 'fallback',
        brand: 'shop',
        segments: ['all'],
        channels: ['display'],
        creatives: [{ id: 'fallback-a', message: 'brand' }],
      },
    ],
  };

  it('counts every person once in the arm they were decided into, and their outcomes exactly', async () => {
    const store = new EmbeddedStore({ now: () => T0 });
    const recorder = new DecisionRecorder(store, { flushEveryMs: 60_000 });
    const service = new DecisionService(
      store,
      { version: 1, checksum: 'x', compiled: compileRuleSet(RULES), activatedAt: 0 },
      { deadlineMs: 1000, now: () => T0, recorder },
    );
    const random = prng(42);
    const truth = { treatment: { people: 0, converted: 0 }, control: { people: 0, converted: 0 } };
    const events = [];
    for (let i = 0; i < 3000; i++) {
      const pid = `sim-${i}`;
      const input = {
        user: { kind: 'id' as const, id: pid },
        placements: [{ id: 'slot' }],
        explain: false,
        contextTags: undefined,
        deadlineMs: undefined,
      };
      const first = await service.decide(input);
      // Decided again the same day: the person still counts once.
      await service.decide(input);
      const held = first.ghosts !== undefined;
      const d = first.output.decisions[0]!;
      expect(d.campaign).toBe(held ? 'fallback' : 'promo');
      const arm = held ? truth.control : truth.treatment;
      arm.people++;
      // True conversion rates: 12% shown, 8% held out.
      if (random() < (held ? 0.08 : 0.12)) {
        arm.converted++;
        events.push({ eventId: `conv-${i}`, pid, at: T0 + DAY, outcome: 'conversions' as const });
      }
      // Outside the 3-day window: not counted.
      if (random() < 0.5)
        events.push({ eventId: `late-${i}`, pid, at: T0 + 4 * DAY, outcome: 'conversions' as const });
    }
    await recorder.close();
    await store.applyEvents(events);
    const counts = await store.lift('promo');
    expect(counts.treatment).toMatchObject({
      people: truth.treatment.people,
      conversions: truth.treatment.converted,
    });
    expect(counts.control).toMatchObject({
      people: truth.control.people,
      conversions: truth.control.converted,
    });
    // About the hold-out share, as drawn.
    expect(truth.control.people / 3000).toBeGreaterThan(0.27);
    expect(truth.control.people / 3000).toBeLessThan(0.33);
    // The fallback has no hold-out: no exposures of its own are kept.
    expect((await store.lift('fallback')).treatment.people).toBe(0);
    const rows = await store.delivery('promo', '2026-11-24', '2026-11-24');
    expect(rows).toEqual([
      {
        day: '2026-11-24',
        creative: 'promo-a',
        channel: 'display',
        counts: { decisions: 2 * truth.treatment.people, ghosts: 2 * truth.control.people },
      },
    ]);
    expect(recorder.stats()).toMatchObject({ exposuresDropped: 0, countsDropped: 0 });
  });
});

describe('GET /v1/campaigns/{id}/budget', () => {
  it("answers every budget line with today's spent, committed, limit, pace target and status; 404 for an unknown campaign", async () => {
    const rs: RuleSet = {
      funnel: ['aware', 'buy'],
      segments: [],
      campaigns: [
        {
          id: 'paced',
          brand: 'b',
          currency: 'EUR',
          budget: { daily: 24, total: 1000, unit: 'spend', pacing: 'even', cpm: 2 },
          creatives: [
            { id: 'a', message: 'brand', budget: { daily: 100, pacing: 'asap' } },
            { id: 'b', message: 'brand' },
          ],
        },
        { id: 'free', brand: 'b', creatives: [{ id: 'f', message: 'brand' }] },
      ],
    };
    const compiled = compileRuleSet(rs);
    const kit = await makeKit({ active: () => ({ version: 3, checksum: 'c', compiled, activatedAt: T0 }) });
    // 06:00 UTC: a quarter of the day; 6 EUR delivered and 1 leased.
    kit.clock.now = Date.parse('2026-11-24T06:00:00Z');
    await kit.store.leaseBudgets(
      [
        {
          campaign: 'paced',
          creative: '',
          unit: 'spend',
          day: '2026-11-24',
          overdraft: 0,
          delivered: [{ day: '2026-11-24', units: 6_000_000 }],
          decisions: 3000,
          opportunities: [{ hour: 5, n: 40 }],
          ask: 1_000_000,
          dailyCap: 24_000_000,
          totalCap: 1_000_000_000,
          daysLeft: null,
          paceShare: 1,
        },
      ],
      kit.clock.now,
      120_000,
    );
    const r = await kit.req('GET', '/v1/campaigns/paced/budget');
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ campaign: 'paced', ruleset: 3, currency: 'EUR' });
    expect(r.body.lines).toHaveLength(2);
    const [own, creative] = r.body.lines;
    expect(own).toMatchObject({
      creative: null,
      unit: 'spend',
      pacing: 'even',
      daily: 24,
      total: 1000,
      today: { day: '2026-11-24', spent: 6, committed: 1, limit: 24, target: 6, pace: 1 },
      spentInAll: 6,
      remaining: 994,
      status: 'on_pace',
    });
    expect(own.today.opportunities[5]).toBe(40);
    expect(own.shape.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 4);
    expect(creative).toMatchObject({ creative: 'a', unit: 'impressions', pacing: 'asap', status: 'unpaced' });
    const none = await kit.req('GET', '/v1/campaigns/free/budget');
    expect(none.body.lines).toEqual([]);
    const missing = await kit.req('GET', '/v1/campaigns/nope/budget');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'campaign_not_found', path: 'id' });
    expect((await kit.req('GET', '/v1/campaigns/paced/budget', { token: null })).status).toBe(401);
  });
});
