/**
 * Delivery and lift counts of the Redis store (RedisStore delegates here; measure.ts has the
 * rules). Exposures are one script per person, on the person's slot, adding to the slot's pending
 * counts like a funnel change; the counts are read after a fold (redis-funnel.ts), so a read is
 * exact. Delivery counts that belong to no one person (decisions, ghosts) go straight to the
 * global counts, many in one call.
 */
import { DELIVERY_ADD_LUA, EXPOSE_LUA } from './lua.js';
import { checkExposure, deliveryRowField, deliveryRows, liftFromHash } from './measure.js';
import { checkDeliveryAdd, daysBetween } from './person.js';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { type Arg, luaScript } from './resp.js';
import type { DeliveryAdd, DeliveryRow, ExposureWrite, LiftCounts } from './types.js';

const EXPOSE = luaScript(EXPOSE_LUA);
const DELIVERY_ADD = luaScript(DELIVERY_ADD_LUA);
/** Counts per DELIVERY_ADD call. */
const ADD_GROUP = 500;
/** Exposures per EXPOSE call. */
const EXPOSE_GROUP = 500;

export class RedisMeasure {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    /** How long rows, counts and exposure records live after their last change, ms. */
    readonly retentionMs: number,
    /** Gathers the slots' pending counts into the global ones (before every read). */
    private readonly fold: () => Promise<void>,
    private readonly ready: () => Promise<void>,
  ) {}

  async addDelivery(adds: readonly DeliveryAdd[]): Promise<void> {
    for (const a of adds) checkDeliveryAdd(a);
    if (adds.length === 0) return;
    await this.ready();
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < adds.length; i += ADD_GROUP) {
      const args: Arg[] = [this.keys.prefix, this.retentionMs];
      for (const a of adds.slice(i, i + ADD_GROUP))
        args.push(a.campaign, a.day, deliveryRowField(a.creative, a.channel, a.metric), a.n);
      calls.push(this.client.script(DELIVERY_ADD, [this.keys.folds], args));
    }
    await Promise.all(calls);
  }

  /**
   * One call per node and EXPOSE_GROUP exposures: one call per person cost the server about 25 µs
   * and Redis about 10 µs per decision of new people (npm run load, decide uniform over 1M people
   * with hold-outs: 79-84 µs a decision against 50-56 without the recorder, run twice each).
   * A slot that moves between the grouping and the call fails its group (dropped, counted).
   */
  async recordExposures(exposures: readonly ExposureWrite[]): Promise<void> {
    for (const e of exposures) checkExposure(e);
    if (exposures.length === 0) return;
    await this.ready();
    const byNode = new Map<string, Array<{ key: string; args: Arg[] }>>();
    for (const e of exposures) {
      const slot = this.keys.slotOfPerson(e.pid);
      const node = this.keys.sharded ? (this.client.masterOf(slot) ?? '?') : '';
      let groups = byNode.get(node);
      if (groups === undefined) byNode.set(node, (groups = []));
      let group = groups.at(-1);
      if (group === undefined || group.args.length >= 1 + 6 * EXPOSE_GROUP)
        groups.push((group = { key: this.keys.exposures(e.pid), args: [this.retentionMs] }));
      group.args.push(
        this.keys.exposures(e.pid),
        this.keys.pendingMeasures(slot),
        e.campaign,
        e.arm === 'treatment' ? 't' : 'c',
        Math.round(e.at),
        Math.round(e.windowMs),
      );
    }
    const calls: Promise<unknown>[] = [];
    for (const groups of byNode.values())
      for (const g of groups) calls.push(this.client.script(EXPOSE, [g.key], g.args));
    await Promise.all(calls);
  }

  async delivery(campaign: string, fromDay: string, toDay: string): Promise<DeliveryRow[]> {
    const days = daysBetween(fromDay, toDay);
    await this.fold();
    const main = this.client.main;
    const hashes = await Promise.all(days.map((day) => main.hgetall(this.keys.deliveryDay(campaign, day))));
    return deliveryRows(days, hashes);
  }

  async lift(campaign: string): Promise<LiftCounts> {
    await this.fold();
    return liftFromHash(await this.client.main.hgetall(this.keys.liftCounts(campaign)));
  }
}
