/**
 * Compiled budgets: amounts in millionths of their unit, and what an impression decided by
 * /v1/decide costs a spend budget (the creative's budget cpm, else the campaign's budget cpm, else
 * the creative's bid, else the campaign's bid).
 */
import { describe, expect, it } from 'vitest';
import { BUDGET_SCALE, type CompiledCampaign, compileRuleSet } from './compile.js';
import type { Budget, Campaign, Creative } from './types.js';
import { validateRuleSet } from './validate.js';

function compiledCampaign(campaign: Partial<Campaign>, creatives: Creative[]): CompiledCampaign {
  const v = validateRuleSet({
    funnel: ['aware', 'act'],
    segments: [],
    campaigns: [
      {
        id: 'c',
        brand: 'b',
        flight: { start: '2026-11-01', end: '2026-11-30' },
        channels: ['display'],
        ...campaign,
        creatives,
      },
    ],
  });
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return compileRuleSet(v.value).campaigns[0]!;
}

const creative = (id: string, more: Partial<Creative> = {}): Creative => ({ id, message: 'brand', ...more });

describe('compile: budgets', () => {
  it('holds amounts in millionths of their unit, with unit and pacing defaulted', () => {
    expect(BUDGET_SCALE).toBe(1_000_000);
    const spend = compiledCampaign({ budget: { daily: 500, unit: 'spend', cpm: 2 } }, [creative('a')]);
    expect(spend.budget).toEqual({ daily: 500_000_000, total: null, unit: 'spend', pacing: 'even' });
    const impressions = compiledCampaign({ budget: { daily: 20_000, total: 300_000 } }, [creative('a')]);
    expect(impressions.budget).toEqual({
      daily: 20_000_000_000,
      total: 300_000_000_000,
      unit: 'impressions',
      pacing: 'even',
    });
    const cents = compiledCampaign({ budget: { total: 12.345678, unit: 'spend', pacing: 'asap', cpm: 1 } }, [
      creative('a'),
    ]);
    expect(cents.budget).toEqual({ daily: null, total: 12_345_678, unit: 'spend', pacing: 'asap' });
    for (const b of [spend.budget, impressions.budget, cents.budget]) {
      expect(Number.isSafeInteger(b?.daily ?? 0)).toBe(true);
      expect(Number.isSafeInteger(b?.total ?? 0)).toBe(true);
    }
  });

  it("keeps a creative's budget beside the campaign's, and says whether either has one", () => {
    const none = compiledCampaign({}, [creative('a')]);
    expect(none.budget).toBeNull();
    expect(none.budgeted).toBe(false);
    expect(none.creatives[0]!.budget).toBeNull();
    const clicks: Budget = { daily: 100, unit: 'clicks' };
    const onlyCreative = compiledCampaign({}, [creative('a', { budget: clicks }), creative('b')]);
    expect(onlyCreative.budget).toBeNull();
    expect(onlyCreative.budgeted).toBe(true);
    expect(onlyCreative.creatives[0]!.budget).toEqual({
      daily: 100_000_000,
      total: null,
      unit: 'clicks',
      pacing: 'even',
    });
    expect(onlyCreative.creatives[1]!.budget).toBeNull();
    const both = compiledCampaign({ budget: { daily: 20_000 } }, [creative('a', { budget: clicks })]);
    expect(both.budget?.daily).toBe(20_000_000_000);
    expect(both.creatives[0]!.budget?.daily).toBe(100_000_000);
    expect(both.budgeted).toBe(true);
  });

  it("prices an impression by the creative's budget cpm, the campaign's, the creative's bid, the campaign's", () => {
    const cost = (cpm: number) => Math.round((cpm / 1000) * BUDGET_SCALE);
    const withCpm = compiledCampaign({ bid: 1, budget: { daily: 500, unit: 'spend', cpm: 2.5 } }, [
      creative('own-cpm', { bid: 3, budget: { daily: 50, unit: 'spend', cpm: 4 } }),
      creative('bids', { bid: 3 }),
      creative('plain'),
    ]);
    expect(withCpm.creatives.map((cr) => cr.impressionCost)).toEqual([cost(4), cost(2.5), cost(2.5)]);
    expect(withCpm.creatives.map((cr) => cr.impressionCost)).toEqual([4000, 2500, 2500]);
    expect(withCpm.impressionCost).toBe(2500);

    const byBids = compiledCampaign({ bid: 1, budget: { daily: 500, unit: 'spend' } }, [
      creative('own-cpm', { budget: { daily: 50, unit: 'spend', cpm: 0.35 } }),
      creative('bids', { bid: 3 }),
      creative('plain'),
    ]);
    expect(byBids.creatives.map((cr) => cr.impressionCost)).toEqual([350, 3000, 1000]);
    expect(byBids.impressionCost).toBe(1000);

    const unpriced = compiledCampaign({ budget: { daily: 500 } }, [creative('plain')]);
    expect(unpriced.creatives[0]!.impressionCost).toBe(0);
    expect(unpriced.impressionCost).toBe(0);
  });
});
