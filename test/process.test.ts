/**
 * The server as a newcomer runs it: the compiled process (`npm start` runs the same file), its
 * first lines, the curl line it prints, a clean stop on SIGTERM, and refusals at start.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_RULESET } from '../server/config.js';
import { buildOnce, portsOf, run, start, waitFor } from './process-kit.js';
import { startRedis } from './redis-server.js';

beforeAll(buildOnce, 180_000);

describe('the server process', () => {
  it('starts on the embedded demo, answers the curl line it prints, and stops cleanly on SIGTERM', async () => {
    const server = run({ PORT: '0', ADMIN_PORT: '0' });
    try {
      await waitFor(() => server.stdout().includes("-d '"), 30_000);
      const out = server.stdout();
      expect(server.stderr()).toContain('answers clients on this machine only');
      expect(out).toMatch(/the console on http:\/\/127\.0\.0\.1:\d+\/console\n/);
      const line = out.split('\n').find((l) => l.includes('curl -s'));
      const url = /curl -s (\S+)/.exec(line ?? '')?.[1];
      const body = /-d '([^']+)'/.exec(line ?? '')?.[1];
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\/decide$/);
      const res = await fetch(url ?? '', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body ?? '',
      });
      expect(res.status).toBe(200);
      const answer = (await res.json()) as { user: string; decisions: Array<{ campaign: string | null }> };
      expect(answer.user).toBe('p-1001');
      expect(answer.decisions).toHaveLength(2);
      expect(answer.decisions[0]?.campaign).not.toBeNull();
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toContain('stopped');
  }, 60_000);

  it('drains on SIGTERM under load: not ready at once, every request sent is answered, exit 0', async () => {
    const server = run({ PORT: '0', ADMIN_PORT: '0', DEMO_PEOPLE: '2000', DRAIN_DELAY_MS: '1500' });
    await waitFor(() => server.stdout().includes("-d '"), 30_000);
    const { dataPort, adminPort } = portsOf(server.stdout());
    const decideUrl = `http://127.0.0.1:${dataPort}/v1/decide`;
    const readyUrl = `http://127.0.0.1:${adminPort}/readyz`;
    expect((await fetch(readyUrl)).status).toBe(200);
    // Clients behave like a load balancer's pool: they send while the instance says it is ready.
    let ready = true;
    let sent = 0;
    let answered = 0;
    const failures: string[] = [];
    const client = async (n: number) => {
      for (let i = 0; ready; i++) {
        sent++;
        try {
          const r = await fetch(decideUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ user: { id: `p-${(n * 997 + i) % 2000}` }, placements: [{ id: 'b' }] }),
          });
          await r.arrayBuffer();
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
        if (r === null || r.status !== 200) ready = false;
        else await new Promise((res) => setTimeout(res, 10));
      }
    };
    const clients = Array.from({ length: 8 }, (_, n) => client(n));
    const prober = probe();
    await new Promise((r) => setTimeout(r, 400));
    server.child.kill('SIGTERM');
    await Promise.all([prober, ...clients]);
    expect(failures).toEqual([]);
    expect(answered).toBe(sent);
    expect(sent).toBeGreaterThan(50);
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toContain('stopped');
  }, 60_000);

  it('drains under autocannon load: zero failed requests, not ready meanwhile, exit 0', async () => {
    const server = await start({ DEMO_PEOPLE: '2000', DRAIN_DELAY_MS: '3000' });
    const load = autocannon({
      url: `http://127.0.0.1:${server.dataPort}/v1/decide`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        user: { id: 'p-1001' },
        placements: [{ id: 'home-banner', channels: ['display'] }],
      }),
      connections: 8,
      duration: 2,
    });
    await new Promise((r) => setTimeout(r, 500));
    server.child.kill('SIGTERM');
    await waitFor(() => server.stdout().includes('draining'), 5_000);
    expect((await fetch(`http://127.0.0.1:${server.adminPort}/readyz`)).status).toBe(503);
    const result = await load;
    expect(result.errors).toBe(0);
    expect(result.timeouts).toBe(0);
    expect(result.non2xx).toBe(0);
    expect(result['2xx']).toBeGreaterThan(100);
    expect(await server.exited).toBe(0);
  }, 60_000);

  it('restarted on a Redis that holds a rule set, answers a burst of first requests and keeps running', async () => {
    const redis = await startRedis();
    try {
      const first = await start({ REDIS_URL: redis.url, WORKERS: '1' });
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      const server = await start({ REDIS_URL: redis.url, WORKERS: '1' });
      try {
        const admin = `http://127.0.0.1:${server.adminPort}`;
        const yaml = readFileSync(DEMO_RULESET, 'utf8').replace('holdout: 0.05', 'holdout: 0.06');
        // The very first control-plane requests of the process, all at once: every store script
        // and command meets its first use concurrently.
        const answers = await Promise.all([
          ...[1, 2, 3, 4, 5].map((n) => fetch(`${admin}/v1/profiles/p-${n}`)),
          fetch(`${admin}/v1/rulesets?activate=false`, {
            method: 'POST',
            headers: { 'content-type': 'application/yaml' },
            body: yaml,
          }),
          fetch(`${admin}/v1/rulesets/1/activate`, { method: 'POST' }),
        ]);
        expect(answers.map((r) => r.status)).toEqual([404, 404, 404, 404, 404, 201, 200]);
        expect(((await (answers[5] as Response).json()) as { version: number }).version).toBe(2);
        const again = await fetch(`${admin}/v1/rulesets/2/activate`, { method: 'POST' });
        expect(again.status).toBe(200);
        expect(server.child.exitCode).toBeNull();
      } finally {
        server.child.kill('SIGTERM');
        expect(await server.exited).toBe(0);
      }
    } finally {
      await redis.stop();
    }
  }, 60_000);

  it('on Redis, refuses to start the bidder without a notice URL, and starts with the bidder off', async () => {
    const redis = await startRedis();
    try {
      const refused = run({
        PORT: '0',
        ADMIN_PORT: '0',
        REDIS_URL: redis.url,
        WORKERS: '1',
        OPENRTB_NOTICE_URL: '',
      });
      expect(await refused.exited).toBe(1);
      expect(refused.stderr()).toContain('OPENRTB_NOTICE_URL is required with a Redis store');
      expect(refused.stderr()).toContain('OPENRTB_BIDDER=false');
      const server = await start({
        REDIS_URL: redis.url,
        WORKERS: '1',
        OPENRTB_NOTICE_URL: '',
        OPENRTB_BIDDER: 'false',
      });
      try {
        const data = `http://127.0.0.1:${server.dataPort}`;
        const bid = await fetch(`${data}/openrtb2/bid`, { method: 'POST', body: '{}' });
        expect(bid.status).toBe(404);
        const decide = await fetch(`${data}/v1/decide`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: { id: 'p-1' }, placements: [{ id: 'a' }] }),
        });
        expect(decide.status).toBe(200);
      } finally {
        server.child.kill('SIGTERM');
        expect(await server.exited).toBe(0);
      }
    } finally {
      await redis.stop();
    }
  }, 60_000);

  it('refuses to start on an invalid rule set and says why, problem by problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mindshare-rules-'));
    const file = join(dir, 'broken.yaml');
    writeFileSync(
      file,
      [
        'funnel: [aware, appeal, act, advocate]',
        'segments:',
        '  - { id: gamers, when: { tag: "circle:mobile-gamer" } }',
        'campaigns:',
        '  - id: launch',
        '    brand: vivo',
        '    segments: [gamerz]',
        '    channels: [display]',
        '    holdout: 0.9',
        '    creatives: [ { id: hero, message: brand, stages: [byu] } ]',
        '',
      ].join('\n'),
    );
    const server = run({ PORT: '0', ADMIN_PORT: '0', RULESET_FILE: file });
    expect(await server.exited).toBe(1);
    const err = server.stderr();
    expect(err).toContain(file);
    expect(err).toContain('campaigns[0].segments[0]');
    expect(err).toContain('campaigns[0].holdout');
    expect(err).toContain('campaigns[0].creatives[0].stages[0]');
  }, 30_000);

  it('with tokens configured, names them without their secrets and keeps the control plane closed', async () => {
    const secret = 'process-test-secret-0123456789';
    const server = run({ PORT: '0', ADMIN_PORT: '0', DEMO_PEOPLE: '10', TOKENS: `ops:${secret}:admin` });
    try {
      await waitFor(() => server.stdout().includes('control plane on'), 30_000);
      expect(server.stdout()).toContain('ops (admin)');
      expect(server.stdout() + server.stderr()).not.toContain(secret);
      expect(server.stderr()).not.toContain('no API tokens');
      const port = /control plane on http:\/\/127\.0\.0\.1:(\d+)/.exec(server.stdout())?.[1];
      const anonymous = await fetch(`http://127.0.0.1:${port}/v1/rulesets`);
      expect(anonymous.status).toBe(401);
      const allowed = await fetch(`http://127.0.0.1:${port}/v1/rulesets`, {
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(allowed.status).toBe(200);
      // Deciding needs a token with the decide scope (admin has every scope).
      const { dataPort } = portsOf(server.stdout());
      const decide = (headers: Record<string, string>) =>
        fetch(`http://127.0.0.1:${dataPort}/v1/decide`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ user: { id: 'p-1' }, placements: [{ id: 'b' }] }),
        });
      const refused = await decide({});
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer');
      expect((await decide({ authorization: `Bearer ${secret}` })).status).toBe(200);
      expect(server.stdout()).toContain("-H 'authorization: Bearer <a token with the decide scope>'");
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
  }, 60_000);

  it('refuses a bad configuration, naming the variable', async () => {
    const server = run({ PORT: 'eighty', ADMIN_PORT: '0' });
    expect(await server.exited).toBe(1);
    expect(server.stderr()).toContain('PORT="eighty"');
  }, 30_000);
});
