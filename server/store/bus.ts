/**
 * The fleet bus in process, for the embedded store: several servers in one process share one
 * EmbeddedBus (each may take its own handle with `attach()`, so that closing one server leaves
 * the others listening). Also the checks every bus applies to what it receives.
 */
import type { Bus, BusMessage } from './types.js';

type Handler = (message: BusMessage) => void;

/** A message as the bus carries it; null when `value` is not a message this version knows. */
export function parseBusMessage(value: unknown): BusMessage | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'ruleset':
      if (typeof m.version !== 'number' || !Number.isSafeInteger(m.version) || m.version <= 0) return null;
      if (m.checksum !== undefined && typeof m.checksum !== 'string') return null;
      return m.checksum === undefined
        ? { type: 'ruleset', version: m.version }
        : { type: 'ruleset', version: m.version, checksum: m.checksum };
    case 'person':
      return typeof m.pid === 'string' ? { type: 'person', pid: m.pid } : null;
    case 'people':
      return Array.isArray(m.pids) && m.pids.every((p) => typeof p === 'string')
        ? { type: 'people', pids: [...(m.pids as string[])] }
        : null;
    case 'aliases':
      return Array.isArray(m.members) && m.members.every((p) => typeof p === 'string')
        ? { type: 'aliases', members: [...(m.members as string[])] }
        : null;
    case 'alias':
      return typeof m.kind === 'string' && typeof m.value === 'string'
        ? { type: 'alias', kind: m.kind, value: m.value }
        : null;
    default:
      return null;
  }
}

/** Calls a handler, never letting it throw into the bus. */
export function deliver(handler: Handler, message: BusMessage, log: (line: string) => void): void {
  try {
    handler(message);
  } catch (e) {
    log(`bus handler failed on a ${message.type} message: ${(e as Error).message}`);
  }
}

export interface EmbeddedBusOptions {
  /** Where failing handlers are reported. Default console.warn. */
  log?: (line: string) => void;
}

/**
 * Delivers every published message to every subscriber (the publisher's own included) before
 * `publish` resolves. Messages are copied, so no subscriber sees another's changes.
 */
export class EmbeddedBus implements Bus {
  private readonly handlers = new Set<Handler>();
  private readonly log: (line: string) => void;
  private closed = false;

  constructor(opts: EmbeddedBusOptions = {}) {
    this.log = opts.log ?? ((line) => console.warn(line));
  }

  async publish(message: BusMessage): Promise<void> {
    if (this.closed) throw new Error('the bus is closed');
    const checked = parseBusMessage(message);
    if (checked === null) throw new TypeError('not a bus message');
    for (const handler of [...this.handlers]) deliver(handler, { ...checked }, this.log);
  }

  async subscribe(handler: Handler): Promise<() => void> {
    if (this.closed) throw new Error('the bus is closed');
    // One registration per call, even for the same function.
    const own: Handler = (m) => handler(m);
    this.handlers.add(own);
    return () => {
      this.handlers.delete(own);
    };
  }

  /** A handle on this bus whose close() drops only the subscriptions made through it. */
  attach(): Bus {
    const mine = new Set<() => void>();
    let closed = false;
    return {
      publish: (message) => {
        if (closed) return Promise.reject(new Error('the bus handle is closed'));
        return this.publish(message);
      },
      subscribe: async (handler) => {
        if (closed) throw new Error('the bus handle is closed');
        const off = await this.subscribe(handler);
        mine.add(off);
        return () => {
          mine.delete(off);
          off();
        };
      },
      close: async () => {
        closed = true;
        for (const off of mine) off();
        mine.clear();
      },
    };
  }

  /** How many subscriptions are live (for tests and metrics). */
  get subscribers(): number {
    return this.handlers.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
  }
}

/**
 * What a store calls to tell the fleet about its writes (CachedStore's `announce`): publishes each
 * message on `bus`; a failure is reported through `log`, never thrown (the write is done; other
 * instances' copies then live at most their cache TTL, and they drop everything when their bus
 * connection comes back).
 */
export function announcer(bus: Bus, log: (line: string) => void): (messages: BusMessage[]) => Promise<void> {
  return async (messages) => {
    for (const m of messages) {
      try {
        await bus.publish(m);
      } catch (e) {
        log(`could not announce a ${m.type} change on the bus: ${(e as Error).message}`);
      }
    }
  };
}
