import { describe, expect, it } from 'vitest';
import { compileRuleSet } from './compile.js';
import { stageAfterEvent } from './stage-moves.js';
import type { EventType, RuleSet } from './types.js';

const ruleSet: RuleSet = {
  funnel: ['aware', 'appeal', 'act', 'advocate'],
  segments: [{ id: 'all', when: { all: [] } }],
  campaigns: [],
  stageMoves: [
    { on: 'click', from: ['aware'], to: 'appeal' },
    { on: 'conversion', from: ['aware', 'appeal'], to: 'act' },
    { on: 'purchase', from: ['act', 'advocate'], to: 'advocate' },
    { on: 'purchase', to: 'act' },
    { on: 'impression', to: 'appeal', brands: ['loud'] },
  ],
};
const compiled = compileRuleSet(ruleSet);

describe('stage moves', () => {
  const cases: Array<[string, string, string | undefined, EventType, { from: string; to: string } | null]> = [
    ['a click moves aware to appeal', 'vivo', 'aware', 'click', { from: 'aware', to: 'appeal' }],
    ['no stage recorded is the default stage', 'vivo', undefined, 'click', { from: 'aware', to: 'appeal' }],
    ['a click at act moves nobody', 'vivo', 'act', 'click', null],
    ['a conversion moves appeal to act', 'vivo', 'appeal', 'conversion', { from: 'appeal', to: 'act' }],
    ['a first purchase moves aware to act', 'vivo', 'aware', 'purchase', { from: 'aware', to: 'act' }],
    ['a repeat purchase moves act to advocate', 'vivo', 'act', 'purchase', { from: 'act', to: 'advocate' }],
    ['an advocate who buys again stays', 'vivo', 'advocate', 'purchase', null],
    ['a move without from never goes backwards', 'loud', 'act', 'impression', null],
    [
      'a move limited to a brand applies to it',
      'loud',
      'aware',
      'impression',
      { from: 'aware', to: 'appeal' },
    ],
    ['and to no other brand', 'vivo', 'aware', 'impression', null],
    ['a stage off the ladder joins it', 'vivo', 'lurking', 'purchase', { from: 'lurking', to: 'act' }],
  ];
  it.each(cases)('%s', (_name, brand, current, event, expected) => {
    expect(stageAfterEvent(compiled, brand, current, event)).toEqual(expected);
  });

  it('moves nobody when the rule set has no stage moves', () => {
    const none = compileRuleSet({ ...ruleSet, stageMoves: undefined });
    expect(stageAfterEvent(none, 'vivo', 'aware', 'click')).toBeNull();
  });
});
