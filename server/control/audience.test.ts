import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RuleSet } from '../../rules/types.js';
import { DEMO_FILE, type Kit, makeKit } from './test-kit.js';

const DEMO = parse(readFileSync(DEMO_FILE, 'utf8')) as RuleSet;
const BANNER = [{ id: 'home-banner', channels: ['display'] }];

/** 30 high-end business buyers among 100 stored people. */
async function people(kit: Kit): Promise<void> {
  const all = [];
  for (let i = 0; i < 100; i++)
    all.push(
      i < 30
        ? { id: `b-${i}`, tags: ['circle:business'], attrs: { price_band: 6000 }, stages: { vivo: 'appeal' } }
        : { id: `o-${i}`, tags: ['circle:other'] },
    );
  await kit.store.putProfiles(all);
}

describe('POST /v1/audience', () => {
  it('counts a segment, a draft condition and every segment exactly on a small store', async () => {
    const kit = await makeKit();
    await people(kit);
    const bySegment = await kit.req('POST', '/v1/audience', { body: { segment: 'highend-business' } });
    expect(bySegment.status).toBe(200);
    expect(bySegment.body).toMatchObject({
      ruleset: 1,
      exact: true,
      partial: false,
      people: 30,
      low: 30,
      high: 30,
      sample: { people: 100, draws: 100, population: 100, populationOf: 'people' },
    });
    // A draft condition may refer to the active rule set's segments.
    const draft = await kit.req('POST', '/v1/audience', {
      body: { when: { all: [{ segment: 'highend-business' }, { attr: 'price_band', gte: 5000 }] } },
    });
    expect(draft.body).toMatchObject({ exact: true, people: 30 });
    const others = await kit.req('POST', '/v1/audience', { body: { when: { tag: 'circle:other' } } });
    expect(others.body.people).toBe(70);
    const all = await kit.req('POST', '/v1/audience', { body: { segments: 'all' } });
    expect(all.body.segments).toHaveLength(DEMO.segments.length);
    expect(all.body.segments.find((s: { segment: string }) => s.segment === 'highend-business')).toEqual({
      segment: 'highend-business',
      people: 30,
      low: 30,
      high: 30,
    });
  });

  it('estimates from a sample with a 95% interval that covers the truth', async () => {
    const kit = await makeKit();
    await people(kit);
    let covered = 0;
    const runs = 40;
    for (let i = 0; i < runs; i++) {
      const r = await kit.req('POST', '/v1/audience', { body: { segment: 'highend-business', sample: 25 } });
      expect(r.body).toMatchObject({ exact: false, sample: { people: 25, draws: 25, population: 100 } });
      expect(r.body.low).toBeLessThanOrEqual(r.body.people);
      expect(r.body.high).toBeGreaterThanOrEqual(r.body.people);
      if (r.body.low <= 30 && r.body.high >= 30) covered++;
    }
    // 95% nominal (conservative here: drawn without replacement); 32 of 40 fails by chance < 1e-3.
    expect(covered).toBeGreaterThanOrEqual(32);
  });

  it('refuses what it cannot count, with a code and a path', async () => {
    const kit = await makeKit();
    const post = async (body: unknown) => {
      const r = await kit.req('POST', '/v1/audience', { body });
      return [r.status, r.body.error?.code, r.body.error?.path ?? r.body.errors?.[0]?.path];
    };
    expect(await post({})).toEqual([400, 'missing_field', 'segment']);
    expect(await post({ segment: 'student', segments: 'all' })).toEqual([400, 'invalid_field', 'when']);
    expect(await post({ segment: 'no-such' })).toEqual([400, 'invalid_field', 'segment']);
    expect(await post({ segment: 'student', sample: 0 })).toEqual([400, 'invalid_field', 'sample']);
    expect(await post({ segment: 'student', sample: 100_001 })).toEqual([400, 'invalid_field', 'sample']);
    expect(await post({ segment: 'student', timeoutMs: 10 })).toEqual([400, 'invalid_field', 'timeoutMs']);
    const bad = await kit.req('POST', '/v1/audience', {
      body: { when: { all: [{ tag: 'a' }, { attr: 'age', between: [30, 20] }, { segment: 'nope' }] } },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe('invalid_ruleset');
    const paths = bad.body.errors.map((e: { path: string }) => e.path);
    expect(paths.length).toBeGreaterThanOrEqual(2);
    for (const p of paths) expect(p).toMatch(/^when\./);
  });
});

describe('POST /v1/rulesets/what-if', () => {
  const withoutLaunch = { ...DEMO, campaigns: DEMO.campaigns.filter((c) => c.id !== 'x90-launch') };

  it('compares the draft with the active rule set on the stored people', async () => {
    const kit = await makeKit();
    await people(kit);
    const r = await kit.req('POST', '/v1/rulesets/what-if', {
      body: { ruleset: withoutLaunch, placements: BANNER, at: '2026-11-24T04:00:00Z' },
    });
    expect(r.status).toBe(200);
    const launch = r.body.campaigns.find((c: { campaign: string }) => c.campaign === 'x90-launch');
    // The business buyers got the launch (or, held out, nothing): without it they lose it.
    expect(launch.after).toBe(0);
    expect(launch.lost).toBe(launch.before);
    expect(launch.before).toBeGreaterThan(20);
    expect(r.body).toMatchObject({ active: 1, exact: true, decisions: 100 });
    expect(r.body.changed).toBe(launch.before);
    expect(r.body.fill.after).toBeLessThan(r.body.fill.before);
    const top = r.body.changes[0];
    expect(top).toMatchObject({ placement: 'home-banner', from: { campaign: 'x90-launch' }, to: null });
    expect(top.examples).toHaveLength(3);
    for (const id of top.examples) expect(id).toMatch(/^b-/);
    // A token that may not read profiles sees no person ids.
    const author = await kit.req('POST', '/v1/rulesets/what-if', {
      token: 'rules-secret',
      body: { ruleset: withoutLaunch, placements: BANNER, at: '2026-11-24T04:00:00Z' },
    });
    expect(author.body.changes[0].examples).toBeUndefined();
    expect(author.body.changed).toBe(r.body.changed);
    // The same rule set changes nothing.
    const same = await kit.req('POST', '/v1/rulesets/what-if', {
      body: { ruleset: DEMO, placements: BANNER, at: '2026-11-24T04:00:00Z' },
    });
    expect([same.body.changed, same.body.changes]).toEqual([0, []]);
  });

  it('refuses an invalid draft with every error, and bad sizes with a path', async () => {
    const kit = await makeKit();
    const invalid = { ...DEMO, campaigns: [{ ...DEMO.campaigns[0]!, holdout: 0.9, segments: ['nope'] }] };
    const r = await kit.req('POST', '/v1/rulesets/what-if', {
      body: { ruleset: invalid, placements: BANNER },
    });
    expect(r.status).toBe(422);
    expect(r.body.errors.map((e: { path: string }) => e.path)).toEqual(
      expect.arrayContaining(['campaigns[0].holdout', 'campaigns[0].segments[0]']),
    );
    const big = await kit.req('POST', '/v1/rulesets/what-if', {
      body: { ruleset: DEMO, placements: BANNER, sample: 10_001 },
    });
    expect([big.status, big.body.error.path]).toEqual([400, 'sample']);
    const dup = await kit.req('POST', '/v1/rulesets/what-if', {
      body: { ruleset: DEMO, placements: [BANNER[0], BANNER[0]] },
    });
    expect(dup.status).toBe(400);
  });
});
