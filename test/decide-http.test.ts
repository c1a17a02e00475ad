/**
 * The data plane on a real listener, over each store: the embedded one, a real redis-server and
 * a real Redis Cluster (3 masters with a replica each) started for the test on free ports. The
 * same contract suite runs against all three.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../server/store/redis.js';
import { describeDecideContract, seedContractPeople } from './decide.contract.js';
import { postJson } from './http.js';
import { serverOver, type TestServer } from './server-kit.js';

/** Over Redis: a short deadline, and cached people that expire soon after Redis goes away. */
const OVER_REDIS = { DECISION_DEADLINE_MS: '20', CACHE_TTL_MS: '50' };

describe('embedded store', () => {
  let kit: TestServer;
  beforeAll(async () => {
    kit = await serverOver('embedded', { DEMO_PEOPLE: '50' }, { seed: seedContractPeople });
  });
  afterAll(() => kit.close());
  describeDecideContract('embedded store', () => kit);
});

describe('Redis Cluster store', () => {
  let kit: TestServer;
  beforeAll(async () => {
    kit = await serverOver('cluster', OVER_REDIS, { seed: seedContractPeople });
  }, 60_000);
  afterAll(() => kit?.close());
  describeDecideContract('Redis Cluster store', () => kit);
});

describe('Redis store', () => {
  let kit: TestServer<'redis'>;
  beforeAll(async () => {
    kit = await serverOver('redis', OVER_REDIS, { seed: seedContractPeople });
  });
  afterAll(() => kit?.close());
  describeDecideContract('Redis store', () => kit);

  it('answers degraded inside the deadline while Redis is down, and normally once it is back', async () => {
    const url = `${kit.dataUrl}/v1/decide`;
    const body = {
      user: { id: 'p-degraded' },
      placements: [{ id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] }],
      context: { tags: ['circle:mobile-gamer'] },
    };
    const store = new RedisStore({ url: kit.redis.url });
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

    await kit.redis.kill();
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
    const ready = await fetch(`${kit.adminUrl}/readyz`);
    expect(ready.status).toBe(503);

    await kit.redis.restart();
    const store2 = new RedisStore({ url: kit.redis.url });
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
    expect((await fetch(`${kit.adminUrl}/readyz`)).status).toBe(200);
  });
});
