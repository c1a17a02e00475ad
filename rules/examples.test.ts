import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type CompiledRuleSet, compileRuleSet } from './compile.js';
import { decide } from './decide.js';
import { parseRuleSetText } from './parse.js';
import type { DecisionResult, FrequencyCounters, Placement, Profile } from './types.js';

function load(file: string): CompiledRuleSet {
  const v = parseRuleSetText(readFileSync(new URL(`./examples/${file}`, import.meta.url), 'utf8'));
  if (!v.ok) throw new Error(`${file}: ${JSON.stringify(v.errors)}`);
  return compileRuleSet(v.value);
}

function run(
  rs: CompiledRuleSet,
  person: Profile,
  placements: Placement[],
  now: string,
  counters: FrequencyCounters = {},
): DecisionResult {
  return decide(rs, person, counters, { placements, explain: true }, Date.parse(now));
}

function reason(r: DecisionResult, campaign: string): string | undefined {
  const e = r.explain?.campaigns.find((c) => c.campaign === campaign);
  return e?.status === 'chosen' ? 'chosen' : e?.reason;
}

const banner: Placement = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };
const push: Placement = { id: 'daily-push', channels: ['app_push', 'sms'] };

describe('examples/phone-launch.yaml', () => {
  const rs = load('phone-launch.yaml');
  const now = '2026-11-23T04:00:00Z'; // noon in Shanghai
  const business = (over: Partial<Profile> = {}): Profile => ({
    id: 'p-business-2', // outside the campaign's hold-out
    tags: ['circle:business', 'category:phone'],
    attrs: { price_band: 6000 },
    stages: { orion: 'appeal' },
    ...over,
  });
  const gamer: Profile = { id: 'p-gamer-1', tags: ['circle:mobile-gamer'], stages: { orion: 'appeal' } };

  it('shows a business buyer the camera and foldable story', () => {
    const r = run(rs, business(), [banner], now);
    expect(r.decisions[0]).toEqual({
      placement: 'home-banner',
      campaign: 'fold5-launch',
      creative: 'fold5-camera-fold',
      brand: 'orion',
      segment: 'highend-business',
      stage: 'appeal',
      sellingPoints: ['camera', 'foldable'],
      message: 'selling-point',
      channel: 'display',
      sendAt: '2026-11-23T04:00:00.000Z',
      variant: 'treatment',
    });
  });

  it('shows a mobile gamer the refresh rate and the chip', () => {
    const r = run(rs, gamer, [banner], now);
    expect(r.decisions[0]).toMatchObject({
      campaign: 'fold5-launch',
      creative: 'fold5-gaming',
      segment: 'mobile-gamer',
      sellingPoints: ['high-refresh-rate', 'chip'],
      variant: 'treatment',
    });
  });

  it("speaks to a person in both crowds through the campaign's first segment", () => {
    const r = run(
      rs,
      business({ id: 'p-both-1', tags: ['circle:business', 'circle:mobile-gamer'] }),
      [banner],
      now,
    );
    expect(r.decisions[0]).toMatchObject({ segment: 'highend-business', creative: 'fold5-camera-fold' });
  });

  it('reaches a big predicted spender with no circle through the CLV segment', () => {
    const r = run(
      rs,
      { id: 'p-clv-1', tags: [], clv: { orion: 4000 }, stages: { orion: 'appeal' } },
      [banner],
      now,
    );
    expect(r.decisions[0]).toMatchObject({
      segment: 'orion-high-clv',
      creative: 'fold5-camera-fold',
      sellingPoints: ['camera', 'foldable'],
    });
  });

  it('tells the brand story at aware and offers the trade-in at act', () => {
    const aware = run(rs, business({ stages: { orion: 'aware' } }), [banner], now);
    expect(aware.decisions[0]).toMatchObject({
      creative: 'fold5-brand-film',
      message: 'brand',
      sellingPoints: [],
    });
    const act = run(rs, business({ stages: { orion: 'act' } }), [banner], now);
    expect(act.decisions[0]).toMatchObject({
      creative: 'fold5-trade-in',
      message: 'promotion',
      sellingPoints: ['camera', 'chip'],
    });
  });

  it('offers owners accessories instead of the launch', () => {
    const r = run(rs, business({ stages: { orion: 'advocate' } }), [banner], now);
    expect(r.decisions[0]).toMatchObject({ campaign: 'fold5-accessories', creative: 'fold5-case-and-pen' });
    expect(reason(r, 'fold5-launch')).toBe('stage');
  });

  it('leaves out churned business buyers and people below the price band', () => {
    const churned = run(rs, business({ tags: ['circle:business', 'status:churned'] }), [banner], now);
    expect(churned.decisions[0]).toEqual({ placement: 'home-banner', campaign: null });
    const budget = run(rs, business({ attrs: { price_band: 2000 } }), [banner], now);
    expect(budget.decisions[0]).toEqual({ placement: 'home-banner', campaign: null });
  });

  it('holds a push sent at night until quiet hours end', () => {
    const r = run(rs, business(), [push], '2026-11-23T15:30:00Z'); // 23:30 in Shanghai
    expect(r.decisions[0]).toMatchObject({
      campaign: 'fold5-launch',
      channel: 'app_push',
      sendAt: '2026-11-24T00:00:00.000Z', // 08:00 in Shanghai
    });
  });

  it('stops after three impressions in a day, across devices', () => {
    const t = Date.parse(now);
    const counters = { 'fold5-launch': [t - 3_600_000, t - 7_200_000, t - 10_800_000] };
    const r = run(rs, business(), [banner], now, counters);
    expect(r.decisions[0]).toEqual({ placement: 'home-banner', campaign: null });
    expect(reason(r, 'fold5-launch')).toBe('frequency_cap');
  });
});

describe('examples/learning-tablet.yaml', () => {
  const rs = load('learning-tablet.yaml');
  const now = '2026-08-20T02:00:00Z'; // 10:00 in Shanghai, in the back-to-school flight
  const parent = (over: Partial<Profile> = {}): Profile => ({
    id: 'p-parent-1',
    tags: ['circle:k12-parent'],
    attrs: { city_tier: 1 },
    ...over,
  });
  const student: Profile = { id: 'p-student-1', tags: ['circle:student'], attrs: { age: 16 } };

  it('shows a parent eye care first, at the default stage', () => {
    const r = run(rs, parent(), [banner], now);
    expect(r.decisions[0]).toMatchObject({
      campaign: 'inkleaf-back-to-school',
      creative: 'inkleaf-eye-care',
      segment: 'k12-parent',
      stage: 'aware',
      sellingPoints: ['eye-care'],
      variant: 'treatment',
    });
  });

  it('shows a student the curriculum with the stylus', () => {
    const r = run(rs, student, [{ id: 'feed', channels: ['display'] }], now);
    expect(r.decisions[0]).toMatchObject({
      creative: 'inkleaf-study-kit',
      segment: 'student',
      sellingPoints: ['curriculum', 'stylus'],
      variant: 'treatment',
    });
  });

  it('writes to a parent who prefers email at the hour they read it', () => {
    const p = parent({
      channels: { email: 0.9, display: 0.2 },
      activeHours: [20],
      timezone: 'Asia/Shanghai',
    });
    const r = run(rs, p, [{ id: 'inbox-or-banner', channels: ['display', 'email'] }], now);
    expect(r.decisions[0]).toMatchObject({
      creative: 'inkleaf-eye-care',
      channel: 'email',
      sendAt: '2026-08-20T12:00:00.000Z', // 20:00 in Shanghai
    });
  });

  it('sends the coupon to a parent at act by push only', () => {
    const p = parent({ stages: { inkleaf: 'act' } });
    const r = run(rs, p, [banner, push], now);
    expect(r.decisions[0]).toEqual({ placement: 'home-banner', campaign: null });
    expect(r.decisions[1]).toMatchObject({ creative: 'inkleaf-school-coupon', message: 'promotion' });
  });

  it('leaves out parents outside tier 1-2 cities, older students, and the time after the flight', () => {
    expect(run(rs, parent({ attrs: { city_tier: 3 } }), [banner], now).decisions[0]?.campaign).toBeNull();
    expect(run(rs, { ...student, attrs: { age: 25 } }, [banner], now).decisions[0]?.campaign).toBeNull();
    const late = run(rs, parent(), [banner], '2026-09-16T00:00:00Z'); // 08:00 on 16 September in Shanghai
    expect(late.decisions[0]?.campaign).toBeNull();
    expect(reason(late, 'inkleaf-back-to-school')).toBe('flight');
  });
});

describe('examples/singles-day.yaml', () => {
  const rs = load('singles-day.yaml');
  const during = '2026-11-10T04:00:00Z';
  const buyer = (over: Partial<Profile> = {}): Profile => ({
    id: 'p-buyer-2', // outside the coupon's hold-out
    tags: ['circle:deal-seeker'],
    stages: { 'lotus-mall': 'act' },
    ...over,
  });

  it('gives an act-stage buyer the coupon inside the flight', () => {
    const r = run(rs, buyer(), [banner], during);
    expect(r.decisions[0]).toMatchObject({
      campaign: 'lotus-1111-coupon',
      creative: 'lotus-1111-coupon',
      segment: 'mall-buyer',
      stage: 'act',
      message: 'promotion',
      sellingPoints: ['discount'],
      variant: 'treatment',
    });
  });

  it('keeps to the flight in Shanghai time at both ends', () => {
    const at = (now: string) => run(rs, buyer(), [banner], now).decisions[0]?.campaign;
    expect(at('2026-10-20T11:59:00Z')).toBe('lotus-brand'); // 19:59 on 20 October in Shanghai
    expect(at('2026-10-20T12:00:00Z')).toBe('lotus-1111-coupon'); // 20:00
    expect(at('2026-11-11T15:59:00Z')).toBe('lotus-1111-coupon'); // 23:59 on 11 November
    expect(at('2026-11-11T16:00:00Z')).toBe('lotus-brand'); // midnight: the flight is over
  });

  it('tells the brand story after the flight, and says why there is no coupon', () => {
    const r = run(rs, buyer(), [banner], '2026-11-12T04:00:00Z');
    expect(r.decisions[0]).toMatchObject({
      campaign: 'lotus-brand',
      creative: 'lotus-brand-story',
      message: 'brand',
    });
    expect(reason(r, 'lotus-1111-coupon')).toBe('flight');
  });

  it('gives no coupon before the act stage', () => {
    const r = run(rs, buyer({ stages: { 'lotus-mall': 'appeal' } }), [banner], during);
    expect(r.decisions[0]).toMatchObject({ campaign: 'lotus-brand' });
    expect(reason(r, 'lotus-1111-coupon')).toBe('no_segment');
  });

  it('gives loyal big spenders early access instead of the coupon', () => {
    const vip = buyer({ id: 'p-vip-1', stages: { 'lotus-mall': 'advocate' }, clv: { 'lotus-mall': 8000 } });
    const r = run(rs, vip, [banner], during);
    expect(r.decisions[0]).toMatchObject({
      campaign: 'lotus-1111-vip',
      creative: 'lotus-1111-early-access',
      sellingPoints: ['free-shipping', 'early-access'],
    });
    expect(reason(r, 'lotus-1111-coupon')).toBe('stage');
  });

  it('pushes the coupon in the evening of 11.11 but not during the last night', () => {
    const evening = run(rs, buyer(), [push], '2026-11-11T12:00:00Z'); // 20:00 in Shanghai
    expect(evening.decisions[0]).toMatchObject({
      campaign: 'lotus-1111-coupon',
      creative: 'lotus-1111-coupon',
      channel: 'app_push',
      sendAt: '2026-11-11T12:00:00.000Z',
    });
    // 23:30: quiet hours last until after the flight ends, so no push can be sent in time.
    const night = run(rs, buyer(), [push], '2026-11-11T15:30:00Z');
    expect(night.decisions[0]).toEqual({ placement: 'daily-push', campaign: null });
    expect(reason(night, 'lotus-1111-coupon')).toBe('flight');
  });

  it('keeps about a tenth of the buyers as a control group, who see the next best instead', () => {
    let control = 0;
    for (let i = 0; i < 2000; i++) {
      const r = run(rs, buyer({ id: `p-${i}` }), [banner], during);
      const ghost = r.ghosts?.find((g) => g.campaign === 'lotus-1111-coupon');
      if (ghost === undefined) expect(r.decisions[0]?.campaign).toBe('lotus-1111-coupon');
      else {
        control++;
        expect(ghost.placement).toBe(banner.id);
        expect(r.decisions[0]?.campaign).not.toBe('lotus-1111-coupon');
      }
    }
    expect(control / 2000).toBeGreaterThan(0.08);
    expect(control / 2000).toBeLessThan(0.12);
  });
});
