/**
 * How fresh a fleet's decisions are after a write: `npm run measure:freshness -- [--trials N]
 * [--cluster]`.
 *
 * Two server processes (dist/server/main.js, WORKERS=2 each, a ten-minute cache) share a private
 * redis-server (or, with `--cluster`, a local Redis Cluster of 3 masters). For each trial, one
 * person whose daily frequency cap is 3: both processes' threads are made to cache the person
 * (decisions through an alias on keep-alive connections, which stay with one thread, and fresh
 * connections, spread by the kernel), then three impressions are posted to the first process's
 * control plane through another alias. From the moment the acknowledgement arrives, decisions go to
 * both processes without pause; the trial's figure is how long after the acknowledgement a decision
 * was still answered with the capped campaign, to the end of the round of decisions it was in (0
 * when none was). Without the bus, that is the cache's ten minutes.
 *
 * Prints the figures' median, p90 and maximum over the trials, and writes them to
 * bench/results/freshness-<date>.json.
 */
import type { ChildProcess } from 'node:child_process';
import { Agent } from 'node:http';
import { writeResults } from '../bench/report.js';
import { decideOnce } from '../test/http.js';
import { sleep, startNode, waitReady } from './measure.js';
import { freePort, startCluster, startRedis } from './redis.js';

interface Process {
  child: ChildProcess;
  data: number;
  admin: number;
}

async function start(env: Record<string, string>, name: string): Promise<Process> {
  const [data, admin] = await Promise.all([freePort(), freePort()]);
  const child = startNode(
    'server/main.js',
    {
      ...env,
      HOST: '127.0.0.1',
      PORT: String(data),
      ADMIN_PORT: String(admin),
      WORKERS: '2',
      CACHE_TTL_MS: '600000',
      LOG_LEVEL: 'warn',
    },
    name,
  );
  await waitReady(`http://127.0.0.1:${admin}/readyz`);
  return { child, data, admin };
}

/** The campaign of the one placement a decision for `cookie` fills (null: none). */
async function decide(port: number, cookie: string, agent: Agent | false): Promise<string | null> {
  const body = JSON.stringify({
    user: { ids: { cookie } },
    placements: [{ id: 'home-banner', channels: ['display'] }],
  });
  const answer = await decideOnce(port, body, agent === false ? undefined : agent);
  return (answer.body as { decisions: Array<{ campaign: string | null }> }).decisions[0]?.campaign ?? null;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--trials');
  const trials = at < 0 ? 40 : Number(argv[at + 1]);
  const onCluster = argv.includes('--cluster');
  const redis = onCluster ? null : await startRedis();
  const cluster = onCluster ? await startCluster({ masters: 3, replicas: 0 }) : null;
  const env: Record<string, string> =
    cluster !== null ? { REDIS_CLUSTER_NODES: cluster.seeds } : { REDIS_URL: redis!.url };
  // Notice URLs are not used here; with Redis the bidder needs one to start.
  env.OPENRTB_NOTICE_URL = 'http://127.0.0.1';
  const a = await start(env, 'server-a');
  const b = await start(env, 'server-b');
  const servers = [a, b];
  // Per process, three keep-alive connections (each stays with one thread) and fresh ones.
  const agents = servers.map(() =>
    Array.from({ length: 3 }, () => new Agent({ keepAlive: true, maxSockets: 1 })),
  );
  const round = (cookie: string) =>
    Promise.all(
      servers.flatMap((s, k) => [
        ...agents[k]!.map((agent) => decide(s.data, cookie, agent)),
        decide(s.data, cookie, false),
        decide(s.data, cookie, false),
      ]),
    );
  const figures: number[] = [];
  const rounds: number[] = [];
  for (let t = 0; t < trials; t++) {
    const pid = `fresh-${t}`;
    const cookie = `cookie-${pid}`;
    const put = await fetch(`http://127.0.0.1:${a.admin}/v1/profiles/${pid}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        tags: ['circle:business'],
        attrs: { price_band: 6000 },
        stages: { vivo: 'appeal' },
      }),
    });
    if (put.status >= 300) throw new Error(`PUT ${pid}: ${put.status}`);
    await fetch(`http://127.0.0.1:${a.admin}/v1/profiles/${pid}/aliases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cookie, idfa: `idfa-${pid}` }),
    });
    // Every thread caches the person (the second load caches).
    let warm = 0;
    for (let i = 0; i < 200 && warm < 4; i++) {
      const answers = await round(cookie);
      warm = answers.every((c) => c === 'x90-launch') ? warm + 1 : 0;
    }
    if (warm < 4) throw new Error(`${pid} was not served the campaign`);
    const now = Date.now();
    const res = await fetch(`http://127.0.0.1:${a.admin}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        events: [1, 2, 3].map((k) => ({
          eventId: `${pid}-${k}`,
          type: 'impression',
          user: { ids: { idfa: `idfa-${pid}` } },
          campaign: 'x90-launch',
          at: now - k * 1000,
        })),
      }),
    });
    const acked = performance.now();
    if (res.status !== 200) throw new Error(`events: ${res.status}`);
    // The figure: the latest send time (after the acknowledgement) of a decision that still
    // served the capped campaign, rounded up to the end of its round (the measurement's grain).
    let late = 0;
    while (performance.now() - acked < 300) {
      const sent = performance.now() - acked;
      const answers = await round(cookie);
      const done = performance.now() - acked;
      rounds.push(done - sent);
      if (answers.some((c) => c === 'x90-launch')) late = Math.max(late, done);
    }
    figures.push(late);
  }
  for (const list of agents) for (const agent of list) agent.destroy();
  for (const s of servers) s.child.kill('SIGTERM');
  await sleep(500);
  await redis?.stop();
  await cluster?.stop();
  figures.sort((x, y) => x - y);
  const pick = (q: number) => figures[Math.min(figures.length - 1, Math.floor(q * figures.length))]!;
  const out = {
    date: new Date().toISOString(),
    store: onCluster ? 'Redis Cluster, 3 masters' : 'one Redis',
    trials,
    staleAfterAckMs: { median: pick(0.5), p90: pick(0.9), max: figures[figures.length - 1] },
    servedCappedAfterAck: figures.filter((f) => f > 0).length,
    roundMs: rounds.sort((x, y) => x - y)[Math.floor(rounds.length / 2)] ?? null,
    figuresMs: figures,
  };
  console.log(
    `freshness (${out.store}, 2 processes x 2 threads, ${trials} trials): a capped campaign was still served up to ${out.staleAfterAckMs.median.toFixed(1)} ms (median), ${out.staleAfterAckMs.p90.toFixed(1)} ms (p90), ${out.staleAfterAckMs.max!.toFixed(1)} ms (max) after the acknowledgement; in ${out.servedCappedAfterAck} of ${trials} trials at all (a round of 10 decisions takes ${out.roundMs?.toFixed(1)} ms: the grain of these figures)`,
  );
  writeResults(onCluster ? 'freshness-cluster' : 'freshness', out);
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
