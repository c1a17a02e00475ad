/**
 * The lean decision-read connection (resp.ts) on a Redis Cluster: one RespConnection per master,
 * each command sent to the master of its first key's hash slot.
 *
 * - The slot map is ioredis Cluster's (the store's main client), taken again whenever ioredis
 *   refreshes it (`refresh`: on MOVED, on a lost node, and every few seconds). Connections to
 *   nodes that no longer serve a slot are closed.
 * - `MOVED slot host:port`: the slot is remembered at that node at once, the command is sent
 *   there, and ioredis is asked to refresh its map. `ASK slot host:port` (a slot being migrated):
 *   the command is sent there once, after ASKING. At most a few redirects per command.
 * - A slot whose master cannot be reached fails its commands at once (the decision answers on
 *   context alone, degraded); the connection keeps reconnecting, and a failover moves the slot
 *   to the promoted replica at the next refresh, which a lost connection asks for.
 *
 * Chosen over ioredis Cluster with auto-pipelining for the decision reads: measured in the load
 * run's cluster scenario (bench/README.md).
 */
import type { Cluster } from 'ioredis';
import {
  type Arg,
  type Command,
  ConnectionDownError,
  type LuaScript,
  type Reply,
  type ReplyError,
  RespConnection,
  type RespConnectionOptions,
} from './resp.js';
import { SLOTS, slotOf } from './slots.js';

/** Redirects a command may follow before it fails. */
const MAX_REDIRECTS = 5;

export interface RespClusterOptions {
  /** The cluster's main client: its slot map is followed. */
  cluster: Cluster;
  /** `redis://[user:password@]host:port` or `rediss://…`: credentials and TLS for every node (host and port are ignored). */
  url: string;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  maxRetryDelayMs?: number;
  /** Scripts loaded on every node's connection as it opens (RespConnectionOptions.preload). */
  preload?: readonly LuaScript[];
  onError?: (err: Error) => void;
}

export class RespCluster {
  private readonly opts: RespClusterOptions;
  private readonly cluster: Cluster;
  /** "host:port" -> connection, for every node serving a slot now (and those redirected to). */
  private readonly nodes = new Map<string, RespConnection>();
  /** slot -> the connection of its master; undefined while unknown. */
  private table: Array<RespConnection | undefined> = new Array(SLOTS);
  private closed = false;
  private refreshAsked = false;
  private readonly onRefresh = () => this.takeMap();

  constructor(opts: RespClusterOptions) {
    this.opts = opts;
    this.cluster = opts.cluster;
    this.cluster.on('refresh', this.onRefresh);
    this.takeMap();
  }

  /** `ready` when every slot has a master whose connection is ready. */
  get status(): 'ready' | 'connecting' | 'closed' {
    if (this.closed) return 'closed';
    for (let s = 0; s < SLOTS; s++) if (this.table[s]?.status !== 'ready') return 'connecting';
    return 'ready';
  }

  evalsha(script: LuaScript, keys: readonly Arg[], args: readonly Arg[], slot?: number): Promise<Reply> {
    const conn = this.table[slot ?? slotOf(String(keys[0]))];
    if (conn === undefined) return this.unknownSlot();
    return conn.evalsha(script, keys, args);
  }

  get(key: string): Promise<Reply> {
    const conn = this.table[slotOf(key)];
    if (conn === undefined) return this.unknownSlot();
    return conn.get(key);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cluster.off('refresh', this.onRefresh);
    for (const conn of this.nodes.values()) conn.close();
    this.nodes.clear();
    this.table = new Array(SLOTS);
  }

  private unknownSlot(): Promise<Reply> {
    this.askRefresh();
    return Promise.reject(new ConnectionDownError('no master known for this slot yet'));
  }

  /** The slot map as ioredis has it now; connections to nodes it no longer names are closed. */
  private takeMap(): void {
    if (this.closed) return;
    const slots = this.cluster.slots;
    const table: Array<RespConnection | undefined> = new Array(SLOTS);
    const used = new Set<string>();
    for (let s = 0; s < SLOTS; s++) {
      const master = slots[s]?.[0];
      if (master === undefined) continue;
      used.add(master);
      table[s] = this.connection(master);
    }
    this.table = table;
    for (const [key, conn] of this.nodes) {
      if (!used.has(key)) {
        conn.close();
        this.nodes.delete(key);
      }
    }
  }

  private connection(node: string): RespConnection {
    let conn = this.nodes.get(node);
    if (conn !== undefined) return conn;
    const { host, port } = splitNode(node);
    const url = new URL(this.opts.url);
    url.hostname = host.includes(':') ? `[${host}]` : host;
    url.port = String(port);
    url.pathname = '';
    const options: RespConnectionOptions = {
      url: url.toString(),
      onRedirect: (reply, command) => this.redirect(reply, command),
      onError: (err) => {
        this.opts.onError?.(err);
        // A node that cannot be reached may have failed over: ask for the map again.
        this.askRefresh();
      },
    };
    if (this.opts.connectTimeoutMs !== undefined) options.connectTimeoutMs = this.opts.connectTimeoutMs;
    if (this.opts.commandTimeoutMs !== undefined) options.commandTimeoutMs = this.opts.commandTimeoutMs;
    if (this.opts.maxRetryDelayMs !== undefined) options.maxRetryDelayMs = this.opts.maxRetryDelayMs;
    if (this.opts.preload !== undefined) options.preload = this.opts.preload;
    conn = new RespConnection(options);
    this.nodes.set(node, conn);
    return conn;
  }

  /** MOVED or ASK: the command goes to the node the reply names. */
  private redirect(reply: ReplyError, command: Command): boolean {
    if (this.closed || command.redirects >= MAX_REDIRECTS) return false;
    // `MOVED 3999 127.0.0.1:6381`
    const [, slotText, node] = reply.message.split(' ');
    const slot = Number(slotText);
    if (node === undefined || !Number.isInteger(slot) || slot < 0 || slot >= SLOTS) return false;
    const target = this.connection(node);
    command.redirects++;
    if (reply.code === 'MOVED') {
      this.table[slot] = target;
      this.askRefresh();
    }
    target.send(command, reply.code === 'ASK');
    return true;
  }

  /** Asks ioredis for the slot map again (once at a time). */
  private askRefresh(): void {
    if (this.refreshAsked || this.closed) return;
    this.refreshAsked = true;
    this.cluster.refreshSlotsCache(() => {
      this.refreshAsked = false;
    });
  }
}

/** `host:port` (IPv6 hosts as ioredis writes them, `::1:6379`) as its parts. */
function splitNode(node: string): { host: string; port: number } {
  const i = node.lastIndexOf(':');
  return { host: node.slice(0, i), port: Number(node.slice(i + 1)) };
}
