/**
 * Running on a real Redis Cluster (3 masters with a replica each) as an operator would: the seed
 * and import commands, a shard that is down (both its master and its replica), and Redis of the
 * wrong kind named in the configuration; and a Redis that is away when the server starts.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../server/app.js';
import { runImport } from '../server/cli/import.js';
import { seed } from '../server/cli/seed.js';
import { DEMO_RULESET, loadConfig } from '../server/config.js';
import { demoAliases, demoProfile } from '../server/demo/profiles.js';
import { RedisStore } from '../server/store/redis.js';
import { slotOf } from '../server/store/slots.js';
import { type ClusterHandle, startCluster } from './redis-cluster.js';
import { startRedis } from './redis-server.js';

const quiet = () => {};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

async function* chunks(...parts: string[]): AsyncIterable<string> {
  for (const p of parts) yield p;
}

describe('on a real Redis Cluster', () => {
  let cluster: ClusterHandle;
  beforeAll(async () => {
    cluster = await startCluster({ nodeTimeoutMs: 1000 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  const topology = () => ({
    kind: 'cluster' as const,
    nodes: cluster.seeds.split(','),
    url: 'redis://localhost',
  });

  it('seeds the demo people and imports a file with the same commands as on one Redis', async () => {
    const lines: string[] = [];
    const env = { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_KEY_PREFIX: 'deploy:', DEMO_PEOPLE: '600' };
    expect(await seed(env, (l) => lines.push(l))).toBe(0);
    expect(lines[0]).toContain('Redis Cluster through');
    const dir = mkdtempSync(join(tmpdir(), 'cluster-import-'));
    const file = join(dir, 'people.ndjson');
    writeFileSync(
      file,
      Array.from({ length: 300 }, (_, i) =>
        JSON.stringify({ id: `imp-${i}`, tags: [`t-${i % 7}`], aliases: { member: `m-${i}` } }),
      ).join('\n'),
    );
    const err: string[] = [];
    expect(await runImport([file, '--batch', '64'], { env, stdin: chunks(), err: (l) => err.push(l) })).toBe(
      0,
    );
    expect(err.at(-1)).toMatch(/Imported 300 profiles from 300 lines/);
    const store = new RedisStore({ topology: topology(), keyPrefix: 'deploy:', log: quiet });
    try {
      for (const i of [0, 299, 599]) {
        expect(await store.getProfile(`p-${i}`)).toEqual(demoProfile(i));
        for (const [kind, value] of Object.entries(demoAliases(i)))
          expect(await store.resolveAlias(kind, value)).toBe(`p-${i}`);
      }
      expect(await store.getProfile('imp-123')).toMatchObject({ id: 'imp-123', tags: ['t-4'] });
      expect(await store.resolveAlias('member', 'm-123')).toBe('imp-123');
    } finally {
      await store.close();
    }
  }, 60_000);

  it('refuses to start on a cluster node named as REDIS_URL, naming the setting to use', async () => {
    const node = cluster.nodes[0]!.port;
    const config = loadConfig({
      PORT: '0',
      ADMIN_PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: `redis://127.0.0.1:${node}`,
    });
    await expect(startServer(config, { log: quiet })).rejects.toThrow(
      `the Redis at 127.0.0.1:${node} is a node of a Redis Cluster: name the cluster with REDIS_CLUSTER_NODES=127.0.0.1:${node}`,
    );
  });

  it('answers degraded while a shard is down, tells readiness why, and comes back by itself', async () => {
    const config = loadConfig({
      PORT: '0',
      ADMIN_PORT: '0',
      HOST: '127.0.0.1',
      REDIS_CLUSTER_NODES: cluster.seeds,
      REDIS_KEY_PREFIX: 'shard:',
      CACHE_TTL_MS: '1',
    });
    const server: RunningServer = await startServer(config, { log: quiet });
    try {
      // A shard other than the one holding the global keys, with a person on it.
      const global = await cluster.masterOf(slotOf('{ms}'));
      let pid = '';
      for (let i = 0; pid === ''; i++) {
        const master = await cluster.masterOf(slotOf(`{sh-${i}}`));
        if (master !== global) pid = `sh-${i}`;
      }
      const master = await cluster.masterOf(slotOf(`{${pid}}`));
      await server.store.putProfile({
        id: pid,
        tags: ['circle:business'],
        attrs: { price_band: 6000 },
        stages: { vivo: 'appeal' },
      });
      const decide = async () => {
        const t0 = performance.now();
        const res = await fetch(`http://127.0.0.1:${server.dataPort}/v1/decide`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: { id: pid }, placements: [BANNER] }),
        });
        return { ms: performance.now() - t0, body: (await res.json()) as { degraded?: boolean } };
      };
      // Served from the store while every shard is up. One decision may still answer degraded by
      // its 10 ms deadline on a host busy with the other test files: a few tries.
      let served = false;
      for (let i = 0; i < 5 && !served; i++) served = (await decide()).body.degraded === undefined;
      expect(served).toBe(true);
      // Its master and its replica go: the cluster has slots nobody serves.
      const replicas: string[] =
        (await cluster.cli(master.port, 'info', 'replication')).match(/port=(\d+)/g) ?? [];
      const replica = cluster.nodes.find((n) => replicas.includes(`port=${n.port}`))!;
      await Promise.all([master.kill(), replica.kill()]);
      let sawNotReady = '';
      for (let i = 0; i < 100 && sawNotReady === ''; i++) {
        const r = await fetch(`http://127.0.0.1:${server.adminPort}/readyz`);
        if (r.status === 503) sawNotReady = ((await r.json()) as { store: string }).store;
        else await sleep(100);
      }
      expect(sawNotReady).toMatch(/unreachable: .+/);
      for (let i = 0; i < 10; i++) {
        const { ms, body } = await decide();
        expect(body.degraded).toBe(true);
        expect(ms).toBeLessThan(300);
      }
      // Back (empty: no persistence): the server serves normally again by itself.
      await Promise.all([master.restart(), replica.restart()]);
      await cluster.waitHealthy();
      let ready = false;
      for (let i = 0; i < 150 && !ready; i++) {
        ready = (await fetch(`http://127.0.0.1:${server.adminPort}/readyz`)).status === 200;
        if (!ready) await sleep(100);
      }
      expect(ready).toBe(true);
      await server.store.putProfile({
        id: pid,
        tags: ['circle:business'],
        attrs: { price_band: 6000 },
        stages: { vivo: 'appeal' },
      });
      let normal = false;
      for (let i = 0; i < 50 && !normal; i++) {
        normal = (await decide()).body.degraded === undefined;
        if (!normal) await sleep(100);
      }
      expect(normal).toBe(true);
    } finally {
      await server.close(0, 0);
    }
  }, 60_000);
});

describe('a replica named as REDIS_URL', () => {
  it('refuses to start, naming the master', async () => {
    const master = await startRedis();
    const replica = await startRedis();
    const link = new Redis(replica.url);
    try {
      await link.replicaof('127.0.0.1', String(master.port));
      const config = loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', REDIS_URL: replica.url });
      await expect(startServer(config, { log: quiet })).rejects.toThrow(
        `the Redis at 127.0.0.1:${replica.port} is a replica of 127.0.0.1:${master.port} and takes no writes`,
      );
    } finally {
      link.disconnect();
      await replica.stop();
      await master.stop();
    }
  });
});

describe('a Redis that is away when the server starts', () => {
  it('is waited for, said so in the log, and served once it answers', async () => {
    const redis = await startRedis();
    await redis.kill();
    const lines: string[] = [];
    const config = loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', REDIS_URL: redis.url });
    let started: RunningServer | null = null;
    const starting = startServer(config, { log: (l) => lines.push(l) }).then((s) => {
      started = s;
      return s;
    });
    try {
      for (let i = 0; i < 100 && !lines.some((l) => l.includes('waiting for the store')); i++)
        await sleep(50);
      expect(lines.some((l) => l.includes('waiting for the store to answer before serving'))).toBe(true);
      expect(started).toBeNull();
      await redis.restart();
      const server = await starting;
      const res = await fetch(`http://127.0.0.1:${server.dataPort}/v1/decide`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: { id: 'nobody' }, placements: [BANNER] }),
      });
      expect(res.status).toBe(200);
      expect(server.service.ruleSet.version).toBe(1);
      await server.close(0, 0);
    } finally {
      await redis.stop();
    }
  }, 30_000);
});

describe('a server started on a Redis that already holds a rule set', () => {
  it('answers concurrent reads, an upload and an activation right away, each as it should', async () => {
    const redis = await startRedis();
    const config = loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', REDIS_URL: redis.url });
    try {
      const first = await startServer(config, { log: quiet });
      await first.close(0, 0);
      const server = await startServer(config, { log: quiet });
      try {
        const admin = `http://127.0.0.1:${server.adminPort}`;
        const yaml = readFileSync(DEMO_RULESET, 'utf8').replace('priority: 10', 'priority: 12');
        const answers = await Promise.all([
          ...[1, 2, 3, 4, 5].map((n) => fetch(`${admin}/v1/profiles/p-${n}`).then((r) => r.status)),
          fetch(`${admin}/v1/rulesets?activate=false`, {
            method: 'POST',
            headers: { 'content-type': 'application/yaml' },
            body: yaml,
          }).then((r) => r.status),
          fetch(`${admin}/v1/rulesets/1/activate`, { method: 'POST' }).then((r) => r.status),
        ]);
        expect(answers).toEqual([404, 404, 404, 404, 404, 201, 200]);
      } finally {
        await server.close(0, 0);
      }
    } finally {
      await redis.stop();
    }
  }, 30_000);
});
