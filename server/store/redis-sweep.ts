/**
 * Erasing from the Redis store's string dictionary (dictionary.ts) the strings that only deleted
 * people held, so that nothing of a person stays after a DELETE (RedisStore.sweepDictionary
 * delegates here; RedisStore.forgetPerson notes the person's strings here first).
 *
 * A string is kept once for every person who holds it, and writes in flight carry its id, so a
 * delete cannot erase its strings there and then: it notes their ids (`dict:gone:{ms}`,
 * redis-keys.ts) before the person goes, and a sweep later erases those no one holds any more. A
 * sweep is one in the fleet at a time (a lease, `dict:sweep:{ms}`), taken every `sweepEveryMs` by
 * the stores asked to (the control plane's).
 *
 * The steps, and why each is safe against writes in flight, are told at sweepDictionary below: a
 * retirement reaches every process with the store's identity (redis-identity.ts), and pending
 * funnel counts, which name stages by id, are folded before they are read (redis-funnel.ts).
 */

import type { Redis } from 'ioredis';
import { DEL_IF_EQUALS_LUA, DICT_ERASE_LUA, DICT_RETIRE_LUA } from './lua.js';
import { personIds } from './person-format.js';
import { newEpoch, type RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { luaScript } from './resp.js';

/** What a sweep needs of the rest of the store. */
export interface SweepHost {
  /** Waits for the connection and for the store's identity and dictionary to be learnt. */
  ready(): Promise<void>;
  /** Reads the store's identity now, and with it which ids are retiring (this process hears at once). */
  checkIdentity(): Promise<unknown>;
  /** Gathers the pending funnel counts into the global counts. */
  foldCounts(): Promise<void>;
}

/** Ids per SADD when a deleted person's strings are noted. */
const CANDIDATES_PER_CALL = 5000;
/** Ids one dictionary sweep checks at most. */
const SWEEP_BATCH = 100_000;
/**
 * How long a sweep waits between retiring ids and reading who holds them: every process hears of
 * it within a second (the identity check), and a write it encoded before takes at most its
 * command timeout (3 s) to land, twice when its slot's marker is checked first.
 */
const SWEEP_GRACE_MS = 10_000;
/** Keys per SCAN step and per pipeline of reads in a sweep. */
const SCAN_COUNT = 1000;

const DEL_IF_EQUALS = luaScript(DEL_IF_EQUALS_LUA);
const RETIRE = luaScript(DICT_RETIRE_LUA);
const ERASE = luaScript(DICT_ERASE_LUA);

export class DictionarySweep {
  private erased = 0;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly store: SweepHost,
  ) {}

  /** Strings this process's sweeps erased from the dictionary. */
  get erasedStrings(): number {
    return this.erased;
  }

  /** Notes the ids of the strings a person holds as candidates for erasure (before it is deleted). */
  async noteStringsOf(pid: string): Promise<void> {
    const value = await this.client.main.getBuffer(this.keys.person(pid));
    const ids = value === null ? null : personIds(value);
    if (ids !== null && ids.length > 0) {
      const distinct = [...new Set(ids)];
      for (let i = 0; i < distinct.length; i += CANDIDATES_PER_CALL)
        await this.client.main.sadd(this.keys.dictGone, ...distinct.slice(i, i + CANDIDATES_PER_CALL));
    }
  }

  /**
   * Erases from the string dictionary the strings that only deleted people held, so that nothing
   * of a person stays after a DELETE. Deleting a person notes the ids of its strings
   * (`dict:gone`); a sweep, one in the fleet at a time (a lease of `leaseMs`):
   *  1. moves up to `batch` of them to `dict:retiring` and raises the `retire` generation: within
   *     a second every process hears of it with the identity, and from then asks Redis for those
   *     strings before writing them (which keeps a string asked for);
   *  2. waits `graceMs`, longer than a write encoded before a process heard takes to land
   *     (commands time out after 3 s and are not replayed);
   *  3. gathers the pending funnel counts (they name stages by id), then reads every person value
   *     and pending count of every master, and keeps the ids still held;
   *  4. erases the strings of the others that are still retiring, ends the retirement and raises
   *     the generation again (processes forget what they knew of those ids).
   * A sweep that fails part-way erases nothing; the ids stay retiring for the next one. Returns
   * null when another instance holds the lease, else what it did.
   */
  async sweepDictionary(
    opts: { leaseMs?: number; graceMs?: number; batch?: number } = {},
  ): Promise<{ checked: number; erased: number } | null> {
    await this.store.ready();
    const leaseMs = Math.max(1000, opts.leaseMs ?? 600_000);
    const lease = newEpoch();
    const main = this.client.main;
    if ((await main.set(this.keys.dictSweepLease, lease, 'PX', leaseMs, 'NX')) === null) return null;
    try {
      const retiring = (
        (await this.client.script(
          RETIRE,
          [this.keys.dictGone, this.keys.dictRetiring, this.keys.meta],
          [Math.max(1, opts.batch ?? SWEEP_BATCH)],
        )) as string[]
      ).map(Number);
      if (retiring.length === 0) return { checked: 0, erased: 0 };
      await this.store.checkIdentity();
      await sleep(opts.graceMs ?? SWEEP_GRACE_MS);
      await this.store.foldCounts();
      const held = await this.heldIds(new Set(retiring));
      const gone = retiring.filter((id) => !held.has(id));
      const erased = Number(
        await this.client.script(
          ERASE,
          [this.keys.dict, this.keys.dictNames, this.keys.dictRetiring, this.keys.meta],
          gone,
        ),
      );
      this.erased += erased;
      await this.store.checkIdentity();
      return { checked: retiring.length, erased };
    } finally {
      // Ends the lease only if it is still this sweep's.
      await this.client.script(DEL_IF_EQUALS, [this.keys.dictSweepLease], [lease]).catch(() => {});
    }
  }

  /** Which of `wanted` some stored person or pending funnel count holds. */
  private async heldIds(wanted: ReadonlySet<number>): Promise<Set<number>> {
    const held = new Set<number>();
    const note = (id: number) => {
      if (wanted.has(id)) held.add(id);
    };
    const prefix = globEscape(this.keys.prefix);
    for (const node of this.client.masters()) {
      await scanKeys(node, `${prefix}p:{*`, async (keys) => {
        // One GET a key, pipelined (on Redis Cluster a node's keys are of many slots: no MGET).
        const pipe = node.pipeline();
        for (const key of keys) pipe.getBuffer(key);
        for (const [err, value] of (await pipe.exec()) ?? []) {
          if (err) throw err;
          if (!(value instanceof Uint8Array)) continue;
          const ids = personIds(value);
          if (ids === null) continue;
          for (const id of ids) note(id);
        }
      });
      await scanKeys(node, `${prefix}f[qf]:{*`, async (keys) => {
        for (const key of keys) {
          for (const field of await node.hkeys(key)) {
            // `s|brand|stage` and `m|brand|day|from|to` (lua.ts): every part but the day an id.
            const parts = field.split('|');
            parts.forEach((part, i) => {
              if (i > 0 && !(parts[0] === 'm' && i === 2)) note(Number(part));
            });
          }
        }
      });
    }
    return held;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `text` matched literally in a SCAN pattern. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** Every key of one node that matches `pattern`, handed over a SCAN step at a time. */
async function scanKeys(
  node: Redis,
  pattern: string,
  take: (keys: string[]) => Promise<void>,
): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    if (keys.length > 0) await take(keys);
  } while (cursor !== '0');
}
