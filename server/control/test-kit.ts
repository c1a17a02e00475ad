/**
 * A control plane over the embedded store, bus and rule-set versions, for tests: the demo rule
 * set active as version 1 of the instance, a fixed clock, tokens with different scopes, and a
 * request helper on app.request().
 */
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';
import { compileRuleSet } from '../../rules/compile.js';
import { parseRuleSetText } from '../../rules/parse.js';
import type { ActiveRuleSet } from '../decision/service.js';
import { loadRuleSetFile } from '../ruleset-file.js';
import type { ApiToken } from '../scopes.js';
import { announcer, EmbeddedBus } from '../store/bus.js';
import { CachedStore } from '../store/cached.js';
import { EmbeddedStore } from '../store/embedded.js';
import { EmbeddedRuleSets } from '../store/rulesets.js';
import type { BusMessage } from '../store/types.js';
import { createControlApp } from './app.js';
import type { ControlDeps } from './context.js';

export const T0 = Date.parse('2026-11-24T04:00:00.000Z');
export const DEMO_FILE = fileURLToPath(new URL('../../rules/examples/demo.yaml', import.meta.url));

export const TOKENS: ApiToken[] = [
  { name: 'root', secret: 'root-secret', scopes: ['admin'] },
  { name: 'reader', secret: 'read-secret', scopes: ['rules:read', 'profiles:read'] },
  { name: 'author', secret: 'rules-secret', scopes: ['rules:read', 'rules:write'] },
  { name: 'pipeline', secret: 'profiles-secret', scopes: ['profiles:write', 'profiles:read'] },
  { name: 'tracker', secret: 'events-secret', scopes: ['events:write'] },
  { name: 'exchange', secret: 'decide-secret', scopes: ['decide'] },
];

export interface Reply {
  status: number;
  headers: Headers;
  body: Json;
  text: string;
}

export interface RequestOptions {
  token?: string | null;
  body?: unknown;
  type?: string | null;
  headers?: Record<string, string>;
}

export interface Kit {
  app: Hono;
  store: EmbeddedStore;
  bus: EmbeddedBus;
  rulesets: EmbeddedRuleSets;
  messages: BusMessage[];
  logs: string[];
  clock: { now: number };
  active(): ActiveRuleSet;
  /** Resolves once rule-set activations announced so far are swapped in. */
  synced(): Promise<void>;
  req(method: string, path: string, opts?: RequestOptions): Promise<Reply>;
}

export async function makeKit(overrides: Partial<ControlDeps> = {}): Promise<Kit> {
  const clock = { now: T0 };
  const store = new EmbeddedStore({ now: () => clock.now });
  const bus = new EmbeddedBus();
  const rulesets = new EmbeddedRuleSets({ bus });
  const messages: BusMessage[] = [];
  const logs: string[] = [];
  let active = loadRuleSetFile(DEMO_FILE, 1, T0);
  let pending: Promise<void> = Promise.resolve();
  await bus.subscribe((m) => {
    messages.push(m);
    if (m.type !== 'ruleset') return;
    pending = pending.then(async () => {
      const stored = await rulesets.getRuleSet(m.version);
      if (stored === null) return;
      const parsed = parseRuleSetText(stored.source, stored.meta.format);
      if (!parsed.ok) return;
      active = {
        version: m.version,
        checksum: stored.meta.checksum,
        compiled: compileRuleSet(parsed.value),
        activatedAt: clock.now,
      };
    });
  });
  // As the server has it: the control plane's writes go through a cache that announces them.
  const profiles = new CachedStore(store, {
    maxPeople: 1000,
    maxAliases: 1000,
    ttlMs: 1000,
    announce: announcer(bus, (line) => logs.push(line)),
  });
  const app = createControlApp({
    profiles,
    rulesets,
    tokens: TOKENS,
    active: () => active,
    now: () => clock.now,
    log: (line) => logs.push(line),
    ...overrides,
  });
  const req = async (method: string, path: string, opts: RequestOptions = {}): Promise<Reply> => {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? 'root-secret' : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: RequestInit['body'] | undefined;
    if (opts.body !== undefined) {
      body =
        typeof opts.body === 'string' ||
        opts.body instanceof Uint8Array ||
        opts.body instanceof ReadableStream
          ? (opts.body as RequestInit['body'])
          : JSON.stringify(opts.body);
      const type = opts.type === undefined ? 'application/json' : opts.type;
      if (type !== null) headers['content-type'] = type;
    }
    const init: RequestInit & { duplex?: 'half' } = { method, headers };
    if (body !== undefined) init.body = body;
    if (body instanceof ReadableStream) init.duplex = 'half';
    const res = await app.request(path, init);
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('application/json') && text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };
  return {
    app,
    store,
    bus,
    rulesets,
    messages,
    logs,
    clock,
    active: () => active,
    synced: () => pending,
    req,
  };
}

/** A path of a route with its parameters filled in. */
export function samplePath(path: string): string {
  return path.replace('{version}', '1').replace('{id}', 'p-1').replace('{brand}', 'vivo');
}

/** Loosely typed JSON, for reading answers in tests. */
// biome-ignore lint/suspicious/noExplicitAny: answers are checked by the assertions
export type Json = any;
