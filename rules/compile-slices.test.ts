/**
 * Compiling in slices (compileRuleSetInSlices): the same compiled set as compiling at once, built
 * while other work of the thread keeps running between the slices.
 */
import { describe, expect, it } from 'vitest';
import { CompiledRuleSet, compileRuleSet, compileRuleSetInSlices } from './compile.js';
import { decide } from './decide.js';
import type { Profile, RuleSet } from './types.js';

/** `n` segments over 40 tags and 5 brands' stages, with 30 campaigns. */
function wideRuleSet(n: number): RuleSet {
  const segments = Array.from({ length: n }, (_, i) => ({
    id: `s${i}`,
    when:
      i % 3 === 0
        ? { all: [{ tag: `t:${i % 40}` }, { stage: `b${i % 5}`, atLeast: 'appeal' }] }
        : i % 3 === 1
          ? { any: [{ tag: `t:${(i * 7) % 40}` }, { tag: `p:${i % 11}*` }] }
          : { all: [{ attr: 'price_band', gte: (i % 9) * 1000 }, { not: { tag: `t:${i % 13}` } }] },
  }));
  const campaigns = Array.from({ length: 30 }, (_, c) => ({
    id: `c${c}`,
    brand: `b${c % 5}`,
    segments: [`s${c}`, `s${(c * 97) % n}`, `s${(c * 31 + 5) % n}`],
    channels: ['display' as const],
    creatives: [{ id: `cr${c}`, message: 'brand' as const }],
  }));
  return { funnel: ['aware', 'appeal', 'act', 'advocate'], segments, campaigns } as RuleSet;
}

function people(count: number): Profile[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `u${i}`,
    tags: [`t:${i % 40}`, `t:${(i * 3) % 40}`, `p:${i % 11}x`],
    attrs: { price_band: (i % 10) * 900 },
    stages: { [`b${i % 5}`]: ['aware', 'appeal', 'act', 'advocate'][i % 4]! },
  }));
}

describe('compileRuleSetInSlices', () => {
  it('builds the same set as compiling at once', async () => {
    const rs = wideRuleSet(3000);
    const atOnce = compileRuleSet(rs);
    const sliced = await compileRuleSetInSlices(rs, 0);
    const now = Date.parse('2026-11-24T10:00:00Z');
    let filled = 0;
    for (const p of people(300)) {
      expect(sliced.matchSegments(p)).toEqual(atOnce.matchSegments(p));
      const request = { placements: [{ id: 'x', channels: ['display' as const] }], explain: true };
      const decision = decide(sliced, p, {}, request, now);
      expect(decision).toEqual(decide(atOnce, p, {}, request, now));
      if (JSON.stringify(decision).includes('"creative":"cr')) filled++;
    }
    // Most of these people are someone's audience: the comparison covers filled decisions.
    expect(filled).toBeGreaterThan(100);
  });

  it('lets the thread run other work between its slices', async () => {
    let turns = 0;
    let running = true;
    const tick = () => {
      turns++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    // With no time allowed per slice, every step is a slice: 3,000 segments are dozens of them.
    await compileRuleSetInSlices(wideRuleSet(3000), 0);
    running = false;
    expect(turns).toBeGreaterThan(20);
  });

  it('is built once', () => {
    const compiled = new CompiledRuleSet(wideRuleSet(10));
    expect(() => compiled.buildSteps()).toThrow(/compiled already/);
  });
});
