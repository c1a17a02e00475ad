/**
 * The whole-server load run: `npm run load -- [--quick] [--memory-only] [--profiles N] [--workers W]
 * [--duration S] [--connections C]`.
 *
 * 1. Starts a private redis-server on a free port and loads N synthetic people (server/demo) with
 *    the pipelined store path (putProfiles), then the same people as JSON strings (for the typical
 *    stack) and, for a sample, as a Redis hash per person and their aliases (each of those two
 *    in a database of its own); bytes per person from INFO memory.
 * 2. Starts the real server (dist/server/main.js), the same server again with a rule set whose
 *    campaigns bid (test/openrtb/ruleset.yaml) for POST /openrtb2/bid, a bare uWebSockets.js
 *    endpoint (the HTTP ceiling) and a typical Node stack (Hono + ioredis + json-rules-engine),
 *    each its own process.
 * 3. Drives each from a separate process (driver.ts, autocannon): per scenario a closed-loop
 *    maximum with fixed connections, then fixed offered rates at fractions of that maximum. Server
 *    CPU per request from /proc/<pid>/stat. redis-benchmark GET is the Redis ceiling; wrk, when
 *    installed, cross-checks the maxima.
 * 3b. Unless `--no-cluster` (or `--openrtb-only`): a local Redis Cluster of 3 masters on this
 *    machine, the same people loaded into it (bytes per person summed over the masters), and the
 *    server on it twice, with its own lean decision reads (routed by slot) and with reads through
 *    ioredis' Cluster client, uniform decisions each: CPU per decision against single Redis in
 *    the same run.
 * 4. Prints one table, the ratios and the aims; writes bench/results/load-<date>.json and
 *    load-latest.json (quick mode: a file under the temp folder). Quick mode exits 1 when a target
 *    did not answer, or when the server answered any request with an error (for OpenRTB: with
 *    anything but 200 or 204). `--openrtb-only` runs the OpenRTB scenarios and the bare endpoint
 *    only (no decide, typical stack, redis-benchmark or wrk runs). `--memory-only` runs step 1 and
 *    prints the memory per person, nothing else.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { writeResults } from '../bench/report.js';
import { demoAliases, demoProfile } from '../server/demo/profiles.js';
import { RedisStore } from '../server/store/redis.js';
import { type ClusterMemory, loadCluster } from './cluster.js';
import type { DriverConfig, DriverResult } from './driver.js';
import { bidRequestFor, bodyFor } from './driver.js';
import { cpuPerRequestUs, cpuSeconds } from './proc.js';
import { freePort, startCluster, startRedis, track } from './redis.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

interface Options {
  quick: boolean;
  profiles: number;
  workers: number;
  durationS: number;
  connections: number;
  fractions: number[];
  wrk: boolean;
  openrtbOnly: boolean;
  memoryOnly: boolean;
  cluster: boolean;
}

function options(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const value = (name: string, fallback: number) => {
    const i = argv.indexOf(name);
    if (i < 0) return fallback;
    const n = Number(argv[i + 1]);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number`);
    return n;
  };
  return {
    quick,
    profiles: Math.floor(value('--profiles', quick ? 20_000 : 1_000_000)),
    workers: Math.floor(value('--workers', Math.max(1, Math.floor(availableParallelism() / 2)))),
    durationS: value('--duration', quick ? 2 : 10),
    connections: Math.floor(value('--connections', 32)),
    fractions: quick ? [0.5] : [0.25, 0.5, 0.75],
    wrk: !quick && !argv.includes('--no-wrk') && !argv.includes('--openrtb-only') && onPath('wrk'),
    openrtbOnly: argv.includes('--openrtb-only'),
    memoryOnly: argv.includes('--memory-only'),
    cluster: !argv.includes('--no-cluster') && !argv.includes('--openrtb-only'),
  };
}

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- processes ---------------------------------------------------------------------------------

function startNode(script: string, env: Record<string, string>, name: string): ChildProcess {
  const child = spawn(process.execPath, [join(here, '..', script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  track(child);
  child.stderr?.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
  return child;
}

/** Resolves when a POST of `body` (or a GET) answers one of `statuses`, within 30 s. */
async function waitReady(url: string, body?: string, statuses: number[] = [200]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(
        url,
        body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body },
      );
      await res.arrayBuffer();
      if (statuses.includes(res.status)) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready within 30 s`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function drive(cfg: DriverConfig): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'driver.js'), JSON.stringify(cfg)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    track(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // Bounded: the run's own duration plus a margin.
    const t = setTimeout(() => child.kill('SIGKILL'), (cfg.durationS + 30) * 1000);
    child.once('exit', (code) => {
      clearTimeout(t);
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as DriverResult);
      } catch {
        reject(new Error(`driver exited with ${code} and no result: ${out.slice(-500)}`));
      }
    });
  });
}

// ---- Redis: load and memory --------------------------------------------------------------------

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  const m = /used_memory:(\d+)/.exec(info);
  return Number(m?.[1] ?? 0);
}

interface Memory {
  people: number;
  ours: {
    bytesPerPerson: number;
    /** MEMORY USAGE of a person's key, and the length of its value (sampled) */
    profileKeyBytes: number;
    valueBytes: number;
    /** the string dictionary: strings, and MEMORY USAGE of its two hashes */
    dictionary: { strings: number; bytes: number };
  };
  json: { bytesPerPerson: number; keyBytes: number };
  hash: { people: number; bytesPerPerson: number; keyBytes: number };
  aliases: { people: number; aliasesPerPerson: number; bytesPerPerson: number; bytesPerAlias: number };
  counters: { people: number; impressionsPerPerson: number; bytesPerPerson: number };
  loadSeconds: { ours: number; json: number };
}

/** Mean MEMORY USAGE of keys. */
async function sampleUsage(redis: Redis, keys: string[]): Promise<number> {
  let total = 0;
  for (const k of keys) total += Number((await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) ?? 0);
  return total / keys.length;
}

async function meanLength(redis: Redis, keys: string[]): Promise<number> {
  let total = 0;
  for (const k of keys) total += await redis.strlen(k);
  return total / keys.length;
}

/** The same Redis, another database. */
function databaseUrl(url: string, db: number): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** A connection to another database of the store's Redis, once it is ready. */
async function openDatabase(store: RedisStore, db: number): Promise<Redis> {
  const redis = (store.client.main as Redis).duplicate({ db });
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis;
}

function hashFields(p: ReturnType<typeof demoProfile>): Record<string, string> {
  const f: Record<string, string> = { id: p.id, tags: p.tags.join(',') };
  for (const [k, v] of Object.entries(p.stages ?? {})) f[`stage:${k}`] = v;
  for (const [k, v] of Object.entries(p.clv ?? {})) f[`clv:${k}`] = String(v);
  for (const [k, v] of Object.entries(p.attrs ?? {})) f[`attr:${k}`] = String(v);
  for (const [k, v] of Object.entries(p.channels ?? {})) f[`ch:${k}`] = String(v);
  if (p.activeHours !== undefined) f.activeHours = p.activeHours.join(',');
  if (p.timezone !== undefined) f.timezone = p.timezone;
  if (p.updatedAt !== undefined) f.updatedAt = String(p.updatedAt);
  return f;
}

/**
 * Loads the people and measures what they take. Our layout goes first, into an empty database;
 * the hash-per-person baseline and the aliases go into databases of their own, so that no figure
 * carries the growth of another's key table (a table doubles when its keys pass a power of two).
 * The JSON strings stay beside our layout, where the typical stack reads them: their figure
 * carries the main table's growth from 2^20 to 2^21 buckets (about 8 bytes a person at 1M).
 */
async function loadPeople(
  store: RedisStore,
  url: string,
  n: number,
  log: (s: string) => void,
): Promise<Memory> {
  await store.ping();
  const redis = store.client.main as Redis;
  const CHUNK = 10_000;
  const sampleIds = Array.from({ length: 200 }, (_, k) => Math.floor((k * n) / 200));

  const m0 = await usedMemory(redis);
  let t0 = performance.now();
  for (let i = 0; i < n; i += CHUNK) {
    const chunk = [];
    for (let j = i; j < Math.min(n, i + CHUNK); j++) chunk.push(demoProfile(j));
    await store.putProfiles(chunk);
  }
  const oursS = (performance.now() - t0) / 1000;
  // As a running fleet keeps it: the funnel changes gathered (every few seconds).
  await store.foldCounts();
  const m1 = await usedMemory(redis);
  log(`  ${n} profiles stored with putProfiles in ${oursS.toFixed(1)} s`);
  const profileKeys = sampleIds.map((i) => store.keys.person(`p-${i}`));
  const dictKeys = { ids: store.keys.dict, names: store.keys.dictNames };
  const ours = {
    bytesPerPerson: (m1 - m0) / n,
    profileKeyBytes: await sampleUsage(redis, profileKeys),
    valueBytes: await meanLength(redis, profileKeys),
    dictionary: {
      strings: await redis.hlen(dictKeys.ids),
      bytes: 2 * (await sampleUsage(redis, [dictKeys.ids, dictKeys.names])),
    },
  };

  t0 = performance.now();
  for (let i = 0; i < n; i += CHUNK) {
    const pipe = redis.pipeline();
    for (let j = i; j < Math.min(n, i + CHUNK); j++) pipe.set(`json:p:${j}`, JSON.stringify(demoProfile(j)));
    await pipe.exec();
  }
  const jsonS = (performance.now() - t0) / 1000;
  const m2 = await usedMemory(redis);
  log(`  the same people as JSON strings in ${jsonS.toFixed(1)} s`);

  const hashPeople = Math.min(n, 100_000);
  const hashDb = await openDatabase(store, 1);
  for (let i = 0; i < hashPeople; i += CHUNK) {
    const pipe = hashDb.pipeline();
    for (let j = i; j < Math.min(hashPeople, i + CHUNK); j++)
      pipe.hset(`h:p:${j}`, hashFields(demoProfile(j)));
    await pipe.exec();
  }
  const m3 = await usedMemory(redis);
  const hashKeyBytes = await sampleUsage(
    hashDb,
    sampleIds.filter((i) => i < hashPeople).map((i) => `h:p:${i}`),
  );
  hashDb.disconnect();

  const aliasPeople = Math.min(n, 100_000);
  let aliasCount = 0;
  const aliasStore = new RedisStore({ url: databaseUrl(url, 2), log: () => {} });
  for (let i = 0; i < aliasPeople; i += CHUNK) {
    const links: Array<readonly [string, Record<string, string>]> = [];
    for (let j = i; j < Math.min(aliasPeople, i + CHUNK); j++) {
      const a = demoAliases(j);
      aliasCount += Object.keys(a).length;
      links.push([`p-${j}`, a]);
    }
    await aliasStore.linkManyAliases(links);
  }
  await aliasStore.close();
  const m4 = await usedMemory(redis);

  // Impressions: 3 of x90-launch and 2 of brightpad for people spread over the whole range.
  const counterPeople = Math.min(n, 20_000);
  const now = Date.now();
  for (let i = 0; i < counterPeople; i += 1_000) {
    const calls: Promise<void>[] = [];
    for (let j = i; j < Math.min(counterPeople, i + 1_000); j++) {
      const pid = `p-${Math.floor((j * n) / counterPeople)}`;
      for (let k = 0; k < 3; k++)
        calls.push(store.recordImpression(pid, 'x90-launch', now - k * 60_000, 10, 7 * 86_400_000));
      for (let k = 0; k < 2; k++)
        calls.push(store.recordImpression(pid, 'brightpad-back-to-school', now - k * 60_000, 2, 86_400_000));
    }
    await Promise.all(calls);
  }
  const m5 = await usedMemory(redis);

  return {
    people: n,
    ours,
    json: {
      bytesPerPerson: (m2 - m1) / n,
      keyBytes: await sampleUsage(
        redis,
        sampleIds.map((i) => `json:p:${i}`),
      ),
    },
    hash: { people: hashPeople, bytesPerPerson: (m3 - m2) / hashPeople, keyBytes: hashKeyBytes },
    aliases: {
      people: aliasPeople,
      aliasesPerPerson: aliasCount / aliasPeople,
      bytesPerPerson: (m4 - m3) / aliasPeople,
      bytesPerAlias: (m4 - m3) / aliasCount,
    },
    counters: { people: counterPeople, impressionsPerPerson: 5, bytesPerPerson: (m5 - m4) / counterPeople },
    loadSeconds: { ours: oursS, json: jsonS },
  };
}

function printMemory(memory: Memory, log: (s: string) => void): void {
  const { ours, json, hash, aliases, counters } = memory;
  const row = (label: string, bytes: number, detail: string) =>
    log(`  ${label.padEnd(64)}${bytes.toFixed(0).padStart(6)}  ${detail}`);
  log(
    `\nmemory in Redis, bytes per person (INFO used_memory deltas; MEMORY USAGE and STRLEN of 200 sampled keys)`,
  );
  row(
    `ours, ${memory.people} people: p:{pid}, dictionary, funnel counts`,
    ours.bytesPerPerson,
    `${ours.profileKeyBytes.toFixed(0)} per key, ${ours.valueBytes.toFixed(1)} bytes of value; dictionary: ${ours.dictionary.strings} strings, ${ours.dictionary.bytes} bytes`,
  );
  row(
    `JSON string per person, ${memory.people} people`,
    json.bytesPerPerson,
    `${json.keyBytes.toFixed(0)} per key`,
  );
  row(
    `Redis hash per person, ${hash.people} people`,
    hash.bytesPerPerson,
    `${hash.keyBytes.toFixed(0)} per key`,
  );
  row(
    `aliases, ${aliases.aliasesPerPerson.toFixed(2)} per person, ${aliases.people} people`,
    aliases.bytesPerPerson,
    `${aliases.bytesPerAlias.toFixed(0)} per alias`,
  );
  row(
    `frequency counters, 5 impressions in 2 campaigns, ${counters.people} people`,
    counters.bytesPerPerson,
    '',
  );
}

// ---- runs --------------------------------------------------------------------------------------

interface Run {
  target: Target;
  scenario: string;
  /** null: closed loop, as fast as answered */
  offeredRps: number | null;
  /** why this rate: `max`, `25% of max`, or `= decide uniform 50%` */
  mode: string;
  result: DriverResult;
  serverCpuUsPerReq: number | null;
  redisCpuUsPerReq: number | null;
}

type Target =
  | 'decide'
  | 'openrtb'
  | 'bare-uws'
  | 'typical-stack'
  | 'decide cluster'
  | 'decide cluster ioredis';

interface Scenario {
  name: string;
  format: 'json' | 'msgpack';
  placements: number;
  people: number;
  openrtb?: boolean;
}

/** Share of the answers that were 200 (a bid) among 200 and 204 (no bid). */
function bidShare(r: DriverResult): number {
  const bid = r.statuses['200'] ?? 0;
  const noBid = r.statuses['204'] ?? 0;
  return bid + noBid === 0 ? 0 : bid / (bid + noBid);
}

/** Runs at 50% of the uniform maximum, for decide and for bare uWS each (the p99 aim). */
const P99_RUNS = 3;

/** The median of some numbers; null for none. */
function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Where the OpenRTB server keeps its rule sets and people. */
const ORTB_PREFIX = 'ortb:';

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opt = options(process.argv.slice(2));
  const started = Date.now();
  const log = (s: string) => console.log(s);
  log(
    `load run${opt.quick ? ' (quick)' : ''}: ${opt.profiles} people, ${opt.workers} worker(s), ${opt.connections} connections, ${opt.durationS} s runs, ${availableParallelism()} cpus`,
  );

  const redisProc = await startRedis();
  log(`redis-server on ${redisProc.url} (pid ${redisProc.pid})`);
  const store = new RedisStore({ url: redisProc.url, log: () => {} });
  const memory = await loadPeople(store, redisProc.url, opt.profiles, log);
  await store.close();
  if (opt.memoryOnly) {
    printMemory(memory, log);
    const met = memory.ours.bytesPerPerson <= 150;
    log(
      `\naim: ${met ? 'met' : 'MISSED'}: <= 150 bytes per person in Redis: ${memory.ours.bytesPerPerson.toFixed(1)}`,
    );
    await redisProc.stop();
    process.exit(0);
  }
  // The OpenRTB server decides with another rule set, and a fleet sharing one Redis has one
  // active rule set: it keeps its own under another key prefix, with a copy of the people it
  // bids for (those with aliases).
  const ortbStore = new RedisStore({ url: redisProc.url, keyPrefix: ORTB_PREFIX, log: () => {} });
  for (let i = 0; i < Math.min(opt.profiles, 100_000); i += 10_000) {
    const to = Math.min(opt.profiles, 100_000, i + 10_000);
    const chunk = [];
    const links: Array<readonly [string, Record<string, string>]> = [];
    for (let j = i; j < to; j++) {
      chunk.push(demoProfile(j));
      links.push([`p-${j}`, demoAliases(j)]);
    }
    await ortbStore.putProfiles(chunk);
    await ortbStore.linkManyAliases(links);
  }
  await ortbStore.close();

  const HOT = 256;
  const scenarios: Scenario[] = [
    { name: 'hot set (cache hits)', format: 'json', placements: 1, people: HOT },
    { name: 'uniform (Redis read each)', format: 'json', placements: 1, people: opt.profiles },
    ...(opt.quick
      ? []
      : ([
          { name: 'uniform, 3 placements', format: 'json', placements: 3, people: opt.profiles },
          { name: 'uniform, MessagePack', format: 'msgpack', placements: 1, people: opt.profiles },
        ] satisfies Scenario[])),
  ];

  // OpenRTB: people resolve by their `cookie` alias (user.buyeruid), linked for the first 100k.
  const aliased = Math.min(opt.profiles, 100_000);
  const ortbScenarios: Scenario[] = [
    ...(opt.quick
      ? []
      : ([
          { name: 'hot set (cache hits)', format: 'json', placements: 1, people: HOT, openrtb: true },
        ] satisfies Scenario[])),
    {
      name: `uniform over ${aliased / 1000}k aliased`,
      format: 'json',
      placements: 1,
      people: aliased,
      openrtb: true,
    },
  ];

  const [decidePort, adminPort, ortbPort, ortbAdminPort, barePort, typicalPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const server = startNode(
    'server/main.js',
    {
      REDIS_URL: redisProc.url,
      LOG_LEVEL: 'warn',
      WORKERS: String(opt.workers),
      HOST: '127.0.0.1',
      PORT: String(decidePort),
      ADMIN_PORT: String(adminPort),
    },
    'server',
  );
  // The same server with a rule set whose campaigns bid (bid, adomain, cat, deals).
  const ortb = startNode(
    'server/main.js',
    {
      REDIS_URL: redisProc.url,
      LOG_LEVEL: 'warn',
      WORKERS: String(opt.workers),
      HOST: '127.0.0.1',
      PORT: String(ortbPort),
      ADMIN_PORT: String(ortbAdminPort),
      REDIS_KEY_PREFIX: ORTB_PREFIX,
      RULESET_FILE: join(root, 'test', 'openrtb', 'ruleset.yaml'),
      OPENRTB_SECRET: 'load-test-secret-0123456789abcdef',
    },
    'openrtb',
  );
  const decideUrl = `http://127.0.0.1:${decidePort}/v1/decide`;
  const ortbUrl = `http://127.0.0.1:${ortbPort}/openrtb2/bid`;
  await waitReady(`http://127.0.0.1:${adminPort}/readyz`);
  await waitReady(`http://127.0.0.1:${ortbAdminPort}/readyz`);
  await waitReady(ortbUrl, bidRequestFor(1), [200, 204]);
  await waitReady(decideUrl, bodyFor(1, 'json', 1) as string);
  // The size of a typical answer: the mean over a few people, one placement.
  let answerBytes = 0;
  for (let i = 0; i < 20; i++) {
    const res = await fetch(decideUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bodyFor(i * 37, 'json', 1) as string,
    });
    answerBytes += (await res.arrayBuffer()).byteLength / 20;
  }
  answerBytes = Math.round(answerBytes);
  const bare = startNode(
    'load-tests/bare-uws.js',
    { PORT: String(barePort), BODY_BYTES: String(answerBytes) },
    'bare-uws',
  );
  const typical = startNode(
    'load-tests/typical-stack.js',
    { PORT: String(typicalPort), REDIS_URL: redisProc.url, JSON_PREFIX: 'json:p:' },
    'typical-stack',
  );
  const bareUrl = `http://127.0.0.1:${barePort}/v1/decide`;
  const typicalUrl = `http://127.0.0.1:${typicalPort}/v1/decide`;
  await waitReady(bareUrl, bodyFor(1, 'json', 1) as string);
  await waitReady(typicalUrl, bodyFor(1, 'json', 1) as string);
  log(
    `servers up: decide :${decidePort} (pid ${server.pid}), openrtb :${ortbPort} (pid ${ortb.pid}), bare-uws :${barePort}, typical-stack :${typicalPort}; a typical answer is ${answerBytes} bytes\n`,
  );

  const runs: Run[] = [];
  const pids: Partial<Record<Target, number>> = {
    decide: server.pid!,
    openrtb: ortb.pid!,
    'bare-uws': bare.pid!,
    'typical-stack': typical.pid!,
  };
  const urls: Partial<Record<Target, string>> = {
    decide: decideUrl,
    openrtb: ortbUrl,
    'bare-uws': bareUrl,
    'typical-stack': typicalUrl,
  };
  /** The Redis processes behind each target (a cluster's masters for the cluster runs). */
  const redisPids: Partial<Record<Target, number[]>> = {
    decide: [redisProc.pid],
    openrtb: [redisProc.pid],
    'typical-stack': [redisProc.pid],
  };
  const redisCpu = (target: Target) => (redisPids[target] ?? []).reduce((s, pid) => s + cpuSeconds(pid), 0);
  log(
    `${'target'.padEnd(14)}${'scenario'.padEnd(28)}${'load'.padEnd(25)}${'req/s'.padStart(9)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'p99.9'.padStart(8)}${'err'.padStart(6)}${'cpu µs/req'.padStart(11)}${'redis µs'.padStart(9)}`,
  );
  const one = async (target: Target, sc: Scenario, rate: number | null, mode: string, warm = false) => {
    const cfg: DriverConfig = {
      url: urls[target]!,
      connections: opt.connections,
      durationS: warm ? (opt.quick ? 1 : 2) : opt.durationS,
      format: sc.format,
      placements: sc.placements,
      people: sc.people,
      ...(sc.openrtb ? { openrtb: true } : {}),
      ...(rate === null ? {} : { rate: Math.max(1, Math.round(rate)) }),
    };
    const c0 = cpuSeconds(pids[target]!);
    const r0 = redisCpu(target);
    const result = await drive(cfg);
    const c1 = cpuSeconds(pids[target]!);
    const r1 = redisCpu(target);
    if (warm) return null;
    const run: Run = {
      target,
      scenario: sc.name,
      offeredRps: rate === null ? null : Math.round(rate),
      mode,
      result,
      serverCpuUsPerReq: cpuPerRequestUs(c0, c1, result.requests),
      redisCpuUsPerReq: target === 'bare-uws' ? null : cpuPerRequestUs(r0, r1, result.requests),
    };
    runs.push(run);
    const f = (x: number | null, d = 1) => (x === null ? '-' : x.toFixed(d));
    log(
      `${target.padEnd(14)}${sc.name.slice(0, 27).padEnd(28)}${mode.slice(0, 24).padEnd(25)}${Math.round(result.rps).toString().padStart(9)}${f(result.latencyMs.p50, 2).padStart(8)}${f(result.latencyMs.p99, 2).padStart(8)}${f(result.latencyMs.p999, 2).padStart(8)}${String(result.errors + result.non2xx + result.timeouts).padStart(6)}${f(run.serverCpuUsPerReq).padStart(11)}${f(run.redisCpuUsPerReq).padStart(9)}${target === 'openrtb' ? `  bid ${(bidShare(result) * 100).toFixed(0)}%` : ''}`,
    );
    return run;
  };
  const series = async (target: Target, sc: Scenario) => {
    await one(target, sc, null, 'warm-up', true);
    const max = (await one(target, sc, null, 'max (closed loop)'))!;
    for (const fr of opt.fractions) await one(target, sc, max.result.rps * fr, `${fr * 100}% of max`);
    return max;
  };

  const decideMax: Record<string, Run> = {};
  if (!opt.openrtbOnly) for (const sc of scenarios) decideMax[sc.name] = await series('decide', sc);
  const ortbMax: Record<string, Run> = {};
  for (const sc of ortbScenarios) ortbMax[sc.name] = await series('openrtb', sc);
  const hot = scenarios[0]!;
  const uniform = scenarios[1]!;
  const ortbUniform = ortbScenarios[ortbScenarios.length - 1]!;
  await series('bare-uws', hot);
  // The same offered rates as the decide and OpenRTB runs at 50% of their maximum.
  if (!opt.openrtbOnly)
    for (const sc of [hot, uniform]) {
      const rate = decideMax[sc.name]!.result.rps * 0.5;
      await one('bare-uws', hot, rate, `= decide ${sc === hot ? 'hot' : 'uniform'} 50%`);
    }
  for (const sc of ortbScenarios) {
    const rate = ortbMax[sc.name]!.result.rps * 0.5;
    await one('bare-uws', hot, rate, `= openrtb ${sc === ortbUniform ? 'uniform' : 'hot'} 50%`);
  }
  // p99 at one offered rate, decide (uniform) against bare uWS, again in alternating pairs: one
  // fixed-rate run on a shared machine can catch a pause of the machine rather than of the
  // server. The aim takes the median p99 of each side over all its runs at that rate.
  if (!opt.openrtbOnly && !opt.quick) {
    const rate = decideMax[uniform.name]!.result.rps * 0.5;
    for (let i = 2; i <= P99_RUNS; i++) {
      await one('decide', uniform, rate, `50% of max #${i}`);
      await one('bare-uws', hot, rate, `= decide uniform 50% #${i}`);
    }
  }
  if (!opt.openrtbOnly) {
    await series('typical-stack', hot);
    await series('typical-stack', uniform);
  }

  // ---- the same uniform decisions on a Redis Cluster of 3 masters ---------------------------
  let clusterMemory: ClusterMemory | null = null;
  if (opt.cluster) {
    const cluster = await startCluster({ masters: 3, replicas: 0 });
    try {
      const masters = cluster.nodes.map((n) => n.port);
      log(`\nRedis Cluster of ${masters.length} masters on ${cluster.seeds}`);
      clusterMemory = await loadCluster(cluster.seeds, masters, opt.profiles, log);
      const [cPort, cAdmin, iPort, iAdmin] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const clusterServer = (port: number, admin: number, lean: boolean) =>
        startNode(
          'server/main.js',
          {
            REDIS_CLUSTER_NODES: cluster.seeds,
            REDIS_LEAN_READS: String(lean),
            LOG_LEVEL: 'warn',
            WORKERS: String(opt.workers),
            HOST: '127.0.0.1',
            PORT: String(port),
            ADMIN_PORT: String(admin),
          },
          lean ? 'cluster' : 'cluster-ioredis',
        );
      const lean = clusterServer(cPort, cAdmin, true);
      const viaIoredis = clusterServer(iPort, iAdmin, false);
      const nodePids = cluster.nodes.map((n) => n.pid);
      for (const [target, child, port, admin] of [
        ['decide cluster', lean, cPort, cAdmin],
        ['decide cluster ioredis', viaIoredis, iPort, iAdmin],
      ] as const) {
        pids[target] = child.pid!;
        urls[target] = `http://127.0.0.1:${port}/v1/decide`;
        redisPids[target] = nodePids;
        await waitReady(`http://127.0.0.1:${admin}/readyz`);
        await waitReady(urls[target]!, bodyFor(1, 'json', 1) as string);
      }
      await series('decide cluster', uniform);
      await series('decide cluster ioredis', uniform);
      await Promise.all([stopChild(lean), stopChild(viaIoredis)]);
    } finally {
      await cluster.stop();
    }
  }

  // The Redis ceiling: GET of a value the size of our stored profile, same connections.
  const redisBenchmark = () => {
    const rbRequests = opt.quick ? 50_000 : 1_000_000;
    const rbArgs = [
      '-h',
      '127.0.0.1',
      '-p',
      String(redisProc.port),
      '-c',
      String(opt.connections),
      '-r',
      '100000',
      '-d',
      String(Math.round(memory.ours.valueBytes)),
      '--csv',
    ];
    execFileSync('redis-benchmark', [...rbArgs, '-t', 'set', '-n', opt.quick ? '20000' : '100000'], {
      stdio: 'ignore',
      timeout: 120_000,
    });
    const rc0 = cpuSeconds(redisProc.pid);
    const rbOut = execFileSync('redis-benchmark', [...rbArgs, '-t', 'get', '-n', String(rbRequests)], {
      timeout: 120_000,
    }).toString();
    const rc1 = cpuSeconds(redisProc.pid);
    const rbLine =
      rbOut
        .trim()
        .split('\n')
        .find((l) => l.startsWith('"GET"'))
        ?.replace(/"/g, '')
        .split(',') ?? [];
    const bench = {
      requests: rbRequests,
      rps: Number(rbLine[1]),
      latencyMs: {
        avg: Number(rbLine[2]),
        p50: Number(rbLine[4]),
        p99: Number(rbLine[6]),
        max: Number(rbLine[7]),
      },
      redisCpuUsPerReq: cpuPerRequestUs(rc0, rc1, rbRequests),
    };
    log(
      `${'redis GET'.padEnd(14)}${'redis-benchmark'.padEnd(28)}${'max (closed loop)'.padEnd(25)}${Math.round(bench.rps).toString().padStart(9)}${bench.latencyMs.p50.toFixed(2).padStart(8)}${bench.latencyMs.p99.toFixed(2).padStart(8)}${'-'.padStart(8)}${'-'.padStart(6)}${'-'.padStart(11)}${(bench.redisCpuUsPerReq ?? 0).toFixed(1).padStart(9)}`,
    );
    return bench;
  };
  const redisBench = opt.openrtbOnly
    ? { requests: 0, rps: Number.NaN, latencyMs: { avg: 0, p50: 0, p99: 0, max: 0 }, redisCpuUsPerReq: null }
    : redisBenchmark();

  // wrk cross-check of the maxima (one fixed body: person p-1, hot).
  const wrkRuns: Array<{ target: string; rps: number; p99Ms: number | null }> = [];
  if (opt.wrk) {
    const script = join(tmpdir(), `mindshare-wrk-${process.pid}.lua`);
    writeFileSync(
      script,
      `wrk.method = "POST"\nwrk.body = '${bodyFor(1, 'json', 1) as string}'\nwrk.headers["Content-Type"] = "application/json"\n`,
    );
    for (const target of ['decide', 'bare-uws', 'typical-stack'] as const) {
      const out = execFileSync(
        'wrk',
        ['-t1', `-c${opt.connections}`, `-d${opt.durationS}s`, '--latency', '-s', script, urls[target]!],
        {
          timeout: (opt.durationS + 30) * 1000,
        },
      ).toString();
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
      const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
      const p99Ms =
        p99 === null ? null : Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1);
      wrkRuns.push({ target, rps, p99Ms });
      log(
        `${`wrk ${target}`.padEnd(42)}${'max, one person'.padEnd(25)}${Math.round(rps).toString().padStart(9)}${'-'.padStart(8)}${(p99Ms ?? 0).toFixed(2).padStart(8)}`,
      );
    }
  }

  let degraded: string[] = [];
  try {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    degraded = text.split('\n').filter((l) => l.startsWith('mindshare_decisions_degraded_total'));
  } catch {
    // metrics are context only
  }

  await Promise.all([stopChild(server), stopChild(ortb), stopChild(bare), stopChild(typical)]);
  await redisProc.stop();

  // ---- ratios and aims -------------------------------------------------------------------------
  const find = (target: Target, scenario: string, mode: string) =>
    runs.find((r) => r.target === target && r.scenario === scenario && r.mode === mode);
  const MAX = 'max (closed loop)';
  const dU = find('decide', uniform.name, MAX);
  const dH = find('decide', hot.name, MAX);
  const b = find('bare-uws', hot.name, MAX);
  const tU = find('typical-stack', uniform.name, MAX);
  const tH = find('typical-stack', hot.name, MAX);
  // Every run at the same rate (the 50% row and the repeats), for the median p99.
  const sameRate = (target: Target, scenario: string, mode: string) =>
    runs.filter(
      (r) =>
        r.target === target && r.scenario === scenario && (r.mode === mode || r.mode.startsWith(`${mode} #`)),
    );
  const medianP99 = (rs: Run[]) => median(rs.map((x) => x.result.latencyMs.p99));
  const dU50runs = sameRate('decide', uniform.name, '50% of max');
  const bU50runs = sameRate('bare-uws', hot.name, '= decide uniform 50%');
  const dH50 = find('decide', hot.name, '50% of max');
  const bH50 = find('bare-uws', hot.name, '= decide hot 50%');
  const oH = find('openrtb', ortbScenarios[0]!.name, MAX);
  const oU = find('openrtb', ortbUniform.name, MAX);
  const oU50 = find('openrtb', ortbUniform.name, '50% of max');
  const bO50 = find('bare-uws', hot.name, '= openrtb uniform 50%');
  const oHot = ortbScenarios.length > 1 ? oH : undefined;
  const div = (a: number | null | undefined, c: number | null | undefined) =>
    a === null || a === undefined || c === null || c === undefined || c === 0 ? null : a / c;
  const cU = find('decide cluster', uniform.name, MAX);
  const ciU = find('decide cluster ioredis', uniform.name, MAX);
  const ratios = {
    'decide uniform / bare uWS, throughput': div(dU?.result.rps, b?.result.rps),
    'decide hot / bare uWS, throughput': div(dH?.result.rps, b?.result.rps),
    'decide uniform / bare uWS, CPU per request': div(dU?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'decide hot / bare uWS, CPU per request': div(dH?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'decide uniform / typical stack uniform, throughput': div(dU?.result.rps, tU?.result.rps),
    'decide hot / typical stack hot, throughput': div(dH?.result.rps, tH?.result.rps),
    'decide uniform / typical stack uniform, CPU per request': div(
      dU?.serverCpuUsPerReq,
      tU?.serverCpuUsPerReq,
    ),
    'decide hot / typical stack hot, CPU per request': div(dH?.serverCpuUsPerReq, tH?.serverCpuUsPerReq),
    'decide uniform p99 / bare uWS p99, same offered rate (50% of decide max), medians of the repeats': div(
      medianP99(dU50runs),
      medianP99(bU50runs),
    ),
    'decide hot p99 / bare uWS p99, same offered rate (50% of decide max)': div(
      dH50?.result.latencyMs.p99,
      bH50?.result.latencyMs.p99,
    ),
    'openrtb uniform / bare uWS, throughput': div(oU?.result.rps, b?.result.rps),
    'openrtb hot / bare uWS, throughput': div(oHot?.result.rps, b?.result.rps),
    'openrtb uniform / bare uWS, CPU per request': div(oU?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'openrtb hot / bare uWS, CPU per request': div(oHot?.serverCpuUsPerReq, b?.serverCpuUsPerReq),
    'openrtb uniform p99 / bare uWS p99, same offered rate (50% of openrtb max)': div(
      oU50?.result.latencyMs.p99,
      bO50?.result.latencyMs.p99,
    ),
    'openrtb uniform / decide uniform, throughput': div(oU?.result.rps, dU?.result.rps),
    'openrtb uniform / decide uniform, CPU per request': div(oU?.serverCpuUsPerReq, dU?.serverCpuUsPerReq),
    'decide uniform / Redis GET (redis-benchmark), throughput': div(dU?.result.rps, redisBench.rps),
    'decide uniform on a 3-master cluster / on one Redis, CPU per request': div(
      cU?.serverCpuUsPerReq,
      dU?.serverCpuUsPerReq,
    ),
    'decide uniform on the cluster through ioredis / through lean reads, CPU per request': div(
      ciU?.serverCpuUsPerReq,
      cU?.serverCpuUsPerReq,
    ),
    'decide uniform on the cluster / on one Redis, throughput': div(cU?.result.rps, dU?.result.rps),
    'decide uniform on the cluster, Redis CPU per request (all masters) / one Redis': div(
      cU?.redisCpuUsPerReq,
      dU?.redisCpuUsPerReq,
    ),
  };
  const r = (k: keyof typeof ratios) => ratios[k] ?? Number.NaN;
  const decideAims = [
    {
      aim: 'uniform decisions throughput >= 40% of bare uWS',
      measured: r('decide uniform / bare uWS, throughput'),
      met: r('decide uniform / bare uWS, throughput') >= 0.4,
    },
    {
      aim: 'uniform decisions throughput >= 3x the typical stack',
      measured: r('decide uniform / typical stack uniform, throughput'),
      met: r('decide uniform / typical stack uniform, throughput') >= 3,
    },
    {
      aim: 'CPU per uniform decision <= 2.5x bare uWS CPU per request',
      measured: r('decide uniform / bare uWS, CPU per request'),
      met: r('decide uniform / bare uWS, CPU per request') <= 2.5,
    },
    {
      aim: "CPU per uniform decision <= 1/4 of the typical stack's",
      measured: r('decide uniform / typical stack uniform, CPU per request'),
      met: r('decide uniform / typical stack uniform, CPU per request') <= 0.25,
    },
    {
      aim: 'p99 at 50% of max (uniform) <= 2x bare uWS p99 at the same offered rate',
      measured: r(
        'decide uniform p99 / bare uWS p99, same offered rate (50% of decide max), medians of the repeats',
      ),
      met:
        r(
          'decide uniform p99 / bare uWS p99, same offered rate (50% of decide max), medians of the repeats',
        ) <= 2,
    },
    {
      aim: '<= 150 bytes per person in Redis (profile and stages)',
      measured: memory.ours.bytesPerPerson,
      met: memory.ours.bytesPerPerson <= 150,
    },
  ];
  const clusterAims =
    clusterMemory === null
      ? []
      : [
          {
            aim: 'CPU per uniform decision on a 3-master cluster <= 1.2x on one Redis (same run)',
            measured: r('decide uniform on a 3-master cluster / on one Redis, CPU per request'),
            met: r('decide uniform on a 3-master cluster / on one Redis, CPU per request') <= 1.2,
          },
          {
            aim: '<= 150 bytes per person on the cluster (summed over the masters)',
            measured: clusterMemory.bytesPerPerson,
            met: clusterMemory.bytesPerPerson <= 150,
          },
        ];
  const aims = opt.openrtbOnly ? [] : [...decideAims, ...clusterAims];

  printMemory(memory, log);
  if (clusterMemory !== null)
    log(
      `  on the 3-master cluster: ${clusterMemory.bytesPerPerson.toFixed(1)} bytes per person (${clusterMemory.people} people in ${clusterMemory.loadS.toFixed(1)} s)`,
    );
  log('\nratios');
  for (const [k, v] of Object.entries(ratios))
    log(`  ${k.padEnd(76)}${v === null ? '-' : v.toFixed(2).padStart(8)}`);
  log('\naims');
  for (const a of aims) log(`  ${a.met ? 'met    ' : 'MISSED '} ${a.aim}: ${a.measured.toFixed(2)}`);
  if (degraded.length > 0) log(`\nserver: ${degraded.join('; ')}`);

  // ---- checks (every mode) and results ---------------------------------------------------------
  const problems: string[] = [];
  const expected = opt.openrtbOnly
    ? (['openrtb', 'bare-uws'] as const)
    : ([
        'decide',
        'openrtb',
        'bare-uws',
        'typical-stack',
        ...(opt.cluster ? (['decide cluster', 'decide cluster ioredis'] as const) : []),
      ] as const);
  for (const target of expected) {
    if (!runs.some((x) => x.target === target && x.result.requests > 0))
      problems.push(`${target} answered no request`);
  }
  for (const x of runs.filter((x) => x.target.startsWith('decide'))) {
    const bad = x.result.errors + x.result.non2xx + x.result.timeouts;
    if (x.result.requests === 0 || bad > 0)
      problems.push(`decide ${x.scenario} ${x.mode}: ${x.result.requests} requests, ${bad} errors`);
  }
  for (const x of runs.filter((x) => x.target === 'openrtb')) {
    const bad = x.result.errors + x.result.non2xx + x.result.timeouts;
    const other = Object.entries(x.result.statuses)
      .filter(([code, n]) => code !== '200' && code !== '204' && n > 0)
      .map(([code, n]) => `${n} x ${code}`);
    if (x.result.requests === 0 || bad > 0 || other.length > 0)
      problems.push(
        `openrtb ${x.scenario} ${x.mode}: ${x.result.requests} requests, ${bad} errors${other.length > 0 ? `, ${other.join(', ')}` : ''}`,
      );
    // Three requests in four carry a category a campaign bids on: no bid at all is a set-up fault.
    if (x.result.requests > 0 && bidShare(x.result) === 0)
      problems.push(`openrtb ${x.scenario} ${x.mode}: no bids at all (is the OpenRTB rule set active?)`);
  }
  if (!opt.openrtbOnly && !(redisBench.rps > 0)) problems.push('redis-benchmark reported no throughput');

  const date = new Date();
  const out = {
    date: date.toISOString(),
    quick: opt.quick,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? null,
    options: opt,
    answerBytes,
    memory,
    clusterMemory,
    runs,
    redisBenchmark: redisBench,
    wrk: wrkRuns,
    serverDegraded: degraded,
    ratios,
    aims,
    problems,
    elapsedS: (Date.now() - started) / 1000,
  };
  const json = `${JSON.stringify(out, null, 2)}\n`;
  if (opt.quick) {
    const file = join(tmpdir(), 'mindshare-load-quick.json');
    writeFileSync(file, json);
    log(`\nwrote ${file}`);
  } else {
    writeResults(opt.openrtbOnly ? 'load-openrtb' : 'load', out);
  }
  log(`elapsed ${out.elapsedS.toFixed(0)} s`);
  if (problems.length > 0) {
    console.error(`load run: FAILED\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
