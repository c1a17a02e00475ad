/**
 * A real server for in-process tests, on free ports of 127.0.0.1, over the store a test names:
 * the embedded one, a redis-server or a local Redis Cluster started for it on free ports (never
 * 6379). How a test server is started, seeded and stopped is said here once; the kit registers no
 * hooks, a test file calls it from its own beforeAll and closes it in its afterAll.
 */
import { type RunningServer, type StartOptions, startServer } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import type { CachedStore } from '../server/store/cached.js';
import { CONTRACT_NOW } from './decide.contract.js';
import { type ClusterHandle, type ClusterOptions, startCluster } from './redis-cluster.js';
import { type RedisHandle, startRedis } from './redis-server.js';

/** The store behind the server: the embedded one, one redis-server, or a Redis Cluster. */
export type Over = 'embedded' | 'redis' | 'cluster';

export interface ServerKitOptions extends StartOptions {
  /** Fills the store once the server is up, through the server's cache as a client's writes go. */
  seed?: (store: CachedStore) => Promise<unknown>;
  /** For `cluster`: the cluster to start (by default 3 masters with a replica each). */
  cluster?: ClusterOptions;
}

/** What every test server has; `TestServer<K>` adds what its kind of store was started with. */
export interface TestServerBase {
  readonly server: RunningServer;
  /** The store behind the server, through its cache (writes reach the server's cache). */
  readonly store: CachedStore;
  /** The data plane's port (as DecideTarget names it). */
  readonly port: number;
  /** The control plane's port. */
  readonly adminPort: number;
  /** `http://127.0.0.1:<port>`: the data plane. */
  readonly dataUrl: string;
  /** `http://127.0.0.1:<adminPort>`: the control plane. */
  readonly adminUrl: string;
  /** Closes the server (with RunningServer.close's bounds), then stops the Redis started for it. */
  close(timeoutMs?: number, delayMs?: number): Promise<void>;
}

/** What a kind of store adds to the handle: the Redis started for the server, to kill or restart. */
interface Behind {
  embedded: object;
  redis: { readonly redis: RedisHandle };
  cluster: { readonly cluster: ClusterHandle };
}

/** A test server over `K` (any kind when not said). */
export type TestServer<K extends Over = Over> = TestServerBase & Behind[K];

/**
 * Starts what `over` needs, then a server over it configured by `env` (after PORT and ADMIN_PORT
 * 0, HOST 127.0.0.1 and the store's address), silent and with decisions at CONTRACT_NOW unless
 * `opts` says otherwise (`now: Date.now` for the real clock); seeds it with `opts.seed`.
 * Whatever was started is stopped again when the start fails.
 */
export async function serverOver<K extends Over>(
  over: K,
  env: Record<string, string> = {},
  opts: ServerKitOptions = {},
): Promise<TestServer<K>> {
  const { seed, cluster: clusterOptions, ...start } = opts;
  const redis = over === 'redis' ? await startRedis() : null;
  let cluster: ClusterHandle | null = null;
  let server: RunningServer | null = null;
  const stop = async () => {
    await redis?.stop();
    await cluster?.stop();
  };
  try {
    if (over === 'cluster') cluster = await startCluster(clusterOptions);
    const config = loadConfig({
      PORT: '0',
      ADMIN_PORT: '0',
      HOST: '127.0.0.1',
      ...(redis === null ? {} : { REDIS_URL: redis.url }),
      ...(cluster === null ? {} : { REDIS_CLUSTER_NODES: cluster.seeds }),
      ...env,
    });
    server = await startServer(config, { log: () => {}, now: () => CONTRACT_NOW, ...start });
    await seed?.(server.store);
  } catch (e) {
    await server?.close(0, 0);
    await stop();
    throw e;
  }
  const running = server;
  const kit: TestServerBase & Partial<Behind['redis'] & Behind['cluster']> = {
    server: running,
    store: running.store,
    port: running.dataPort,
    adminPort: running.adminPort,
    dataUrl: `http://127.0.0.1:${running.dataPort}`,
    adminUrl: `http://127.0.0.1:${running.adminPort}`,
    ...(redis === null ? {} : { redis }),
    ...(cluster === null ? {} : { cluster }),
    async close(timeoutMs?: number, delayMs?: number) {
      try {
        await running.close(timeoutMs, delayMs);
      } finally {
        await stop();
      }
    },
  };
  return kit as TestServer<K>;
}
