import { describe, expect, it } from 'vitest';
import { prng as random } from '../../bench/synthetic.js';
import { lift, wilson } from './lift.js';

function binomial(n: number, p: number, next: () => number): number {
  let x = 0;
  for (let i = 0; i < n; i++) if (next() < p) x++;
  return x;
}

describe('lift', () => {
  it("gives Newcombe's published figures (Statistics in Medicine 1998, 17:873-890)", () => {
    // Wilson interval of 81/263: 0.2553 to 0.3662 (his table I).
    const [lo, hi] = wilson(81, 263);
    expect(lo).toBeCloseTo(0.2553, 4);
    expect(hi).toBeCloseTo(0.3662, 4);
    // Method 10 for 56/70 against 48/80: difference 0.2000, interval 0.0524 to 0.3339 (table II).
    const r = lift({ people: 70, converted: 56 }, { people: 80, converted: 48 });
    expect(r.absolute).toBeCloseTo(0.2, 10);
    expect(r.interval?.low).toBeCloseTo(0.0524, 4);
    expect(r.interval?.high).toBeCloseTo(0.3339, 4);
    expect(r.relative).toBeCloseTo(0.2 / 0.6, 10);
  });

  it('gives the pooled z-test p-value and no difference as 1', () => {
    // 60/1000 against 40/1000: pooled 0.05, z = 0.02 / sqrt(0.05 x 0.95 x 0.002) = 2.0520.
    const r = lift({ people: 1000, converted: 60 }, { people: 1000, converted: 40 });
    expect(r.pValue).toBeCloseTo(0.04017, 4);
    expect(lift({ people: 500, converted: 25 }, { people: 700, converted: 35 }).pValue).toBeCloseTo(1, 10);
  });

  it("answers with Fisher's exact test when a cell expects few outcomes", () => {
    // Fisher's tea tasting: 3 of 4 against 1 of 4, two-sided p = 34/70.
    expect(lift({ people: 4, converted: 3 }, { people: 4, converted: 1 }).pValue).toBeCloseTo(34 / 70, 10);
    // A small hold-out with rare conversions: the z-test would say 8.7e-16.
    expect(lift({ people: 100_000, converted: 10 }, { people: 1000, converted: 3 }).pValue).toBeCloseTo(
      2.6e-4,
      5,
    );
    expect(lift({ people: 50_000, converted: 20 }, { people: 500, converted: 2 }).pValue).toBeCloseTo(
      0.02,
      2,
    );
    expect(lift({ people: 100_000, converted: 0 }, { people: 100, converted: 1 }).pValue).toBeCloseTo(
      1e-3,
      4,
    );
  });

  it('finds the minimum detectable effect for high rates and small hold-outs too', () => {
    const r = lift({ people: 1_000_000, converted: 950_000 }, { people: 100, converted: 95 });
    expect(r.minimumDetectableEffect).toBeCloseTo(0.0389, 3);
    expect(
      lift({ people: 10, converted: 5 }, { people: 2, converted: 1 }).minimumDetectableEffect,
    ).toBeNull();
  });

  it('covers the true lift about 95% of the time over simulated campaigns', () => {
    const next = random(20261127);
    const campaigns = 400;
    let covered = 0;
    for (let i = 0; i < campaigns; i++) {
      // Campaigns of different sizes and rates, each with a true lift of a fifth of its rate.
      const control = 0.02 + 0.06 * next();
      const treatment = control * 1.2;
      const n = 1000 + Math.floor(4000 * next());
      const r = lift(
        { people: n, converted: binomial(n, treatment, next) },
        { people: Math.floor(n / 4), converted: binomial(Math.floor(n / 4), control, next) },
      );
      const truth = treatment - control;
      if (r.interval !== null && r.interval.low <= truth && truth <= r.interval.high) covered++;
    }
    // Binomial spread of 400 draws at 95%: about +-2.2 points for two standard errors.
    expect(covered / campaigns).toBeGreaterThan(0.92);
    expect(covered / campaigns).toBeLessThan(0.98);
  });

  it('names a minimum detectable effect that the arms detect about 80% of the time', () => {
    const next = random(7);
    const base = lift({ people: 4000, converted: 160 }, { people: 1000, converted: 40 });
    const effect = base.minimumDetectableEffect!;
    expect(effect).toBeGreaterThan(0.01);
    let detected = 0;
    const runs = 400;
    for (let i = 0; i < runs; i++) {
      const r = lift(
        { people: 4000, converted: binomial(4000, 0.04 + effect, next) },
        { people: 1000, converted: binomial(1000, 0.04, next) },
      );
      if (r.pValue !== null && r.pValue < 0.05 && (r.absolute ?? 0) > 0) detected++;
    }
    expect(detected / runs).toBeGreaterThan(0.72);
    expect(detected / runs).toBeLessThan(0.88);
  });

  it('says nothing it cannot know, and refuses impossible counts', () => {
    expect(lift({ people: 0, converted: 0 }, { people: 10, converted: 1 })).toMatchObject({
      absolute: null,
      interval: null,
      pValue: null,
      treatment: { rate: null },
      control: { rate: 0.1 },
    });
    const none = lift({ people: 10, converted: 0 }, { people: 10, converted: 0 });
    expect([none.absolute, none.relative, none.pValue]).toEqual([0, null, null]);
    expect(none.interval!.low).toBeLessThan(0);
    expect(none.interval!.high).toBeGreaterThan(0);
    expect(() => lift({ people: 5, converted: 6 }, { people: 5, converted: 1 })).toThrow(RangeError);
    expect(() => lift({ people: 5.5, converted: 1 }, { people: 5, converted: 1 })).toThrow(RangeError);
  });
});
