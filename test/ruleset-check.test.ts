/**
 * Long rule sets are parsed and checked on a thread of their own (the compiled server, since the
 * checking thread starts from the compiled module): probes and decisions are answered while a
 * check runs, a check that passes RULESET_CHECK_TIMEOUT_MS ends with `too_slow`, and a long
 * rule set activated on the thread that decides is compiled in slices between its decisions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ruleSet } from '../bench/synthetic.js';
import { buildOnce, type Started, start } from './process-kit.js';

/** A valid synthetic rule set of `n` segments. */
function bigRuleSet(n: number) {
  const rs = ruleSet(n);
  for (const c of rs.campaigns) {
    for (const cr of c.creatives) delete cr.stages;
    if (c.stages !== undefined && c.stages.length === 0) delete c.stages;
  }
  return rs;
}

/** Probes `url` every 20 ms until `done` settles; the longest wait for an answer, ms. */
async function longestProbe(url: string, done: Promise<unknown>): Promise<number> {
  let settled = false;
  void done.finally(() => {
    settled = true;
  });
  let longest = 0;
  while (!settled) {
    const t0 = performance.now();
    expect((await fetch(url)).status).toBe(200);
    longest = Math.max(longest, performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return longest;
}

beforeAll(buildOnce, 180_000);

describe('checking a long rule set', () => {
  let server: Started;
  beforeAll(async () => {
    // Far from the checks below: 40,000 segments of YAML take 5 s or more to parse alone (20,000
    // took 2.3-2.8 s here, 2026-11-28, close enough to a 3 s limit to pass it on a fast day), and
    // 5,000 of JSON about 0.15 s (plus a new checking thread's start, after the timeout ended the last).
    server = await start({ RULESET_CHECK_TIMEOUT_MS: '2000', DEMO_PEOPLE: '10' });
  }, 60_000);
  afterAll(async () => {
    server?.child.kill('SIGTERM');
    await server?.exited;
  });

  const post = (path: string, type: string, body: string, on = server) =>
    fetch(`http://127.0.0.1:${on.adminPort}${path}`, {
      method: 'POST',
      headers: { 'content-type': type },
      body,
    });
  /** One decision for a demo person, on the data plane. */
  const decideOn = (on: Started) =>
    fetch(`http://127.0.0.1:${on.dataPort}/v1/decide`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        user: { id: 'p-1' },
        placements: [{ id: 'home-banner', channels: ['display'] }],
      }),
    });
  const decide = () => decideOn(server);

  it('answers probes meanwhile, and stops a check that takes too long with too_slow', async () => {
    // 5 s or more of YAML parsing (7.6 MB, under the 8 MiB a rule set may have): past the 2 s limit.
    const yaml = stringify(bigRuleSet(40_000));
    const t0 = performance.now();
    const checking = post('/v1/rulesets/validate', 'application/yaml', yaml);
    const longest = await longestProbe(`http://127.0.0.1:${server.adminPort}/healthz`, checking);
    const res = await checking;
    const took = performance.now() - t0;
    expect(res.status).toBe(422);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    expect(body.errors).toEqual([expect.objectContaining({ code: 'too_slow' })]);
    expect(body.errors[0]?.message).toContain('RULESET_CHECK_TIMEOUT_MS');
    // The check held its own thread for the limit; a probe never waited for it.
    expect(took).toBeGreaterThan(1900);
    expect(longest).toBeLessThan(took / 2);
  }, 60_000);

  it('takes a long valid one, deciding all along, and the next check after a timeout works', async () => {
    const json = JSON.stringify(bigRuleSet(5_000));
    const t0 = performance.now();
    const checking = post('/v1/rulesets/validate', 'application/json', json);
    let longest = 0;
    let settled = false;
    void checking.finally(() => {
      settled = true;
    });
    let answered = 0;
    while (!settled) {
      const sent = performance.now();
      const r = await decide();
      expect(r.status).toBe(200);
      longest = Math.max(longest, performance.now() - sent);
      answered++;
    }
    const res = await checking;
    const took = performance.now() - t0;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ valid: true, segments: 5_000 });
    expect(answered).toBeGreaterThan(1);
    expect(longest).toBeLessThan(took / 2);
  }, 60_000);

  it('activates a long rule set while the same thread goes on deciding', async () => {
    // A server of its own with the default check limit: what is tested here is the activation, and
    // checking this rule set takes 2-3 s on a slow host, past the 2 s limit of the one above.
    const roomy = await start({ DEMO_PEOPLE: '10' });
    try {
      await activatesWhileDeciding(roomy);
    } finally {
      roomy.child.kill('SIGTERM');
      await roomy.exited;
    }
  }, 90_000);

  async function activatesWhileDeciding(on: Started): Promise<void> {
    const decide = () => decideOn(on);
    const json = JSON.stringify(bigRuleSet(20_000));
    const before = ((await (await decide()).json()) as { ruleset: number }).ruleset;
    const uploading = post('/v1/rulesets?activate=true', 'application/json', json, on);
    let refused: number | null = null;
    void uploading.then((r) => {
      if (r.status !== 201) refused = r.status;
    });
    let longest = 0;
    let version = before;
    while (version === before && refused === null) {
      const sent = performance.now();
      const r = await decide();
      expect(r.status).toBe(200);
      longest = Math.max(longest, performance.now() - sent);
      version = ((await r.json()) as { ruleset: number }).ruleset;
    }
    expect((await uploading).status).toBe(201);
    const metrics = await (await fetch(`http://127.0.0.1:${on.adminPort}/metrics`)).text();
    const compileMs = 1000 * Number(/^mindshare_ruleset_compile_seconds (\S+)$/m.exec(metrics)?.[1]);
    // Compiled in one piece, no decision could be answered during the compile: the longest wait
    // would be at least the compile. In slices, a wait is a slice or so.
    expect(compileMs).toBeGreaterThan(100);
    expect(longest).toBeLessThan(compileMs / 2);
  }
});
