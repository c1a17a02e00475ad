/**
 * The string dictionary of the Redis store: every string of a stored person (tags, map keys,
 * string attribute values, time zones, brand and stage names) is kept once, as a small integer
 * id, and people hold the ids (person-format.ts, format 2).
 *
 * In Redis, under the store's key prefix, in the global slot (redis-keys.ts):
 *   dict:{ms}     hash: string -> id
 *   dict:r:{ms}   hash: id -> string, and `n` (ids handed out so far, the next id)
 *   meta:{ms}     the store's identity: its `epoch`, made when the store is first used
 * Ids are handed out only by DICT_ASSIGN_LUA, atomically, so every process sharing the store
 * agrees on them; an id never changes and is never reused while the store keeps its identity.
 *
 * Each process keeps what it has seen (string -> id, id -> string) and asks Redis only for what it
 * lacks: the strings of a batch of writes in one round trip (`ensure`), the ids met while decoding
 * in one round trip (`load`). The epoch tells a dictionary that was lost (a Redis restarted
 * without persistence, a flushed database) from the one this process knows: every answer of the
 * dictionary carries it, writes that carry ids are checked against the marker of their slot
 * (lua.ts), and a process that sees another epoch forgets everything it had.
 *
 * Strings only deleted people held are erased by a sweep (RedisStore.sweepDictionary). While it
 * checks them their ids are `retiring`: this process does not write them from what it knows but
 * asks Redis again (which keeps a string asked for), and once the sweep is over it forgets what it
 * knew of them (a string that stayed is learnt again when met).
 */

/** How the dictionary reaches Redis (the Redis store provides it). */
export interface DictionaryBackend {
  /** The ids of `names`, handed out for those that have none, and the dictionary's epoch. */
  assign(names: readonly string[]): Promise<{ epoch: string; ids: number[] }>;
  /** The strings of `ids` (null where there is none), and the epoch ('' when no dictionary exists). */
  lookup(ids: readonly number[]): Promise<{ epoch: string; names: Array<string | null> }>;
}

/** Strings or ids per round trip (a call with very many arguments is split). */
const CHUNK = 5000;

export class StringDictionary {
  private readonly backend: DictionaryBackend;
  private readonly onEpoch: (before: string, after: string) => void;
  private ids = new Map<string, number>();
  private list: Array<string | undefined> = [];
  private currentEpoch = '';
  /** Ids a dictionary sweep is checking: not written without asking Redis first. */
  private retiring = new Set<number>();

  /** `onEpoch` hears of every change of epoch this dictionary makes (not of the first one). */
  constructor(backend: DictionaryBackend, onEpoch: (before: string, after: string) => void = () => {}) {
    this.backend = backend;
    this.onEpoch = onEpoch;
  }

  /** id -> string, as far as this process knows (undefined where it does not). */
  get names(): readonly (string | undefined)[] {
    return this.list;
  }

  /** The epoch of the dictionary this process knows; '' before it has heard from Redis. */
  get epoch(): string {
    return this.currentEpoch;
  }

  /** Strings this process knows. */
  get size(): number {
    return this.ids.size;
  }

  /** The id to write for a string; undefined when this process must ask Redis for it first. */
  idOf(name: string): number | undefined {
    const id = this.ids.get(name);
    if (id === undefined || this.retiring.size === 0 || !this.retiring.has(id)) return id;
    return undefined;
  }

  /**
   * The ids a dictionary sweep is checking now (all of them: none when it is over). Ids that were
   * retiring and are no more were erased, or stay: what this process knew of them is forgotten.
   */
  retire(ids: Iterable<number>): void {
    const next = new Set(ids);
    for (const id of this.retiring) {
      if (next.has(id)) continue;
      const name = this.list[id];
      if (name === undefined) continue;
      this.list[id] = undefined;
      if (this.ids.get(name) === id) this.ids.delete(name);
    }
    this.retiring = next;
  }

  /** Forgets everything (the dictionary in Redis is not the one this process knew). */
  forget(): void {
    this.ids = new Map();
    this.list = [];
    this.retiring = new Set();
    this.currentEpoch = '';
  }

  /**
   * Gives every string of `names` an id this process knows: one round trip (one per 5,000 new
   * strings), none when it knows them all.
   */
  async ensure(names: Iterable<string>): Promise<void> {
    const wanted: string[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      if (this.idOf(name) !== undefined || seen.has(name)) continue;
      seen.add(name);
      wanted.push(name);
    }
    for (let from = 0; from < wanted.length; from += CHUNK) {
      const chunk = wanted.slice(from, from + CHUNK);
      const { epoch, ids } = await this.backend.assign(chunk);
      // A change of epoch between chunks forgets the earlier ones: the caller finds them missing.
      this.adopt(epoch);
      for (let i = 0; i < chunk.length; i++) {
        const id = ids[i];
        if (id === undefined) continue;
        this.set(id, chunk[i]!);
        // Asked for again: Redis keeps it.
        this.retiring.delete(id);
      }
    }
  }

  /**
   * Learns the strings of `ids` this process lacks (one round trip, one per 5,000 ids; with no
   * ids, only the epoch). Ids the dictionary does not have stay unknown.
   */
  async load(ids: Iterable<number>): Promise<void> {
    const wanted: number[] = [];
    const seen = new Set<number>();
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0 || this.list[id] !== undefined || seen.has(id)) continue;
      seen.add(id);
      wanted.push(id);
    }
    let from = 0;
    do {
      const chunk = wanted.slice(from, from + CHUNK);
      const { epoch, names } = await this.backend.lookup(chunk);
      this.adopt(epoch);
      for (let i = 0; i < chunk.length; i++) {
        const name = names[i];
        if (typeof name === 'string') this.set(chunk[i]!, name);
      }
      from += CHUNK;
    } while (from < wanted.length);
  }

  /**
   * Takes in a whole dictionary as Redis holds it (`dict:r`: every id with its string, and the
   * epoch), as a decision read brings it to a process that did not know it.
   */
  absorb(epoch: string, entries: Iterable<readonly [number, string]>): void {
    this.adopt(epoch);
    for (const [id, name] of entries) this.set(id, name);
  }

  /** Takes the epoch of an answer from Redis: another one than known means start afresh. */
  adopt(epoch: string): void {
    if (epoch === this.currentEpoch) return;
    const before = this.currentEpoch;
    this.forget();
    this.currentEpoch = epoch;
    if (before !== '') this.onEpoch(before, epoch);
  }

  private set(id: number, name: string): void {
    const list = this.list;
    // Kept dense (holes as undefined) so that look-ups stay on the fast path.
    while (list.length < id) list.push(undefined);
    list[id] = name;
    this.ids.set(name, id);
  }
}
