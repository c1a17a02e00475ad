import { describe, expect, it } from 'vitest';
import { type DictionaryBackend, StringDictionary } from './dictionary.js';

/** A dictionary as Redis keeps it, with a log of the round trips made to it. */
class FakeRedis implements DictionaryBackend {
  epoch = 'e1';
  ids = new Map<string, number>();
  names: string[] = [];
  calls: string[] = [];

  async assign(names: readonly string[]): Promise<{ epoch: string; ids: number[] }> {
    this.calls.push(`assign ${names.length}`);
    return {
      epoch: this.epoch,
      ids: names.map((name) => {
        let id = this.ids.get(name);
        if (id === undefined) {
          id = this.names.length;
          this.ids.set(name, id);
          this.names.push(name);
        }
        return id;
      }),
    };
  }

  async lookup(ids: readonly number[]): Promise<{ epoch: string; names: Array<string | null> }> {
    this.calls.push(`lookup ${ids.length}`);
    return { epoch: this.epoch, names: ids.map((id) => this.names[id] ?? null) };
  }

  /** As after a restart without persistence. */
  lose(epoch: string): void {
    this.epoch = epoch;
    this.ids = new Map();
    this.names = [];
  }
}

describe('string dictionary', () => {
  it('asks Redis only for the strings it does not know, all of a batch at once', async () => {
    const redis = new FakeRedis();
    const dict = new StringDictionary(redis);
    expect(dict.epoch).toBe('');
    await dict.ensure(['a', 'b', 'a', 'c']);
    expect(redis.calls).toEqual(['assign 3']);
    expect([dict.idOf('a'), dict.idOf('b'), dict.idOf('c'), dict.idOf('d')]).toEqual([0, 1, 2, undefined]);
    expect(dict.epoch).toBe('e1');
    await dict.ensure(['c', 'a']);
    await dict.ensure([]);
    expect(redis.calls).toEqual(['assign 3']);
    await dict.ensure(['d', 'a']);
    expect(redis.calls).toEqual(['assign 3', 'assign 1']);
    expect(dict.names).toEqual(['a', 'b', 'c', 'd']);
    expect(dict.size).toBe(4);
  });

  it('learns the ids it meets, once, and leaves ids Redis does not have unknown', async () => {
    const redis = new FakeRedis();
    await redis.assign(['a', 'b', 'c', 'd', 'e']);
    redis.calls = [];
    const dict = new StringDictionary(redis);
    await dict.load([4, 1, 4, 99, -1, 1.5]);
    expect(redis.calls).toEqual(['lookup 3']);
    expect(dict.names).toEqual([undefined, 'b', undefined, undefined, 'e']);
    expect(dict.idOf('e')).toBe(4);
    await dict.load([1, 4]);
    expect(redis.calls).toEqual(['lookup 3', 'lookup 0']);
    // Holes are filled as ids arrive, whatever the order.
    await dict.load([0, 2, 3]);
    expect(dict.names).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('forgets everything when Redis answers from another dictionary', async () => {
    const redis = new FakeRedis();
    const dict = new StringDictionary(redis);
    await dict.ensure(['a', 'b']);
    redis.lose('e2');
    await redis.assign(['x']);
    await dict.ensure(['y']);
    expect(dict.epoch).toBe('e2');
    expect(dict.idOf('a')).toBeUndefined();
    expect(dict.idOf('y')).toBe(1);
    expect(dict.names).toEqual([undefined, 'y']);
    await dict.load([0]);
    expect(dict.names).toEqual(['x', 'y']);
    redis.lose('e3');
    await dict.load([]);
    expect(dict.epoch).toBe('e3');
    expect(dict.size).toBe(0);
    dict.forget();
    expect(dict.epoch).toBe('');
  });

  it('splits very many strings or ids over several round trips', async () => {
    const redis = new FakeRedis();
    const dict = new StringDictionary(redis);
    const many = Array.from({ length: 12_000 }, (_, i) => `s${i}`);
    await dict.ensure(many);
    expect(redis.calls).toEqual(['assign 5000', 'assign 5000', 'assign 2000']);
    expect(dict.idOf('s11999')).toBe(11_999);
    const other = new StringDictionary(redis);
    await other.load(many.map((_, i) => i));
    expect(redis.calls.slice(3)).toEqual(['lookup 5000', 'lookup 5000', 'lookup 2000']);
    expect(other.names).toEqual(many);
  });
});
