/**
 * The data plane on a real listener, over each store: the embedded one, a real redis-server and
 * a real Redis Cluster (3 masters with a replica each) started for the test on free ports. The
 * same contract suite runs against all three.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { RedisStore } from '../server/store/redis.js';
import {
  CONTRACT_NOW,
  type DecideTarget,
  describeDecideContract,
  seedContractPeople,
} from './decide.contract.js';
import { postJson } from './http.js';
import { type RedisHandle, startRedis } from './redis-server.js';
import { clusterTarget, type RedisTarget } from './redis-targets.js';

const quiet = () => {};

describe('embedded store', () => {
  let server: RunningServer;
  beforeAll(async () => {
    const config = loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', DEMO_PEOPLE: '50' });
    server = await startServer(config, { log: quiet, now: () => CONTRACT_NOW });
    await seedContractPeople(server.store);
  });
  afterAll(() => server.close());
  describeDecideContract(
    'embedded store',
    (): DecideTarget => ({ port: server.dataPort, store: server.store }),
  );
});

describe('Redis Cluster store', () => {
  let target: RedisTarget;
  let server: RunningServer;
  beforeAll(async () => {
    target = await clusterTarget();
    const config = loadConfig({
      PORT: '0',
      ADMIN_PORT: '0',
      HOST: '127.0.0.1',
      REDIS_CLUSTER_NODES: target.cluster!.seeds,
      DECISION_DEADLINE_MS: '20',
      CACHE_TTL_MS: '50',
    });
    server = await startServer(config, { log: quiet, now: () => CONTRACT_NOW });
    await seedContractPeople(server.store);
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await target?.stop();
  });
  describeDecideContract(
    'Redis Cluster store',
    (): DecideTarget => ({ port: server.dataPort, store: server.store }),
  );
});

describe('Redis store', () => {
  let redis: RedisHandle;
  let server: RunningServer;
  beforeAll(async () => {
    redis = await startRedis();
    const config = loadConfig({
      PORT: '0',
      ADMIN_PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      DECISION_DEADLINE_MS: '20',
      CACHE_TTL_MS: '50',
    });
    server = await startServer(config, { log: quiet, now: () => CONTRACT_NOW });
    await seedContractPeople(server.store);
  });
  afterAll(async () => {
    await server?.close();
    await redis?.stop();
  });
  describeDecideContract('Redis store', (): DecideTarget => ({ port: server.dataPort, store: server.store }));

  it('answers degraded inside the deadline while Redis is down, and normally once it is back', async () => {
    const url = `http://127.0.0.1:${server.dataPort}/v1/decide`;
    const body = {
      user: { id: 'p-degraded' },
      placements: [{ id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] }],
      context: { tags: ['circle:mobile-gamer'] },
    };
    const store = new RedisStore({ url: redis.url });
    await store.putProfile({
      id: 'p-degraded',
      tags: ['circle:business'],
      attrs: { price_band: 9000 },
      stages: { vivo: 'appeal' },
    });
    await store.close();
    const normal = await postJson(url, body);
    expect(normal.body.degraded).toBeUndefined();
    expect(normal.body.decisions[0].segment).toBe('highend-business');

    await redis.kill();
    await new Promise((r) => setTimeout(r, 100)); // let cached entries expire
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const r = await postJson(url, body);
      const elapsed = performance.now() - t0;
      expect(r.status).toBe(200);
      expect(r.body.degraded).toBe(true);
      // Decided on the context tags alone.
      expect(r.body.decisions[0]).toMatchObject({ campaign: 'x90-launch', segment: 'mobile-gamer' });
      expect(elapsed).toBeLessThan(500); // a generous bound: the deadline is 20 ms, this machine is shared
    }
    const ready = await fetch(`http://127.0.0.1:${server.adminPort}/readyz`);
    expect(ready.status).toBe(503);

    await redis.restart();
    const store2 = new RedisStore({ url: redis.url });
    await store2.putProfile({
      id: 'p-degraded',
      tags: ['circle:business'],
      attrs: { price_band: 9000 },
      stages: { vivo: 'appeal' },
    });
    await store2.close();
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      const r = await postJson(url, body);
      back = r.body.degraded === undefined && r.body.decisions[0].segment === 'highend-business';
      if (!back) await new Promise((res) => setTimeout(res, 100));
    }
    expect(back).toBe(true);
    expect((await fetch(`http://127.0.0.1:${server.adminPort}/readyz`)).status).toBe(200);
  });
});
