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
