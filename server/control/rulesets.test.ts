import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checksumOf } from '../ruleset-file.js';
import { DEMO_FILE, type Json, makeKit } from './test-kit.js';

const DEMO = readFileSync(DEMO_FILE, 'utf8');
const YAML = 'application/yaml';
/** The demo rule set with the x90 campaign's priority changed: a second, different version. */
const DEMO_V2 = DEMO.replace('name:', 'name: v2 of').replace(/priority: 10\b/, 'priority: 11');
const BROKEN = `${DEMO}\n  - id: bad\n    brand: vivo\n`.replace(
  'funnel: [aware, appeal, act, advocate]',
  'funnel: [aware, aware]',
);

describe('rule sets', () => {
  it('uploads, lists, reads back as uploaded, activates and rolls back', async () => {
    const kit = await makeKit();
    const up1 = await kit.req('POST', '/v1/rulesets', { body: DEMO, type: YAML });
    expect(up1.status).toBe(201);
    expect(up1.body).toMatchObject({ version: 1, checksum: checksumOf(DEMO), active: false });
    // The demo's warnings (it is valid): its 11.11 promotion has ended by the test's clock, and some
    // selling points are illustrated by no creative.
    expect(up1.body.warnings.map((w: Json) => w.code)).toContain('flight_ended');
    expect(up1.body.warnings.find((w: Json) => w.code === 'flight_ended')).toMatchObject({
      path: 'campaigns[2].flight.end',
      line: expect.any(Number),
    });
    const checked = await kit.req('POST', '/v1/rulesets/validate', { body: DEMO, type: YAML });
    expect(checked.body.warnings).toEqual(up1.body.warnings);

    const up2 = await kit.req('POST', '/v1/rulesets?activate=true', { body: DEMO_V2, type: YAML });
    expect(up2.status).toBe(201);
    expect(up2.body).toMatchObject({ version: 2, active: true, activatedAt: '2026-11-24T04:00:00.000Z' });
    await kit.synced();
    expect(kit.active().version).toBe(2);
    expect(kit.messages).toContainEqual({ type: 'ruleset', version: 2, checksum: checksumOf(DEMO_V2) });

    const list = await kit.req('GET', '/v1/rulesets', { token: 'read-secret' });
    expect(list.status).toBe(200);
    expect(list.body.active).toBe(2);
    expect(list.body.serving).toBe(2);
    expect(list.body.versions.map((v: Json) => [v.version, v.active])).toEqual([
      [2, true],
      [1, false],
    ]);
    expect(list.body.versions[1]).toMatchObject({
      format: 'yaml',
      createdBy: 'root',
      createdAt: '2026-11-24T04:00:00.000Z',
      bytes: Buffer.byteLength(DEMO),
    });

    const one = await kit.req('GET', '/v1/rulesets/1', { token: 'read-secret' });
    expect(one.status).toBe(200);
    expect(one.text).toBe(DEMO);
    expect(one.headers.get('content-type')).toContain('application/yaml');
    expect(one.headers.get('x-ruleset-version')).toBe('1');
    expect(one.headers.get('etag')).toBe(`"${checksumOf(DEMO)}"`);

    const act = await kit.req('GET', '/v1/rulesets/active', { token: 'read-secret' });
    expect(act.text).toBe(DEMO_V2);
    expect(act.headers.get('x-ruleset-version')).toBe('2');

    // Rollback: activate the older version.
    kit.clock.now += 60_000;
    const back = await kit.req('POST', '/v1/rulesets/1/activate', { token: 'rules-secret' });
    expect(back.status).toBe(200);
    expect(back.body).toEqual({ version: 1, activatedAt: '2026-11-24T04:01:00.000Z' });
    await kit.synced();
    expect(kit.active().version).toBe(1);
    const after = await kit.req('GET', '/v1/rulesets');
    expect(after.body.active).toBe(1);
    expect(after.body.versions[1]).toMatchObject({ version: 1, active: true, activatedBy: 'author' });
    expect(kit.logs.some((l) => l.includes('rule set 1 activated by author'))).toBe(true);
  });

  it('takes JSON, and refuses a rule set that does not name YAML or JSON as its type', async () => {
    const kit = await makeKit();
    const asJson = JSON.stringify({
      funnel: ['aware', 'act'],
      segments: [{ id: 'all', when: { all: [] } }],
      campaigns: [],
    });
    const r = await kit.req('POST', '/v1/rulesets', { body: asJson, type: 'application/json' });
    expect(r.status).toBe(201);
    const got = await kit.req('GET', `/v1/rulesets/${r.body.version}`);
    expect(got.headers.get('content-type')).toContain('application/json');
    expect(got.text).toBe(asJson);
    const before = await kit.req('GET', '/v1/rulesets');
    // What a page on another site can make a browser send without a preflight: refused.
    for (const type of [null, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
      for (const path of ['/v1/rulesets', '/v1/rulesets?activate=true', '/v1/rulesets/validate']) {
        const refused = await kit.req('POST', path, { body: asJson, type });
        expect(refused.status, `${path} as ${type}`).toBe(415);
        expect(refused.body.error.code).toBe('unsupported_media_type');
      }
    }
    expect(await kit.req('GET', '/v1/rulesets')).toEqual(before);
  });

  it('refuses an invalid rule set with every error, and changes nothing', async () => {
    const kit = await makeKit();
    await kit.req('POST', '/v1/rulesets?activate=true', { body: DEMO, type: YAML });
    const before = await kit.req('GET', '/v1/rulesets');
    const messages = kit.messages.length;
    for (const activate of ['', '?activate=true']) {
      const r = await kit.req('POST', `/v1/rulesets${activate}`, { body: BROKEN, type: YAML });
      expect(r.status).toBe(422);
      expect(r.body.error.code).toBe('invalid_ruleset');
      expect(r.body.errors.length).toBeGreaterThan(1);
      for (const e of r.body.errors) {
        expect(e).toEqual(expect.objectContaining({ code: expect.any(String), path: expect.any(String) }));
      }
      expect(r.body.errors.some((e: Json) => typeof e.line === 'number')).toBe(true);
    }
    const syntax = await kit.req('POST', '/v1/rulesets', { body: '{"funnel": [', type: 'application/json' });
    expect(syntax.status).toBe(422);
    expect(syntax.body.errors[0]).toMatchObject({ code: 'json_syntax', line: 1 });
    expect(await kit.req('GET', '/v1/rulesets')).toEqual(before);
    expect(kit.messages.length).toBe(messages);
  });

  it('validates without storing', async () => {
    const kit = await makeKit();
    const ok = await kit.req('POST', '/v1/rulesets/validate', { body: DEMO, type: 'text/yaml' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ valid: true, segments: 7, campaigns: 3, checksum: checksumOf(DEMO) });
    const bad = await kit.req('POST', '/v1/rulesets/validate', { body: BROKEN, type: 'application/x-yaml' });
    expect(bad.status).toBe(422);
    expect(bad.body.errors.length).toBeGreaterThan(1);
    expect((await kit.req('GET', '/v1/rulesets')).body.versions).toEqual([]);
  });

  it('answers 404 for versions that do not exist', async () => {
    const kit = await makeKit();
    for (const [method, path] of [
      ['GET', '/v1/rulesets/7'],
      ['POST', '/v1/rulesets/7/activate'],
      ['GET', '/v1/rulesets/active'],
    ] as const) {
      const r = await kit.req(method, path);
      expect(r.status, path).toBe(404);
      expect(r.body.error.code).toBe('ruleset_not_found');
    }
    const word = await kit.req('GET', '/v1/rulesets/latest');
    expect(word.status).toBe(404);
    expect(word.body.error.code).toBe('not_found');
  });

  it('refuses other media types (415), big bodies (413) and a bad activate flag', async () => {
    const kit = await makeKit({ maxRuleSetBytes: 1000 });
    const form = await kit.req('POST', '/v1/rulesets', {
      body: DEMO,
      type: 'application/x-www-form-urlencoded',
    });
    expect(form.status).toBe(415);
    expect(form.body.error.code).toBe('unsupported_media_type');
    expect(form.body.error.message).toContain('application/yaml');
    const big = await kit.req('POST', '/v1/rulesets', { body: DEMO, type: YAML });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('body_too_large');
    const flag = await kit.req('POST', '/v1/rulesets?activate=maybe', { body: 'funnel: [a]', type: YAML });
    expect(flag.status).toBe(400);
    expect(flag.body.error.path).toBe('activate');
    expect((await kit.req('GET', '/v1/rulesets')).body.versions).toEqual([]);
  });

  it('answers 405 with Allow for a known path and another method', async () => {
    const kit = await makeKit();
    const r = await kit.req('DELETE', '/v1/rulesets');
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, POST');
    expect(r.body.error.code).toBe('method_not_allowed');
  });

  it('answers 503 when the store is down, and stores nothing', async () => {
    const kit = await makeKit();
    const before = await kit.rulesets.listRuleSets();
    kit.rulesets.addRuleSet = async () => {
      throw new Error('connection refused');
    };
    const r = await kit.req('POST', '/v1/rulesets', { body: DEMO, type: YAML });
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('store_unavailable');
    expect(await kit.rulesets.listRuleSets()).toEqual(before);
  });

  it('answers what changes between two versions, and between a draft and the active one', async () => {
    const kit = await makeKit();
    await kit.req('POST', '/v1/rulesets?activate=true', { body: DEMO, type: YAML });
    // Another version: a campaign changed (and one creative of it), one segment gone, one added.
    const v2 = DEMO_V2.replace('      - id: x90-trade-in', '      - id: x90-trade-up')
      .replace('Reacts to coupons and promotions', 'Reacts to coupons')
      .replace('\nsellingPoints:', '  - id: pupil\n    when: { tag: "circle:pupil" }\n\nsellingPoints:');
    const up = await kit.req('POST', '/v1/rulesets', { body: v2, type: YAML });
    expect(up.status).toBe(201);

    const d = await kit.req('GET', '/v1/rulesets/diff?from=1&to=2', { token: 'read-secret' });
    expect(d.status).toBe(200);
    expect(d.body.from).toEqual({ version: 1, checksum: checksumOf(DEMO) });
    expect(d.body.to).toEqual({ version: 2, checksum: checksumOf(v2) });
    expect(d.body.changed).toBe(true);
    expect(d.body.segments).toEqual({
      added: ['pupil'],
      removed: [],
      changed: [{ id: 'deal-seeker', fields: ['description'] }],
    });
    const x90 = d.body.campaigns.changed.find((c: Json) => c.id === 'x90-launch');
    expect(x90.fields).toEqual(['creatives', 'priority']);
    expect(x90.creatives).toEqual({ added: ['x90-trade-up'], removed: ['x90-trade-in'], changed: [] });
    expect(d.body.fields).toEqual(['name']);
    expect(d.body.text).toContain('-name: demo');
    expect(d.body.text).toContain('+name: v2 of demo');
    expect(d.body.text).toMatch(/^--- version 1/m);

    // The same version on both sides, and a draft with only comments and key order changed.
    const same = await kit.req('GET', '/v1/rulesets/diff?from=1', { token: 'read-secret' });
    expect(same.body.changed).toBe(false);
    const restyled = `# a comment\n${DEMO}`.replace(
      'funnel: [aware, appeal, act, advocate]\n',
      'funnel:\n  - aware\n  - appeal\n  - act\n  - advocate\n',
    );
    const draft = await kit.req('POST', '/v1/rulesets/diff', {
      body: restyled,
      type: YAML,
      token: 'read-secret',
    });
    expect(draft.status).toBe(200);
    expect(draft.body.changed).toBe(false);
    expect(draft.body.to.version).toBeNull();
    expect(draft.body.text).toContain('+# a comment');

    // Bad input: an invalid draft (every error), an unknown version, a bad one.
    const bad = await kit.req('POST', '/v1/rulesets/diff?against=1', { body: BROKEN, type: YAML });
    expect(bad.status).toBe(422);
    expect(bad.body.errors.length).toBeGreaterThan(0);
    const missing = await kit.req('GET', '/v1/rulesets/diff?from=1&to=9');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'ruleset_not_found', path: 'to' });
    const junk = await kit.req('GET', '/v1/rulesets/diff?from=x');
    expect(junk.body.error).toMatchObject({ code: 'ruleset_not_found', path: 'from' });
    // Writing is not needed to compare; a token without rules:read is refused.
    expect((await kit.req('GET', '/v1/rulesets/diff', { token: 'events-secret' })).status).toBe(403);
  });

  it('offers the roll back the whole log allows, though it lists only the latest activations', async () => {
    const kit = await makeKit();
    for (let n = 1; n <= 30; n++) {
      const body = DEMO.replace('name: demo', `name: demo ${n}`);
      expect((await kit.req('POST', '/v1/rulesets?activate=true', { body, type: YAML })).status).toBe(201);
    }
    for (let i = 0; i < 25; i++) expect((await kit.req('POST', '/v1/rulesets/rollback')).status).toBe(200);
    const list = await kit.req('GET', '/v1/rulesets');
    expect(list.body.active).toBe(5);
    expect(list.body.activations).toHaveLength(50);
    expect(list.body.rollbackTo).toBe(4);
  });

  it('rolls back along the activation log, and refuses what it cannot do', async () => {
    const kit = await makeKit();
    const none = await kit.req('POST', '/v1/rulesets/rollback', { token: 'rules-secret' });
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe('nothing_to_roll_back');
    for (const n of [1, 2, 3]) {
      const body = DEMO.replace('name: demo', `name: demo ${n}`);
      expect((await kit.req('POST', '/v1/rulesets?activate=true', { body, type: YAML })).status).toBe(201);
      kit.clock.now += 1000;
    }
    let list = await kit.req('GET', '/v1/rulesets');
    expect(list.body.rollbackTo).toBe(2);
    expect(list.body.activations.map((a: Json) => a.version)).toEqual([3, 2, 1]);

    const back = await kit.req('POST', '/v1/rulesets/rollback', { token: 'rules-secret' });
    expect(back.status).toBe(200);
    expect(back.body).toEqual({ version: 2, from: 3, activatedAt: new Date(kit.clock.now).toISOString() });
    await kit.synced();
    expect(kit.active().version).toBe(2);
    // Again: further back, not forth.
    const again = await kit.req('POST', '/v1/rulesets/rollback', { token: 'rules-secret' });
    expect(again.body).toMatchObject({ version: 1, from: 2 });
    list = await kit.req('GET', '/v1/rulesets');
    expect(list.body.activations[0]).toMatchObject({ version: 1, by: 'author', rollback: true });
    expect(list.body.rollbackTo).toBeNull();
    expect((await kit.req('POST', '/v1/rulesets/rollback')).body.error.code).toBe('nothing_to_roll_back');
    // A new activation after roll backs: rolling back returns to the version before it.
    expect((await kit.req('POST', '/v1/rulesets/3/activate')).status).toBe(200);
    expect((await kit.req('POST', '/v1/rulesets/rollback')).body).toMatchObject({ version: 1, from: 3 });
    // Needs rules:write.
    expect((await kit.req('POST', '/v1/rulesets/rollback', { token: 'read-secret' })).status).toBe(403);
  });

  it('activates only over the version the caller saw, when asked so', async () => {
    const kit = await makeKit();
    for (const n of [1, 2]) {
      const body = DEMO.replace('name: demo', `name: demo ${n}`);
      expect((await kit.req('POST', '/v1/rulesets', { body, type: YAML })).status).toBe(201);
    }
    expect((await kit.req('POST', '/v1/rulesets/1/activate')).status).toBe(200);
    const stale = await kit.req('POST', '/v1/rulesets/2/activate?ifActive=2');
    expect(stale.status).toBe(409);
    expect(stale.body.error).toMatchObject({ code: 'ruleset_conflict', path: 'ifActive' });
    expect((await kit.rulesets.activeRuleSet())?.version).toBe(1);
    const bad = await kit.req('POST', '/v1/rulesets/2/activate?ifActive=x');
    expect(bad.body.error).toMatchObject({ code: 'invalid_field', path: 'ifActive' });
    expect((await kit.req('POST', '/v1/rulesets/2/activate?ifActive=1')).status).toBe(200);
    expect((await kit.rulesets.activeRuleSet())?.version).toBe(2);
    // The same for a roll back and an upload that activates (that one stays stored).
    const back = await kit.req('POST', '/v1/rulesets/rollback?ifActive=1');
    expect(back.body.error).toMatchObject({ code: 'ruleset_conflict', path: 'ifActive' });
    expect((await kit.req('POST', '/v1/rulesets/rollback?ifActive=2')).body).toMatchObject({
      version: 1,
      from: 2,
    });
    const third = DEMO.replace('name: demo', 'name: demo 3');
    const up = await kit.req('POST', '/v1/rulesets?activate=true&ifActive=2', { body: third, type: YAML });
    expect(up.status).toBe(409);
    expect(up.body.error.message).toContain('Stored as version 3 but not activated');
    expect((await kit.rulesets.activeRuleSet())?.version).toBe(1);
    expect(
      (await kit.req('POST', '/v1/rulesets?activate=true&ifActive=1', { body: third, type: YAML })).body,
    ).toMatchObject({
      version: 4,
      active: true,
    });
    // A bad condition stores nothing.
    const before = (await kit.rulesets.listRuleSets()).length;
    expect(
      (await kit.req('POST', '/v1/rulesets?activate=true&ifActive=x', { body: third, type: YAML })).status,
    ).toBe(400);
    expect((await kit.rulesets.listRuleSets()).length).toBe(before);
  });
});
