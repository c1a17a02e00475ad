import { describe, expect, it } from 'vitest';
import { compileRuleSet } from '../../rules/compile.js';
import type { RuleSet } from '../../rules/types.js';
import { parseDecideBody } from '../decision/request.js';
import { DecisionService } from '../decision/service.js';
import { makeKit, T0 } from './test-kit.js';

const BUYER = {
  id: 'p-buyer',
  tags: ['circle:business'],
  attrs: { price_band: 9000 },
  stages: { vivo: 'appeal' },
};
const PLACEMENTS = [{ id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] }];
const DRAFT = {
  funnel: ['aware', 'appeal', 'act', 'advocate'],
  segments: [{ id: 'everyone', when: { all: [] } }],
  campaigns: [
    {
      id: 'draft-only',
      brand: 'vivo',
      segments: ['everyone'],
      channels: ['display'],
      creatives: [{ id: 'draft-creative', message: 'brand' }],
    },
  ],
};

describe('preview', () => {
  it('shows a stored person only to a token that may read profiles', async () => {
    const kit = await makeKit();
    await kit.store.putProfile(BUYER);
    const r = await kit.req('POST', '/v1/preview', {
      token: 'rules-secret',
      body: { user: { id: 'p-buyer' }, placements: PLACEMENTS },
    });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('forbidden');
    expect(JSON.stringify(r.body)).not.toContain('circle:business');
    const inline = await kit.req('POST', '/v1/preview', {
      token: 'rules-secret',
      body: { profile: BUYER, placements: PLACEMENTS },
    });
    expect(inline.status).toBe(200);
  });

  it('decides for a stored person against the active rule set, with the explanation', async () => {
    const kit = await makeKit();
    await kit.store.putProfile(BUYER);
    await kit.store.linkAliases('p-buyer', { idfa: 'A-9' });
    for (const user of [{ id: 'p-buyer' }, { ids: { idfa: 'A-9' } }]) {
      const r = await kit.req('POST', '/v1/preview', {
        token: 'read-secret',
        body: { user, placements: PLACEMENTS },
      });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        ruleset: 1,
        user: 'p-buyer',
        known: true,
        at: '2026-11-24T04:00:00.000Z',
      });
      expect(r.body.profile).toMatchObject({ id: 'p-buyer', tags: ['circle:business'] });
      expect(r.body.decisions[0]).toMatchObject({ placement: 'home-banner', campaign: 'x90-launch' });
      expect(r.body.explain.segments).toContain('highend-business');
      expect(r.body.explain.campaigns.length).toBeGreaterThan(0);
    }
    const unknown = await kit.req('POST', '/v1/preview', {
      body: { user: { id: 'p-new' }, placements: PLACEMENTS },
    });
    expect(unknown.body).toMatchObject({ user: 'p-new', known: false, decisions: [{ campaign: null }] });
  });

  it('takes the moment as ISO 8601 or epoch milliseconds, as events do, and refuses anything else', async () => {
    const kit = await makeKit();
    const iso = '2026-11-20T10:00:00.000Z';
    for (const at of [iso, '2026-11-20T18:00:00+08:00', Date.parse(iso)]) {
      const r = await kit.req('POST', '/v1/preview', {
        body: { profile: BUYER, placements: PLACEMENTS, at },
      });
      expect(r.status).toBe(200);
      expect(r.body.at).toBe(iso);
    }
    for (const at of ['yesterday', -1, 1.5, true]) {
      const r = await kit.req('POST', '/v1/preview', {
        body: { profile: BUYER, placements: PLACEMENTS, at },
      });
      expect(r.status).toBe(400);
      expect(r.body.error.path).toBe('at');
    }
  });

  it('decides against a draft (text or object) or a stored version, never storing the draft', async () => {
    const kit = await makeKit();
    const asText = await kit.req('POST', '/v1/preview', {
      body: { profile: BUYER, placements: PLACEMENTS, ruleset: JSON.stringify(DRAFT) },
    });
    expect(asText.status).toBe(200);
    expect(asText.body.ruleset).toBe('draft');
    expect(asText.body.decisions[0]).toMatchObject({ campaign: 'draft-only', creative: 'draft-creative' });
    const asObject = await kit.req('POST', '/v1/preview', {
      body: { profile: BUYER, placements: PLACEMENTS, ruleset: DRAFT },
    });
    expect(asObject.body.decisions).toEqual(asText.body.decisions);
    const active = await kit.req('POST', '/v1/preview', { body: { profile: BUYER, placements: PLACEMENTS } });
    expect(active.body.decisions[0].campaign).toBe('x90-launch');
    expect((await kit.rulesets.listRuleSets()).length).toBe(0);

    const up = await kit.req('POST', '/v1/rulesets', {
      body: JSON.stringify(DRAFT),
      type: 'application/json',
    });
    const stored = await kit.req('POST', '/v1/preview', {
      body: { profile: BUYER, placements: PLACEMENTS, ruleset: up.body.version },
    });
    expect(stored.body).toMatchObject({ ruleset: up.body.version, decisions: [{ campaign: 'draft-only' }] });
    const missing = await kit.req('POST', '/v1/preview', {
      body: { profile: BUYER, placements: PLACEMENTS, ruleset: 99 },
    });
    expect([missing.status, missing.body.error.code]).toEqual([404, 'ruleset_not_found']);
  });

  it('puts everyone on the same side of a hold-out as the data plane does (stored, unknown, alias-only)', async () => {
    const kit = await makeKit();
    const halfHeld = {
      ...DRAFT,
      campaigns: [{ ...DRAFT.campaigns[0]!, holdout: 0.5 }],
    };
    const service = new DecisionService(
      kit.store,
      { version: 1, checksum: 'x', compiled: compileRuleSet(halfHeld as RuleSet), activatedAt: 0 },
      { deadlineMs: 60_000, now: () => T0 },
    );
    const users: Array<{ id: string } | { ids: Record<string, string> }> = [];
    for (let i = 0; i < 20; i++) {
      await kit.store.putProfile({ id: `stored-${i}`, tags: [] });
      await kit.store.linkAliases(`stored-${i}`, { email: `s${i}@example.com` });
      users.push(
        { id: `stored-${i}` },
        { id: `unknown-${i}` },
        { ids: { idfa: `anon-${i}`, gaid: `g-${i}` } },
      );
      users.push({ ids: { email: `s${i}@example.com` } });
    }
    const sides: string[] = [];
    for (const user of users) {
      const preview = await kit.req('POST', '/v1/preview', {
        body: { user, placements: PLACEMENTS, ruleset: halfHeld },
      });
      expect(preview.status).toBe(200);
      const input = parseDecideBody(Buffer.from(JSON.stringify({ user, placements: PLACEMENTS })), 'json');
      const outcome = await service.decide(input);
      expect(preview.body.user).toBe(outcome.output.user);
      expect(preview.body.decisions).toEqual(outcome.output.decisions);
      expect(preview.body.ghosts).toEqual(outcome.ghosts ?? []);
      sides.push(outcome.ghosts === undefined ? 'treatment' : 'control');
    }
    // Both sides are drawn: the comparison is not between two answers that never vary.
    expect(new Set(sides).size).toBe(2);
  });

  it('decides at a given moment: outside the flight nothing fills', async () => {
    const kit = await makeKit();
    const r = await kit.req('POST', '/v1/preview', {
      body: { profile: BUYER, placements: PLACEMENTS, at: '2028-01-15T00:00:00Z' },
    });
    expect(r.body.at).toBe('2028-01-15T00:00:00.000Z');
    expect(r.body.decisions[0].campaign).not.toBe('x90-launch');
  });

  it('refuses an invalid draft with every error (422) and bad requests with a path (400)', async () => {
    const kit = await makeKit();
    const bad = {
      ...DRAFT,
      funnel: ['aware', 'aware'],
      campaigns: [{ ...DRAFT.campaigns[0], segments: ['nope'] }],
    };
    const r = await kit.req('POST', '/v1/preview', {
      body: { profile: BUYER, placements: PLACEMENTS, ruleset: bad },
    });
    expect(r.status).toBe(422);
    expect(r.body.errors.length).toBeGreaterThan(1);
    const text = await kit.req('POST', '/v1/preview', {
      body: { profile: BUYER, placements: PLACEMENTS, ruleset: 'funnel: [a\n' },
    });
    expect(text.status).toBe(422);
    expect(text.body.errors[0].line).toBeGreaterThan(0);
    const cases: Array<[unknown, string, string]> = [
      [{ placements: PLACEMENTS }, 'missing_field', 'user'],
      [{ user: { id: 'p-1' }, profile: BUYER, placements: PLACEMENTS }, 'invalid_field', 'profile'],
      [{ profile: { tags: [] }, placements: PLACEMENTS }, 'missing_field', 'profile.id'],
      [
        { profile: { ...BUYER, activeHours: [25] }, placements: PLACEMENTS },
        'invalid_field',
        'profile.activeHours[0]',
      ],
      [
        { user: { id: 'p-1' }, placements: [{ id: 'a', channels: ['display', 'fax'] }] },
        'invalid_field',
        'placements[0].channels[1]',
      ],
      [{ user: { id: 'p-1' }, placements: [{ id: 'a' }, { id: 'a' }] }, 'invalid_field', 'placements[1].id'],
      [{ user: { id: 'p-1' }, placements: PLACEMENTS, at: 'now' }, 'invalid_field', 'at'],
      [{ user: { id: 'p-1' }, placements: PLACEMENTS, ruleset: 0 }, 'invalid_field', 'ruleset'],
    ];
    for (const [body, code, path] of cases) {
      const res = await kit.req('POST', '/v1/preview', { body });
      expect(
        [res.status, res.body.error.code, res.body.error.path],
        JSON.stringify(body).slice(0, 90),
      ).toEqual([400, code, path]);
    }
  });
});
