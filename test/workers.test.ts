/**
 * The data plane in worker threads (Redis, WORKERS=2): the compiled process, a real
 * redis-server. Every thread serves on the one port, /metrics is one scrape of the whole
 * process, rule-set activations reach every thread, and SIGTERM drains them all to exit 0.
 */
import { readFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../server/app.js';
import { DEMO_RULESET, loadConfig } from '../server/config.js';
import { BIZ_ID, contractPeople } from './decide.contract.js';
import { decideOnce as post } from './http.js';
import { buildOnce, portsOf, run, type Started, start, waitFor } from './process-kit.js';
import { type RedisHandle, startRedis } from './redis-server.js';

const DEMO = readFileSync(DEMO_RULESET, 'utf8');
const DEMO_V2 = DEMO.replace(/id: x90-camera-hero\b/, 'id: x90-camera-hero-v2');
const BODY = JSON.stringify({
  user: { id: BIZ_ID },
  placements: [{ id: 'home-banner', channels: ['display'] }],
});

/** One decision for the worker tests' person (or `body`), as decideOnce posts it. */
const decideOnce = (port: number, body = BODY, agent?: Agent) => post(port, body, agent);

/** Sample values of one metric from the text exposition, with their label strings. */
function samples(text: string, name: string): Array<{ labels: string; value: number }> {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m?.[1] === name) out.push({ labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}

/** Stores the worker tests' person through the control plane listening on `adminPort`. */
async function putTestPerson(adminPort: number): Promise<void> {
  const put = await fetch(`http://127.0.0.1:${adminPort}/v1/profiles/${BIZ_ID}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(contractPeople[0]),
  });
  expect(put.status).toBeLessThan(300);
}

const scrape = async (r: Started) => (await fetch(`http://127.0.0.1:${r.adminPort}/metrics`)).text();
const sum = (text: string, name: string) => samples(text, name).reduce((a, s) => a + s.value, 0);

beforeAll(buildOnce, 180_000);

describe('WORKERS', () => {
  it('is a whole number from 1 to 64, by default one per CPU', () => {
    expect(loadConfig({}).workers).toBeGreaterThanOrEqual(1);
    expect(loadConfig({ WORKERS: '1' }).workers).toBe(1);
    expect(loadConfig({ WORKERS: '64' }).workers).toBe(64);
    for (const bad of ['0', '65', 'two', '-1', '1.5']) {
      expect(() => loadConfig({ WORKERS: bad }), bad).toThrow(/WORKERS=/);
    }
  });

  it('with the embedded store: one thread serves everything, and the server says so', async () => {
    const server = await start({ WORKERS: '4', DEMO_PEOPLE: '10' });
    try {
      expect(server.stdout()).toContain('WORKERS applies with Redis only');
      expect(server.stdout()).toContain('one thread serves the data plane and the control plane');
      expect((await decideOnce(server.dataPort)).status).toBe(200);
      const text = await scrape(server);
      expect(samples(text, 'mindshare_workers')).toEqual([{ labels: '', value: 1 }]);
      expect(samples(text, 'mindshare_worker_decisions_total')).toEqual([]);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
  }, 60_000);
});

describe('Redis failing while the workers start', () => {
  /**
   * Starts the server with two workers on a fresh Redis, does `fault` once the main thread has
   * stored and activated its rule set (the workers start next), and checks that the process
   * comes up and serves. Resolves with what the process printed.
   */
  async function survives(fault: (redis: RedisHandle) => Promise<void>): Promise<string> {
    const redis = await startRedis();
    // What is checked is that the process serves, not how fast: a first read on a loaded machine
    // must not come back degraded for a 10 ms deadline.
    const server = run({
      PORT: '0',
      ADMIN_PORT: '0',
      REDIS_URL: redis.url,
      WORKERS: '2',
      DECISION_DEADLINE_MS: '2000',
    });
    try {
      await waitFor(() => server.stdout().includes('stored and activated as version 1'), 30_000);
      await fault(redis);
      await waitFor(() => server.stdout().includes("-d '") || server.child.exitCode !== null, 60_000);
      expect(server.child.exitCode, server.stdout() + server.stderr()).toBeNull();
      const { dataPort, adminPort } = portsOf(server.stdout());
      await putTestPerson(adminPort);
      const res = await decideOnce(dataPort);
      expect(res.status).toBe(200);
      expect(res.body.decisions[0].creative, JSON.stringify(res.body)).toBeTruthy();
      return server.stdout();
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      await redis.stop();
    }
  }

  it('a Redis away for 1.5 s is waited out, and the process serves', async () => {
    await survives(async (redis) => {
      await redis.kill();
      await new Promise((r) => setTimeout(r, 1500));
      await redis.restart();
    });
  }, 90_000);

  it('a data-plane worker on a store without a rule set waits for the main thread to store it again', async () => {
    // As a worker finds a Redis that restarted empty after the main thread stored its rule set.
    const redis = await startRedis();
    const config = loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', REDIS_URL: redis.url });
    const lines: string[] = [];
    const starting = startServer(config, { role: 'data', worker: 1, log: (l) => lines.push(l) });
    let started = false;
    void starting.then(() => {
      started = true;
    });
    try {
      await waitFor(() => lines.some((l) => l.includes('no active rule set yet')) || started, 10_000);
      expect(started).toBe(false);
      // The main thread's instance notices and stores the rule set again: here, one started now.
      const main = await startServer(config, { log: () => {} });
      const worker = await starting;
      expect(worker.service.ruleSet.checksum).toBe(main.service.ruleSet.checksum);
      await worker.close();
      await main.close();
    } finally {
      if (!started) void starting.then((w) => w.close());
      await redis.stop();
    }
  }, 60_000);
});

describe('the data plane in two worker threads, with Redis', () => {
  let redis: RedisHandle;
  let server: Started;
  beforeAll(async () => {
    redis = await startRedis();
    // Cached people live far longer than the test: only the bus can make a worker forget one.
    server = await start({
      REDIS_URL: redis.url,
      WORKERS: '2',
      DRAIN_DELAY_MS: '1000',
      CACHE_TTL_MS: '600000',
    });
    await putTestPerson(server.adminPort);
  }, 60_000);
  afterAll(async () => {
    if (server?.child.exitCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    await redis?.stop();
  });

  it('serves every decision on one port from both workers, counted once in one scrape', async () => {
    expect(server.stdout()).toContain('2 worker threads serve the data plane');
    const before = await scrape(server);
    const N = 200;
    const answers = [];
    for (let i = 0; i < N; i += 10) {
      answers.push(...(await Promise.all(Array.from({ length: 10 }, () => decideOnce(server.dataPort)))));
    }
    expect(answers.map((a) => a.status)).toEqual(Array(N).fill(200));
    expect(answers.every((a) => a.body.ruleset === 1)).toBe(true);
    const text = await scrape(server);
    const perWorker = samples(text, 'mindshare_worker_decisions_total');
    expect(perWorker.map((s) => s.labels).sort()).toEqual(['{worker="1"}', '{worker="2"}']);
    for (const s of perWorker) expect(s.value, s.labels).toBeGreaterThan(0);
    const count = 'mindshare_decision_duration_seconds_count';
    expect(sum(text, count) - sum(before, count)).toBe(N);
    expect(sum(text, 'mindshare_worker_decisions_total')).toBe(sum(text, count));
    expect(samples(text, 'mindshare_workers')).toEqual([{ labels: '', value: 2 }]);
    expect(samples(text, 'mindshare_ruleset_version')).toEqual([{ labels: '', value: 1 }]);
    expect(samples(text, 'mindshare_redis_up')).toEqual([{ labels: '', value: 1 }]);
    expect(samples(text, 'mindshare_draining')).toEqual([{ labels: '', value: 0 }]);
    // Process metrics once, from the main thread.
    expect(samples(text, 'process_cpu_user_seconds_total')).toHaveLength(1);
    expect(text.match(/^# TYPE mindshare_decision_duration_seconds histogram$/gm)).toHaveLength(1);
    // What both workers decided reaches the campaign's delivery (each sends its own batches), and
    // the one person decided 200 times is one person in its lift. (A decision the store was late
    // for is made on context alone and may name another campaign: counted from the answers.)
    const named = new Map<string, number>();
    for (const a of answers) {
      const c = a.body.decisions[0].campaign;
      if (c !== null) named.set(c, (named.get(c) ?? 0) + 1);
    }
    const [campaign, expected] = [...named].sort((x, y) => y[1] - x[1])[0]!;
    const admin = `http://127.0.0.1:${server.adminPort}`;
    const until = Date.now() + 10_000;
    let decided = 0;
    while (decided < expected && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      const body = (await (await fetch(`${admin}/v1/campaigns/${campaign}/delivery`)).json()) as {
        totals: { decisions: number };
      };
      decided = body.totals.decisions;
    }
    expect(decided).toBe(expected);
    const lift = (await (await fetch(`${admin}/v1/campaigns/x90-launch/lift`)).json()) as {
      arms: Record<string, { people: number }>;
    };
    expect(lift.arms.treatment!.people + lift.arms.control!.people).toBe(1);
  }, 60_000);

  it('brings a rule-set activation to every worker; the scrape shows the lowest version served', async () => {
    const res = await fetch(`http://127.0.0.1:${server.adminPort}/v1/rulesets?activate=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/yaml' },
      body: DEMO_V2,
    });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { version: number }).version).toBe(2);
    const until = Date.now() + 10_000;
    for (;;) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => decideOnce(server.dataPort)));
      if (batch.every((a) => a.body.ruleset === 2)) break;
      if (Date.now() > until) throw new Error('not every worker decides with version 2');
      await new Promise((r) => setTimeout(r, 50));
    }
    const text = await scrape(server);
    expect(samples(text, 'mindshare_ruleset_version')).toEqual([{ labels: '', value: 2 }]);
    const ok = samples(text, 'mindshare_ruleset_activations_total').find((s) => s.labels === '{result="ok"}');
    // The main thread and both workers switched.
    expect(ok?.value).toBe(3);
  }, 60_000);

  it('holds a frequency cap on every worker as soon as the impressions are acknowledged', async () => {
    const admin = `http://127.0.0.1:${server.adminPort}`;
    const linked = await fetch(`${admin}/v1/profiles/${BIZ_ID}/aliases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ idfa: 'idfa-capped', cookie: 'cookie-capped' }),
    });
    expect(linked.status).toBe(200);
    const byCookie = JSON.stringify({
      user: { ids: { cookie: 'cookie-capped' } },
      placements: [{ id: 'home-banner', channels: ['display'] }],
    });
    // Keep-alive connections (each stays with one worker) and fresh ones: both workers cache the
    // person (the second load of a person caches it) and serve the campaign.
    const agents = Array.from({ length: 6 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const ask = (i: number) =>
      i < agents.length
        ? decideOnce(server.dataPort, byCookie, agents[i])
        : decideOnce(server.dataPort, byCookie);
    try {
      // (The first answers of a worker may come degraded while its connections open.)
      let served = 0;
      for (let round = 0; round < 100 && served < 4; round++) {
        const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => ask(i)));
        served = answers.every((a) => a.body.decisions[0]?.campaign === 'x90-launch') ? served + 1 : 0;
      }
      expect(served).toBe(4);
      // The daily cap is 3: three impressions through the other alias.
      const now = Date.now();
      const events = [1, 2, 3].map((k) => ({
        eventId: `cap-${k}`,
        type: 'impression',
        user: { ids: { idfa: 'idfa-capped' } },
        campaign: 'x90-launch',
        at: now - k * 1000,
      }));
      const res = await fetch(`${admin}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events }),
      });
      const acked = performance.now();
      expect(await res.json()).toMatchObject({ applied: 3 });
      // From the acknowledgement on: how late after it was a capped campaign still served?
      let lateMs = 0;
      let answered = 0;
      while (performance.now() - acked < 500) {
        const sentAt = performance.now() - acked;
        const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => ask(i)));
        for (const a of answers) {
          answered++;
          if (a.body.decisions[0]?.campaign === 'x90-launch') lateMs = Math.max(lateMs, sentAt);
        }
      }
      expect(answered).toBeGreaterThan(24);
      // The bus's delay, not the cache's 600 s: generous for a shared machine (load-tests/freshness.ts measures it).
      expect(lateMs).toBeLessThan(200);
    } finally {
      for (const agent of agents) agent.destroy();
    }
  }, 60_000);

  it('drains every worker on SIGTERM under load: not ready at once, every request answered, exit 0', async () => {
    const readyUrl = `http://127.0.0.1:${server.adminPort}/readyz`;
    expect((await fetch(readyUrl)).status).toBe(200);
    let ready = true;
    let sent = 0;
    let answered = 0;
    let sawDraining = false;
    const failures: string[] = [];
    const client = async () => {
      while (ready) {
        sent++;
        try {
          const r = await decideOnce(server.dataPort);
          if (r.status === 200) answered++;
          else failures.push(`status ${r.status}`);
        } catch (e) {
          failures.push(String(e));
        }
      }
    };
    const probe = async () => {
      while (ready) {
        const r = await fetch(readyUrl).catch(() => null);
        if (r === null || r.status !== 200) {
          ready = false;
          sawDraining = r?.status === 503;
          const text = await scrape(server).catch(() => '');
          if (text !== '') expect(samples(text, 'mindshare_draining')).toEqual([{ labels: '', value: 1 }]);
        } else {
          await new Promise((res) => setTimeout(res, 10));
        }
      }
    };
    // A keep-alive connection left idle, as a load balancer keeps them: uWS would hold it for its
    // 10 s idle timeout, and the worker thread (and so the process) with it, past docker's 10 s.
    const idleAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    expect((await decideOnce(server.dataPort, BODY, idleAgent)).status).toBe(200);
    const idle = Object.values(idleAgent.freeSockets).flat()[0];
    expect(idle).toBeDefined();
    let idleClosed = false;
    idle?.on('close', () => {
      idleClosed = true;
    });
    const clients = Array.from({ length: 8 }, () => client());
    const prober = probe();
    await new Promise((r) => setTimeout(r, 400));
    const termAt = performance.now();
    server.child.kill('SIGTERM');
    await Promise.all([prober, ...clients]);
    expect(sawDraining).toBe(true);
    expect(failures).toEqual([]);
    expect(answered).toBe(sent);
    expect(sent).toBeGreaterThan(50);
    expect(await server.exited).toBe(0);
    // DRAIN_DELAY_MS is 1 s here; the rest is the requests in flight, well under uWS's 10 s.
    expect(performance.now() - termAt).toBeLessThan(8000);
    expect(idleClosed).toBe(true);
    idleAgent.destroy();
    expect(server.stdout()).toContain('stopped');
    expect(server.stderr()).not.toContain('uv_loop_close');
  }, 60_000);
});

describe('OpenRTB notices across two worker threads, with Redis', () => {
  let redis: RedisHandle;
  let server: Started;
  beforeAll(async () => {
    redis = await startRedis();
    server = await start({
      REDIS_URL: redis.url,
      WORKERS: '2',
      RULESET_FILE: new URL('./openrtb/ruleset.yaml', import.meta.url).pathname,
    });
  }, 60_000);
  afterAll(async () => {
    if (server?.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    await redis?.stop();
  });

  /** A GET on a connection of its own (the kernel picks the worker of each new connection). */
  const getOnNewConnection = (url: string) =>
    new Promise<number>((resolve, reject) => {
      get(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject);
    });

  it('counts a win notice of a bid to nobody in particular once, whichever worker each copy reaches', async () => {
    const request = JSON.parse(readFileSync(new URL('./openrtb/breq.banner.json', import.meta.url), 'utf8'));
    delete request.user;
    const res = await fetch(`http://127.0.0.1:${server.dataPort}/openrtb2/bid`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    expect(res.status).toBe(200);
    const bid = ((await res.json()) as { seatbid: Array<{ bid: Array<{ nurl: string; price: number }> }> })
      .seatbid[0]?.bid[0];
    const path = bid?.nurl.replace(/^https?:\/\/[^/]+/, '').replace(/\$\{AUCTION_PRICE\}/, String(bid.price));
    const before = await scrape(server);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++)
      statuses.push(await getOnNewConnection(`http://127.0.0.1:${server.dataPort}${path}`));
    expect(statuses).toEqual(Array(40).fill(204));
    const text = await scrape(server);
    const notices = (outcome: string) => {
      const labels = `{type="win",outcome="${outcome}"}`;
      const at = (t: string) =>
        samples(t, 'mindshare_openrtb_notices_total').find((s) => s.labels === labels)?.value ?? 0;
      return at(text) - at(before);
    };
    expect(notices('counted')).toBe(1);
    expect(notices('duplicate')).toBe(39);
  }, 60_000);
});
