/**
 * A budget on the compiled server: two worker threads and the main thread share a real
 * redis-server; the data plane decides a budgeted campaign exactly as often as its budget allows
 * (then the next campaign, with the reason in explain), impression events reach the budget's
 * spent, and the control plane reports it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from './http.js';
import { buildOnce, type Started, start } from './process-kit.js';
import { type RedisHandle, startRedis } from './redis-server.js';

const RULES = `
funnel: [aware, buy]
segments: []
campaigns:
  - id: capped
    brand: acme
    priority: 10
    budget: { daily: 30, unit: impressions, pacing: asap }
    creatives:
      - { id: capped-banner, message: brand }
  - id: fallback
    brand: acme
    creatives:
      - { id: fallback-banner, message: brand }
`;

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
type Json = any;

describe('a budget on a running server with WORKERS=2 over Redis', () => {
  let redis: RedisHandle;
  let server: Started;
  beforeAll(async () => {
    await buildOnce();
    redis = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), 'budget-'));
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, RULES);
    server = await start({
      REDIS_URL: redis.url,
      WORKERS: '2',
      RULESET_FILE: file,
      BUDGET_LEASE_MS: '200',
      DECISION_DEADLINE_MS: '2000',
    });
  }, 120_000);
  afterAll(async () => {
    server?.child.kill('SIGTERM');
    await server?.exited;
    await redis?.stop();
  });

  const decide = async (i: number, explain = false): Promise<Json> => {
    const r = await postJson(`http://127.0.0.1:${server.dataPort}/v1/decide`, {
      user: { id: `u-${i}` },
      placements: [{ id: 'slot', channels: ['display'] }],
      ...(explain ? { explain: true } : {}),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body;
  };
  const admin = async (path: string, init?: RequestInit): Promise<Json> => {
    const r = await fetch(`http://127.0.0.1:${server.adminPort}${path}`, {
      ...init,
      headers: { host: 'localhost', 'content-type': 'application/json', ...init?.headers },
    });
    return { status: r.status, body: await r.json() };
  };

  it('decides it as often as its budget allows across the threads, then the next campaign, and counts what was delivered', async () => {
    let filled = 0;
    let i = 0;
    const until = Date.now() + 15_000;
    // Until the fleet's leases have taken the whole day's 30 (a thread asks for more as it uses more).
    while (filled < 30 && Date.now() < until) {
      const answers = await Promise.all(Array.from({ length: 8 }, () => decide(i++)));
      for (const a of answers) if (a.decisions[0].campaign === 'capped') filled++;
      if (filled < 30) await new Promise((r) => setTimeout(r, 20));
    }
    expect(filled).toBe(30);
    // Past its budget: never again today, on any thread; the next campaign fills, and explain says why.
    const after = await Promise.all(Array.from({ length: 40 }, () => decide(i++)));
    expect(after.every((a) => a.decisions[0].campaign === 'fallback')).toBe(true);
    const why = await decide(i++, true);
    expect(why.explain.campaigns.find((c: Json) => c.campaign === 'capped')).toMatchObject({
      status: 'dropped',
      reason: 'budget',
    });
    // The route: all 30 committed (leased and used), none delivered yet.
    const before = await admin('/v1/campaigns/capped/budget');
    expect(before.status).toBe(200);
    expect(before.body.lines[0].today).toMatchObject({ spent: 0, committed: 30, limit: 30 });
    expect(before.body.lines[0].status).toBe('spent');
    // Impression events (on the control plane's thread) turn the commitments into spent ones.
    const events = Array.from({ length: 30 }, (_, k) => ({
      eventId: `imp-${k}`,
      type: 'impression',
      user: { id: `u-${k}` },
      campaign: 'capped',
      creative: 'capped-banner',
    }));
    const sent = await admin('/v1/events', { method: 'POST', body: JSON.stringify({ events }) });
    expect(sent.status).toBe(200);
    expect(sent.body.applied).toBe(30);
    // Sent again: duplicates, not counted twice.
    await admin('/v1/events', { method: 'POST', body: JSON.stringify({ events }) });
    const end = Date.now() + 10_000;
    let now: Json;
    do {
      await new Promise((r) => setTimeout(r, 100));
      now = await admin('/v1/campaigns/capped/budget');
    } while (now.body.lines[0].today.spent < 30 && Date.now() < end);
    expect(now.body.lines[0].today).toMatchObject({ spent: 30, committed: 0 });
    expect(now.body.lines[0].spentInAll).toBe(30);
  }, 60_000);
});
