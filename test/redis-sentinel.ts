/**
 * A Redis master with a replica watched by Redis Sentinel, for tests: two redis-servers and one
 * sentinel (quorum 1: it alone may fail the master over) on free ports, the sentinel deciding
 * that a master is down after `downAfterMs`.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, killChild, type RedisHandle, spawnOn, startRedis } from './redis-server.js';

export interface SentinelHandle {
  /** The master's name in the sentinel's configuration. */
  readonly name: string;
  /** `host:port` of the sentinel, as REDIS_SENTINELS takes it. */
  readonly sentinels: string;
  readonly servers: readonly RedisHandle[];
  /** The port of the server the sentinel names as master now. */
  masterPort(): Promise<number>;
  stop(): Promise<void>;
}

export async function startSentinel(opts: { downAfterMs?: number } = {}): Promise<SentinelHandle> {
  const name = 'profiles';
  const master = await startRedis();
  const replica = await startRedis();
  const link = new Redis(replica.url);
  await link.replicaof('127.0.0.1', String(master.port));
  for (let i = 0; i < 200 && !/master_link_status:up/.test(await link.info('replication')); i++)
    await new Promise((r) => setTimeout(r, 25));
  link.disconnect();
  const dir = mkdtempSync(join(tmpdir(), 'mindshare-sentinel-'));
  const config = join(dir, 'sentinel.conf');
  writeFileSync(
    config,
    [
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${name} 5000`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const sentinel: ChildProcess = await spawnOn(port, dir, ['--sentinel'], config);
  const ask = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await ask.connect();
  return {
    name,
    sentinels: `127.0.0.1:${port}`,
    servers: [master, replica],
    async masterPort() {
      const [, p] = (await ask.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string];
      return Number(p);
    },
    async stop() {
      ask.disconnect();
      await killChild(sentinel);
      await replica.stop();
      await master.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
