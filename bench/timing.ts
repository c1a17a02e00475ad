/** Timing shared by the benchmarks: single calls timed one at a time, with their tails. */

export interface PerCall {
  p50Ns: number;
  p99Ns: number;
  p999Ns: number;
  samples: number;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * Times calls one at a time (after the caller has warmed the function up), up to `samples` calls
 * and for at most about 2 s (at least 100 calls). Includes the timer's own cost, about 100 ns.
 */
export async function perCall(fn: () => unknown, samples: number): Promise<PerCall> {
  const t = new Float64Array(samples);
  const deadline = performance.now() + 2_000;
  let n = 0;
  while (n < samples && (n < 100 || performance.now() < deadline)) {
    const t0 = process.hrtime.bigint();
    const r = fn();
    if (r instanceof Promise) await r;
    t[n++] = Number(process.hrtime.bigint() - t0);
  }
  const sorted = t.subarray(0, n).sort();
  return {
    p50Ns: percentile(sorted, 0.5),
    p99Ns: percentile(sorted, 0.99),
    p999Ns: percentile(sorted, 0.999),
    samples: n,
  };
}
