/**
 * GET and PUT /v1/openrtb/rates: the currency rates the OpenRTB bidder converts floors and bids
 * with (server/openrtb/rates.ts). A new table is stored for the fleet and used here at once.
 */
import type { RatesBody } from '../contracts/schemas.js';
import { ClientError } from '../errors.js';
import { checkRates } from '../openrtb/rates.js';
import type { ControlContext, Register } from './context.js';

export function registerRates(register: Register, ctx: ControlContext): void {
  const rates = () => {
    const r = ctx.deps.rates;
    if (r === undefined) throw new ClientError('rates_not_found', 'This server has no OpenRTB bidder');
    return r;
  };

  register('getRates', async ({ c }) => {
    const table = rates().current;
    if (table.date === '') {
      throw new ClientError(
        'rates_not_found',
        'No currency rates are set: PUT a table, or start with OPENRTB_RATES_FILE',
      );
    }
    return c.json(table);
  });

  register<RatesBody>('putRates', async ({ c, body }) => {
    const table = checkRates(body);
    const r = rates();
    await ctx.storeCall('store the rates', () => r.replace(table));
    return c.json(table);
  });
}
