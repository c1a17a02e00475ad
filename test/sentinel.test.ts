/**
 * Redis Sentinel for teams that do not shard: one master with a replica and a sentinel, all real.
 * The store contract runs on it; the server follows the sentinel's failover by itself, answering
 * degraded meanwhile, and loses no acknowledged event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { describeStoreContract } from '../server/store/contract.js';
import { RedisStore } from '../server/store/redis.js';
import { RedisBus } from '../server/store/redis-bus.js';
import { RedisRuleSets } from '../server/store/redis-rulesets.js';
import { type SentinelHandle, startSentinel } from './redis-sentinel.js';

const quiet = () => {};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

describe('Redis Sentinel', () => {
  let sentinel: SentinelHandle;
  beforeAll(async () => {
    sentinel = await startSentinel({ downAfterMs: 1000 });
  }, 60_000);
  afterAll(async () => {
    await sentinel?.stop();
  });
  const topology = () => ({
    kind: 'sentinel' as const,
    sentinels: [sentinel.sentinels],
    master: sentinel.name,
    url: 'redis://localhost',
  });

  let serial = 0;
  describeStoreContract('RedisStore through Redis Sentinel', () => {
    const store = new RedisStore({ topology: topology(), keyPrefix: `sn${++serial}:`, log: quiet });
    const bus = new RedisBus({ store, log: quiet });
    return {
      store,
      bus,
      ruleSets: new RedisRuleSets({ store, bus }),
      advance: sleep,
      dispose: async () => {
        await bus.close();
        await store.close();
      },
    };
  });

  it('follows a failover by itself: degraded meanwhile, no acknowledged event lost', async () => {
    const config = loadConfig({
      PORT: '0',
      ADMIN_PORT: '0',
      HOST: '127.0.0.1',
      REDIS_SENTINELS: sentinel.sentinels,
      REDIS_SENTINEL_MASTER: sentinel.name,
      REDIS_KEY_PREFIX: 'failover:',
      CACHE_TTL_MS: '1',
    });
    const server: RunningServer = await startServer(config, { log: quiet });
    try {
      await server.store.putProfile({
        id: 'sn-1',
        tags: ['circle:business'],
        attrs: { price_band: 6000 },
        stages: { vivo: 'appeal' },
      });
      const decide = async () => {
        const res = await fetch(`http://127.0.0.1:${server.dataPort}/v1/decide`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: { id: 'sn-1' }, placements: [BANNER] }),
        });
        return (await res.json()) as { degraded?: boolean; decisions: Array<{ campaign: string | null }> };
      };
      expect((await decide()).degraded).toBeUndefined();
      const events = (from: number) =>
        Array.from({ length: 5 }, (_, k) => ({
          eventId: `sn-ev-${from + k}`,
          type: 'impression',
          user: { id: 'sn-1' },
          campaign: 'x90-launch',
          at: Date.now() - 60_000,
        }));
      const send = (from: number) =>
        fetch(`http://127.0.0.1:${server.adminPort}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ events: events(from) }),
        });
      expect((await send(0)).status).toBe(200);

      const first = await sentinel.masterPort();
      const old = sentinel.servers.find((s) => s.port === first)!;
      await old.kill();
      // Until the sentinel promotes the replica and the server follows it: degraded answers.
      const t0 = performance.now();
      let sawDegraded = false;
      let back = false;
      while (!back && performance.now() - t0 < 20_000) {
        const answer = await decide();
        if (answer.degraded === true) sawDegraded = true;
        else if (sawDegraded) back = true;
        await sleep(50);
      }
      expect(sawDegraded).toBe(true);
      expect(back).toBe(true);
      expect(await sentinel.masterPort()).not.toBe(first);
      expect((await fetch(`http://127.0.0.1:${server.adminPort}/readyz`)).status).toBe(200);
      // The events acknowledged before the failover are on the new master; new ones land too.
      const again = await send(0);
      expect(await again.json()).toMatchObject({ applied: 0, duplicates: 5 });
      expect(await (await send(5)).json()).toMatchObject({ applied: 5 });
      const { counters } = await server.backend.people.loadPerson('sn-1');
      expect(counters['x90-launch']?.length).toBe(10);
    } finally {
      await server.close(0, 0);
    }
  }, 60_000);
});
