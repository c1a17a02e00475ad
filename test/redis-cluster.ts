/**
 * A real local Redis Cluster for tests (and the load run): `masters` redis-servers with
 * `replicas` replicas each, on free ports of 127.0.0.1 (never 6379; each node's cluster bus port,
 * the port + 10000, free too), each in a folder of its own (for nodes.conf), no persistence,
 * joined with `redis-cli --cluster create`. Every node is killed when the process that started
 * it exits, as with startRedis.
 *
 * A killed node can be started again in its folder: it keeps its cluster identity (nodes.conf)
 * but no data, and rejoins as a replica when the cluster promoted one of its replicas meanwhile.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killChild, listenOnce, spawnOn } from './redis-server.js';

export interface ClusterNode {
  readonly port: number;
  /** The process id of the node running now (0 when killed). */
  readonly pid: number;
  /** SIGKILL the node and wait until it has exited. */
  kill(): Promise<void>;
  /** Start it again in its folder (same port and cluster identity, no data). */
  restart(): Promise<void>;
}

export interface ClusterHandle {
  readonly nodes: readonly ClusterNode[];
  /** `127.0.0.1:p1,127.0.0.1:p2,…`: every node, as REDIS_CLUSTER_NODES takes them. */
  readonly seeds: string;
  /** The node serving `slot` as master now, as the live nodes see it. */
  masterOf(slot: number): Promise<ClusterNode>;
  /**
   * Resolves once every live node says the cluster is ok, they agree on the masters, and every
   * live replica is in sync with its master.
   */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Runs a redis-cli command against one node; resolves with its output. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** Stop every node for good and remove their folders. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  masters?: number;
  /** Replicas per master. */
  replicas?: number;
  /** cluster-node-timeout, ms: how long a master may be unreachable before a replica takes over. */
  nodeTimeoutMs?: number;
}

const READY_TIMEOUT_MS = 30_000;

/** Runs redis-cli with `args`; resolves with standard output. */
export function redisCli(args: readonly string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** `n` ports free now whose cluster bus ports (port + 10000) are free too. */
async function clusterPorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < 500; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 35_000);
    if (
      port === 6379 ||
      ports.includes(port) ||
      ports.includes(port - 10_000) ||
      ports.includes(port + 10_000)
    )
      continue;
    try {
      await listenOnce(port);
      await listenOnce(port + 10_000);
      ports.push(port);
    } catch {
      // Taken: try another.
    }
  }
  if (ports.length < n) throw new Error('no free ports for a Redis Cluster');
  return ports;
}

/** Starts a Redis Cluster (by default 3 masters with a replica each) and waits until it is ok. */
export async function startCluster(opts: ClusterOptions = {}): Promise<ClusterHandle> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 1;
  const nodeTimeout = opts.nodeTimeoutMs ?? 2000;
  const count = masters * (1 + replicas);
  const root = mkdtempSync(join(tmpdir(), 'mindshare-cluster-'));
  const ports = await clusterPorts(count);
  const extra = [
    '--cluster-enabled',
    'yes',
    '--cluster-node-timeout',
    String(nodeTimeout),
    // A replica whose master is gone takes over however long it was cut off.
    '--cluster-replica-validity-factor',
    '0',
    '--cluster-config-file',
    'nodes.conf',
  ];
  const nodes = await Promise.all(
    ports.map(async (port) => {
      const folder = join(root, String(port));
      mkdirSync(folder);
      let child: ChildProcess | null = await spawnOn(port, folder, extra);
      const node: ClusterNode = {
        port,
        get pid() {
          return child?.pid ?? 0;
        },
        async kill() {
          await killChild(child);
          child = null;
        },
        async restart() {
          await killChild(child);
          child = await spawnOn(port, folder, extra);
        },
      };
      return node;
    }),
  );
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(root, { recursive: true, force: true });
  };
  const cli = (port: number, ...args: string[]) => redisCli(['-p', String(port), ...args]);
  const handle: ClusterHandle = {
    nodes,
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    cli,
    async masterOf(slot) {
      for (const node of nodes) {
        if (node.pid === 0) continue;
        try {
          const owner = slotOwners(await cli(node.port, 'cluster', 'nodes')).get(slot);
          const found = nodes.find((n) => n.port === owner);
          if (found !== undefined) return found;
        } catch {
          // That node is not answering: ask another.
        }
      }
      throw new Error(`no live node knows the master of slot ${slot}`);
    },
    async waitHealthy(timeoutMs = READY_TIMEOUT_MS) {
      const until = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < until) {
        try {
          const live = nodes.filter((n) => n.pid !== 0);
          const views = await Promise.all(
            live.map(async (n) => ({
              info: await cli(n.port, 'cluster', 'info'),
              owners: slotOwners(await cli(n.port, 'cluster', 'nodes')),
            })),
          );
          const ok = views.every((v) => v.info.includes('cluster_state:ok'));
          const first = views[0]?.owners;
          const agree =
            first !== undefined &&
            first.size === 16384 &&
            views.every(
              (v) => v.owners.size === 16384 && [...first].every(([s, p]) => v.owners.get(s) === p),
            );
          const ownersAlive =
            first !== undefined && [...new Set(first.values())].every((p) => live.some((n) => n.port === p));
          // Every live replica has its copy: a failover would otherwise promote an empty one.
          const synced = (
            await Promise.all(
              live.map(async (n) => {
                const info = await cli(n.port, 'info', 'replication');
                return !info.includes('role:slave') || /master_link_status:up/.test(info);
              }),
            )
          ).every(Boolean);
          if (ok && agree && ownersAlive && synced) return;
          last = views.map((v) => v.info.split('\n')[0]).join(', ');
        } catch (e) {
          last = (e as Error).message;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the Redis Cluster did not become healthy within ${timeoutMs} ms: ${last}`);
    },
    stop,
  };
  try {
    await redisCli([
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
    await handle.waitHealthy();
  } catch (e) {
    await stop();
    throw e;
  }
  return handle;
}

/** slot -> port of its master, from the output of CLUSTER NODES (live masters only). */
function slotOwners(text: string): Map<number, number> {
  const owners = new Map<number, number>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 9) continue;
    const flags = f[2] ?? '';
    if (!flags.includes('master') || flags.includes('fail')) continue;
    const port = Number(/:(\d+)@/.exec(f[1] ?? '')?.[1]);
    for (const range of f.slice(8)) {
      if (range.startsWith('[')) continue; // a slot being migrated
      const [a, b] = range.split('-').map(Number);
      if (a === undefined || Number.isNaN(a)) continue;
      for (let s = a; s <= (b ?? a); s++) owners.set(s, port);
    }
  }
  return owners;
}
