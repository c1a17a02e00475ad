/**
 * `npm run chaos`: the built server under the faults production brings, one scenario after
 * another, with decisions and control-plane reads flowing all along:
 *
 *   npm run chaos                        # every scenario, 8 s of fault each (about 3 minutes)
 *   npm run chaos -- --quick             # 3 s of fault each, fewer fuzzed requests (about a minute)
 *   npm run chaos -- --only pause,fuzz   # some scenarios
 *
 * It starts a private redis-server (a free port, no persistence), stores the demo people, and
 * starts `node dist/server/main.js` on it with two data-plane workers. Scenarios:
 *   baseline     no fault: the reference row
 *   pause        Redis stopped (SIGSTOP) for the fault's length, then resumed
 *   slow         Redis busy for 250 ms at a time (a Lua busy loop; DEBUG SLEEP is disabled in
 *                Redis 7 by default) for the fault's length
 *   kill         Redis killed; back, empty (no persistence), after the fault's length: the
 *                server must notice the lost data, restore its rule set and go on
 *   flush        FLUSHALL while everything runs: the store's data and identity gone at once
 *   flood-slow   300 connections from another loopback address trickling request heads and
 *                bodies at the control plane, 100 at the data plane
 *   flood-huge   bodies of 64 MiB (16 MiB quick; declared, and chunked without a length) at
 *                every body route, round after round for the fault's length
 *   fuzz         mutated and random requests on every route of both listeners
 * For each it prints: decisions sent, answers that were not 2xx (by status), the share answered
 * degraded, the slowest, the time from the fault's end to the first decision answered whole with
 * /readyz at 200, control-plane reads that were not 2xx, and whether the server process died.
 *
 * Exit status 1 when the server crashed, when the data plane answered a 5xx, or when the control
 * plane answered a 5xx other than `503 store_unavailable` while Redis was away (flood and fuzz:
 * none at all). The quick mode runs in CI.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { prng } from '../bench/synthetic.js';
import { seed } from '../server/cli/seed.js';
import { ROUTES } from '../server/control/routes.js';
import { demoProfile } from '../server/demo/profiles.js';
import { bidRequestFor, bodyFor } from './driver.js';
import { sleep } from './measure.js';
import { freePort, type RedisHandle, startRedis, track } from './redis.js';

const here = dirname(fileURLToPath(import.meta.url));
const PEOPLE = 5_000;

interface Options {
  quick: boolean;
  faultMs: number;
  fuzzRequests: number;
  only: Set<string> | null;
}

function options(argv: readonly string[]): Options {
  const quick = argv.includes('--quick');
  const at = argv.indexOf('--only');
  const only = at >= 0 ? new Set((argv[at + 1] ?? '').split(',').filter(Boolean)) : null;
  return { quick, faultMs: quick ? 3000 : 8000, fuzzRequests: quick ? 1500 : 6000, only };
}

// ---- one HTTP exchange, on a keep-alive agent ----------------------------------------------------

interface Answer {
  status: number;
  ms: number;
  body: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function exchange(
  port: number,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<Answer> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = request(
      { host: '127.0.0.1', port, method, path, headers, agent, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - t0,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', () => resolve({ status: 0, ms: performance.now() - t0, body: '' }));
      },
    );
    // 0: no answer at all (connection refused, reset or timed out).
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0, body: '' }));
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

// ---- the server ----------------------------------------------------------------------------------

interface Server {
  child: ChildProcess;
  dataPort: number;
  adminPort: number;
  crashed: () => string | null;
  output: () => string;
}

async function startServer(redisUrl: string): Promise<Server> {
  const dataPort = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, [join(here, '..', 'server', 'main.js')], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      OPENRTB_NOTICE_URL: `http://127.0.0.1:${dataPort}`,
      PORT: String(dataPort),
      ADMIN_PORT: String(adminPort),
      HOST: '127.0.0.1',
      WORKERS: '2',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  });
  child.stderr?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  });
  let died: string | null = null;
  child.once('exit', (code, signal) => {
    died = `exited with ${signal ?? code}`;
  });
  const until = Date.now() + 30_000;
  for (;;) {
    if (died !== null) throw new Error(`the server ${died}:\n${output}`);
    if ((await exchange(adminPort, 'GET', '/readyz')).status === 200) break;
    if (Date.now() > until) throw new Error(`the server did not become ready:\n${output}`);
    await sleep(100);
  }
  return { child, dataPort, adminPort, crashed: () => died, output: () => output };
}

// ---- traffic during a scenario -------------------------------------------------------------------

interface Row {
  scenario: string;
  decisions: number;
  non2xx: Record<string, number>;
  degraded: number;
  maxMs: number;
  recoverS: number | null;
  control: number;
  controlNon2xx: Record<string, number>;
  crashed: string | null;
  /** Requests the scenario itself sent (fuzz, floods), by status. */
  sent?: Record<string, number>;
  failures: string[];
}

class Traffic {
  decisions = 0;
  degraded = 0;
  maxMs = 0;
  non2xx: Record<string, number> = {};
  control = 0;
  controlNon2xx: Record<string, string[] | number> = {};
  controlCodes: Record<string, number> = {};
  /** performance.now() of the last decision answered whole (not degraded, 200). */
  lastWhole = 0;
  lastReady = 0;
  private running = true;
  private readonly loops: Array<Promise<void>> = [];

  constructor(private readonly server: Server) {
    const rand = prng(7);
    for (let c = 0; c < 8; c++) this.loops.push(this.decide(rand));
    this.loops.push(this.readControl());
    this.loops.push(this.probe());
  }

  private async decide(rand: () => number): Promise<void> {
    while (this.running) {
      const i = Math.floor(rand() * PEOPLE);
      const a = await exchange(this.server.dataPort, 'POST', '/v1/decide', bodyFor(i, 'json', 2), {
        'content-type': 'application/json',
      });
      this.decisions++;
      this.maxMs = Math.max(this.maxMs, a.ms);
      if (a.status < 200 || a.status > 299) {
        this.non2xx[a.status] = (this.non2xx[a.status] ?? 0) + 1;
        if (a.status === 0) await sleep(20);
        continue;
      }
      if (a.body.includes('"degraded"')) this.degraded++;
      else this.lastWhole = performance.now();
    }
  }

  private async readControl(): Promise<void> {
    while (this.running) {
      const a = await exchange(this.server.adminPort, 'GET', '/v1/profiles/p-1');
      this.control++;
      // 404: the profile went with the store's data (kill, flush): an answer, not a failure.
      if ((a.status < 200 || a.status > 299) && a.status !== 404) {
        const code = /"code":"([a-z_]+)"/.exec(a.body)?.[1] ?? '';
        const key = `${a.status}${code === '' ? '' : ` ${code}`}`;
        this.controlCodes[key] = (this.controlCodes[key] ?? 0) + 1;
      }
      await sleep(25);
    }
  }

  private async probe(): Promise<void> {
    while (this.running) {
      if ((await exchange(this.server.adminPort, 'GET', '/readyz')).status === 200)
        this.lastReady = performance.now();
      await sleep(50);
    }
  }

  /** Seconds from `since` until a whole decision and a ready probe both came after it. */
  async recovered(since: number, limitMs: number): Promise<number | null> {
    const until = performance.now() + limitMs;
    while (performance.now() < until) {
      if (this.lastWhole > since && this.lastReady > since)
        return (Math.max(this.lastWhole, this.lastReady) - since) / 1000;
      await sleep(20);
    }
    return null;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

// ---- faults --------------------------------------------------------------------------------------

interface Context {
  redis: RedisHandle;
  server: Server;
  opts: Options;
  /** Requests a fault sent itself, by status. */
  sent: Record<string, number>;
}

type Fault = (ctx: Context) => Promise<void>;

const SCENARIOS: ReadonlyArray<{ name: string; redisAway: boolean; fault: Fault }> = [
  { name: 'baseline', redisAway: false, fault: async (ctx) => sleep(ctx.opts.faultMs) },
  {
    name: 'pause',
    redisAway: true,
    fault: async (ctx) => {
      process.kill(ctx.redis.pid, 'SIGSTOP');
      try {
        await sleep(ctx.opts.faultMs);
      } finally {
        process.kill(ctx.redis.pid, 'SIGCONT');
      }
    },
  },
  {
    name: 'slow',
    redisAway: true,
    fault: async (ctx) => {
      const busy = new Redis(ctx.redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
      try {
        const until = Date.now() + ctx.opts.faultMs;
        while (Date.now() < until) {
          await busy.eval(
            "local s = redis.call('TIME') local t0 = s[1] * 1e6 + s[2] repeat local t = redis.call('TIME') until t[1] * 1e6 + t[2] - t0 >= tonumber(ARGV[1])",
            0,
            250_000,
          );
          await sleep(5);
        }
      } finally {
        busy.disconnect();
      }
    },
  },
  {
    name: 'kill',
    redisAway: true,
    fault: async (ctx) => {
      await ctx.redis.kill();
      await sleep(ctx.opts.faultMs);
      await ctx.redis.restart();
      await seedPeople(ctx.redis.url);
    },
  },
  {
    name: 'flush',
    redisAway: true,
    fault: async (ctx) => {
      const r = new Redis(ctx.redis.url);
      try {
        await r.flushall();
      } finally {
        r.disconnect();
      }
      await sleep(ctx.opts.faultMs);
      await seedPeople(ctx.redis.url);
    },
  },
  { name: 'flood-slow', redisAway: false, fault: floodSlow },
  { name: 'flood-huge', redisAway: false, fault: floodHuge },
  { name: 'fuzz', redisAway: false, fault: fuzz },
];

/** Opens a connection from 127.0.0.2 (another client than the probes) and writes `head`. */
function trickle(port: number, head: string, sockets: Socket[]): void {
  const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
  s.on('error', () => {});
  s.on('data', () => {});
  s.once('connect', () => s.write(head));
  sockets.push(s);
}

async function floodSlow(ctx: Context): Promise<void> {
  const sockets: Socket[] = [];
  const { adminPort, dataPort } = ctx.server;
  const bodyHead = (path: string) =>
    `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`;
  for (let i = 0; i < 300; i++) {
    if (i % 3 === 0) trickle(adminPort, 'GET /v1/rulesets HTTP/1.1\r\nHo', sockets);
    else trickle(adminPort, bodyHead(i % 3 === 1 ? '/v1/events' : '/v1/profiles/p-1'), sockets);
  }
  for (let i = 0; i < 100; i++)
    trickle(dataPort, i % 2 === 0 ? bodyHead('/v1/decide') : 'POST /v1/de', sockets);
  // A byte now and then on every one: never silent, never done.
  const drip = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write(' ');
  }, 500);
  try {
    await sleep(ctx.opts.faultMs);
  } finally {
    clearInterval(drip);
    for (const s of sockets) s.destroy();
  }
}

/** Streams `bytes` of filler as a request body (with a declared length, or chunked). */
function hugeBody(
  port: number,
  path: string,
  type: string,
  bytes: number,
  declared: boolean,
): Promise<number> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'content-type': type };
    if (declared) headers['content-length'] = String(bytes);
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path, headers, agent: false, timeout: 60_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    const chunk = Buffer.alloc(1 << 20, type.includes('ndjson') ? '{"id":"x"}\n' : ' ');
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

async function floodHuge(ctx: Context): Promise<void> {
  const { adminPort, dataPort } = ctx.server;
  // Quick: 16 MiB, past every limit but the import's, which then reads it all.
  const size = ctx.opts.quick ? 16 << 20 : 64 << 20;
  const targets: Array<[number, string, string]> = [
    [dataPort, '/v1/decide', 'application/json'],
    [dataPort, '/openrtb2/bid', 'application/json'],
    [adminPort, '/v1/events', 'application/json'],
    [adminPort, '/v1/rulesets', 'application/yaml'],
    [adminPort, '/v1/rulesets/validate', 'application/json'],
    [adminPort, '/v1/preview', 'application/json'],
    [adminPort, '/v1/profiles/import', 'application/x-ndjson'],
  ];
  const until = Date.now() + ctx.opts.faultMs;
  while (Date.now() < until) {
    const statuses = await Promise.all(
      targets.flatMap(([port, path, type]) => [
        hugeBody(port, path, type, size, true),
        hugeBody(port, path, type, size, false),
      ]),
    );
    for (const s of statuses) ctx.sent[s] = (ctx.sent[s] ?? 0) + 1;
  }
}

// ---- fuzzing -------------------------------------------------------------------------------------

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/msgpack',
  'application/yaml',
  'application/x-ndjson',
  'text/plain',
  'application/x-www-form-urlencoded',
  '',
  'application/json; charset=latin1',
];

/** A random JSON-ish value, `depth` levels at most. */
function randomValue(rand: () => number, depth: number): unknown {
  const k = Math.floor(rand() * (depth > 0 ? 12 : 8));
  switch (k) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return Math.floor((rand() - 0.5) * 2 ** 53);
    case 3:
      return [1e308, -0, 0.1, Number.MAX_SAFE_INTEGER + 2, -1][Math.floor(rand() * 5)];
    case 4:
      return 'x'.repeat(Math.floor(rand() * 3) === 0 ? 70_000 : Math.floor(rand() * 40));
    case 5:
      return ['__proto__', 'constructor', '\u0000', '💥', '\ud800', 'p-1', 'vivo', 'aware'][
        Math.floor(rand() * 8)
      ];
    case 6:
      return '';
    case 7:
      return `${Math.floor(rand() * 1e6)}`;
    case 8:
      return Array.from({ length: Math.floor(rand() * 5) }, () => randomValue(rand, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(rand() * 5); i > 0; i--) {
        o[['id', 'user', 'tags', 'placements', 'events', 'imp', '__proto__', 'x'][Math.floor(rand() * 8)]!] =
          randomValue(rand, depth - 1);
      }
      return o;
    }
  }
}

/** `value` with one part of it replaced by something random, somewhere. */
function mutate(value: unknown, rand: () => number): unknown {
  if (value === null || typeof value !== 'object' || rand() < 0.2) return randomValue(rand, 3);
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value)
    ? value.slice()
    : { ...(value as object) };
  const keys = Object.keys(copy);
  if (keys.length === 0) return randomValue(rand, 3);
  const key = keys[Math.floor(rand() * keys.length)]!;
  const r = rand();
  if (r < 0.15) delete (copy as Record<string, unknown>)[key];
  else (copy as Record<string, unknown>)[key] = mutate((copy as Record<string, unknown>)[key], rand);
  return copy;
}

/** A valid-looking body for a route, the seed of its mutations. */
function sampleBody(path: string): unknown {
  if (path === '/v1/decide') return JSON.parse(bodyFor(1, 'json', 3) as string);
  if (path === '/openrtb2/bid') return JSON.parse(bidRequestFor(1));
  if (path === '/v1/events')
    return { events: [{ eventId: 'e-1', type: 'click', user: { id: 'p-1' }, brand: 'vivo' }] };
  if (path.startsWith('/v1/profiles') && path.endsWith('/aliases')) return { idfa: 'A-1' };
  if (path.startsWith('/v1/profiles')) return demoProfile(1);
  if (path === '/v1/preview') return { user: { id: 'p-1' }, placements: [{ id: 'home-banner' }] };
  return { funnel: ['aware', 'act'], segments: [{ id: 's', when: { tag: 'a' } }], campaigns: [] };
}

async function fuzz(ctx: Context): Promise<void> {
  const rand = prng(2026);
  const routes = ROUTES.filter((r) => r.path !== '/metrics');
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const params = ['1', '999999', 'p-1', 'x'.repeat(3000), '%00', '..%2F..', '%F0%9F%92%A5', '-1', 'vivo'];
  const one = async (): Promise<void> => {
    const route = pick(routes);
    const port = route.servedBy === 'data' ? ctx.server.dataPort : ctx.server.adminPort;
    const path = route.path.replace(/\{[a-z]+\}/g, () => pick(params));
    const method =
      rand() < 0.9 ? route.method.toUpperCase() : pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH']);
    let query = '';
    if (path.startsWith('/openrtb2/win') || path.startsWith('/openrtb2/bill'))
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the exchange's unexpanded price macro, sent as is
      query = `?bid=${encodeURIComponent(String(randomValue(rand, 0)))}&price=${pick(['1', '-1', 'NaN', '1e9', '', '${AUCTION_PRICE}'])}`;
    else if (rand() < 0.3)
      query = `?${pick(['activate=maybe', 'days=-5', 'days=100000', 'days=7', 'x=%FF'])}`;
    let body: Buffer | undefined;
    const form = rand();
    if (method === 'GET' || method === 'DELETE') body = undefined;
    else if (form < 0.7) body = Buffer.from(JSON.stringify(mutate(sampleBody(path), rand)) ?? 'null');
    else if (form < 0.8) body = Buffer.from(Array.from({ length: 200 }, () => Math.floor(rand() * 256)));
    else if (form < 0.9) body = Buffer.from(`${'['.repeat(5000)}${']'.repeat(5000)}`);
    else
      body = Buffer.concat([
        Buffer.from('{"user":{"id":"'),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from('"}}'),
      ]);
    const type =
      route.body === undefined
        ? pick(CONTENT_TYPES)
        : rand() < 0.7
          ? (route.body.contentTypes[0] ?? '')
          : pick(CONTENT_TYPES);
    const headers: Record<string, string> = type === '' ? {} : { 'content-type': type };
    const a = await exchange(port, method, `${path}${query}`, body, headers);
    ctx.sent[a.status] = (ctx.sent[a.status] ?? 0) + 1;
    if (a.status >= 500 || a.status === 0) {
      const key = `${a.status} ${method} ${route.path}`;
      ctx.sent[key] = (ctx.sent[key] ?? 0) + 1;
    }
  };
  let left = ctx.opts.fuzzRequests;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (left-- > 0) await one();
    }),
  );
}

// ---- the run -------------------------------------------------------------------------------------

async function seedPeople(url: string): Promise<void> {
  const code = await seed({ REDIS_URL: url, DEMO_PEOPLE: String(PEOPLE) }, () => {});
  if (code !== 0) throw new Error(`seeding ${url} failed`);
}

async function runScenario(
  scenario: (typeof SCENARIOS)[number],
  redis: RedisHandle,
  server: Server,
  opts: Options,
): Promise<Row> {
  const traffic = new Traffic(server);
  const ctx: Context = { redis, server, opts, sent: {} };
  await sleep(500);
  await scenario.fault(ctx);
  const ended = performance.now();
  const recoverS = await traffic.recovered(ended, 30_000);
  await sleep(300);
  await traffic.stop();
  const row: Row = {
    scenario: scenario.name,
    decisions: traffic.decisions,
    non2xx: traffic.non2xx,
    degraded: traffic.decisions === 0 ? 0 : traffic.degraded / traffic.decisions,
    maxMs: traffic.maxMs,
    recoverS,
    control: traffic.control,
    controlNon2xx: traffic.controlCodes,
    crashed: server.crashed(),
    failures: [],
  };
  if (Object.keys(ctx.sent).length > 0) row.sent = ctx.sent;
  // What must never happen.
  if (row.crashed !== null) row.failures.push(`the server ${row.crashed}`);
  for (const status of Object.keys(row.non2xx))
    if (Number(status) >= 500) row.failures.push(`the data plane answered ${status}`);
  for (const key of Object.keys(row.controlNon2xx)) {
    const status = Number(key.split(' ')[0]);
    const allowed = scenario.redisAway && key === '503 store_unavailable';
    if (status >= 500 && !allowed) row.failures.push(`the control plane answered ${key}`);
  }
  for (const key of Object.keys(ctx.sent)) {
    if (/^5\d\d /.test(key) || /^0 /.test(key)) row.failures.push(`${key} (${ctx.sent[key]})`);
  }
  if (recoverS === null) row.failures.push('not recovered within 30 s');
  return row;
}

function printRows(rows: readonly Row[]): void {
  const fmt = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `${k}:${v}`)
      .join(' ') || '-';
  console.log(
    `${'scenario'.padEnd(12)}${'decisions'.padStart(10)}  ${'non-2xx'.padEnd(18)}${'degraded'.padStart(9)}${'max ms'.padStart(9)}${'recover s'.padStart(10)}  ${'control reads, non-2xx'.padEnd(36)}crashed`,
  );
  for (const r of rows) {
    console.log(
      `${r.scenario.padEnd(12)}${String(r.decisions).padStart(10)}  ${fmt(r.non2xx).padEnd(18)}${`${(r.degraded * 100).toFixed(1)}%`.padStart(9)}${r.maxMs.toFixed(0).padStart(9)}${(r.recoverS === null ? '-' : r.recoverS.toFixed(2)).padStart(10)}  ${`${r.control}, ${fmt(r.controlNon2xx)}`.padEnd(36)}${r.crashed ?? 'no'}`,
    );
    if (r.sent !== undefined) {
      const byStatus = Object.entries(r.sent).filter(([k]) => /^\d+$/.test(k));
      console.log(
        `${''.padEnd(12)}its own requests by status: ${byStatus.map(([k, v]) => `${k}:${v}`).join(' ')}`,
      );
    }
  }
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const redis = await startRedis();
  await seedPeople(redis.url);
  let server = await startServer(redis.url);
  const rows: Row[] = [];
  try {
    for (const scenario of SCENARIOS) {
      if (opts.only !== null && !opts.only.has(scenario.name)) continue;
      process.stderr.write(`chaos: ${scenario.name} ...\n`);
      const row = await runScenario(scenario, redis, server, opts);
      rows.push(row);
      if (row.crashed !== null) {
        console.error(server.output());
        server = await startServer(redis.url);
      }
    }
  } finally {
    server.child.kill('SIGTERM');
    await redis.stop();
    agent.destroy();
  }
  printRows(rows);
  const failures = rows.flatMap((r) => r.failures.map((f) => `${r.scenario}: ${f}`));
  if (!opts.quick) {
    const file = join(
      here,
      '..',
      '..',
      'bench',
      'results',
      `chaos-${new Date().toISOString().slice(0, 10)}.json`,
    );
    writeFileSync(
      file,
      `${JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2)}\n`,
    );
    console.log(`written: ${file}`);
  }
  if (failures.length > 0) {
    console.error(`\nchaos: ${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
  console.log('\nchaos: no crash, no 5xx where none may be');
  process.exit(0);
}

if (process.argv[1]?.endsWith('chaos.js')) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
