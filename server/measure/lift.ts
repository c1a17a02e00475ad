/**
 * The lift of a campaign against its hold-out: people exposed (treatment) or held out (control,
 * with a ghost exposure), and how many of each converted in the attribution window.
 *
 * - Rates and the lift: absolute (rate difference) and relative (difference over the control rate).
 * - The 95% interval of the difference: Newcombe's hybrid score interval (Newcombe 1998, method
 *   10), built from the two arms' Wilson score intervals. Unlike the Wald interval it stays inside
 *   [-1, 1] and keeps close to its nominal coverage with few conversions, which is the usual case
 *   for a campaign (rates of a few percent, arms of a few thousand people).
 * - The p-value: the two-sided pooled two-proportion z-test of "no difference", or Fisher's exact
 *   test when a cell expects fewer than 5 (null when everybody or nobody converted).
 * - The minimum detectable effect: the smallest absolute lift the current arms would detect with
 *   80% power at the 5% level (two-sided), from the control's rate.
 *
 * Written here: these are a few lines of arithmetic over Wilson intervals; the one special
 * function they need, the normal tail for the p-value, is @stdlib's erfc.
 */
import erfc from '@stdlib/math-base-special-erfc';

/** z for a two-sided 95% interval and for 80% power. */
const Z_95 = 1.959963984540054;
const Z_80 = 0.8416212335729143;

export interface Arm {
  /** People in the arm (counted once each). */
  people: number;
  /** Of them, people with an outcome in the attribution window. */
  converted: number;
}

export interface ArmResult extends Arm {
  /** converted / people; null for an empty arm. */
  rate: number | null;
}

export interface LiftResult {
  treatment: ArmResult;
  control: ArmResult;
  /** Treatment rate minus control rate; null when an arm is empty. */
  absolute: number | null;
  /** The absolute lift over the control rate; null when that rate is 0 or an arm is empty. */
  relative: number | null;
  /** 95% interval of the absolute lift; null when an arm is empty. */
  interval: { level: 0.95; low: number; high: number; method: string } | null;
  /** Two-sided p-value of no difference; null when an arm is empty or nobody converted at all. */
  pValue: number | null;
  /** Smallest absolute lift detectable with 80% power at the 5% level, at the current arms. */
  minimumDetectableEffect: number | null;
}

export const INTERVAL_METHOD = 'Newcombe hybrid score interval (Wilson score intervals of each arm)';

/** The lift of `treatment` over `control`. Counts must be whole, with converted ≤ people. */
export function lift(treatment: Arm, control: Arm): LiftResult {
  for (const [name, arm] of [
    ['treatment', treatment],
    ['control', control],
  ] as const) {
    const ok =
      Number.isSafeInteger(arm.people) &&
      Number.isSafeInteger(arm.converted) &&
      arm.people >= 0 &&
      arm.converted >= 0 &&
      arm.converted <= arm.people;
    if (!ok) throw new RangeError(`${name}: counts must be whole, with converted at most people`);
  }
  const t = withRate(treatment);
  const c = withRate(control);
  if (t.rate === null || c.rate === null) {
    return {
      treatment: t,
      control: c,
      absolute: null,
      relative: null,
      interval: null,
      pValue: null,
      minimumDetectableEffect: null,
    };
  }
  const d = t.rate - c.rate;
  const [l1, u1] = wilson(t.converted, t.people);
  const [l2, u2] = wilson(c.converted, c.people);
  const low = d - Math.sqrt((t.rate - l1) ** 2 + (u2 - c.rate) ** 2);
  const high = d + Math.sqrt((u1 - t.rate) ** 2 + (c.rate - l2) ** 2);
  const pooled = (t.converted + c.converted) / (t.people + c.people);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / t.people + 1 / c.people));
  // The z-test needs a few expected outcomes in every cell; with fewer (a small hold-out, rare
  // conversions) it is far too confident, and Fisher's exact test answers instead.
  const expected = Math.min(
    pooled * t.people,
    pooled * c.people,
    (1 - pooled) * t.people,
    (1 - pooled) * c.people,
  );
  const pValue = se === 0 ? null : expected < 5 ? fisherExact(t, c) : erfc(Math.abs(d) / se / Math.SQRT2);
  return {
    treatment: t,
    control: c,
    absolute: d,
    relative: c.rate === 0 ? null : d / c.rate,
    interval: { level: 0.95, low: Math.max(-1, low), high: Math.min(1, high), method: INTERVAL_METHOD },
    pValue,
    minimumDetectableEffect: detectable(c.rate, t.people, c.people),
  };
}

/**
 * The smallest absolute lift δ the pooled z-test detects with 80% power at the 5% level: the root
 * of δ = z₀.₉₇₅·SE₀(δ) + z₀.₈·SE₁(δ), with SE₀ the pooled error under no difference and SE₁ the
 * error at the treatment rate p + δ, found by bisection on [0, 1 - p] (a fixed-point iteration
 * oscillates for high rates and small arms). Null when no lift up to a rate of 1 is detectable.
 */
function detectable(p: number, nt: number, nc: number): number | null {
  if (p <= 0 || p >= 1) return null;
  const need = (d: number) => {
    const q = p + d;
    const pooled = (nt * q + nc * p) / (nt + nc);
    const se0 = Math.sqrt(pooled * (1 - pooled) * (1 / nt + 1 / nc));
    const se1 = Math.sqrt((q * (1 - q)) / nt + (p * (1 - p)) / nc);
    return Z_95 * se0 + Z_80 * se1 - d;
  };
  let low = 0;
  let high = 1 - p;
  if (need(high) > 0) return null;
  for (let i = 0; i < 60; i++) {
    const mid = (low + high) / 2;
    if (need(mid) > 0) low = mid;
    else high = mid;
  }
  return high;
}

/**
 * Fisher's exact test, two-sided: the probability, with the margins fixed, of a table at most as
 * likely as the one seen. The hypergeometric terms are built by their ratio from the most likely
 * one, so no factorial is formed and nothing overflows.
 */
function fisherExact(t: Arm, c: Arm): number {
  const total = t.people + c.people;
  const converted = t.converted + c.converted;
  const n = c.people;
  const lo = Math.max(0, n + converted - total);
  const hi = Math.min(converted, n);
  const mode = Math.min(hi, Math.max(lo, Math.floor(((n + 1) * (converted + 1)) / (total + 2))));
  // Relative probabilities: P(x + 1) / P(x) = (K - x)(n - x) / ((x + 1)(N - K - n + x + 1)).
  const weights = new Float64Array(hi - lo + 1);
  weights[mode - lo] = 1;
  for (let x = mode; x < hi; x++) {
    weights[x + 1 - lo] =
      (weights[x - lo]! * (converted - x) * (n - x)) / ((x + 1) * (total - converted - n + x + 1));
  }
  for (let x = mode; x > lo; x--) {
    weights[x - 1 - lo] =
      (weights[x - lo]! * x * (total - converted - n + x)) / ((converted - x + 1) * (n - x + 1));
  }
  let sum = 0;
  for (const w of weights) sum += w;
  const seen = weights[c.converted - lo]!;
  let p = 0;
  for (const w of weights) if (w <= seen * (1 + 1e-7)) p += w;
  return Math.min(1, p / sum);
}

function withRate(arm: Arm): ArmResult {
  return { ...arm, rate: arm.people === 0 ? null : arm.converted / arm.people };
}

/** Wilson's 95% score interval of a proportion x/n (n > 0). */
export function wilson(x: number, n: number): [low: number, high: number] {
  const p = x / n;
  const z2 = Z_95 * Z_95;
  const denominator = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denominator;
  const half = (Z_95 * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denominator;
  return [Math.max(0, center - half), Math.min(1, center + half)];
}
