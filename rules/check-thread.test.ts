/**
 * What crosses back from the checking thread as JSON text, and what must cross by clone because
 * JSON would change it.
 */
import { describe, expect, it } from 'vitest';
import { asJson } from './check-thread.js';

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
