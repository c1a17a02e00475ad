/**
 * The Redis store's identity, as one process knows it: what tells a store that lost its data from
 * the one this process has been writing to (RedisStore's onReset, checkIdentity and the marker
 * checks of its reads and writes rest on it).
 *
 * The store's epoch (`meta:{ms}`, redis-keys.ts) is made on first use and read again every second
 * (`identityEveryMs`); a new epoch means the store lost its data (a Redis restarted without
 * persistence, a flushed database, a shard lost with its replicas). The string dictionary
 * (dictionary.ts) carries the epoch it comes from: a new one makes it forget what it knew, and
 * the listeners of `onReset` hear of it (the server drops its cache, says so in a metric and
 * restores its rule set). The same read tells when a dictionary sweep (redis-sweep.ts) begins or
 * ends, and which ids it is checking.
 *
 * Every slot carries a marker naming the dictionary its ids come from (lua.ts). A read that finds
 * another one than this process knows checks the identity (`verifyEpoch`: one check in flight is
 * shared) and either learns the dictionary again (it changed: the store lost its data and was
 * written anew) or treats the value as lost (its ids come from a dictionary the store no longer
 * has). Writes are checked against the marker the same way (`marked`).
 *
 * Until the identity, and the dictionary when it is not large, have been learnt once, the store is
 * not `ready`: its commands wait for that (and fail while Redis is down).
 */

import type { StringDictionary } from './dictionary.js';
import { DICT_ALL_LUA, IDENTITY_LUA, NO_MARKER, STALE_DICTIONARY } from './lua.js';
import { newEpoch, type RedisClient, RedisUnavailableError } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { luaScript } from './resp.js';

/** What the store's identity says. */
export interface StoreIdentity {
  epoch: string;
  createdAt: number;
}

/** A store that lost its data, as an instance sees it: the identity before and after. */
export interface StoreReset {
  before: string;
  after: string;
}

/** A write refused: its slot's values come from a dictionary the store has lost (re-import them). */
export class StoreDataLostError extends RedisUnavailableError {}

/** The ids of a write came from a dictionary the store no longer has: encode again. */
export class StaleIds extends Error {}

export interface RedisIdentityOptions {
  /** The largest dictionary loaded whole when the store starts (beyond it, ids are asked for as met). */
  dictionaryAtStart: number;
  log: (line: string) => void;
}

const IDENTITY = luaScript(IDENTITY_LUA);
const ALL = luaScript(DICT_ALL_LUA);

export class RedisIdentity {
  private readonly resetListeners = new Set<(reset: StoreReset) => void>();
  /** Learning the identity and the dictionary, once the client is up; null when done. */
  private learning: Promise<void> | null = null;
  private learntOnce = false;
  /** A check of the identity in flight, and when it was sent. */
  private verifying: { sent: number; epoch: Promise<string> } | null = null;
  private resetCount = 0;
  /** The dictionary sweeps' generation this process last heard of (meta `retire`). */
  private retireGen = '';

  /** Starts learning the identity and the dictionary as soon as the client first connects. */
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    /** The strings of stored people, as far as this process knows them. */
    private readonly dict: StringDictionary,
    private readonly opts: RedisIdentityOptions,
  ) {
    this.learning = this.learnWhenUp();
  }

  /** Whether the identity and the dictionary have been learnt (the store has settled). */
  get learnt(): boolean {
    return this.learntOnce;
  }

  /** Times the store's identity changed under this process (it lost its data). */
  get resets(): number {
    return this.resetCount;
  }

  /** Hears of the store losing its data (its identity changed). Returns a function to stop. */
  onReset(listener: (reset: StoreReset) => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  /**
   * The store's identity as Redis has it now (made when there is none): a new one than this
   * process knew means the store lost its data, which resets what this process learnt.
   */
  async checkIdentity(): Promise<StoreIdentity> {
    await this.client.up();
    const [epoch, createdAt, retire] = (await this.client.script(
      IDENTITY,
      [this.keys.meta],
      [newEpoch(), Date.now()],
    )) as [string, string, string | null];
    this.dict.adopt(epoch);
    const gen = retire ?? '0';
    if (gen !== this.retireGen) {
      // A dictionary sweep began or ended: which ids it is checking now.
      const retiring = await this.client.main.smembers(this.keys.dictRetiring);
      this.dict.retire(retiring.map(Number));
      this.retireGen = gen;
    }
    return { epoch, createdAt: Number(createdAt) };
  }

  /** Waits for the connection and for the identity and dictionary to be learnt; fails while down. */
  async ready(): Promise<void> {
    await this.client.up();
    // The learning started with the store gives up quietly when Redis is away: learn again.
    while (!this.learntOnce) {
      this.learning ??= this.learn();
      await this.learning;
    }
  }

  /**
   * The store's identity as Redis has it after the moment `since` (performance.now()): a check
   * in flight that was sent after it is shared, otherwise one is sent. Learns it when it changed.
   */
  verifyEpoch(since: number): Promise<string> {
    const running = this.verifying;
    if (running !== null && running.sent >= since) return running.epoch;
    const sent = performance.now();
    const check: { sent: number; epoch: Promise<string> } = {
      sent,
      epoch: this.checkIdentity().then((id) => id.epoch),
    };
    const clear = () => {
      if (this.verifying === check) this.verifying = null;
    };
    check.epoch.then(clear, clear);
    this.verifying = check;
    return check.epoch;
  }

  /** The store lost its data (the dictionary saw its epoch change): tell the listeners. */
  reset(before: string, after: string): void {
    this.resetCount++;
    this.opts.log(
      `the Redis store lost its data: its identity was ${before}, now ${after}; cached strings are forgotten, values written before are lost`,
    );
    for (const listener of this.resetListeners) {
      try {
        listener({ before, after });
      } catch (e) {
        this.opts.log(`a store reset listener failed: ${(e as Error).message}`);
      }
    }
  }

  /**
   * Sends a write that carries ids of the dictionary of `epoch` (`send(confirmed)`); when its slot
   * has no marker yet, checks the identity and sends it again saying so; when the marker names
   * another dictionary, StaleIds (this process's ids are out of date: encode again) or
   * StoreDataLostError (the slot's values come from a dictionary the store lost).
   */
  async marked<T>(epoch: string, send: (confirmed: '0' | '1') => Promise<T>): Promise<T> {
    let confirmed: '0' | '1' = '0';
    for (;;) {
      try {
        return await send(confirmed);
      } catch (err) {
        const refused = markerRefusal(err);
        if (refused === null) throw err;
        const current = await this.verifyEpoch(performance.now());
        if (current !== epoch) throw new StaleIds();
        if (refused === NO_MARKER && confirmed === '0') {
          confirmed = '1';
          continue;
        }
        throw new StoreDataLostError(
          'this part of the store holds values written with a string dictionary the store has lost; empty the store and import its people again',
        );
      }
    }
  }

  /** Learns the identity and dictionary as soon as the client first connects (not before). */
  private async learnWhenUp(): Promise<void> {
    try {
      await this.client.up();
      await this.learn();
    } catch {
      // Down at start: the first command that needs the store learns them.
    } finally {
      this.learning = null;
    }
  }

  /** The identity, and the whole dictionary when it is not large. */
  private async learn(): Promise<void> {
    try {
      await this.checkIdentity();
      const [epoch, flat] = (await this.client.script(
        ALL,
        [this.keys.dictNames, this.keys.meta],
        [this.opts.dictionaryAtStart],
      )) as [string, string[] | undefined];
      if (Array.isArray(flat)) {
        const entries: Array<[number, string]> = [];
        for (let i = 0; i + 1 < flat.length; i += 2) {
          if (/^\d+$/.test(flat[i]!)) entries.push([Number(flat[i]), flat[i + 1]!]);
        }
        this.dict.absorb(epoch, entries);
      } else this.dict.adopt(epoch);
      this.learntOnce = true;
    } finally {
      this.learning = null;
    }
  }
}

/** NO_MARKER or STALE_DICTIONARY when a write was refused for its slot's marker; null otherwise. */
function markerRefusal(err: unknown): string | null {
  if (!(err instanceof Error)) return null;
  if (err.message.startsWith(NO_MARKER)) return NO_MARKER;
  if (err.message.startsWith(STALE_DICTIONARY)) return STALE_DICTIONARY;
  return null;
}
