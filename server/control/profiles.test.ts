import { describe, expect, it } from 'vitest';
import { makeKit, T0 } from './test-kit.js';

const FULL = {
  tags: ['circle:business', 'category:phone'],
  stages: { vivo: 'appeal' },
  clv: { vivo: 3200 },
  attrs: { price_band: 6000, gender: 'f', vip: true },
  channels: { display: 0.3, app_push: 0.9 },
  activeHours: [8, 20, 21],
  timezone: 'Asia/Shanghai',
};

describe('profiles', () => {
  it('creates, replaces, reads, patches and forgets a profile, announcing each write', async () => {
    const kit = await makeKit();
    const put = await kit.req('PUT', '/v1/profiles/p-1', { token: 'profiles-secret', body: FULL });
    expect(put.status).toBe(201);
    expect(put.body).toEqual({ id: 'p-1', ...FULL, updatedAt: T0 });
    const again = await kit.req('PUT', '/v1/profiles/p-1', { body: { ...FULL, id: 'p-1', tags: ['x'] } });
    expect(again.status).toBe(200);
    expect(kit.messages).toEqual([
      { type: 'person', pid: 'p-1' },
      { type: 'person', pid: 'p-1' },
    ]);

    const linked = await kit.req('POST', '/v1/profiles/p-1/aliases', {
      body: { idfa: 'A-1', cookie: 'c-1' },
    });
    expect(linked.status).toBe(200);
    expect(linked.body).toEqual({ aliases: { idfa: 'a-1', cookie: 'c-1' } });
    expect(kit.messages).toContainEqual({ type: 'aliases', members: ['idfa:a-1', 'cookie:c-1'] });
    expect(await kit.store.resolveAlias('cookie', 'c-1')).toBe('p-1');

    const got = await kit.req('GET', '/v1/profiles/p-1', { token: 'read-secret' });
    expect(got.status).toBe(200);
    expect(got.body.profile).toMatchObject({ id: 'p-1', tags: ['x'], stages: { vivo: 'appeal' } });
    expect(got.body.aliases).toEqual({ idfa: 'a-1', cookie: 'c-1' });

    kit.clock.now += 1000;
    const patched = await kit.req('PATCH', '/v1/profiles/p-1', {
      body: {
        addTags: ['circle:mobile-gamer'],
        removeTags: ['x'],
        stages: { vivo: 'act', brightpad: 'aware' },
        clv: { vivo: null },
        channels: { sms: 1, display: null },
        activeHours: null,
        timezone: 'Europe/Berlin',
      },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      tags: ['circle:mobile-gamer'],
      stages: { vivo: 'act', brightpad: 'aware' },
      channels: { app_push: 0.9, sms: 1 },
      timezone: 'Europe/Berlin',
      updatedAt: T0 + 1000,
    });
    expect(patched.body.clv?.vivo).toBeUndefined();
    expect(patched.body.activeHours).toBeUndefined();

    kit.messages.length = 0;
    const del = await kit.req('DELETE', '/v1/profiles/p-1');
    expect(del.status).toBe(204);
    expect(del.text).toBe('');
    expect(kit.messages).toEqual(
      expect.arrayContaining([
        { type: 'person', pid: 'p-1' },
        { type: 'aliases', members: expect.arrayContaining(['idfa:a-1', 'cookie:c-1']) },
      ]),
    );
    expect(await kit.store.resolveAlias('idfa', 'A-1')).toBeNull();
    for (const [method, body] of [
      ['GET', undefined],
      ['PATCH', { addTags: ['a'] }],
      ['DELETE', undefined],
    ] as const) {
      const r = await kit.req(method, '/v1/profiles/p-1', { body });
      expect(r.status, method).toBe(404);
      expect(r.body.error.code).toBe('profile_not_found');
    }
  });

  it('checks profiles strictly, naming the field at fault', async () => {
    const kit = await makeKit();
    const cases: Array<[unknown, number, string, string]> = [
      [{ tags: 'a' }, 400, 'invalid_field', 'tags'],
      [{ tags: ['a', 3] }, 400, 'invalid_field', 'tags[1]'],
      [{ channels: { fax: 0.5 } }, 400, 'unknown_field', 'channels.fax'],
      [{ channels: { sms: 1.5 } }, 400, 'invalid_field', 'channels.sms'],
      [{ activeHours: [8, 24] }, 400, 'invalid_field', 'activeHours[1]'],
      [{ activeHours: [8, 8.5] }, 400, 'invalid_field', 'activeHours[1]'],
      [{ timezone: 'Mars/Olympus' }, 400, 'invalid_field', 'timezone'],
      [{ clv: { vivo: 'lots' } }, 400, 'invalid_field', 'clv.vivo'],
      [{ attrs: { nested: { a: 1 } } }, 400, 'invalid_field', 'attrs.nested'],
      [{ stages: { '': 'aware' } }, 400, 'invalid_field', 'stages.'],
      [{ colour: 'red' }, 400, 'unknown_field', 'colour'],
      [{ id: 'p-2' }, 400, 'invalid_field', 'id'],
      [JSON.parse('{"attrs": {"__proto__": {"x": 1}}}'), 400, 'forbidden_key', 'attrs.__proto__'],
      [
        { stages: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`b${i}`, 'aware'])) },
        400,
        'invalid_field',
        'stages',
      ],
      [[1, 2], 400, 'invalid_field', ''],
    ];
    for (const [body, status, code, path] of cases) {
      const r = await kit.req('PUT', '/v1/profiles/p-1', { body });
      expect([r.status, r.body.error?.code, r.body.error?.path], JSON.stringify(body).slice(0, 80)).toEqual([
        status,
        code,
        path,
      ]);
    }
    const syntax = await kit.req('PUT', '/v1/profiles/p-1', { body: '{"tags": [' });
    expect(syntax.body.error.code).toBe('bad_json');
    const empty = await kit.req('PUT', '/v1/profiles/p-1', { body: '' });
    expect(empty.body.error.code).toBe('bad_json');
    expect(await kit.store.getProfile('p-1')).toBeNull();
    expect(kit.messages).toEqual([]);
  });

  it('takes only stages of the active funnel, in a profile, a patch and an import line', async () => {
    const kit = await makeKit();
    const put = await kit.req('PUT', '/v1/profiles/p-1', { body: { tags: [], stages: { vivo: 'awre' } } });
    expect(put.status).toBe(400);
    expect(put.body.error).toMatchObject({ code: 'invalid_field', path: 'stages.vivo' });
    expect(put.body.error.message).toContain('aware, appeal');
    expect(await kit.store.getProfile('p-1')).toBeNull();
    expect(
      (await kit.req('PUT', '/v1/profiles/p-1', { body: { tags: [], stages: { vivo: 'aware' } } })).status,
    ).toBe(201);
    const patch = await kit.req('PATCH', '/v1/profiles/p-1', { body: { stages: { vivo: 'bought-it' } } });
    expect(patch.body.error).toMatchObject({ code: 'invalid_field', path: 'stages.vivo' });
    // Deleting a stage names no stage.
    expect((await kit.req('PATCH', '/v1/profiles/p-1', { body: { stages: { vivo: null } } })).status).toBe(
      200,
    );
    const lines = [
      JSON.stringify({ id: 'p-2', tags: [], stages: { vivo: 'appeal' } }),
      JSON.stringify({ id: 'p-3', tags: [], stages: { vivo: 'Appeal' } }),
    ].join('\n');
    const imported = await kit.req('POST', '/v1/profiles/import', {
      body: lines,
      type: 'application/x-ndjson',
    });
    expect(imported.body).toMatchObject({ imported: 1, failed: 1 });
    expect(imported.body.errors).toEqual([
      expect.objectContaining({ line: 2, code: 'invalid_field', path: 'stages.vivo' }),
    ]);
    expect(await kit.store.getProfile('p-3')).toBeNull();
  });

  it('checks patches and aliases', async () => {
    const kit = await makeKit();
    await kit.req('PUT', '/v1/profiles/p-1', { body: FULL });
    const cases: Array<[string, string, unknown, string, string]> = [
      ['PATCH', '/v1/profiles/p-1', { addTags: [''] }, 'invalid_field', 'addTags[0]'],
      ['PATCH', '/v1/profiles/p-1', { channels: { pager: null } }, 'unknown_field', 'channels.pager'],
      ['PATCH', '/v1/profiles/p-1', { tags: ['a'] }, 'unknown_field', 'tags'],
      ['PATCH', '/v1/profiles/p-1', { timezone: 'Nowhere/City' }, 'invalid_field', 'timezone'],
      ['POST', '/v1/profiles/p-1/aliases', {}, 'invalid_field', ''],
      ['POST', '/v1/profiles/p-1/aliases', { IDFA: 'x' }, 'invalid_field', 'IDFA'],
      ['POST', '/v1/profiles/p-1/aliases', { idfa: 7 }, 'invalid_field', 'idfa'],
    ];
    for (const [method, path, body, code, at] of cases) {
      const r = await kit.req(method, path, { body });
      expect([r.status, r.body.error.code, r.body.error.path], JSON.stringify(body)).toEqual([400, code, at]);
    }
    expect((await kit.store.getProfile('p-1'))?.timezone).toBe('Asia/Shanghai');
  });

  it('answers 503 when the store is down', async () => {
    const kit = await makeKit();
    await kit.store.close();
    const r = await kit.req('PUT', '/v1/profiles/p-1', { body: FULL });
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('store_unavailable');
    expect(kit.messages).toEqual([]);
  });
});
