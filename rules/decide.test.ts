import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compileRuleSet, hashString, mixHash } from './compile.js';
import { decide } from './decide.js';
import type { Campaign, DecisionRequest, FrequencyCounters, Profile, RuleSet } from './types.js';
import { validateRuleSet } from './validate.js';

interface DecideCase {
  name: string;
  person: Profile;
  placements: DecisionRequest['placements'];
  now: string;
  counters?: FrequencyCounters;
  campaignPatch?: Partial<Campaign>;
  extraCampaigns?: Campaign[];
  contextTags?: string[];
  expect: Record<string, unknown>[];
  /** campaign id -> expected drop reason, or null for a campaign that is chosen */
  reasons?: Record<string, string | null>;
  /** Top-level fields of the rule set to set for this case. */
  ruleSetPatch?: Partial<RuleSet>;
}
const table = JSON.parse(readFileSync(new URL('./test/decide-cases.json', import.meta.url), 'utf8')) as {
  base: RuleSet;
  cases: DecideCase[];
};

function ruleSetFor(c: DecideCase): RuleSet {
  const rs = structuredClone(table.base);
  Object.assign(rs, c.ruleSetPatch ?? {});
  rs.campaigns[0] = { ...rs.campaigns[0]!, ...(c.campaignPatch ?? {}) };
  rs.campaigns.push(...(c.extraCampaigns ?? []));
  const v = validateRuleSet(rs);
  if (!v.ok) throw new Error(`case "${c.name}" has an invalid rule set: ${JSON.stringify(v.errors)}`);
  return v.value;
}

describe('decide: table of cases', () => {
  it.each(table.cases)('$name', (c) => {
    const compiled = compileRuleSet(ruleSetFor(c));
    const request: DecisionRequest = { placements: c.placements, explain: true };
    if (c.contextTags !== undefined) request.contextTags = c.contextTags;
    const result = decide(compiled, c.person, c.counters ?? {}, request, Date.parse(c.now));
    expect(result.decisions).toHaveLength(c.placements.length);
    for (const [i, d] of result.decisions.entries()) expect(d).toMatchObject(c.expect[i] ?? {});
    for (const [campaign, reason] of Object.entries(c.reasons ?? {})) {
      const e = result.explain?.campaigns.find((x) => x.campaign === campaign);
      expect(e, `explain entry for ${campaign}`).toBeDefined();
      if (reason === null) expect(e?.status).toBe('chosen');
      else expect(e?.reason).toBe(reason);
    }
    // Same inputs, same answer.
    const again = decide(compiled, c.person, c.counters ?? {}, request, Date.parse(c.now));
    expect(again).toEqual(result);
  });
});

describe('decide: hold-out', () => {
  const base = structuredClone(table.base);
  base.campaigns[0]!.holdout = 0.2;
  const compiled = compileRuleSet(base);
  const now = Date.parse('2026-11-24T04:00:00Z');
  const request: DecisionRequest = { placements: [{ id: 'banner', channels: ['display'] }] };
  const person = (id: string): Profile => ({
    id,
    tags: ['circle:business'],
    attrs: { price_band: 5000 },
    stages: { vivo: 'appeal' },
  });

  it('keeps about the hold-out share in control, by a stable hash of person and campaign', () => {
    let control = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const r = decide(compiled, person(`p-${i}`), {}, request, now);
      if (r.ghosts === undefined) expect(r.decisions[0]!.campaign).toBe('phone');
      else {
        control++;
        expect(r.ghosts).toEqual([
          { placement: 'banner', campaign: 'phone', creative: expect.any(String), channel: 'display' },
        ]);
        // Nothing else fits: the placement goes unfilled rather than to the held-out campaign.
        expect(r.decisions[0]).toEqual({ placement: 'banner', campaign: null });
      }
    }
    expect(control / n).toBeGreaterThan(0.185);
    expect(control / n).toBeLessThan(0.215);
  });

  it('puts the same person in the same arm every time, across compilations', () => {
    const other = compileRuleSet(structuredClone(base));
    for (let i = 0; i < 200; i++) {
      const a = decide(compiled, person(`p-${i}`), {}, request, now);
      const b = decide(other, person(`p-${i}`), {}, request, now + 86_400_000);
      expect(a.ghosts === undefined).toBe(b.ghosts === undefined);
    }
  });

  it('draws no hold-out for a request about nobody in particular (holdouts: false)', () => {
    for (let i = 0; i < 500; i++) {
      const r = decide(compiled, person(`p-${i}`), {}, { ...request, holdouts: false }, now);
      expect(r.decisions[0]).toMatchObject({ campaign: 'phone', variant: 'treatment' });
      expect(r.ghosts).toBeUndefined();
    }
  });

  const heldOut = (campaign: string, share: number) =>
    Array.from({ length: 100 }, (_, i) => `p-${i}`).find(
      (x) => mixHash(hashString(x), hashString(campaign) ^ 0x5bd1e995) / 2 ** 32 < share,
    )!;

  it('gives a held-out person the next best campaign, and reports the hold-out in explain', () => {
    const rs = structuredClone(base);
    rs.campaigns.push({
      ...structuredClone(rs.campaigns[0]!),
      id: 'runner-up',
      priority: -1,
      holdout: 0,
    });
    const r = decide(
      compileRuleSet(rs),
      person(heldOut('phone', 0.2)),
      {},
      { ...request, explain: true },
      now,
    );
    expect(r.decisions[0]).toMatchObject({ campaign: 'runner-up', variant: 'treatment' });
    expect(typeof (r.decisions[0] as { creative: unknown }).creative).toBe('string');
    expect(r.ghosts).toEqual([
      { placement: 'banner', campaign: 'phone', creative: expect.any(String), channel: 'display' },
    ]);
    expect(r.explain?.campaigns.find((e) => e.campaign === 'phone')).toMatchObject({
      status: 'dropped',
      reason: 'holdout',
      placement: 'banner',
    });
    expect(r.explain?.campaigns.find((e) => e.campaign === 'runner-up')).toMatchObject({ status: 'chosen' });
  });

  it('sets a held-out campaign aside for every placement of the request', () => {
    const two: DecisionRequest = {
      placements: [
        { id: 'banner', channels: ['display'] },
        { id: 'second', channels: ['display'] },
      ],
    };
    const r = decide(compiled, person(heldOut('phone', 0.2)), {}, two, now);
    expect(r.decisions.map((d) => d.campaign)).toEqual([null, null]);
    expect(r.ghosts).toHaveLength(1);
  });
});

describe('decide: explain', () => {
  it('lists matched segments and the ranking of competitors', () => {
    const rs = structuredClone(table.base);
    rs.campaigns.push({
      id: 'rival',
      brand: 'oppo',
      segments: ['gamer'],
      channels: ['display'],
      priority: 10,
      creatives: [{ id: 'rival-brand', message: 'brand' }],
    });
    const compiled = compileRuleSet(rs);
    const p: Profile = {
      id: 'p-x',
      tags: ['circle:business', 'circle:mobile-gamer'],
      attrs: { price_band: 9000 },
      stages: { vivo: 'appeal' },
    };
    const r = decide(compiled, p, {}, { placements: [{ id: 'banner' }], explain: true }, Date.now());
    expect(r.explain?.segments).toEqual(['gamer', 'business']);
    const [phone, rival] = r.explain!.campaigns;
    expect(phone).toMatchObject({ campaign: 'phone', status: 'chosen', placement: 'banner' });
    expect(rival).toMatchObject({ campaign: 'rival', status: 'dropped', reason: 'outranked' });
    expect(phone?.rank?.score).toBeGreaterThan(rival?.rank?.score ?? Number.POSITIVE_INFINITY);
  });

  it('leaves explain out unless asked', () => {
    const compiled = compileRuleSet(table.base);
    const r = decide(compiled, { id: 'x', tags: [] }, {}, { placements: [{ id: 'a' }] }, Date.now());
    expect(r.explain).toBeUndefined();
    expect(r.decisions).toEqual([{ placement: 'a', campaign: null }]);
  });
});

describe('decide: the demo rule set', () => {
  const demo = validateRuleSet(
    parse(readFileSync(new URL('./examples/demo.yaml', import.meta.url), 'utf8'), { schema: 'core' }),
  );
  if (!demo.ok) throw new Error(JSON.stringify(demo.errors));
  const compiled = compileRuleSet(demo.value);
  const now = Date.parse('2026-11-24T04:00:00Z');

  it('sends a business buyer at appeal the X90 camera story on the banner and a push at their hour', () => {
    const p: Profile = {
      id: 'p-1001',
      tags: ['circle:business', 'category:phone'],
      attrs: { price_band: 6000, city_tier: 1 },
      stages: { vivo: 'appeal' },
      channels: { display: 0.3, app_push: 0.8 },
      activeHours: [20, 21],
      timezone: 'Asia/Shanghai',
    };
    const r = decide(
      compiled,
      p,
      {},
      {
        placements: [
          { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] },
          { id: 'daily-push', channels: ['app_push', 'sms', 'email'] },
        ],
      },
      now,
    );
    expect(r.decisions[0]).toMatchObject({
      campaign: 'x90-launch',
      creative: 'x90-camera-hero',
      channel: 'display',
    });
    // The X90 campaign is used; the push slot has nothing else for this person.
    expect(r.decisions[1]).toEqual({ placement: 'daily-push', campaign: null });
  });

  it("gives a JoyMall buyer the singles'-day coupon only inside its flight", () => {
    const p: Profile = { id: 'p-7', tags: ['circle:deal-seeker'], stages: { joymall: 'act' } };
    const req: DecisionRequest = { placements: [{ id: 'b', channels: ['display'] }], explain: true };
    const during = decide(compiled, p, {}, req, Date.parse('2026-11-10T04:00:00Z'));
    expect(during.decisions[0]).toMatchObject({ campaign: 'joymall-1111', creative: 'joymall-1111-coupon' });
    const after = decide(compiled, p, {}, req, now);
    expect(after.decisions[0]).toMatchObject({ campaign: null });
    expect(after.explain?.campaigns.find((c) => c.campaign === 'joymall-1111')?.reason).toBe('flight');
  });
});
