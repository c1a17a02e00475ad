import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { appendImpression, decodeTimes, encodeTimes } from './impressions.js';

describe('counter codec', () => {
  it('round-trips impression times in 8 bytes each', () => {
    const times = [0, 1_795_000_000_000, 1_795_000_000_000.5, 4_102_444_800_000];
    const bytes = encodeTimes(times);
    expect(bytes.length).toBe(32);
    expect(decodeTimes(bytes)).toEqual(times);
    expect(decodeTimes(Buffer.alloc(0))).toEqual([]);
    expect(decodeTimes(Buffer.alloc(7))).toBeNull();
    expect(decodeTimes(encodeTimes([Number.NaN]))).toBeNull();
  });

  it('appends: ascending, at most keep, none older than ttl before the newest', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1_000_000 }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 500_000 }),
        (arrivals, keep, ttl) => {
          let times: number[] = [];
          const all: number[] = [];
          for (const at of arrivals) {
            times = appendImpression(times, at, keep, ttl);
            all.push(at);
            expect(times.length).toBeLessThanOrEqual(keep);
            for (let i = 1; i < times.length; i++) expect(times[i]!).toBeGreaterThanOrEqual(times[i - 1]!);
            const newest = Math.max(...all);
            expect(times[times.length - 1]).toBe(newest);
            for (const t of times) expect(t).toBeGreaterThanOrEqual(newest - ttl);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
