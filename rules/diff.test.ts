import { describe, expect, it } from 'vitest';
import { describeDiff, diffRuleSets, same } from './diff.js';
import type { RuleSet } from './types.js';

const base: RuleSet = {
  funnel: ['aware', 'act'],
  segments: [{ id: 's', when: { tag: 'a' } }],
  campaigns: [
    {
      id: 'c1',
      brand: 'b',
      segments: ['s'],
      channels: ['display'],
      creatives: [{ id: 'k', message: 'brand' }],
    },
    {
      id: 'c2',
      brand: 'b',
      segments: ['s'],
      channels: ['display'],
      creatives: [{ id: 'k', message: 'brand' }],
    },
  ],
};

describe('diffRuleSets', () => {
  it('sees no change in key order, and a change in campaign order', () => {
    const reordered = Object.fromEntries(Object.entries(base).reverse()) as unknown as RuleSet;
    expect(diffRuleSets(base, { ...base }).changed).toBe(false);
    expect(same(base, reordered)).toBe(true);
    const swapped = { ...base, campaigns: [base.campaigns[1]!, base.campaigns[0]!] };
    const d = diffRuleSets(base, swapped);
    expect(d).toMatchObject({ changed: true, fields: ['campaigns (order)'] });
    expect(describeDiff(d)).toEqual(['~ campaigns (order)']);
  });

  it('names changed creatives, fields and other parts', () => {
    const after: RuleSet = {
      ...base,
      funnel: ['aware', 'appeal', 'act'],
      campaigns: [
        { ...base.campaigns[0]!, holdout: 0.1, creatives: [{ id: 'k', message: 'promotion' }] },
        base.campaigns[1]!,
      ],
    };
    const d = diffRuleSets(base, after);
    expect(d.campaigns.changed).toEqual([
      {
        id: 'c1',
        fields: ['creatives', 'holdout'],
        creatives: { added: [], removed: [], changed: [{ id: 'k', fields: ['message'] }] },
      },
    ]);
    expect(d.fields).toEqual(['funnel']);
    expect(describeDiff(d)).toEqual([
      '~ campaign c1: creatives, holdout',
      '  ~ creative k: message',
      '~ funnel',
    ]);
  });
});
