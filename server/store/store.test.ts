/**
 * Every store against the one contract: the embedded store, the Redis store on a real
 * redis-server started for this file, and the cache in front of each.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisHandle, startRedis } from '../../test/redis-server.js';
import { EmbeddedBus } from './bus.js';
import { CachedStore } from './cached.js';
import { describeStoreContract, type StoreFixture } from './contract.js';
import { EmbeddedStore } from './embedded.js';
import { RedisStore } from './redis.js';
import { EmbeddedRuleSets } from './rulesets.js';

const quiet = () => {};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => Promise<void> } {
  let t = start;
  return {
    now: () => t,
    advance: async (ms) => {
      t += ms;
    },
  };
}

/** Keys on the server whose name or string value mentions `text`. */
async function keysMentioning(client: Redis, text: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'COUNT', 1000);
    cursor = next;
    const pipe = client.pipeline();
    for (const key of keys) pipe.getBuffer(key);
    const values = (await pipe.exec()) ?? [];
    keys.forEach((key, i) => {
      const [err, value] = values[i] ?? [null, null];
      // Other types answer WRONGTYPE to GET: only their names matter here.
      const text2 = err === null && Buffer.isBuffer(value) ? value.toString('latin1') : '';
      if (key.includes(text) || text2.includes(text)) found.push(key);
    });
  } while (cursor !== '0');
  return found;
}

let prefixSerial = 0;
const freshPrefix = () => `t${process.pid}x${++prefixSerial}:`;

/** Rule sets and buses of an embedded fleet: one hub, a handle per instance. */
function embeddedFleet(): Pick<StoreFixture, 'ruleSets' | 'bus' | 'makeBus'> {
  const hub = new EmbeddedBus({ log: quiet });
  const bus = hub.attach();
  return { bus, ruleSets: new EmbeddedRuleSets({ bus }), makeBus: async () => hub.attach() };
}

describeStoreContract('EmbeddedStore', (): StoreFixture => {
  const clock = fakeClock();
  return { store: new EmbeddedStore({ now: clock.now }), advance: clock.advance, ...embeddedFleet() };
});

describeStoreContract('CachedStore over EmbeddedStore', (): StoreFixture => {
  const clock = fakeClock();
  const backing = new EmbeddedStore({ now: clock.now });
  return {
    store: new CachedStore(backing, { maxPeople: 1000, maxAliases: 1000, ttlMs: 100, now: clock.now }),
    advance: clock.advance,
    ...embeddedFleet(),
  };
});

describe('on a real redis-server', () => {
  let redis: RedisHandle;
  let admin: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url, { lazyConnect: false });
  });
  afterAll(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  describeStoreContract(
    'RedisStore',
    (): StoreFixture => ({
      store: new RedisStore({ url: redis.url, keyPrefix: freshPrefix(), log: quiet }),
      advance: sleep,
      keysMentioning: (text) => keysMentioning(admin, text),
    }),
  );

  describeStoreContract(
    'RedisStore without a key prefix',
    (): StoreFixture => ({
      store: new RedisStore({ url: redis.url, log: quiet }),
      advance: sleep,
      keysMentioning: (text) => keysMentioning(admin, text),
    }),
  );

  describeStoreContract(
    'CachedStore over RedisStore',
    (): StoreFixture => ({
      store: new CachedStore(new RedisStore({ url: redis.url, keyPrefix: freshPrefix(), log: quiet }), {
        maxPeople: 1000,
        maxAliases: 1000,
        ttlMs: 100,
      }),
      advance: sleep,
      keysMentioning: (text) => keysMentioning(admin, text),
    }),
  );

  it('lays keys out as documented, under the prefix and one hash tag per person', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: 'layout:', log: quiet });
    try {
      await store.putProfile({ id: 'p-7', tags: ['a'] });
      await store.recordImpression('p-7', 'x90-launch', 1_795_000_000_000, 3, 60_000);
      await store.linkAliases('p-7', { idfa: 'ABC', cookie: 'c1' });
      const keys = (await admin.keys('layout:*')).sort();
      expect(keys).toEqual([
        'layout:a:{cookie:c1}',
        'layout:a:{idfa:ABC}',
        'layout:ax:{p-7}',
        'layout:fc:{p-7}',
        'layout:p:{p-7}',
      ]);
      expect(await admin.get('layout:a:{idfa:ABC}')).toBe('p-7');
      expect((await admin.smembers('layout:ax:{p-7}')).sort()).toEqual(['cookie:c1', 'idfa:ABC']);
      expect(await admin.type('layout:fc:{p-7}')).toBe('hash');
      const pttl = await admin.pttl('layout:fc:{p-7}');
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);
      expect(await admin.hkeys('layout:fc:{p-7}')).toEqual(['x90-launch']);
      expect((await admin.hgetBuffer('layout:fc:{p-7}', 'x90-launch'))?.length).toBe(8);
      // Same slot for every key of the person.
      const slots = await Promise.all(
        ['p:{p-7}', 'fc:{p-7}', 'ax:{p-7}'].map((k) =>
          admin.call('CLUSTER', 'KEYSLOT', `layout:${k}`).catch(() => null),
        ),
      );
      if (slots[0] !== null) expect(new Set(slots).size).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('treats a corrupt stored value as absent and counts it', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: 'corrupt:', log: quiet });
    try {
      await admin.set('corrupt:p:{p-bad}', Buffer.from([0x93, 0x01, 0xff, 0xc1]));
      await admin.hset('corrupt:fc:{p-bad}', 'c', Buffer.from([1, 2, 3]), 'ok', Buffer.alloc(8));
      expect(await store.loadPerson('p-bad')).toEqual({ profile: null, counters: { ok: [0] } });
      expect(await store.getProfile('p-bad')).toBeNull();
      expect(store.stats().corruptValues).toBe(3);
      await admin.set('corrupt:p:{p-str}', 'just text');
      expect(await store.getProfile('p-str')).toBeNull();
    } finally {
      await store.close();
    }
  });

  it('writes the profiles of putProfiles in pipelined batches', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: 'batch:', batchSize: 7, log: quiet });
    try {
      const profiles = Array.from({ length: 50 }, (_, i) => ({ id: `b-${i}`, tags: [`t${i}`] }));
      await store.putProfiles(profiles);
      expect((await admin.keys('batch:p:*')).length).toBe(50);
      expect(await store.getProfile('b-49')).toEqual({ id: 'b-49', tags: ['t49'] });
    } finally {
      await store.close();
    }
  });

  it('records impressions atomically under concurrency', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: 'atomic:', log: quiet });
    try {
      const t0 = 1_795_000_000_000;
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => store.recordImpression('p-a', 'c', t0 + i, 50, 3_600_000)),
      );
      const { counters } = await store.loadPerson('p-a');
      expect(counters.c).toEqual(Array.from({ length: 50 }, (_, i) => t0 + 150 + i));
    } finally {
      await store.close();
    }
  });
});

describe('RedisStore when Redis fails', () => {
  let redis: RedisHandle;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('fails fast while Redis is down and reconnects by itself when it is back', async () => {
    const lines: string[] = [];
    const store = new RedisStore({
      url: redis.url,
      keyPrefix: 'fail:',
      log: (l) => lines.push(l),
      maxRetryDelayMs: 200,
    });
    try {
      await store.putProfile({ id: 'p-1', tags: ['a'] });
      expect((await store.loadPerson('p-1')).profile).toEqual({ id: 'p-1', tags: ['a'] });

      await redis.kill();
      // Give the client a moment to see the connection drop.
      await sleep(50);
      const operations: Array<[string, () => Promise<unknown>]> = [
        ['loadPerson', () => store.loadPerson('p-1')],
        ['resolveAlias', () => store.resolveAlias('idfa', 'x')],
        ['getProfile', () => store.getProfile('p-1')],
        ['putProfile', () => store.putProfile({ id: 'p-2', tags: [] })],
        ['putProfiles', () => store.putProfiles([{ id: 'p-3', tags: [] }])],
        ['linkAliases', () => store.linkAliases('p-1', { idfa: 'x' })],
        ['recordImpression', () => store.recordImpression('p-1', 'c', 1, 3, 1000)],
        ['forgetPerson', () => store.forgetPerson('p-1')],
        ['ping', () => store.ping()],
      ];
      for (let round = 0; round < 3; round++) {
        for (const [name, op] of operations) {
          const t0 = performance.now();
          const outcome = await op().then(
            () => 'resolved',
            () => 'rejected',
          );
          const elapsed = performance.now() - t0;
          expect(`${name}: ${outcome}`).toBe(`${name}: rejected`);
          expect(elapsed).toBeLessThan(1000); // generous: it fails at once, the machine is shared
        }
        await sleep(150);
      }
      expect(lines.some((l) => /Redis/.test(l))).toBe(true);
      expect(store.stats().status).not.toBe('ready');

      await redis.restart();
      let back = false;
      for (let i = 0; i < 100 && !back; i++) {
        back = await store.ping().then(
          () => true,
          () => false,
        );
        if (!back) await sleep(100);
      }
      expect(back).toBe(true);
      // The server came back empty (no persistence): the store works as before.
      expect(await store.loadPerson('p-1')).toEqual({ profile: null, counters: {} });
      await store.putProfile({ id: 'p-1', tags: ['b'] });
      await store.recordImpression('p-1', 'c', 5, 3, 60_000);
      expect(await store.loadPerson('p-1')).toEqual({
        profile: { id: 'p-1', tags: ['b'] },
        counters: { c: [5] },
      });
      expect(lines.some((l) => /ready again/.test(l))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('rejects quickly when nothing listens at all, and can be used right after construction', async () => {
    const dead = await startRedis();
    const port = dead.port;
    await dead.stop();
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, log: quiet });
    try {
      const t0 = performance.now();
      await expect(store.ping()).rejects.toThrow();
      await expect(store.loadPerson('p-1')).rejects.toThrow();
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      await store.close();
    }
  });

  it('closes cleanly while Redis is down', async () => {
    const store = new RedisStore({ url: redis.url, log: quiet });
    await store.ping();
    await redis.kill();
    await sleep(50);
    await store.close();
    await store.close();
    await redis.restart();
  });
});
