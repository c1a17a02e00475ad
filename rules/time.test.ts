import { describe, expect, it } from 'vitest';
import { calendarPeriod, isoTime, localDay, parseFlightBound, startOfDay } from './time.js';

const iso = (t: number) => new Date(t).toISOString();

describe('calendar days across DST changes', () => {
  it('starts a day when it begins, also where the change skips midnight (Santiago, 2025-09-07)', () => {
    // Clocks went from 23:59:59 on the 6th (-04:00) to 01:00 on the 7th (-03:00).
    expect(iso(startOfDay('2025-09-07', 'America/Santiago'))).toBe('2025-09-07T04:00:00.000Z');
    expect(localDay('America/Santiago', startOfDay('2025-09-07', 'America/Santiago') - 1)).toBe('2025-09-06');
    expect(iso(startOfDay('2025-09-06', 'America/Santiago'))).toBe('2025-09-06T04:00:00.000Z');
    // An ordinary midnight, and one an hour longer (Santiago's autumn change, 2025-04-06).
    expect(iso(startOfDay('2026-11-24', 'Asia/Shanghai'))).toBe('2026-11-23T16:00:00.000Z');
    expect(iso(startOfDay('2025-04-06', 'America/Santiago'))).toBe('2025-04-06T04:00:00.000Z');
  });

  it('finds the period holding a moment, whatever was asked before', () => {
    const tz = 'America/Santiago';
    const sunday = Date.parse('2025-09-07T04:30:00Z');
    const saturday = Date.parse('2025-09-06T20:00:00Z');
    for (const order of [
      [sunday, saturday],
      [saturday, sunday],
    ]) {
      for (const t of order) {
        const p = calendarPeriod('day', tz, t);
        expect(t).toBeGreaterThanOrEqual(p.start);
        expect(t).toBeLessThan(p.end);
      }
    }
    const day = calendarPeriod('day', tz, sunday);
    expect(day.end - day.start).toBe(23 * 3_600_000);
    const week = calendarPeriod('week', 'Asia/Shanghai', Date.parse('2026-11-24T04:00:00Z'));
    expect(iso(week.start)).toBe('2026-11-22T16:00:00.000Z'); // Monday 23 November, 00:00 in Shanghai
    expect(week.end - week.start).toBe(7 * 86_400_000);
  });

  it('ends a flight given as a date alone at the end of that day, skipped midnight or not', () => {
    expect(iso(parseFlightBound('2025-09-06', 'America/Santiago', 'end')!)).toBe('2025-09-07T03:59:59.999Z');
    expect(iso(parseFlightBound('2026-11-11', 'Asia/Shanghai', 'end')!)).toBe('2026-11-11T15:59:59.999Z');
    expect(iso(parseFlightBound('2026-11-11+08:00', 'UTC', 'end')!)).toBe('2026-11-11T15:59:59.999Z');
    expect(iso(parseFlightBound('2026-11-11', 'Asia/Shanghai', 'start')!)).toBe('2026-11-10T16:00:00.000Z');
    expect(iso(parseFlightBound('2025-09-07', 'America/Santiago', 'start')!)).toBe(
      '2025-09-07T04:00:00.000Z',
    );
  });
});

describe('isoTime', () => {
  it('writes what toISOString writes, across days, years, signs and fractions', () => {
    const times = [
      0,
      -1,
      1,
      86_399_999,
      86_400_000,
      -86_400_000,
      -86_400_001,
      Date.UTC(2026, 10, 28, 23, 59, 59, 999),
      Date.UTC(2026, 10, 29),
      Date.UTC(2024, 1, 29, 12, 5, 7, 9),
      Date.UTC(1969, 11, 31, 23, 59, 59, 990),
      Date.UTC(10_000, 0, 1, 1, 2, 3, 45),
      -62_198_755_200_000, // the year -1
      8.64e15,
      -8.64e15,
      1_764_000_000_123.9,
      -1_764_000_000_123.9,
    ];
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      times.push(Math.round((seed / 2_147_483_648 - 0.3) * 4e12));
      times.push(times[times.length - 1]! + 1);
    }
    for (const t of times) expect(isoTime(t), String(t)).toBe(new Date(t).toISOString());
  });

  it('throws as toISOString does for a time no Date holds', () => {
    for (const t of [Number.NaN, Number.POSITIVE_INFINITY, 8.64e15 + 1]) {
      expect(() => isoTime(t)).toThrow(RangeError);
    }
  });
});
