/**
 * The connections of the Redis store, for the three ways Redis is deployed:
 *
 * - `single`: one Redis (REDIS_URL), perhaps with replicas nobody fails over to by themselves.
 * - `cluster`: Redis Cluster (REDIS_CLUSTER_NODES): ioredis' Cluster follows the slot map, MOVED
 *   and ASK, and failovers; the lean decision reader (resp-cluster.ts) follows the same map.
 * - `sentinel`: one master with replicas watched by Redis Sentinel (REDIS_SENTINELS,
 *   REDIS_SENTINEL_MASTER): ioredis asks the sentinels for the master and reconnects when they
 *   switch it (`failoverDetector`); the lean reader asks the sentinels on every connection and
 *   reconnects when the main connection does.
 *
 * One `RedisClient` is shared by the profile store, the rule sets and the bus of an instance.
 *
 * Failure behaviour: while Redis (or a slot's master) is down, commands fail at once instead of
 * queueing (no offline queue), commands in flight when a connection drops are rejected, not
 * replayed, except that ioredis Cluster retries a command whose node was lost for up to about a
 * second and a half while the cluster fails over (every write of the store is idempotent or
 * deduplicated, so a retry counts nothing twice). The clients reconnect by themselves with a
 * capped, jittered backoff. Until the first connection attempt has settled, commands wait for it.
 *
 * Scripts are sent as EVALSHA with their SHA, and as EVAL when Redis answers NOSCRIPT (as
 * ioredis' own Script does), never registered on the connection: lazily defined commands on an
 * auto-pipelined connection can cross replies between callers.
 */
import { randomBytes } from 'node:crypto';
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import {
  type Arg,
  type LuaScript,
  type Reply,
  RespConnection,
  type RespConnectionOptions,
  retryDelay,
} from './resp.js';
import { RespCluster } from './resp-cluster.js';
import { SLOTS } from './slots.js';

export type RedisTopology =
  | {
      kind: 'single';
      /** `redis://[user:password@]host:port[/db]` or `rediss://…` */
      url: string;
    }
  | {
      kind: 'cluster';
      /** Seed nodes, `host:port`; the client learns the others from them. */
      nodes: readonly string[];
      /** Credentials and TLS for every node, as a URL (`redis://user:password@`; host ignored). */
      url: string;
    }
  | {
      kind: 'sentinel';
      /** Sentinels, `host:port`. */
      sentinels: readonly string[];
      /** The master's name in the sentinels' configuration. */
      master: string;
      /** Credentials, TLS and database of the master, as a URL (host ignored). */
      url: string;
      /** The sentinels' own password, when they have one. */
      sentinelPassword?: string;
    };

export interface RedisClientOptions {
  topology: RedisTopology;
  /** Longest wait for a TCP connection, ms. Default 2000. */
  connectTimeoutMs?: number;
  /** A command without a reply after this long is rejected, ms. Default 3000. */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts, ms. Default 1000. */
  maxRetryDelayMs?: number;
  /** Decision reads on lean connections (resp.ts) instead of ioredis. Default true. */
  leanReads?: boolean;
  /** Scripts the lean connections load as they open, so that the first read finds them. */
  leanScripts?: readonly LuaScript[];
  /**
   * Replicas a write must have reached before `waitForReplicas` resolves: a number, or `auto` (one
   * where the master has a replica, none where it has not). Default `auto`.
   */
  waitReplicas?: number | 'auto';
  /** Longest wait for the replicas, ms. Default 500. */
  waitTimeoutMs?: number;
  /** Connection state changes. Default console.warn. */
  log?: (line: string) => void;
}

/** The lean reader: one decision read (EVALSHA) or alias read (GET) at a time, routed by key. */
export interface LeanReader {
  readonly status: string;
  /** EVALSHA; `slot`, when the caller knows it, is the slot of `keys` (routing on a cluster). */
  evalsha(script: LuaScript, keys: readonly Arg[], args: readonly Arg[], slot?: number): Promise<Reply>;
  get(key: string): Promise<Reply>;
  close(): void;
}

/** Redis cannot be reached right now (or a slot has no reachable master); the client keeps reconnecting. */
export class RedisUnavailableError extends Error {
  readonly code = 'redis_unavailable';
}

/** A write reached its master but not as many replicas as asked within the wait: send it again. */
export class NotReplicatedError extends RedisUnavailableError {}

/**
 * The Redis reached is not what the configuration says: a Redis Cluster node named as a single
 * Redis, or a replica (no writes). Not something to wait out: the configuration must change.
 */
export class RedisDeploymentError extends RedisUnavailableError {}

export interface RedisClientStats {
  /** `ready` when commands can be sent to every slot's master. */
  status: string;
  /** The decision reader: `ready`, `connecting`, `reconnecting`, `closed`; null when reads use ioredis. */
  readStatus: string | null;
  connectionErrors: number;
  lastError: string;
}

/**
 * EVALSHA and EVAL with Buffer replies: ioredis makes a Buffer variant of every command but does
 * not declare these two. (`callBuffer` is no way round it: with auto-pipelining it loses the
 * command's name and sends its first argument as the command.)
 */
interface BufferScripts {
  evalshaBuffer(sha: string, keys: number, ...args: Arg[]): Promise<unknown>;
  evalBuffer(source: string, keys: number, ...args: Arg[]): Promise<unknown>;
}

/** Replicas per master learnt from INFO are trusted this long (single and sentinel), ms. */
const REPLICA_INFO_MS = 5000;
/** How often a single Redis (or the sentinels' master) is checked to still be a writable master, ms. */
const DEPLOYMENT_CHECK_MS = 5000;

export class RedisClient {
  readonly kind: RedisTopology['kind'];
  /** Every command but decision reads (and those too without lean reads). */
  readonly main: Redis | Cluster;
  readonly lean: LeanReader | null;
  private readonly log: (line: string) => void;
  private readonly waitReplicas: number | 'auto';
  private readonly waitTimeoutMs: number;
  private readonly subscriberOptions: Partial<RedisOptions>;
  private readonly topology: RedisTopology;
  /** Settles when the first connection attempt has succeeded or failed; null after that. */
  private starting: Promise<void> | null;
  private healthy = true;
  private closed = false;
  private connectionErrors = 0;
  private lastError = '';
  private replicaInfo: { replicas: number; at: number } | null = null;
  /** What is wrong with the Redis reached (a cluster node, a replica); null when nothing is. */
  private problem: string | null = null;
  private readonly deploymentTimer: NodeJS.Timeout | null = null;

  constructor(opts: RedisClientOptions) {
    this.topology = opts.topology;
    this.kind = opts.topology.kind;
    this.log = opts.log ?? ((line) => console.warn(line));
    this.waitReplicas = opts.waitReplicas ?? 'auto';
    this.waitTimeoutMs = Math.max(1, opts.waitTimeoutMs ?? 500);
    const maxDelay = Math.max(10, opts.maxRetryDelayMs ?? 1000);
    const connectTimeout = opts.connectTimeoutMs ?? 2000;
    const commandTimeout = opts.commandTimeoutMs ?? 3000;
    const auth = credentials(opts.topology.url);
    const common: RedisOptions = {
      ...auth,
      // Fail fast while disconnected: nothing waits in an offline queue.
      enableOfflineQueue: false,
      // Commands in flight when the connection drops are rejected at the first reconnection
      // attempt rather than replayed later.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // Concurrent single commands (alias look-ups of many requests) share one write.
      enableAutoPipelining: true,
      connectTimeout,
      commandTimeout,
      lazyConnect: false,
    };
    const reconnect = { retryStrategy: (times: number) => retryDelay(times, maxDelay) };
    this.subscriberOptions = {
      // SUBSCRIBE waits for the connection instead of failing while Redis is down, and is
      // re-issued by ioredis after every reconnection.
      enableOfflineQueue: true,
      autoResubscribe: true,
      maxRetriesPerRequest: null,
      commandTimeout: undefined,
      enableAutoPipelining: false,
      lazyConnect: false,
    };

    const topology = opts.topology;
    if (topology.kind === 'cluster') {
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        scaleReads: 'master',
        clusterRetryStrategy: (times) => retryDelay(times, maxDelay),
        // While a master fails over, a command whose node was lost is tried again a few times.
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        retryDelayOnMoved: 0,
        maxRedirections: 16,
        slotsRefreshTimeout: Math.min(connectTimeout, 1000),
        // The slot map is asked again this often besides on MOVED and lost nodes.
        slotsRefreshInterval: 2000,
        // Node connections are made when first needed (ioredis' pool); asking for them at once
        // (lazyConnect: false) makes the cluster drop them as it starts.
        redisOptions: { ...common, lazyConnect: true },
      };
      this.main = new Cluster(topology.nodes.map(clusterNode), clusterOptions);
    } else if (topology.kind === 'sentinel') {
      const options: RedisOptions = {
        ...common,
        ...reconnect,
        sentinels: topology.sentinels.map(clusterNode),
        name: topology.master,
        failoverDetector: true,
        sentinelRetryStrategy: (times) => retryDelay(times, maxDelay),
      };
      if (topology.sentinelPassword !== undefined) options.sentinelPassword = topology.sentinelPassword;
      this.main = new Redis(options);
    } else {
      this.main = new Redis(topology.url, { ...common, ...reconnect });
    }

    const onLeanError = (err: Error) => {
      this.connectionErrors++;
      this.lastError = err.message;
    };
    if (opts.leanReads === false) this.lean = null;
    else if (topology.kind === 'cluster') {
      this.lean = new RespCluster({
        cluster: this.main as Cluster,
        url: topology.url,
        connectTimeoutMs: connectTimeout,
        commandTimeoutMs: commandTimeout,
        maxRetryDelayMs: maxDelay,
        preload: opts.leanScripts ?? [],
        onError: onLeanError,
      });
    } else {
      const options: RespConnectionOptions = {
        url: topology.url,
        connectTimeoutMs: connectTimeout,
        commandTimeoutMs: commandTimeout,
        maxRetryDelayMs: maxDelay,
        preload: opts.leanScripts ?? [],
        onError: onLeanError,
      };
      if (topology.kind === 'sentinel') options.address = () => this.sentinelMaster();
      this.lean = new RespConnection(options);
    }

    this.main.on('error', (err: Error) => {
      this.connectionErrors++;
      this.lastError = err.message;
      if (this.healthy && !this.closed) {
        this.healthy = false;
        this.log(`Redis unavailable (${err.message}); commands fail until it is back, reconnecting`);
      }
    });
    if (this.main instanceof Cluster) {
      this.main.on('node error', (err: Error, node: string) => {
        this.connectionErrors++;
        this.lastError = `${node}: ${err.message}`;
      });
    }
    this.main.on('close', () => {
      if (this.healthy && !this.closed) {
        this.healthy = false;
        this.log('Redis connection closed; commands fail until it is back, reconnecting');
      }
    });
    let checked: Promise<void> = Promise.resolve();
    let readies = 0;
    this.main.on('ready', () => {
      if (!this.healthy && !this.closed) this.log('Redis connection ready again');
      this.healthy = true;
      this.replicaInfo = null;
      checked = this.checkDeployment();
      // The main connection came back, perhaps to a new master (a Sentinel failover): the reader
      // connects again too, asking the sentinels where.
      if (++readies > 1 && topology.kind === 'sentinel' && this.lean instanceof RespConnection)
        this.lean.reconnect();
    });
    this.starting = new Promise<void>((resolve) => {
      const settle = (ready: boolean) => {
        this.main.off('ready', onReady);
        this.main.off('close', onDown);
        this.main.off('end', onDown);
        // The first connection counts once its Redis is known to be the kind configured.
        (ready ? checked : Promise.resolve()).then(() => {
          this.starting = null;
          resolve();
        });
      };
      const onReady = () => settle(true);
      const onDown = () => settle(false);
      this.main.on('ready', onReady);
      this.main.on('close', onDown);
      this.main.on('end', onDown);
    });
    if (topology.kind !== 'cluster') {
      this.deploymentTimer = setInterval(() => {
        if (this.main.status === 'ready') void this.checkDeployment();
      }, DEPLOYMENT_CHECK_MS);
      this.deploymentTimer.unref();
    }
  }

  /**
   * Checks that the Redis reached is the kind configured (a single Redis or the sentinels' master
   * must be a writable master outside any cluster); sets or clears `problem`.
   */
  private async checkDeployment(): Promise<void> {
    const main = this.main;
    if (main instanceof Cluster) return;
    let info: string;
    try {
      info = String(await main.info());
    } catch {
      return; // down again: the next connection checks
    }
    const where = `${main.options.host ?? '127.0.0.1'}:${main.options.port ?? 6379}`;
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
    let problem: string | null = null;
    if (field('cluster_enabled') === '1') {
      problem = `the Redis at ${where} is a node of a Redis Cluster: name the cluster with REDIS_CLUSTER_NODES=${where} instead of REDIS_URL`;
    } else if (field('role') === 'slave') {
      const master = `${field('master_host') ?? '?'}:${field('master_port') ?? '?'}`;
      problem =
        this.kind === 'sentinel'
          ? `the sentinels named ${where} as the master, but it is a replica of ${master}; waiting for the sentinels to agree`
          : `the Redis at ${where} is a replica of ${master} and takes no writes: point REDIS_URL at the master, or use REDIS_SENTINELS`;
    }
    if (problem !== this.problem) {
      if (problem !== null) this.log(problem);
      else if (this.problem !== null) this.log(`the Redis at ${where} is a writable master again`);
      this.problem = problem;
    }
  }

  /** Whether commands can be sent now (the first connection attempt has settled, and it is up). */
  get isReady(): boolean {
    return this.starting === null && this.problem === null && this.main.status === 'ready';
  }

  /** Waits for the first connection attempt, then fails at once, saying why, while down. */
  async up(): Promise<void> {
    if (this.starting !== null) await this.starting;
    this.assertUp();
  }

  /** Fails at once, saying why, while the main connection is not ready. */
  assertUp(): void {
    if (this.problem !== null) throw new RedisDeploymentError(this.problem);
    const status = this.main.status;
    if (status === 'ready') return;
    if (this.closed) throw new RedisUnavailableError('the Redis store is closed');
    const why = this.lastError === '' ? '' : ` (last error: ${this.lastError})`;
    throw new RedisUnavailableError(`Redis is not connected, ${status}${why}`);
  }

  /** A script through ioredis: EVALSHA, then EVAL when Redis does not know it. String replies. */
  async script(script: LuaScript, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    try {
      return await this.main.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return this.main.eval(script.source, keys.length, ...keys, ...args);
    }
  }

  /** `script`, with Buffer replies. */
  async scriptBuffer(script: LuaScript, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    try {
      return await (this.main as unknown as BufferScripts).evalshaBuffer(
        script.sha,
        keys.length,
        ...keys,
        ...args,
      );
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return (this.main as unknown as BufferScripts).evalBuffer(script.source, keys.length, ...keys, ...args);
    }
  }

  /**
   * Resolves once the writes made so far to the masters of `slots` have reached the replicas
   * asked for (WAIT on each master's connection, the one the writes went through); rejects with
   * NotReplicatedError when fewer answered within the wait.
   */
  async waitForReplicas(slots: Iterable<number>): Promise<void> {
    if (this.waitReplicas === 0) return;
    const main = this.main;
    if (!(main instanceof Cluster)) {
      const wanted =
        this.waitReplicas === 'auto' ? Math.min(1, await this.replicaCount()) : this.waitReplicas;
      if (wanted === 0) return;
      const reached = Number(await main.wait(wanted, this.waitTimeoutMs));
      if (reached < wanted) throw notReplicated(reached, wanted, 'the master');
      return;
    }
    const byNode = new Map<string, number>();
    for (const slot of slots) {
      const owners = main.slots[slot];
      const master = owners?.[0];
      if (master === undefined) continue;
      const wanted = this.waitReplicas === 'auto' ? Math.min(1, owners!.length - 1) : this.waitReplicas;
      byNode.set(master, Math.max(byNode.get(master) ?? 0, wanted));
    }
    const masters = main.nodes('master');
    await Promise.all(
      [...byNode].map(async ([key, wanted]) => {
        if (wanted === 0) return;
        const node = masters.find((n) => `${n.options.host}:${n.options.port}` === key);
        if (node === undefined) throw new RedisUnavailableError(`no connection to the master ${key}`);
        const reached = Number(await node.wait(wanted, this.waitTimeoutMs));
        if (reached < wanted) throw notReplicated(reached, wanted, `the master ${key}`);
      }),
    );
  }

  /**
   * Runs of consecutive slots each served by one master (Redis Cluster; the whole range on the
   * others), at most `size` slots long: a script may touch the keys of every slot of a run.
   */
  slotRuns(size: number): Array<[from: number, to: number]> {
    const out: Array<[number, number]> = [];
    const slots = this.main instanceof Cluster ? this.main.slots : null;
    let from = 0;
    for (let s = 1; s <= SLOTS; s++) {
      const split = s === SLOTS || s - from >= size || (slots !== null && slots[s]?.[0] !== slots[from]?.[0]);
      if (split) {
        out.push([from, s - 1]);
        from = s;
      }
    }
    return out;
  }

  /** Resolves when every master answers PING. */
  async ping(): Promise<void> {
    await this.up();
    await Promise.all(
      this.masters().map(async (node) => {
        try {
          await node.ping();
        } catch (e) {
          throw new RedisUnavailableError(
            `the master ${node.options.host}:${node.options.port} does not answer: ${(e as Error).message}`,
          );
        }
      }),
    );
  }

  /**
   * The connection of every master that serves slots (the one connection but on Redis Cluster).
   * Throws RedisUnavailableError when a slot has no master or a master no connection.
   */
  masters(): Redis[] {
    const main = this.main;
    if (!(main instanceof Cluster)) return [main];
    const masters = new Set<string>();
    for (let s = 0; s < SLOTS; s++) {
      const master = main.slots[s]?.[0];
      if (master === undefined) throw new RedisUnavailableError(`no master serves slot ${s}`);
      masters.add(master);
    }
    const nodes = main.nodes('master');
    return [...masters].map((key) => {
      const node = nodes.find((n) => `${n.options.host}:${n.options.port}` === key);
      if (node === undefined) throw new RedisUnavailableError(`no connection to the master ${key}`);
      return node;
    });
  }

  /** A connection for SUBSCRIBE (single and sentinel), with the client's settings. */
  subscriber(): Redis {
    if (this.main instanceof Cluster) throw new Error('a cluster subscribes per shard (RedisBus)');
    return this.main.duplicate(this.subscriberOptions);
  }

  /** A connection to one node (a cluster shard's master), with the client's credentials. */
  nodeConnection(node: string): Redis {
    const { host, port } = clusterNode(node);
    return new Redis({ ...credentials(this.topology.url), ...this.subscriberOptions, host, port });
  }

  /** The master of a slot as the client knows it now (`host:port`; Redis Cluster only). */
  masterOf(slot: number): string | undefined {
    return this.main instanceof Cluster ? this.main.slots[slot]?.[0] : undefined;
  }

  /** Asks for the cluster's slot map again (Redis Cluster only); resolves when it has it. */
  refreshSlots(): Promise<void> {
    const main = this.main;
    if (!(main instanceof Cluster)) return Promise.resolve();
    return new Promise((resolve) => main.refreshSlotsCache(() => resolve()));
  }

  stats(): RedisClientStats {
    return {
      status: this.status(),
      readStatus: this.lean?.status ?? null,
      connectionErrors: this.connectionErrors,
      lastError: this.lastError,
    };
  }

  /** Counts an error of a connection the client does not own (the bus's subscribers). */
  noteError(err: Error): void {
    this.connectionErrors++;
    this.lastError = err.message;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deploymentTimer !== null) clearInterval(this.deploymentTimer);
    this.lean?.close();
    if (this.main.status === 'ready') {
      try {
        await this.main.quit();
      } catch {
        // Closing anyway.
      }
    }
    if (this.main.status !== 'end') this.main.disconnect();
  }

  private status(): string {
    if (this.problem !== null) return this.problem;
    const main = this.main;
    if (!(main instanceof Cluster)) return main.status;
    if (main.status !== 'ready') return main.status;
    for (let s = 0; s < SLOTS; s++) if (main.slots[s]?.[0] === undefined) return 'slots uncovered';
    return 'ready';
  }

  /** Replicas connected to the master (single and sentinel), from INFO, at most REPLICA_INFO_MS old. */
  private async replicaCount(): Promise<number> {
    const known = this.replicaInfo;
    if (known !== null && performance.now() - known.at < REPLICA_INFO_MS) return known.replicas;
    const info = String(await (this.main as Redis).info('replication'));
    const replicas = Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0);
    this.replicaInfo = { replicas, at: performance.now() };
    return replicas;
  }

  /** The master the sentinels name now (for the lean reader's connections). */
  private async sentinelMaster(): Promise<{ host: string; port: number }> {
    const topology = this.topology;
    if (topology.kind !== 'sentinel') throw new Error('not on Redis Sentinel');
    let last: unknown = null;
    for (const address of topology.sentinels) {
      const { host, port } = clusterNode(address);
      const sentinel = new Redis({
        host,
        port,
        lazyConnect: true,
        enableOfflineQueue: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        connectTimeout: 1000,
        ...(topology.sentinelPassword === undefined ? {} : { password: topology.sentinelPassword }),
      });
      sentinel.on('error', () => {});
      try {
        await sentinel.connect();
        const reply = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', topology.master)) as
          | [string, string]
          | null;
        if (reply !== null) return { host: reply[0], port: Number(reply[1]) };
      } catch (e) {
        last = e;
      } finally {
        sentinel.disconnect();
      }
    }
    throw new RedisUnavailableError(
      `no sentinel names a master ${JSON.stringify(topology.master)}${last instanceof Error ? ` (${last.message})` : ''}`,
    );
  }
}

/**
 * Whether an error is Redis being away for now (down, reconnecting, failing over, a cluster not
 * ok yet), which waiting cures, as opposed to a misconfiguration or a bug.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof RedisDeploymentError) return false;
  if (err instanceof RedisUnavailableError) return true;
  if (!(err instanceof Error)) return false;
  if ((err as { code?: unknown }).code === 'redis_unavailable') return true;
  return /^(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN)\b|Connection is closed|isn't writeable|Cluster isn't ready|Failed to refresh slots cache|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT/.test(
    err.message,
  );
}

/** A fresh store identity: the time and some randomness. */
export function newEpoch(): string {
  return `${Date.now().toString(36)}.${randomBytes(6).toString('hex')}`;
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

function notReplicated(reached: number, wanted: number, where: string): NotReplicatedError {
  return new NotReplicatedError(
    `the write reached ${reached} of ${wanted} replica(s) of ${where} in time; send it again`,
  );
}

/** `host:port` (or `[v6]:port`) as ioredis takes a node. */
function clusterNode(address: string): ClusterNode & { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address.trim());
  if (m === null) throw new Error(`${JSON.stringify(address)} is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** Username, password, TLS and database of a URL, as ioredis options. */
function credentials(url: string): Partial<RedisOptions> {
  const u = new URL(url);
  const out: Partial<RedisOptions> = {};
  if (u.username !== '') out.username = decodeURIComponent(u.username);
  if (u.password !== '') out.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') out.tls = {};
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && db !== '0') out.db = Number(db);
  return out;
}
