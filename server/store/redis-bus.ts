/**
 * The fleet bus on Redis pub/sub: JSON messages on the channel `<prefix>mindshare:bus`.
 *
 * - Publishing uses the store's connection (it fails at once while Redis is down, like the store).
 * - Listening needs a connection of its own (a subscribed connection takes no other commands),
 *   made with duplicate() on first subscribe. ioredis subscribes again by itself after every
 *   reconnection (`autoResubscribe`, on by default: the ready handler re-issues SUBSCRIBE for the
 *   channels the connection had). Messages published while it was away are lost: `onReconnect`
 *   lets the owner catch up (re-read the active rule set, drop its cache).
 * - A message that is not JSON, or not a message this version knows, is counted and ignored; a
 *   handler that throws is logged and the others still get the message.
 */
import type { Redis } from 'ioredis';
import { deliver, parseBusMessage } from './bus.js';
import { RedisStore, type RedisStoreOptions } from './redis.js';
import type { Bus, BusMessage } from './types.js';

export type RedisBusOptions = (
  | {
      /** Publish through this store's connection; listen on a duplicate of it. */
      store: RedisStore;
    }
  | {
      /** Connect by itself (closed with the bus). */
      redis: RedisStoreOptions;
    }
) & {
  /** Where problems are reported. Default the store's log, else console.warn. */
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
  return `${keyPrefix}mindshare:bus`;
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

  async publish(message: BusMessage): Promise<void> {
    if (this.closed) throw new Error('the bus is closed');
    const checked = parseBusMessage(message);
    if (checked === null) throw new TypeError('not a bus message');
    const redis = await this.store.connection();
    await redis.publish(this.channel, JSON.stringify(checked));
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
    const sub = this.sub;
    this.sub = null;
    if (sub !== null) {
      if (sub.status === 'ready') await sub.quit().catch(() => undefined);
      if (sub.status !== 'end') sub.disconnect();
    }
    if (this.ownsStore) await this.store.close();
  }

  /** Starts the subscriber connection once; settles when the first SUBSCRIBE is answered. */
  private listen(): Promise<void> {
    if (this.subscribed !== null) return this.subscribed;
    const sub = this.store.duplicateConnection({
      // SUBSCRIBE waits for the connection instead of failing while Redis is down, and is
      // re-issued by ioredis after every reconnection.
      enableOfflineQueue: true,
      autoResubscribe: true,
      maxRetriesPerRequest: null,
      commandTimeout: undefined,
      enableAutoPipelining: false,
      lazyConnect: false,
    });
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
        try {
          this.onReconnect?.();
        } catch (e) {
          this.log(`bus: reconnect handler failed: ${(e as Error).message}`);
        }
      }
    });
    this.subscribed = sub.subscribe(this.channel).then(
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
    return this.subscribed;
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
