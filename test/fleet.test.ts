/**
 * Two server instances sharing one backend, as a fleet runs: a real redis-server, a real Redis
 * Cluster (3 masters with a replica each), both started for the test, and the embedded backend
 * shared in process. What one instance is told (a rule-set activation, a profile write, an
 * impression) reaches the other through the bus, not through polling or cache expiry: both are
 * set far beyond the test's patience.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, embeddedBackend, type RunningServer, startServer } from '../server/app.js';
import { DEMO_RULESET, loadConfig } from '../server/config.js';
import { BIZ_ID, CONTRACT_NOW, contractPeople } from './decide.contract.js';
import { postJson } from './http.js';
import { clusterTarget, type RedisTarget, singleTarget } from './redis-targets.js';

const DEMO = readFileSync(DEMO_RULESET, 'utf8');
/** The demo rule set with the X90 camera creative renamed: decisions show which version decided. */
const DEMO_V2 = DEMO.replace(/id: x90-camera-hero\b/, 'id: x90-camera-hero-v2');
const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

interface Fleet {
  a: RunningServer;
  b: RunningServer;
  /** Every key of the store that mentions a string (Redis only). */
  keysMentioning?: (text: string) => Promise<string[]>;
  /** Empties the store, as a Redis restarted without persistence (Redis only). */
  wipe?: () => Promise<void>;
  close(): Promise<void>;
}

const quiet = () => {};

async function startPair(
  env: Record<string, string>,
  backend?: Backend,
): Promise<[RunningServer, RunningServer]> {
  const config = loadConfig({
    PORT: '0',
    ADMIN_PORT: '0',
    HOST: '127.0.0.1',
    CACHE_TTL_MS: '600000',
    // What is decided is checked here, not how fast: a loaded machine running six cluster nodes
    // must not turn a slow read into a degraded answer (the deadline has tests of its own).
    DECISION_DEADLINE_MS: '2000',
    DEMO_PEOPLE: '0',
    ...env,
  });
  const opts = {
    log: quiet,
    now: () => CONTRACT_NOW,
    // The poll catches what the bus cannot announce (a store that lost its data).
    rulesetPollMs: 200,
    ...(backend ? { backend } : {}),
  };
  const a = await startServer(config, opts);
  const b = await startServer(config, opts);
  return [a, b];
}

function describeFleet(name: string, makeFleet: () => Promise<Fleet>): void {
  describe(`a fleet of two: ${name}`, () => {
    let fleet: Fleet;
    beforeAll(async () => {
      fleet = await makeFleet();
      await fleet.a.store.putProfiles(contractPeople);
    });
    afterAll(() => fleet?.close());

    const admin = (s: RunningServer, path: string) => `http://127.0.0.1:${s.adminPort}${path}`;
    const decide = async (s: RunningServer, user: string = BIZ_ID) =>
      postJson(`http://127.0.0.1:${s.dataPort}/v1/decide`, { user: { id: user }, placements: [BANNER] });
    const upload = async (s: RunningServer, text: string, activate: boolean) =>
      fetch(admin(s, `/v1/rulesets${activate ? '?activate=true' : ''}`), {
        method: 'POST',
        headers: { 'content-type': 'application/yaml' },
        body: text,
      });
    const activate = async (s: RunningServer, version: number) =>
      fetch(admin(s, `/v1/rulesets/${version}/activate`), { method: 'POST' });
    /** Polls until `check` holds; resolves with the time it took, ms. */
    const until = async (check: () => Promise<boolean>, limitMs = 5000): Promise<number> => {
      const t0 = performance.now();
      while (!(await check())) {
        if (performance.now() - t0 > limitMs) throw new Error(`not within ${limitMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return performance.now() - t0;
    };

    it('starts every instance on the same active version', async () => {
      expect(fleet.a.service.ruleSet.version).toBe(1);
      expect(fleet.b.service.ruleSet.version).toBe(1);
      expect((await decide(fleet.b)).body.decisions[0].creative).toBe('x90-camera-hero');
    });

    it('an upload activated on one instance decides on the other within a second', async () => {
      const res = await upload(fleet.a, DEMO_V2, true);
      expect(res.status).toBe(201);
      const { version } = (await res.json()) as { version: number };
      expect(version).toBe(2);
      const took = await until(async () => (await decide(fleet.b)).body.ruleset === 2);
      expect(took).toBeLessThan(1000);
      const r = await decide(fleet.b);
      expect(r.body).toMatchObject({ ruleset: 2, decisions: [{ creative: 'x90-camera-hero-v2' }] });
      expect((await decide(fleet.a)).body.ruleset).toBe(2);
    });

    it('rolls back by activating an older version on either instance', async () => {
      expect((await activate(fleet.b, 1)).status).toBe(200);
      await until(async () => (await decide(fleet.a)).body.ruleset === 1);
      expect((await decide(fleet.a)).body.decisions[0].creative).toBe('x90-camera-hero');
      await until(async () => (await decide(fleet.b)).body.ruleset === 1);
    });

    it('an invalid upload changes nothing anywhere', async () => {
      const before = await (await fetch(admin(fleet.a, '/v1/rulesets'))).json();
      const res = await upload(fleet.a, DEMO.replace('holdout: 0.05', 'holdout: 0.9'), true);
      expect(res.status).toBe(422);
      const body = (await res.json()) as { errors: Array<{ path: string }> };
      expect(body.errors.map((e) => e.path)).toContain('campaigns[0].holdout');
      expect(await (await fetch(admin(fleet.b, '/v1/rulesets'))).json()).toEqual(before);
      expect((await decide(fleet.a)).body.ruleset).toBe(1);
      expect((await decide(fleet.b)).body.ruleset).toBe(1);
    });

    it('keeps deciding, each answer true to the version it names, while versions flip in a loop', async () => {
      let flipping = true;
      const flips = (async () => {
        for (let i = 0; i < 20; i++) {
          expect((await activate(i % 2 === 0 ? fleet.a : fleet.b, i % 2 === 0 ? 2 : 1)).status).toBe(200);
          await new Promise((r) => setTimeout(r, 5));
        }
        flipping = false;
      })();
      const seen = new Set<number>();
      let answered = 0;
      const client = async (s: RunningServer) => {
        while (flipping) {
          const r = await decide(s);
          expect(r.status).toBe(200);
          const creative = r.body.decisions[0].creative;
          expect(creative).toBe(r.body.ruleset === 2 ? 'x90-camera-hero-v2' : 'x90-camera-hero');
          seen.add(r.body.ruleset);
          answered++;
        }
      };
      await Promise.all([flips, client(fleet.a), client(fleet.b), client(fleet.a)]);
      expect(answered).toBeGreaterThan(0);
      // The last activation was version 1, made on b: both end there.
      await until(async () => (await decide(fleet.a)).body.ruleset === 1);
      await until(async () => (await decide(fleet.b)).body.ruleset === 1);
    });

    it('a profile written through one instance is not served stale from the cache of the other', async () => {
      const id = 'fleet-person';
      const gamer = { id, tags: ['circle:mobile-gamer'], stages: { vivo: 'appeal' } };
      const put = (s: RunningServer, body: unknown) =>
        fetch(admin(s, `/v1/profiles/${id}`), {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      expect((await put(fleet.a, gamer)).status).toBeLessThan(300);
      expect((await decide(fleet.b, id)).body.decisions[0].segment).toBe('mobile-gamer'); // now cached on b
      expect(
        (await put(fleet.a, { ...gamer, tags: ['circle:business'], attrs: { price_band: 9000 } })).status,
      ).toBe(200);
      await until(async () => (await decide(fleet.b, id)).body.decisions[0].segment === 'highend-business');
    });

    it('counts replayed impression events once, and the caps hold on both instances', async () => {
      const id = 'fleet-capped';
      await fleet.a.store.putProfile({ id, tags: ['circle:mobile-gamer'], stages: { vivo: 'appeal' } });
      await fleet.a.store.linkAliases(id, { idfa: `idfa-${id}` });
      const events = [1, 2, 3].map((i) => ({
        eventId: `${id}-imp-${i}`,
        type: 'impression',
        user: { ids: { idfa: `idfa-${id}` } },
        campaign: 'x90-launch',
        at: new Date(CONTRACT_NOW - i * 60_000).toISOString(),
      }));
      const send = async (s: RunningServer) =>
        (
          await fetch(admin(s, '/v1/events'), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ events: events.slice(0, 2) }),
          })
        ).json() as Promise<{ applied: number; duplicates: number }>;
      expect(await send(fleet.a)).toMatchObject({ applied: 2, duplicates: 0 });
      expect(await send(fleet.b)).toMatchObject({ applied: 0, duplicates: 2 });
      // Two impressions today: under the daily cap of 3 on both instances.
      expect((await decide(fleet.b, id)).body.decisions[0].campaign).toBe('x90-launch');
      const third = await fetch(admin(fleet.b, '/v1/events'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(events[2]),
      });
      expect(await third.json()).toMatchObject({ applied: 1 });
      await until(async () => (await decide(fleet.a, id)).body.decisions[0].campaign === null);
      await until(async () => (await decide(fleet.b, id)).body.decisions[0].campaign === null);
    });

    it('forgets a person completely: profile, aliases and counters', async () => {
      const id = 'fleet-forget-me';
      await fleet.a.store.putProfile({ id, tags: ['circle:business'], stages: { vivo: 'act' } });
      await fleet.a.store.linkAliases(id, { cookie: `ck-${id}`, idfa: `idfa-${id}` });
      await fleet.a.store.recordImpression(id, 'x90-launch', CONTRACT_NOW, 3, 86_400_000);
      expect((await fetch(admin(fleet.b, `/v1/profiles/${id}`), { method: 'DELETE' })).status).toBe(204);
      expect((await fetch(admin(fleet.a, `/v1/profiles/${id}`))).status).toBe(404);
      const byAlias = await postJson(`http://127.0.0.1:${fleet.a.dataPort}/v1/decide`, {
        user: { ids: { cookie: `ck-${id}` } },
        placements: [BANNER],
      });
      expect(byAlias.body.user).toBeNull();
      if (fleet.keysMentioning !== undefined) expect(await fleet.keysMentioning(id)).toEqual([]);
    });

    it('notices a store that lost its data: restores the rule set, says so, and serves on', async () => {
      const wipe = fleet.wipe;
      if (wipe === undefined) return;
      const metric = async (s: RunningServer, name: string) => {
        const text = await (await fetch(admin(s, '/metrics'))).text();
        const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
        return line === undefined ? Number.NaN : Number(line.split(' ').pop());
      };
      const served = fleet.a.service.ruleSet;
      expect(await metric(fleet.a, 'mindshare_store_resets_total')).toBe(0);
      await wipe();
      // Both instances see the new identity; the rule set they serve is active again, under a
      // new version with the same checksum, and both follow it.
      await until(async () => (await metric(fleet.a, 'mindshare_store_resets_total')) === 1, 10_000);
      await until(async () => (await metric(fleet.b, 'mindshare_store_resets_total')) === 1, 10_000);
      await until(async () => (await fetch(admin(fleet.a, '/v1/rulesets/active'))).status === 200, 10_000);
      const list = (await (await fetch(admin(fleet.b, '/v1/rulesets'))).json()) as {
        active: number;
        versions: Array<{ version: number; checksum: string; createdBy: string }>;
      };
      expect(list.versions.find((v) => v.version === list.active)).toMatchObject({
        checksum: served.checksum,
        createdBy: 'restore',
      });
      for (const s of [fleet.a, fleet.b]) {
        await until(async () => s.service.ruleSet.version === list.active, 10_000);
        expect(s.service.ruleSet.checksum).toBe(served.checksum);
        expect(await metric(s, 'mindshare_ruleset_in_step')).toBe(1);
        const ready = await fetch(admin(s, '/readyz'));
        expect(ready.status).toBe(200);
        expect(await ready.json()).toMatchObject({ rulesetInStep: true });
      }
      expect(
        (await metric(fleet.a, 'mindshare_ruleset_restores_total')) +
          (await metric(fleet.b, 'mindshare_ruleset_restores_total')),
      ).toBe(1);
      // The people are gone (nothing cached is served), and new writes work as before.
      expect((await decide(fleet.b)).body.decisions[0].creative).not.toBe('x90-camera-hero');
      await fleet.a.store.putProfiles(contractPeople);
      await until(async () => (await decide(fleet.b)).body.decisions[0].creative === 'x90-camera-hero');
    });
  });
}

for (const [name, startTarget] of [
  ['Redis', singleTarget],
  ['Redis Cluster', clusterTarget],
] as const) {
  describeFleet(name, async () => {
    const target: RedisTarget = await startTarget();
    const env: Record<string, string> =
      target.topology.kind === 'cluster'
        ? { REDIS_CLUSTER_NODES: target.topology.nodes.join(',') }
        : { REDIS_URL: target.topology.url };
    const [a, b] = await startPair(env);
    return {
      a,
      b,
      async keysMentioning(text) {
        return (await target.keys('*')).filter((k) => k.includes(text));
      },
      async wipe() {
        await target.del(await target.keys('*'));
      },
      async close() {
        await a.close();
        await b.close();
        await target.stop();
      },
    };
  });
}

describeFleet('embedded, one backend shared in process', async () => {
  const backend = embeddedBackend();
  const [a, b] = await startPair({}, backend);
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
      await backend.close();
    },
  };
});
