/**
 * What the load run runs: the scenarios (which people, which body), the targets each is driven
 * against, the listeners and stores those targets need, and the order of the runs, including the
 * rates borrowed from one target's maximum for another (the p99 comparisons at equal offered
 * load). How a run is measured is measure.ts; what is made of the runs is report.ts. Kept apart
 * so that adding a scenario or a target is an edit here and in the report's ratios only.
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoAliases, demoProfile } from '../server/demo/profiles.js';
import { RedisStore } from '../server/store/redis.js';
import { type ClusterMemory, loadCluster } from './cluster.js';
import { bidRequestFor, bodyFor, type DriverConfig } from './driver.js';
import { type Endpoint, type Run, type Runs, startNode, stopChild, waitReady } from './measure.js';
import type { Options } from './options.js';
import { freePort, type RedisHandle, startCluster } from './redis.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

export type Target =
  | 'decide'
  | 'openrtb'
  | 'bare-uws'
  | 'data plane'
  | 'typical-stack'
  | 'decide cluster'
  | 'decide cluster ioredis';

/** What each request of a run is: one person drawn from `people`, in this body. */
export interface Scenario {
  name: string;
  format: DriverConfig['format'];
  placements: number;
  people: number;
  openrtb?: boolean;
}

/** People 0 .. HOT-1: the hot set, cache hits after the warm-up. */
const HOT = 256;

/** People with aliases (linked for the OpenRTB server, and in the alias memory figure). */
const ALIASED = 100_000;

/** Runs at 50% of the uniform maximum, for decide and for bare uWS each (the p99 aim). */
const P99_RUNS = 3;

/** Where the OpenRTB server keeps its rule sets and people (compare.ts's servers too). */
export const ORTB_PREFIX = 'ortb:';

export interface ScenarioTable {
  /** For decide, the typical stack and the cluster: `hot` and `uniform` first, more unless quick. */
  decide: Scenario[];
  hot: Scenario;
  uniform: Scenario;
  /** For OpenRTB: the hot set unless quick, then `ortbUniform`. */
  openrtb: Scenario[];
  ortbUniform: Scenario;
}

export function scenarioTable(opt: Pick<Options, 'quick' | 'profiles'>): ScenarioTable {
  const hot: Scenario = { name: 'hot set (cache hits)', format: 'json', placements: 1, people: HOT };
  const uniform: Scenario = {
    name: 'uniform (Redis read each)',
    format: 'json',
    placements: 1,
    people: opt.profiles,
  };
  const decide: Scenario[] = [
    hot,
    uniform,
    ...(opt.quick
      ? []
      : ([
          { name: 'uniform, 3 placements', format: 'json', placements: 3, people: opt.profiles },
          { name: 'uniform, MessagePack', format: 'msgpack', placements: 1, people: opt.profiles },
        ] satisfies Scenario[])),
  ];
  // OpenRTB: people resolve by their `cookie` alias (user.buyeruid), linked for the first 100k.
  const aliased = Math.min(opt.profiles, ALIASED);
  const ortbUniform: Scenario = {
    name: `uniform over ${aliased / 1000}k aliased`,
    format: 'json',
    placements: 1,
    people: aliased,
    openrtb: true,
  };
  const openrtb: Scenario[] = [
    ...(opt.quick
      ? []
      : ([
          { name: 'hot set (cache hits)', format: 'json', placements: 1, people: HOT, openrtb: true },
        ] satisfies Scenario[])),
    ortbUniform,
  ];
  return { decide, hot, uniform, openrtb, ortbUniform };
}

/** The targets a run with these options drives: each must answer. */
export function targetsDriven(opt: Pick<Options, 'openrtbOnly' | 'cluster'>): Target[] {
  if (opt.openrtbOnly) return ['openrtb', 'bare-uws', 'data plane'];
  return [
    'decide',
    'openrtb',
    'bare-uws',
    'data plane',
    'typical-stack',
    ...(opt.cluster ? (['decide cluster', 'decide cluster ioredis'] as const) : []),
  ];
}

// ---- one Redis: decide, OpenRTB, bare uWS and the typical stack --------------------------------

/**
 * The OpenRTB server decides with another rule set, and a fleet sharing one Redis has one
 * active rule set: it keeps its own under another key prefix, with a copy of the people it
 * bids for (those with aliases).
 */
export async function loadOpenrtbPeople(url: string, profiles: number): Promise<void> {
  const ortbStore = new RedisStore({ url, keyPrefix: ORTB_PREFIX, log: () => {} });
  for (let i = 0; i < Math.min(profiles, ALIASED); i += 10_000) {
    const to = Math.min(profiles, ALIASED, i + 10_000);
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
}

export interface Listener extends Endpoint {
  child: ChildProcess;
  port: number;
}

/** The five targets on one Redis, up and answering. */
export interface OneRedis {
  decide: Listener;
  /** The decide server's control plane (its /metrics). */
  decideAdminPort: number;
  openrtb: Listener;
  bare: Listener;
  /** The server's data plane answering a fixed decision (load-tests/plane-only.ts). */
  plane: Listener;
  typical: Listener;
  /** Bytes of a typical decision answer: the bare endpoint answers with as many. */
  answerBytes: number;
}

const DECIDE_BODY = bodyFor(1, 'json', 1) as string;

/**
 * Starts the real server, the same server with the OpenRTB rule set, then (sized after the real
 * server's answers) the bare uWS endpoint, the data plane alone and the typical stack; resolves
 * when all five answer.
 */
export async function startOnOneRedis(
  redis: RedisHandle,
  workers: number,
  log: (s: string) => void,
): Promise<OneRedis> {
  const [decidePort, adminPort, ortbPort, ortbAdminPort, barePort, planePort, typicalPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const serverEnv = (port: number, admin: number) => ({
    REDIS_URL: redis.url,
    OPENRTB_NOTICE_URL: `http://127.0.0.1:${port}`,
    LOG_LEVEL: 'warn',
    WORKERS: String(workers),
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(admin),
  });
  const server = startNode('server/main.js', serverEnv(decidePort, adminPort), 'server');
  // The same server with a rule set whose campaigns bid (bid, adomain, cat, deals).
  const ortb = startNode(
    'server/main.js',
    {
      ...serverEnv(ortbPort, ortbAdminPort),
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
  await waitReady(decideUrl, DECIDE_BODY);
  const answerBytes = await typicalAnswerBytes(decideUrl);
  const bare = startNode(
    'load-tests/bare-uws.js',
    { PORT: String(barePort), BODY_BYTES: String(answerBytes) },
    'bare-uws',
  );
  const plane = startNode('load-tests/plane-only.js', { PORT: String(planePort) }, 'plane-only');
  const typical = startNode(
    'load-tests/typical-stack.js',
    { PORT: String(typicalPort), REDIS_URL: redis.url, JSON_PREFIX: 'json:p:' },
    'typical-stack',
  );
  const bareUrl = `http://127.0.0.1:${barePort}/v1/decide`;
  const planeUrl = `http://127.0.0.1:${planePort}/v1/decide`;
  const typicalUrl = `http://127.0.0.1:${typicalPort}/v1/decide`;
  await waitReady(bareUrl, DECIDE_BODY);
  await waitReady(planeUrl, DECIDE_BODY);
  await waitReady(typicalUrl, DECIDE_BODY);
  log(
    `servers up: decide :${decidePort} (pid ${server.pid}), openrtb :${ortbPort} (pid ${ortb.pid}), bare-uws :${barePort}, data plane alone :${planePort}, typical-stack :${typicalPort}; a typical answer is ${answerBytes} bytes\n`,
  );
  const listener = (
    target: Target,
    child: ChildProcess,
    port: number,
    url: string,
    onRedis: boolean,
  ): Listener => ({
    target,
    url,
    pid: child.pid!,
    redisPids: onRedis ? [redis.pid] : [],
    child,
    port,
  });
  return {
    decide: listener('decide', server, decidePort, decideUrl, true),
    decideAdminPort: adminPort,
    openrtb: listener('openrtb', ortb, ortbPort, ortbUrl, true),
    bare: listener('bare-uws', bare, barePort, bareUrl, false),
    plane: listener('data plane', plane, planePort, planeUrl, false),
    typical: listener('typical-stack', typical, typicalPort, typicalUrl, true),
    answerBytes,
  };
}

/** The size of a typical answer: the mean over a few people, one placement. */
async function typicalAnswerBytes(decideUrl: string): Promise<number> {
  let answerBytes = 0;
  for (let i = 0; i < 20; i++) {
    const res = await fetch(decideUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bodyFor(i * 37, 'json', 1) as string,
    });
    answerBytes += (await res.arrayBuffer()).byteLength / 20;
  }
  return Math.round(answerBytes);
}

export async function stopOnOneRedis(on: OneRedis): Promise<void> {
  await Promise.all([on.decide, on.openrtb, on.bare, on.plane, on.typical].map((l) => stopChild(l.child)));
}

/**
 * The runs on one Redis, in this order: every decide and OpenRTB scenario; bare uWS on its own;
 * the data plane alone at its maximum; bare uWS at the rates decide and OpenRTB reached at 50% of
 * their maxima; unless quick, the pair (decide uniform, bare uWS) again at one rate; then the
 * typical stack.
 */
export async function driveOnOneRedis(
  runs: Runs,
  on: OneRedis,
  table: ScenarioTable,
  opt: Pick<Options, 'openrtbOnly' | 'quick'>,
): Promise<void> {
  const { hot, uniform, ortbUniform } = table;
  const decideMax: Record<string, Run> = {};
  if (!opt.openrtbOnly) for (const sc of table.decide) decideMax[sc.name] = await runs.series(on.decide, sc);
  const ortbMax: Record<string, Run> = {};
  for (const sc of table.openrtb) ortbMax[sc.name] = await runs.series(on.openrtb, sc);
  await runs.series(on.bare, hot);
  // What the HTTP layer and the request's JSON cost before any deciding: its maximum only.
  await runs.maximum(on.plane, hot);
  // The same offered rates as the decide and OpenRTB runs at 50% of their maximum.
  if (!opt.openrtbOnly)
    for (const sc of [hot, uniform]) {
      const rate = decideMax[sc.name]!.result.rps * 0.5;
      await runs.at(on.bare, hot, rate, `= decide ${sc === hot ? 'hot' : 'uniform'} 50%`);
    }
  for (const sc of table.openrtb) {
    const rate = ortbMax[sc.name]!.result.rps * 0.5;
    await runs.at(on.bare, hot, rate, `= openrtb ${sc === ortbUniform ? 'uniform' : 'hot'} 50%`);
  }
  // p99 at one offered rate, decide (uniform) against bare uWS, again in alternating pairs: one
  // fixed-rate run on a shared machine can catch a pause of the machine rather than of the
  // server. The aim takes the median p99 of each side over all its runs at that rate.
  if (!opt.openrtbOnly && !opt.quick) {
    const rate = decideMax[uniform.name]!.result.rps * 0.5;
    for (let i = 2; i <= P99_RUNS; i++) {
      await runs.at(on.decide, uniform, rate, `50% of max #${i}`);
      await runs.at(on.bare, hot, rate, `= decide uniform 50% #${i}`);
    }
  }
  if (!opt.openrtbOnly) {
    await runs.series(on.typical, hot);
    await runs.series(on.typical, uniform);
  }
}

/** The endpoints wrk cross-checks (one fixed body: person p-1, hot). */
export function wrkEndpoints(on: OneRedis): { endpoints: Endpoint[]; body: string } {
  return { endpoints: [on.decide, on.bare, on.typical], body: DECIDE_BODY };
}

// ---- the same uniform decisions on a Redis Cluster of 3 masters --------------------------------

/**
 * Starts a local cluster of 3 masters, loads the people into it, and drives `uniform` against
 * the server on it twice: with its own lean reads (routed by slot), and through ioredis' Cluster
 * client. Stops it all; resolves with what the people take there.
 */
export async function driveOnCluster(
  runs: Runs,
  uniform: Scenario,
  opt: Pick<Options, 'profiles' | 'workers'>,
  log: (s: string) => void,
): Promise<ClusterMemory> {
  const cluster = await startCluster({ masters: 3, replicas: 0 });
  try {
    const masters = cluster.nodes.map((n) => n.port);
    log(`\nRedis Cluster of ${masters.length} masters on ${cluster.seeds}`);
    const clusterMemory = await loadCluster(cluster.seeds, masters, opt.profiles, log);
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
          OPENRTB_NOTICE_URL: `http://127.0.0.1:${port}`,
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
    const endpoints: Endpoint[] = [];
    for (const [target, child, port, admin] of [
      ['decide cluster', lean, cPort, cAdmin],
      ['decide cluster ioredis', viaIoredis, iPort, iAdmin],
    ] as const) {
      const endpoint = {
        target,
        url: `http://127.0.0.1:${port}/v1/decide`,
        pid: child.pid!,
        redisPids: nodePids,
      };
      await waitReady(`http://127.0.0.1:${admin}/readyz`);
      await waitReady(endpoint.url, DECIDE_BODY);
      endpoints.push(endpoint);
    }
    for (const endpoint of endpoints) await runs.series(endpoint, uniform);
    await Promise.all([stopChild(lean), stopChild(viaIoredis)]);
    return clusterMemory;
  } finally {
    await cluster.stop();
  }
}
