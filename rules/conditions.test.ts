import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileRuleSet } from './compile.js';
import type { Condition, Profile, RuleSet, Segment } from './types.js';
import { validateRuleSet } from './validate.js';

interface ConditionCase {
  name: string;
  when: Condition;
  expect: boolean;
  profile?: Profile;
  contextTags?: string[];
  segments?: Segment[];
}
const table = JSON.parse(readFileSync(new URL('./test/condition-cases.json', import.meta.url), 'utf8')) as {
  profile: Profile;
  cases: ConditionCase[];
};

function ruleSet(c: ConditionCase): RuleSet {
  return {
    funnel: ['aware', 'appeal', 'act', 'advocate'],
    segments: [...(c.segments ?? []), { id: 'target', when: c.when }],
    campaigns: [
      {
        id: 'c',
        brand: 'b',
        segments: ['target'],
        channels: ['display'],
        creatives: [{ id: 'k', message: 'brand' }],
      },
    ],
  };
}

describe('conditions: every operator', () => {
  it.each(table.cases)('$name', (c) => {
    const rs = ruleSet(c);
    const v = validateRuleSet(rs);
    expect(v.ok ? [] : v.errors).toEqual([]);
    const compiled = compileRuleSet(rs);
    const matched = compiled.matchSegments(c.profile ?? table.profile, c.contextTags);
    expect(matched.includes('target')).toBe(c.expect);
  });
});

describe('profiles evaluated again', () => {
  const rs: RuleSet = {
    funnel: ['aware', 'appeal', 'act', 'advocate'],
    segments: [
      { id: 'gamers', when: { tag: 'circle:mobile-gamer' } },
      { id: 'business', when: { tag: 'circle:*' } },
      { id: 'acting', when: { stage: 'b', in: ['act'] } },
    ],
    campaigns: [],
  };

  it('a profile object changed between evaluations is evaluated as it is now', () => {
    const compiled = compileRuleSet(rs);
    const person: Profile = { id: 'p', tags: ['circle:mobile-gamer'], stages: { b: 'aware' } };
    expect(compiled.matchSegments(person)).toEqual(['gamers', 'business']);
    person.tags = ['other'];
    (person.stages as Record<string, string>).b = 'act';
    expect(compiled.matchSegments(person)).toEqual(['acting']);
  });

  it('a frozen profile answers the same every time, alternating with others', () => {
    const compiled = compileRuleSet(rs);
    const frozen = Object.freeze({ id: 'f', tags: Object.freeze(['circle:mobile-gamer']) }) as Profile;
    const other: Profile = { id: 'o', tags: [], stages: { b: 'act' } };
    for (let i = 0; i < 3; i++) {
      expect(compiled.matchSegments(frozen)).toEqual(['gamers', 'business']);
      expect(compiled.matchSegments(other)).toEqual(['acting']);
    }
  });
});
