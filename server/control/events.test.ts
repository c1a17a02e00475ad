import { describe, expect, it } from 'vitest';
import { type Kit, makeKit, T0 } from './test-kit.js';

async function people(kit: Kit) {
  await kit.store.putProfiles([
    { id: 'p-1', tags: [] },
    { id: 'p-2', tags: [], stages: { vivo: 'appeal' } },
    { id: 'p-3', tags: [], stages: { vivo: 'act' } },
    { id: 'p-4', tags: [], stages: { vivo: 'churned' } },
    { id: 'p-5', tags: [], stages: { vivo: 'lapsed' } },
  ]);
  await kit.store.linkAliases('p-2', { idfa: 'A-2' });
}

const BATCH = [
  { eventId: 'e1', type: 'impression', user: { id: 'p-1' }, campaign: 'x90-launch' },
  { eventId: 'e2', type: 'click', user: { id: 'p-1' }, brand: 'vivo', at: '2026-11-24T03:00:00Z' },
  { eventId: 'e3', type: 'click', user: { id: 'p-3' }, campaign: 'x90-launch' },
  { eventId: 'e4', type: 'purchase', user: { ids: { idfa: 'A-2' } }, brand: 'vivo', at: T0 - 86_400_000 },
  { eventId: 'e5', type: 'conversion', user: { ids: { idfa: 'A-2' } }, brand: 'vivo' },
  { eventId: 'e6', type: 'purchase', user: { id: 'p-4' }, brand: 'vivo' },
  { eventId: 'e7', type: 'click', user: { ids: { idfa: 'nobody' } }, brand: 'vivo' },
  { eventId: 'e8', type: 'impression', user: { id: 'p-1' }, campaign: 'no-such-campaign' },
];

describe('events', () => {
  it('refuses a batch with a time in the future or far past, and applies none of it', async () => {
    const kit = await makeKit();
    await people(kit);
    const good = { eventId: 'ok-1', type: 'impression', user: { id: 'p-1' }, campaign: 'x90-launch' };
    const cases: Array<[unknown, string]> = [
      [T0 + 3_600_000, 'an hour ahead'],
      [T0 * 1000, 'microseconds sent as milliseconds'],
      [9_000_000_000_000_000, 'beyond what a date can hold'],
      [Math.floor(T0 / 1000), 'seconds sent as milliseconds'],
      ['2030-01-01T00:00:00Z', 'a date years ahead'],
    ];
    for (const [at, why] of cases) {
      const r = await kit.req('POST', '/v1/events', {
        body: {
          events: [good, { eventId: `bad-${why}`, type: 'click', user: { id: 'p-1' }, brand: 'vivo', at }],
        },
      });
      expect(r.status, why).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_field', path: 'events[1].at' });
    }
    const one = await kit.req('POST', '/v1/events', { body: { ...good, at: T0 + 3_600_000 } });
    expect(one.body.error).toMatchObject({ code: 'invalid_field', path: 'at' });
    expect((await kit.store.loadPerson('p-1')).counters).toEqual({});
    // A few minutes of clock drift is fine.
    const drift = await kit.req('POST', '/v1/events', { body: { ...good, at: T0 + 60_000 } });
    expect(drift.body).toMatchObject({ applied: 1 });
  });

  it('records nothing for a brand the active rule set never names', async () => {
    const kit = await makeKit();
    await people(kit);
    const r = await kit.req('POST', '/v1/events', {
      body: [
        { eventId: 'b-1', type: 'click', user: { id: 'p-1' }, brand: 'vivoo' },
        { eventId: 'b-2', type: 'click', user: { id: 'p-1' }, brand: 'vivo' },
      ],
    });
    expect(r.body).toMatchObject({ applied: 1, skipped: 1 });
    expect(r.body.results[0]).toMatchObject({
      outcome: 'unknown_brand',
      detail: expect.stringContaining('"vivoo"'),
    });
    const funnel = await kit.req('GET', '/v1/funnels/vivoo?days=1');
    expect(funnel.body.stages.every((s: { people: number }) => s.people === 0)).toBe(true);
    // Not recorded: the same event counts once the brand exists.
    expect((await kit.store.getProfile('p-1'))?.stages?.vivoo).toBeUndefined();
  });

  it('refuses an event older than event ids are remembered, which sent again would count twice', async () => {
    const DAY = 86_400_000;
    const kit = await makeKit();
    await people(kit);
    const event = (eventId: string, at: number) => ({
      eventId,
      type: 'click',
      user: { id: 'p-1' },
      brand: 'vivo',
      at,
    });
    const old = await kit.req('POST', '/v1/events', { body: event('old-1', T0 - 8 * DAY) });
    expect(old.status).toBe(400);
    expect(old.body.error).toMatchObject({ code: 'invalid_field', path: 'at' });
    expect(old.body.error.message).toContain('remembered 7 days (EVENT_DEDUPE_MS)');
    expect((await kit.req('POST', '/v1/events', { body: event('week-1', T0 - 6 * DAY) })).body).toMatchObject(
      {
        applied: 1,
      },
    );
    // A longer window takes older history.
    const longer = await makeKit({ eventDedupeMs: 30 * DAY });
    await people(longer);
    const month = await longer.req('POST', '/v1/events', { body: event('old-1', T0 - 29 * DAY) });
    expect(month.body).toMatchObject({ applied: 1 });
    const tooOld = await longer.req('POST', '/v1/events', { body: event('old-2', T0 - 31 * DAY) });
    expect(tooOld.body.error.message).toContain('30 days');
  });

  it('applies a batch once: impressions count, stages move, replays change nothing', async () => {
    const kit = await makeKit();
    await people(kit);
    const r = await kit.req('POST', '/v1/events', { token: 'events-secret', body: { events: BATCH } });
    expect(r.status).toBe(200);
    expect(r.body.results).toEqual([
      { eventId: 'e1', outcome: 'applied' },
      { eventId: 'e2', outcome: 'applied', moved: { brand: 'vivo', from: 'aware', to: 'appeal' } },
      // p-3 is past appeal: a click moves nobody backwards.
      { eventId: 'e3', outcome: 'applied' },
      { eventId: 'e4', outcome: 'applied', moved: { brand: 'vivo', from: 'appeal', to: 'act' } },
      { eventId: 'e5', outcome: 'applied' },
      // A stage off the ladder moves onto it.
      { eventId: 'e6', outcome: 'applied', moved: { brand: 'vivo', from: 'churned', to: 'act' } },
      { eventId: 'e7', outcome: 'unknown_person', detail: expect.any(String) },
      { eventId: 'e8', outcome: 'unknown_campaign', detail: expect.stringContaining('no-such-campaign') },
    ]);
    expect(r.body).toMatchObject({ applied: 6, duplicates: 0, skipped: 2 });
    expect((await kit.store.loadPerson('p-1')).counters['x90-launch']).toEqual([T0]);
    expect((await kit.store.getProfile('p-3'))?.stages?.vivo).toBe('act');
    // Everyone the batch reached is announced, in one message: impressions changed counters,
    // clicks and purchases stages.
    expect(kit.messages).toEqual([{ type: 'people', pids: ['p-1', 'p-3', 'p-2', 'p-4'] }]);

    // The same batch again (a retry): every known event is a duplicate, nothing counts twice.
    const again = await kit.req('POST', '/v1/events', { body: BATCH });
    expect(again.body).toMatchObject({ applied: 0, duplicates: 6, skipped: 2 });
    expect((await kit.store.loadPerson('p-1')).counters['x90-launch']).toEqual([T0]);
    const single = await kit.req('POST', '/v1/events', { body: BATCH[0] });
    expect(single.body.results).toEqual([{ eventId: 'e1', outcome: 'duplicate' }]);

    // Funnel after the events.
    const f = await kit.req('GET', '/v1/funnels/vivo?days=3', { token: 'read-secret' });
    expect(f.status).toBe(200);
    expect(f.body).toMatchObject({
      brand: 'vivo',
      ruleset: 1,
      days: 3,
      from: '2026-11-22',
      to: '2026-11-24',
    });
    expect(f.body.stages).toEqual([
      { stage: 'aware', people: 0, onLadder: true },
      { stage: 'appeal', people: 1, onLadder: true },
      { stage: 'act', people: 3, onLadder: true },
      { stage: 'advocate', people: 0, onLadder: true },
      { stage: 'lapsed', people: 1, onLadder: false },
    ]);
    expect(f.body.flow).toEqual([
      { from: 'aware', to: 'appeal', moved: 1, rate: 1 },
      { from: 'appeal', to: 'act', moved: 1, rate: 0.5 },
      { from: 'act', to: 'advocate', moved: 0, rate: 0 },
    ]);
    expect(f.body.daily).toEqual([
      { day: '2026-11-22', moves: {} },
      { day: '2026-11-23', moves: { 'appeal>act': 1 } },
      { day: '2026-11-24', moves: { 'aware>appeal': 1, 'churned>act': 1 } },
    ]);
    const oneDay = await kit.req('GET', '/v1/funnels/vivo?days=1');
    expect(oneDay.body.flow[1]).toEqual({ from: 'appeal', to: 'act', moved: 0, rate: 0 });
    const nobody = await kit.req('GET', '/v1/funnels/nobrand');
    expect(nobody.body.flow[0]).toEqual({ from: 'aware', to: 'appeal', moved: 0, rate: null });
    for (const days of ['0', '91', 'x', '1.5']) {
      const bad = await kit.req('GET', `/v1/funnels/vivo?days=${days}`);
      expect([bad.status, bad.body.error.path], days).toEqual([400, 'days']);
    }
  });

  it("counts moves on the brand's days (its campaigns' time zone), and reads the window there", async () => {
    const kit = await makeKit();
    await kit.store.putProfiles([{ id: 'tz-1', tags: [] }]);
    // 20:30 UTC on the 24th is 04:30 on the 25th in Shanghai, vivo's campaigns' zone.
    kit.clock.now = Date.parse('2026-11-24T21:00:00Z');
    const r = await kit.req('POST', '/v1/events', {
      body: {
        eventId: 'tz-e',
        type: 'click',
        user: { id: 'tz-1' },
        brand: 'vivo',
        at: '2026-11-24T20:30:00Z',
      },
    });
    expect(r.body.results[0].moved).toEqual({ brand: 'vivo', from: 'aware', to: 'appeal' });
    const f = await kit.req('GET', '/v1/funnels/vivo?days=2');
    expect(f.body).toMatchObject({ timezone: 'Asia/Shanghai', from: '2026-11-24', to: '2026-11-25' });
    expect(f.body.daily).toEqual([
      { day: '2026-11-24', moves: {} },
      { day: '2026-11-25', moves: { 'aware>appeal': 1 } },
    ]);
    // A brand without campaigns counts in UTC.
    expect((await kit.req('GET', '/v1/funnels/nobrand?days=1')).body).toMatchObject({
      timezone: 'UTC',
      to: '2026-11-24',
    });
  });

  it('checks the whole batch first and applies nothing when one event is invalid', async () => {
    const kit = await makeKit();
    await people(kit);
    const bad = BATCH.slice(0, 5).map((e) => ({ ...e }));
    (bad[3] as Record<string, unknown>).type = 'share';
    for (const body of [bad, { events: bad }]) {
      const r = await kit.req('POST', '/v1/events', { body });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_field', path: 'events[3].type' });
      expect(r.body.error.message).toContain('impression, click, conversion, purchase');
    }
    const cases: Array<[unknown, string, string]> = [
      [{ type: 'click', user: { id: 'p-1' } }, 'missing_field', 'eventId'],
      [{ eventId: 'x', type: 'click', user: {} }, 'missing_field', 'user'],
      [{ eventId: 'x', type: 'click', user: { id: 'p-1', ids: { idfa: 'a' } } }, 'invalid_field', 'user'],
      [{ eventId: 'x', type: 'click', user: { id: 'p-1' }, at: 'yesterday' }, 'invalid_field', 'at'],
      [{ eventId: 'x', type: 'click', user: { id: 'p-1' }, at: -5 }, 'invalid_field', 'at'],
      [{ eventId: 'x', type: 'click', user: { id: 'p-1' }, extra: 1 }, 'unknown_field', 'extra'],
      [{ events: [] }, 'invalid_field', 'events'],
      [{ events: Array.from({ length: 1001 }, () => BATCH[0]) }, 'invalid_field', 'events'],
      [
        [BATCH[0], { ...BATCH[1], user: { ids: { 'Bad Kind': 'x' } } }],
        'invalid_field',
        'events[1].user.ids.Bad Kind',
      ],
    ];
    for (const [body, code, path] of cases) {
      const r = await kit.req('POST', '/v1/events', { body });
      expect([r.status, r.body.error.code, r.body.error.path], JSON.stringify(body).slice(0, 100)).toEqual([
        400,
        code,
        path,
      ]);
    }
    expect((await kit.store.loadPerson('p-1')).counters).toEqual({});
    expect((await kit.store.funnel('vivo', '2026-11-24', '2026-11-24')).moves).toEqual({});
    expect(kit.messages).toEqual([]);
  });

  it('answers 503 when the store is down; the retry then applies everything once', async () => {
    const kit = await makeKit();
    await people(kit);
    const apply = kit.store.applyEvents.bind(kit.store);
    kit.store.applyEvents = async () => {
      throw new Error('READONLY replica');
    };
    const down = await kit.req('POST', '/v1/events', { body: BATCH });
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('store_unavailable');
    kit.store.applyEvents = apply;
    const retry = await kit.req('POST', '/v1/events', { body: BATCH });
    expect(retry.body).toMatchObject({ applied: 6, duplicates: 0 });
  });

  it('follows the active rule set: a campaign without caps dedupes but counts nothing', async () => {
    const kit = await makeKit();
    await people(kit);
    const text = [
      'funnel: [seen, bought]',
      'segments: [{ id: all, when: { all: [] } }]',
      'stageMoves: [{ on: purchase, to: bought }]',
      'campaigns:',
      '  - { id: plain, brand: acme, segments: [all], channels: [display], creatives: [{ id: c, message: brand }] }',
    ].join('\n');
    const up = await kit.req('POST', '/v1/rulesets?activate=true', { body: text, type: 'application/yaml' });
    expect(up.status).toBe(201);
    await kit.synced();
    const r = await kit.req('POST', '/v1/events', {
      body: [
        { eventId: 'i1', type: 'impression', user: { id: 'p-1' }, campaign: 'plain' },
        { eventId: 'i1', type: 'impression', user: { id: 'p-1' }, campaign: 'plain' },
        { eventId: 'b1', type: 'purchase', user: { id: 'p-1' }, campaign: 'plain' },
        { eventId: 'x1', type: 'impression', user: { id: 'p-1' }, campaign: 'x90-launch' },
      ],
    });
    expect(r.body.results.map((x: { outcome: string }) => x.outcome)).toEqual([
      'applied',
      'duplicate',
      'applied',
      'unknown_campaign',
    ]);
    expect(r.body.results[2].moved).toEqual({ brand: 'acme', from: 'seen', to: 'bought' });
    expect((await kit.store.loadPerson('p-1')).counters).toEqual({});
  });
});
