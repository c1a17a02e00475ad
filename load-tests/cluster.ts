/** The load run's Redis Cluster step: the same people loaded into a cluster, and what they take there. */
import { Redis } from 'ioredis';
import { RedisStore } from '../server/store/redis.js';
import { storeDemoPeople } from './memory.js';

export interface ClusterMemory {
  people: number;
  /** used_memory summed over the masters, after the load less before it, per person. */
  bytesPerPerson: number;
  /** Seconds putProfiles took for all of them. */
  loadS: number;
}

/** used_memory of every master, summed. */
async function usedMemory(ports: readonly number[]): Promise<number> {
  let total = 0;
  for (const port of ports) {
    const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
    await redis.connect();
    total += Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
    redis.disconnect();
  }
  return total;
}

/** Loads `n` demo people into the cluster through the store, as an import would. */
export async function loadCluster(
  seeds: string,
  masters: readonly number[],
  n: number,
  log: (s: string) => void,
): Promise<ClusterMemory> {
  const store = new RedisStore({
    topology: { kind: 'cluster', nodes: seeds.split(','), url: 'redis://localhost' },
    log: () => {},
  });
  try {
    await store.ping();
    const m0 = await usedMemory(masters);
    const loadS = await storeDemoPeople(store, n);
    await store.foldCounts();
    const m1 = await usedMemory(masters);
    log(`  ${n} profiles stored in the cluster with putProfiles in ${loadS.toFixed(1)} s`);
    return { people: n, bytesPerPerson: (m1 - m0) / n, loadS };
  } finally {
    await store.close();
  }
}
