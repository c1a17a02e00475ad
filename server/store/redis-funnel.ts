/**
 * The funnel counts of the Redis store (RedisStore.funnel and foldCounts delegate here).
 *
 * Scripts that change stages (lua.ts: writes, patches, events, deletes) do not touch the global
 * counts: each records the change in its own slot's pending counts (`fq:{T}`, redis-keys.ts), in
 * the same step as the stage, so a write stays on one hash slot. A fold gathers them into the
 * global counts by name (`fn:{ms}:<brand>`, `fm:{ms}:<brand>:<day>`): FOLD_TAKE on each run of
 * slots of one node, FOLD_APPLY on the global slot (once per slot and generation), FOLD_CLEAR. A
 * fold cut short is finished by the next one, and nothing is counted twice.
 *
 * When it runs: before every funnel read, whole (so a read is exact; concurrent reads share one
 * fold), and, on the stores asked to (`foldEveryMs`), a sixteenth of the slots at a time in the
 * background, one instance of the fleet at a time (a lease, FOLD_TURN), so that the background
 * cost does not grow with the fleet.
 *
 * Pending counts name brands and stages by dictionary id; the fold turns them into names with the
 * dictionary this process knows. Changes that can no longer be named (their slot's marker names
 * a dictionary the store lost, or an id has no string) are dropped and counted (`lostCountChanges`).
 */

import type { StringDictionary } from './dictionary.js';
import { FOLD_APPLY_LUA, FOLD_CLEAR_LUA, FOLD_TAKE_LUA, FOLD_TURN_LUA } from './lua.js';
import { deliveryRowField, parseMeasureField } from './measure.js';
import { daysBetween, setOwn } from './person.js';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { type Arg, luaScript } from './resp.js';
import type { FunnelCounts } from './types.js';

/** Slots per fold call (one script on one node). */
const FOLD_RUN = 1024;
/** Folds per FOLD_APPLY call. */
const FOLD_APPLY_GROUP = 500;

const TAKE = luaScript(FOLD_TAKE_LUA);
const APPLY = luaScript(FOLD_APPLY_LUA);
const CLEAR = luaScript(FOLD_CLEAR_LUA);
const FOLD_TURN = luaScript(FOLD_TURN_LUA);

export class RedisFunnel {
  private folding: Promise<void> | null = null;
  private lostChanges = 0;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    /** The strings of stored people, as far as this process knows them. */
    private readonly dict: StringDictionary,
    /** How long the moves of a day are kept after the last one (`fm:`), ms. */
    private readonly movesTtlMs: number,
    /** How long delivery rows and lift counts are kept after their last change (`dl:`, `lf:`), ms. */
    private readonly measureRetentionMs: number,
    /** Waits for the connection and for the store's identity and dictionary to be learnt. */
    private readonly ready: () => Promise<void>,
  ) {}

  /** Funnel changes that could not be counted (their slot's dictionary was lost). */
  get lostCountChanges(): number {
    return this.lostChanges;
  }

  /** A brand's counts by stage, and its moves of the days `fromDay` .. `toDay`, folded first. */
  async funnel(brand: string, fromDay: string, toDay: string): Promise<FunnelCounts> {
    const days = daysBetween(fromDay, toDay);
    await this.foldCounts();
    const main = this.client.main;
    const [counts, ...perDay] = await Promise.all([
      main.hgetall(this.keys.stageCounts(brand)),
      ...days.map((day) => main.hgetall(this.keys.dayMoves(brand, day))),
    ]);
    const stages = numbers(counts!);
    const moves: Record<string, Record<string, number>> = {};
    days.forEach((day, i) => {
      const m = perDay[i]!;
      if (Object.keys(m).length > 0) moves[day] = numbers(m);
    });
    return { brand, stages, moves };
  }

  /**
   * Gathers the pending funnel changes of every slot into the global counts (see the top of the
   * file). Concurrent calls share one fold.
   */
  foldCounts(): Promise<void> {
    this.folding ??= this.foldOnce(0, this.keys.countSlots - 1).finally(() => {
      this.folding = null;
    });
    return this.folding;
  }

  /** A background turn: one part of the slots, when the fleet's lease falls to this instance. */
  async foldTurn(leaseMs: number): Promise<void> {
    const parts = Math.ceil(this.keys.countSlots / FOLD_RUN);
    const part = Number(
      await this.client.script(FOLD_TURN, [this.keys.foldLease, this.keys.foldCursor], [leaseMs, parts]),
    );
    if (part < 0 || this.folding !== null) return;
    await this.foldOnce(part * FOLD_RUN, (part + 1) * FOLD_RUN - 1);
  }

  /** Folds the slots `from` .. `to`. */
  private async foldOnce(from: number, to: number): Promise<void> {
    await this.ready();
    const prefix = this.keys.prefix;
    const runs: Array<[number, number]> = this.keys.sharded
      ? this.client
          .slotRuns(FOLD_RUN)
          .filter(([a, b]) => b >= from && a <= to)
          .map(([a, b]): [number, number] => [Math.max(a, from), Math.min(b, to)])
      : [[0, 0]];
    const taken = await Promise.all(
      runs.map(([from, to]) => {
        const tags: string[] = [];
        for (let s = from; s <= to; s++) tags.push(this.keys.slotKeysTag(s));
        return this.client.script(TAKE, [this.keys.pendingCounts(from)], [prefix, ...tags]) as Promise<
          Array<[number, number, string, string[]]>
        >;
      }),
    );
    interface Fold {
      slot: number;
      gen: number;
      marker: string;
      fields: string[];
    }
    const folds: Fold[][] = taken.map((replies, r) =>
      replies.map(([index, gen, marker, fields]) => ({
        slot: runs[r]![0] + Number(index) - 2,
        gen: Number(gen),
        marker: String(marker),
        fields,
      })),
    );
    const all = folds.flat();
    if (all.length === 0) return;
    // The ids of every fold written with the dictionary this process knows.
    const epoch = this.dict.epoch;
    const ids: number[] = [];
    for (const f of all) {
      if (f.marker !== epoch) continue;
      for (let i = 0; i < f.fields.length; i += 2) {
        if (f.fields[i]!.startsWith('[')) continue;
        const parts = f.fields[i]!.split('|');
        ids.push(Number(parts[1]));
        if (parts[0] === 's') ids.push(Number(parts[2]));
        else ids.push(Number(parts[3]), Number(parts[4]));
      }
    }
    await this.dict.load(ids);
    const names = this.dict.names;
    const groups: Arg[][] = [];
    let args: Arg[] = [];
    let count = 0;
    for (const f of all) {
      const changes: string[] = [];
      // Measurement counts name campaigns as they are (no dictionary): they always fold.
      for (let i = 0; i < f.fields.length; i += 2) {
        const m = parseMeasureField(f.fields[i]!);
        if (m === null) continue;
        const delta = f.fields[i + 1]!;
        if (m.kind === 'd')
          changes.push(
            'd',
            m.campaign,
            `${m.day}${deliveryRowField(m.creative, m.channel, m.metric)}`,
            delta,
          );
        else changes.push('l', m.campaign, `${m.arm}|${m.what}`, delta);
      }
      if (f.marker === epoch) {
        for (let i = 0; i < f.fields.length; i += 2) {
          if (f.fields[i]!.startsWith('[')) continue;
          const parts = f.fields[i]!.split('|');
          const delta = f.fields[i + 1]!;
          const brand = names[Number(parts[1])];
          if (parts[0] === 's') {
            const stage = names[Number(parts[2])];
            if (brand !== undefined && stage !== undefined) changes.push('s', brand, stage, delta);
            else this.lostChanges++;
          } else {
            const from = names[Number(parts[3])];
            const to = names[Number(parts[4])];
            if (brand !== undefined && from !== undefined && to !== undefined)
              changes.push('m', brand, `${parts[2]}|${from}>${to}`, delta);
            else this.lostChanges++;
          }
        }
      } else {
        for (let i = 0; i < f.fields.length; i += 2) if (!f.fields[i]!.startsWith('[')) this.lostChanges++;
      }
      args.push(f.slot, f.gen, changes.length / 4, ...changes);
      if (++count >= FOLD_APPLY_GROUP) {
        groups.push(args);
        args = [];
        count = 0;
      }
    }
    if (args.length > 0) groups.push(args);
    for (const group of groups)
      await this.client.script(
        APPLY,
        [this.keys.folds],
        [prefix, this.movesTtlMs, this.measureRetentionMs, ...group],
      );
    await Promise.all(
      folds.map((run, r) => {
        if (run.length === 0) return null;
        const pairs: Arg[] = [];
        for (const f of run) pairs.push(this.keys.slotKeysTag(f.slot), f.gen);
        return this.client.script(CLEAR, [this.keys.pendingCounts(runs[r]![0])], [prefix, ...pairs]);
      }),
    );
  }
}

/** A hash of counts as numbers. */
function numbers(hash: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(hash)) setOwn(out, key, Number(hash[key]));
  return out;
}
