/**
 * The fleet bus in process, for the embedded store: several servers in one process share one
 * EmbeddedBus (each may take its own handle with `attach()`, so that closing one server leaves
 * the others listening). Also the checks every bus applies to what it receives.
 */
import { aliasMember } from './person.js';
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

/** People or aliases per message the announcer sends. */
const ANNOUNCE_MAX = 1000;

export interface AnnouncerOptions {
  /**
   * How long announcements wait to be sent together, ms: every instance thread receives every
   * message, so one message for the writes of a few milliseconds (a burst of OpenRTB notices, say)
   * instead of one each keeps the bus's fan-out in bounds. 0: each call sends its own. Default 2.
   */
  gatherMs?: number;
}

/**
 * What a store calls to tell the fleet about its writes (CachedStore's `announce`): publishes the
 * messages on `bus`, people and aliases of the calls made within `gatherMs` merged into as few
 * messages as fit; each call resolves once its messages are published. A failure is reported
 * through `log`, never thrown (the write is done; other instances' copies then live at most their
 * cache TTL, and they drop everything when their bus connection comes back).
 */
export function announcer(
  bus: Bus,
  log: (line: string) => void,
  opts: AnnouncerOptions = {},
): (messages: BusMessage[]) => Promise<void> {
  const gatherMs = Math.max(0, opts.gatherMs ?? 2);
  const send = async (messages: readonly BusMessage[]) => {
    for (const m of messages) {
      try {
        await bus.publish(m);
      } catch (e) {
        log(`could not announce a ${m.type} change on the bus: ${(e as Error).message}`);
      }
    }
  };
  if (gatherMs === 0) return send;
  let pids = new Set<string>();
  let members = new Set<string>();
  let others: BusMessage[] = [];
  let sent: Promise<void> | null = null;
  const flush = async () => {
    const messages: BusMessage[] = [...others];
    const p = [...pids];
    const m = [...members];
    pids = new Set();
    members = new Set();
    others = [];
    sent = null;
    if (p.length === 1) messages.push({ type: 'person', pid: p[0]! });
    else
      for (let i = 0; i < p.length; i += ANNOUNCE_MAX)
        messages.push({ type: 'people', pids: p.slice(i, i + ANNOUNCE_MAX) });
    for (let i = 0; i < m.length; i += ANNOUNCE_MAX)
      messages.push({ type: 'aliases', members: m.slice(i, i + ANNOUNCE_MAX) });
    await send(messages);
  };
  return (messages) => {
    for (const m of messages) {
      if (m.type === 'person') pids.add(m.pid);
      else if (m.type === 'people') for (const pid of m.pids) pids.add(pid);
      else if (m.type === 'alias') members.add(aliasMember(m.kind, m.value));
      else if (m.type === 'aliases') for (const member of m.members) members.add(member);
      else others.push(m);
    }
    sent ??= new Promise<void>((resolve) => setTimeout(resolve, gatherMs)).then(flush);
    return sent;
  };
}
