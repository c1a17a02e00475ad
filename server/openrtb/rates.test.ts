import { describe, expect, it } from 'vitest';
import { ClientError } from '../errors.js';
import { checkRates, convert, NO_RATES, parseStoredRates, ratesAgeSeconds } from './rates.js';

const TABLE = checkRates({ date: '2026-11-20', base: 'USD', rates: { EUR: 0.92, GBP: 0.79 } });

describe('currency rates', () => {
  it('convert through the base, both ways, and only between currencies they name', () => {
    expect(TABLE.rates.USD).toBe(1);
    expect(convert(TABLE, 10, 'USD', 'EUR')).toBeCloseTo(9.2);
    expect(convert(TABLE, 9.2, 'EUR', 'USD')).toBeCloseTo(10);
    expect(convert(TABLE, 0.92, 'EUR', 'GBP')).toBeCloseTo(0.79);
    expect(convert(TABLE, 3, 'JPY', 'JPY')).toBe(3);
    expect(convert(TABLE, 3, 'JPY', 'USD')).toBeNull();
    expect(convert(NO_RATES, 3, 'EUR', 'USD')).toBeNull();
    // Names of Object.prototype's members are currencies without a rate, not functions.
    for (const odd of ['constructor', '__proto__', 'toString']) {
      expect(convert(TABLE, 3, 'USD', odd)).toBeNull();
      expect(convert(TABLE, 3, odd, 'USD')).toBeNull();
    }
  });

  it('refuse a bad table with the path of the bad field', () => {
    const pathOf = (data: unknown) => {
      try {
        checkRates(data);
        return 'accepted';
      } catch (e) {
        return e instanceof ClientError ? e.path : String(e);
      }
    };
    expect(pathOf({ date: '2026-11-20', base: 'USD', rates: { EUR: -1 } })).toBe('rates.EUR');
    expect(pathOf({ date: '20-11-2026', base: 'USD', rates: {} })).toBe('date');
    expect(pathOf({ date: '2026-11-20', base: 'usd', rates: {} })).toBe('base');
    expect(pathOf({ date: '2026-11-20', base: 'USD', rates: {}, extra: 1 })).toBe('extra');
    expect(parseStoredRates('not json')).toBeNull();
    expect(parseStoredRates(JSON.stringify(TABLE))).toEqual(TABLE);
  });

  it('say their age from their date', () => {
    expect(ratesAgeSeconds(TABLE, Date.parse('2026-11-21T00:00:00Z'))).toBe(86_400);
    expect(ratesAgeSeconds(NO_RATES, Date.now())).toBeNull();
  });
});
