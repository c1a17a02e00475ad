/**
 * What crosses back from the checking thread as JSON text, and what must cross by clone because
 * JSON would change it.
 */
import { describe, expect, it } from 'vitest';
import { asJson, assemble, toPieces } from './check-thread.js';
import type { RuleSet } from './types.js';

describe('asJson', () => {
  it('gives the JSON of plain data, which parses back equal', () => {
    const value = { funnel: ['a', 'b'], segments: [{ id: 's', when: { attr: 'x', gte: -1.5e-7 } }], n: null };
    const text = asJson(value);
    expect(text).not.toBeNull();
    expect(JSON.parse(text as string)).toEqual(value);
  });

  it.each([
    ['Infinity', { gte: Number.POSITIVE_INFINITY }],
    ['NaN', { eq: Number.NaN }],
    ['a date', { start: new Date(0) }],
    ['a hole in an array', { list: [1, undefined, 3] }],
    ['a bigint', { n: 10n }],
  ])('refuses %s', (_name, value) => {
    expect(asJson(value)).toBeNull();
  });
});

describe('toPieces and assemble', () => {
  const ruleSet = (n: number): RuleSet =>
    ({
      funnel: ['aware', 'appeal'],
      segments: Array.from({ length: n }, (_, i) => ({ id: `s${i}`, when: { tag: `t:${i}` } })),
      campaigns: Array.from({ length: 3 }, (_, i) => ({
        id: `c${i}`,
        brand: 'b',
        segments: [`s${i}`],
        channels: ['display'],
        creatives: [{ id: `cr${i}`, message: 'brand' }],
      })),
      sellingPoints: { s1: ['camera'] },
    }) as RuleSet;

  it('carry a rule set across in pieces, unchanged', async () => {
    const rs = ruleSet(1234);
    const pieces = toPieces(rs);
    expect(pieces?.segments).toHaveLength(3);
    expect(await assemble(pieces!)).toEqual(rs);
  });

  it('refuse a rule set JSON would change, wherever the value is', () => {
    const rs = ruleSet(900);
    (rs.segments[700]!.when as { attr?: string; gte?: number }) = {
      attr: 'x',
      gte: Number.POSITIVE_INFINITY,
    };
    expect(toPieces(rs)).toBeNull();
  });
});
