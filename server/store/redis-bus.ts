/**
 * The fleet bus on Redis pub/sub: JSON messages on the channel `<prefix>bus:{ms}`.
 *
 * - Publishing uses the store's client (it fails at once while Redis is down, like the store).
 * - Listening needs a connection of its own (a subscribed connection takes no other commands).
 *   On a single Redis or Sentinel: SUBSCRIBE on a duplicate of the main connection, which ioredis
 *   subscribes again after every reconnection (`autoResubscribe`). On Redis Cluster: sharded
 *   pub/sub (SPUBLISH, SSUBSCRIBE; Redis 7), so a message goes to the one shard that serves the
 *   channel's slot and its replicas, not to every node; the subscriber connects to that slot's
 *   master, and when it loses it (a failover, a slot moved) connects to the master the slot map
 *   names then.
 * - Messages published while a listener was away are lost: `onReconnect` lets the owner catch up
 *   (re-read the active rule set, drop its cache).
 * - A message that is not JSON, or not a message this version knows, is counted and ignored; a
 *   handler that throws is logged and the others still get the message.
 */
import type { Redis } from 'ioredis';
import { deliver, parseBusMessage } from './bus.js';
import { RedisStore, type RedisStoreOptions } from './redis.js';
import { retryDelay } from './resp.js';
import { slotOf } from './slots.js';
import type { Bus, BusMessage } from './types.js';

export type RedisBusOptions = (
  | {
      /** Publish through this store's client; listen on a connection of the bus's own. */
      store: RedisStore;
    }
  | {
      /** Connect by itself (closed with the bus). */
      redis: RedisStoreOptions;
    }
) & {
  /** Where problems are reported. Default console.warn. */
  log?: (line: string) => void;
  /** Called when listening again after the subscriber connection was lost. */
  onReconnect?: () => void;
  /** How long subscribe() waits for Redis before resolving anyway (listening follows). Default 2000. */
  subscribeWaitMs?: number;
};

export interface RedisBusStats {
  received: number;
  malformed: number;
  listening: boolean;
}

type Handler = (message: BusMessage) => void;

/** The channel of a key prefix. */
export function busChannel(keyPrefix: string): string {
  return `${keyPrefix}bus:{ms}`;
}

export class RedisBus implements Bus {
  readonly channel: string;
  private readonly store: RedisStore;
  private readonly ownsStore: boolean;
  private readonly log: (line: string) => void;
  private readonly onReconnect: (() => void) | undefined;
  private readonly subscribeWaitMs: number;
  private readonly handlers = new Set<Handler>();
  private sub: Redis | null = null;
  private subscribed: Promise<void> | null = null;
  private listening = false;
  private everListened = false;
  private closed = false;
  private received = 0;
  private malformed = 0;
  /** Cluster: attempts in a row to reach the channel's shard. */
  private shardAttempts = 0;
  private shardTimer: NodeJS.Timeout | null = null;

  constructor(opts: RedisBusOptions) {
    this.log = opts.log ?? ((line) => console.warn(line));
    if ('store' in opts) {
      this.store = opts.store;
      this.ownsStore = false;
    } else {
      this.store = new RedisStore({ log: this.log, ...opts.redis });
      this.ownsStore = true;
    }
    this.channel = busChannel(this.store.keyPrefix);
    this.onReconnect = opts.onReconnect;
    this.subscribeWaitMs = Math.max(0, opts.subscribeWaitMs ?? 2000);
  }

  private get sharded(): boolean {
    return this.store.client.kind === 'cluster';
  }

  async publish(message: BusMessage): Promise<void> {
    if (this.closed) throw new Error('the bus is closed');
    const checked = parseBusMessage(message);
    if (checked === null) throw new TypeError('not a bus message');
    const client = this.store.client;
    await client.up();
    const text = JSON.stringify(checked);
    if (this.sharded) await client.main.spublish(this.channel, text);
    else await client.main.publish(this.channel, text);
  }

  async subscribe(handler: Handler): Promise<() => void> {
    if (this.closed) throw new Error('the bus is closed');
    const own: Handler = (m) => handler(m);
    this.handlers.add(own);
    const off = () => {
      this.handlers.delete(own);
    };
    const subscribed = this.listen();
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.subscribeWaitMs);
    });
    const ok = await Promise.race([subscribed.then(() => true), waited]);
    clearTimeout(timer);
    if (!ok) this.log(`bus: Redis not reachable yet; listening on ${this.channel} once it is`);
    return off;
  }

  stats(): RedisBusStats {
    return { received: this.received, malformed: this.malformed, listening: this.listening };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    if (this.shardTimer !== null) clearTimeout(this.shardTimer);
    const sub = this.sub;
    this.sub = null;
    if (sub !== null) {
      if (sub.status === 'ready') await sub.quit().catch(() => undefined);
      if (sub.status !== 'end') sub.disconnect();
    }
    if (this.ownsStore) await this.store.close();
  }

  /** Starts listening once; settles when the first (S)SUBSCRIBE is answered. */
  private listen(): Promise<void> {
    if (this.subscribed !== null) return this.subscribed;
    this.subscribed = this.sharded ? this.listenOnShard() : this.listenOnConnection();
    return this.subscribed;
  }

  private listenOnConnection(): Promise<void> {
    const sub = this.store.client.subscriber();
    this.sub = sub;
    sub.on('message', (channel: string, text: string) => this.onMessage(channel, text));
    sub.on('error', () => {
      // Reported by the store's connection; the subscriber reconnects by itself.
    });
    sub.on('close', () => {
      this.listening = false;
    });
    sub.on('ready', () => {
      if (this.everListened && !this.closed) {
        this.listening = true;
        this.caughtUp();
      }
    });
    return sub.subscribe(this.channel).then(
      () => {
        this.listening = true;
        this.everListened = true;
      },
      (err: Error) => {
        // Only when the bus is closed before Redis ever answered.
        if (!this.closed) this.log(`bus: subscribing to ${this.channel} failed: ${err.message}`);
        // Start over on the next subscribe().
        if (this.sub === sub) this.sub = null;
        sub.disconnect();
        this.subscribed = null;
      },
    );
  }

  /**
   * Redis Cluster: SSUBSCRIBE on the master of the channel's slot. A lost connection (or the slot
   * moving away, which Redis says with an sunsubscribe) starts a new one to the master the slot
   * map names then. Resolves at the first subscription.
   */
  private listenOnShard(): Promise<void> {
    return new Promise<void>((resolve) => {
      let first = true;
      const connect = async () => {
        this.shardTimer = null;
        if (this.closed) return;
        const client = this.store.client;
        if (this.shardAttempts > 0) await client.refreshSlots();
        const master = client.masterOf(slotOf(this.channel));
        if (master === undefined) {
          retry();
          return;
        }
        const sub = client.nodeConnection(master);
        this.sub = sub;
        let dropped = false;
        const drop = () => {
          if (dropped) return;
          dropped = true;
          this.listening = false;
          if (this.sub === sub) this.sub = null;
          sub.disconnect();
          retry();
        };
        sub.on('smessage', (channel: string, text: string) => this.onMessage(channel, text));
        sub.on('error', (err: Error) => client.noteError(err));
        sub.on('end', drop);
        sub.on('sunsubscribe', () => drop());
        try {
          await sub.ssubscribe(this.channel);
        } catch {
          drop();
          return;
        }
        if (this.closed || dropped) return;
        this.shardAttempts = 0;
        this.listening = true;
        if (first) {
          first = false;
          this.everListened = true;
          resolve();
        } else this.caughtUp();
      };
      const retry = () => {
        if (this.closed) return;
        this.shardAttempts++;
        this.shardTimer = setTimeout(() => void connect(), retryDelay(this.shardAttempts, 1000));
        this.shardTimer.unref();
      };
      void connect();
    });
  }

  /** Listening again after a loss: the owner catches up with what it may have missed. */
  private caughtUp(): void {
    try {
      this.onReconnect?.();
    } catch (e) {
      this.log(`bus: reconnect handler failed: ${(e as Error).message}`);
    }
  }

  private onMessage(channel: string, text: string): void {
    if (channel !== this.channel || this.closed) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.malformed++;
      return;
    }
    const message = parseBusMessage(value);
    if (message === null) {
      this.malformed++;
      return;
    }
    this.received++;
    for (const handler of [...this.handlers]) deliver(handler, { ...message }, this.log);
  }
}
