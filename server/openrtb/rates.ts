/**
 * Currency rates for the bidder: floors and bids are compared in one currency, and a bid is
 * priced in a currency the request takes. One table for the fleet, stored beside the rule sets
 * (`getDocument('currency-rates')`): seeded from OPENRTB_RATES_FILE when the store has none,
 * replaced with PUT /v1/openrtb/rates, read again by every thread every RATES_REFRESH_MS.
 *
 * The table says how many units of each currency one unit of `base` buys, on `date`; a currency
 * is converted to another through the base. A currency the table does not name converts only to
 * itself: without a rate there is no bid (counted as `currency`).
 */
import { readFile } from 'node:fs/promises';
import { check } from '../contracts/check.js';
import { type RatesBody, ratesSchema } from '../contracts/schemas.js';
import { ClientError } from '../errors.js';
import type { RuleSetStore } from '../store/types.js';

export type RatesTable = RatesBody;

/** The name of the rates' document in the store. */
export const RATES_DOCUMENT = 'currency-rates';
/** How often each thread reads the stored table again, ms. */
export const RATES_REFRESH_MS = 10_000;

/** No table: every currency converts only to itself. */
export const NO_RATES: RatesTable = Object.freeze({ date: '', base: 'USD', rates: Object.freeze({}) });

/** A checked table (its base rate is 1); a ClientError with the path of the bad field otherwise. */
export function checkRates(data: unknown): RatesTable {
  const table = check(ratesSchema, data);
  return { date: table.date, base: table.base, rates: { ...table.rates, [table.base]: 1 } };
}

/** The table as stored text; null when the text is not a table (logged by the caller). */
export function parseStoredRates(text: string): RatesTable | null {
  try {
    return checkRates(JSON.parse(text));
  } catch {
    return null;
  }
}

/** `amount` of `from` in `to`; null when the table cannot convert between them. */
export function convert(table: RatesTable, amount: number, from: string, to: string): number | null {
  if (from === to) return amount;
  // Own keys only: a currency named `constructor` must not find Object.prototype's.
  const a = from === table.base ? 1 : Object.hasOwn(table.rates, from) ? table.rates[from] : undefined;
  const b = to === table.base ? 1 : Object.hasOwn(table.rates, to) ? table.rates[to] : undefined;
  if (a === undefined || b === undefined) return null;
  const converted = (amount / a) * b;
  return Number.isFinite(converted) ? converted : null;
}

/** Seconds since the table's date (midnight UTC); null without a table. */
export function ratesAgeSeconds(table: RatesTable, now: number): number | null {
  if (table.date === '') return null;
  return Math.max(0, (now - Date.parse(`${table.date}T00:00:00Z`)) / 1000);
}

export interface CurrencyRatesOptions {
  log: (line: string) => void;
  warn: (line: string) => void;
  refreshMs?: number;
}

/**
 * The rates one thread bids with: read from the store at start and every `refreshMs`, replaced
 * at once on the thread that is given a new table (which stores it for the others).
 */
export class CurrencyRates {
  private table: RatesTable = NO_RATES;
  private timer: NodeJS.Timeout | null = null;
  private readonly store: RuleSetStore;
  private readonly opts: CurrencyRatesOptions;

  constructor(store: RuleSetStore, opts: CurrencyRatesOptions) {
    this.store = store;
    this.opts = opts;
  }

  get current(): RatesTable {
    return this.table;
  }

  /**
   * Reads the stored table; when the store has none and `seedFile` is given, checks the file and
   * (with `seed`, the control plane's instance) stores it for the fleet. A store that does not
   * answer leaves the file's table (or none) in force until a refresh reads it. Then refreshes.
   */
  async start(seedFile: string | undefined, seed: boolean): Promise<void> {
    const fromFile = seedFile === undefined ? null : await readRatesFile(seedFile);
    try {
      const stored = await this.readStored();
      if (stored !== null) this.table = stored;
      else if (fromFile !== null) {
        this.table = fromFile;
        if (seed) await this.store.putDocument(RATES_DOCUMENT, JSON.stringify(fromFile));
      }
    } catch (e) {
      if (fromFile !== null) this.table = fromFile;
      this.opts.warn(
        `currency rates: the store did not answer (${(e as Error).message}); reading again later`,
      );
    }
    if (this.table.date !== '')
      this.opts.log(`currency rates of ${this.table.date} (base ${this.table.base})`);
    this.timer = setInterval(() => {
      this.refresh().catch(() => {});
    }, this.opts.refreshMs ?? RATES_REFRESH_MS);
    this.timer.unref();
  }

  /** Stores a new table for the fleet, and bids with it here from now on. */
  async replace(table: RatesTable): Promise<void> {
    await this.store.putDocument(RATES_DOCUMENT, JSON.stringify(table));
    this.table = table;
  }

  /** Reads the stored table again. */
  async refresh(): Promise<void> {
    const stored = await this.readStored();
    if (stored !== null) this.table = stored;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async readStored(): Promise<RatesTable | null> {
    const text = await this.store.getDocument(RATES_DOCUMENT);
    if (text === null) return null;
    const table = parseStoredRates(text);
    if (table === null)
      this.opts.warn('currency rates: the stored table does not read as one; kept the last');
    return table;
  }
}

/** The table of a rates file (OPENRTB_RATES_FILE); an error naming the file and the bad field. */
export async function readRatesFile(path: string): Promise<RatesTable> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`OPENRTB_RATES_FILE ${path}: ${(e as Error).message}`);
  }
  try {
    return checkRates(data);
  } catch (e) {
    const at = e instanceof ClientError && e.path !== undefined ? ` at ${e.path}` : '';
    throw new Error(`OPENRTB_RATES_FILE ${path}: ${(e as Error).message}${at}`);
  }
}
