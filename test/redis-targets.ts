/**
 * The Redis deployments the store's tests run against, one kit each: a single redis-server and a
 * local Redis Cluster (3 masters, a replica each), both started on free ports, with an admin
 * client that reaches every key whatever its slot.
 */
import { Cluster, Redis } from 'ioredis';
import type { RedisTopology } from '../server/store/redis-client.js';
import { type ClusterHandle, startCluster } from './redis-cluster.js';
import { type RedisHandle, startRedis } from './redis-server.js';

export interface RedisTarget {
  readonly name: 'single Redis' | 'Redis Cluster';
  readonly topology: RedisTopology;
  /** Reaches any key (ioredis routes by slot on the cluster). */
  readonly admin: Redis | Cluster;
  /** Every key matching the pattern, from every master. */
  keys(pattern: string): Promise<string[]>;
  /** Deletes keys whatever their slots. */
  del(keys: readonly string[]): Promise<void>;
  /** Puts raw text on a pub/sub channel, as the store's bus publishes (sharded on the cluster). */
  publishRaw(channel: string, text: string): Promise<void>;
  /** Drops every client connection but the admin's, on every master. */
  killClients(): Promise<void>;
  /** The redis-server (single) or the cluster behind it. */
  readonly single: RedisHandle | null;
  readonly cluster: ClusterHandle | null;
  stop(): Promise<void>;
}

/** One redis-server on a free port. */
export async function singleTarget(): Promise<RedisTarget> {
  const redis = await startRedis();
  const admin = new Redis(redis.url, { lazyConnect: false });
  return {
    name: 'single Redis',
    topology: { kind: 'single', url: redis.url },
    admin,
    keys: (pattern) => admin.keys(pattern),
    async del(keys) {
      if (keys.length > 0) await admin.del(...keys);
    },
    async publishRaw(channel, text) {
      await admin.publish(channel, text);
    },
    async killClients() {
      await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    },
    single: redis,
    cluster: null,
    async stop() {
      admin.disconnect();
      await redis.stop();
    },
  };
}

/** A Redis Cluster of 3 masters with a replica each, on free ports. */
export async function clusterTarget(): Promise<RedisTarget> {
  const cluster = await startCluster();
  const admin = new Cluster(
    cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    { scaleReads: 'master', enableAutoPipelining: true },
  );
  await new Promise<void>((resolve, reject) => {
    admin.once('ready', () => resolve());
    admin.once('error', reject);
  });
  const masters = () => admin.nodes('master');
  return {
    name: 'Redis Cluster',
    topology: { kind: 'cluster', nodes: cluster.seeds.split(','), url: 'redis://localhost' },
    admin,
    async keys(pattern) {
      const found = await Promise.all(masters().map((node) => node.keys(pattern)));
      return found.flat();
    },
    async del(keys) {
      await Promise.all(keys.map((k) => admin.del(k)));
    },
    async publishRaw(channel, text) {
      await admin.spublish(channel, text);
    },
    async killClients() {
      await Promise.all(masters().map((node) => node.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')));
    },
    single: null,
    cluster,
    async stop() {
      admin.disconnect();
      await cluster.stop();
    },
  };
}
