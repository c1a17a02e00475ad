/**
 * Draining in process: requests in flight when the listener closes are answered (with their
 * connection closed), the server reports itself not ready from the first moment, and the close
 * waits for them, up to its bound.
 */
import { describe, expect, it } from 'vitest';
import { embeddedBackend, startServer } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { EmbeddedStore } from '../server/store/embedded.js';
import type { PersonRecord } from '../server/store/types.js';
import { BIZ_ID, CONTRACT_NOW, contractPeople } from './decide.contract.js';
import { postJson } from './http.js';

/** An embedded store whose person loads take `delayMs`: requests stay in flight that long. */
class SlowStore extends EmbeddedStore {
  constructor(private readonly delayMs: number) {
    super();
  }
  override async loadPerson(pid: string): Promise<PersonRecord> {
    await new Promise((r) => setTimeout(r, this.delayMs));
    return super.loadPerson(pid);
  }
}

async function slowServer(delayMs: number, env: Record<string, string> = {}) {
  const people = new SlowStore(delayMs);
  await people.putProfiles(contractPeople);
  const backend = embeddedBackend(people);
  const config = loadConfig({
    PORT: '0',
    ADMIN_PORT: '0',
    HOST: '127.0.0.1',
    DECISION_DEADLINE_MS: '5000',
    CACHE_TTL_MS: '1',
    ...env,
  });
  const server = await startServer(config, { log: () => {}, now: () => CONTRACT_NOW, backend });
  return { server, backend };
}

const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

describe('draining', () => {
  it('answers every request in flight when the listener closes, and waits for them', async () => {
    const { server, backend } = await slowServer(300);
    const url = `http://127.0.0.1:${server.dataPort}/v1/decide`;
    const inFlight = Array.from({ length: 10 }, (_, i) =>
      postJson(url, { user: { id: i % 2 === 0 ? BIZ_ID : `nobody-${i}` }, placements: [BANNER] }),
    );
    await new Promise((r) => setTimeout(r, 100)); // all ten are waiting for the store now
    const t0 = performance.now();
    const closing = server.close();
    const readiness = await fetch(`http://127.0.0.1:${server.adminPort}/readyz`);
    expect(readiness.status).toBe(503);
    expect(await readiness.json()).toMatchObject({ draining: true });
    const replies = await Promise.all(inFlight);
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(r.body.degraded).toBeUndefined();
      expect(r.headers.get('connection')).toBe('close');
    }
    await closing;
    expect(performance.now() - t0).toBeGreaterThan(100); // it waited for them
    await expect(postJson(url, { user: { id: BIZ_ID }, placements: [BANNER] })).rejects.toThrow();
    await backend.close();
  });

  it('stops waiting after DRAIN_TIMEOUT_MS', async () => {
    const { server, backend } = await slowServer(3000, { DRAIN_TIMEOUT_MS: '200' });
    const url = `http://127.0.0.1:${server.dataPort}/v1/decide`;
    const stuck = postJson(url, { user: { id: BIZ_ID }, placements: [BANNER] }).catch(() => null);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await server.close();
    expect(performance.now() - t0).toBeLessThan(2500); // not the 3 s the request would take
    await stuck;
    await backend.close();
  });
});

describe('readiness in the log', () => {
  it('logs a change of readiness once, at warn, and no probe as a failure', async () => {
    const lines: string[] = [];
    const people = new EmbeddedStore();
    const server = await startServer(loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1' }), {
      log: (line) => lines.push(line),
      backend: embeddedBackend(people),
    });
    const url = `http://127.0.0.1:${server.adminPort}/readyz`;
    expect((await fetch(url)).status).toBe(200);
    const closing = server.close(100, 600);
    for (let i = 0; i < 5; i++) {
      expect((await fetch(url)).status).toBe(503);
      await new Promise((r) => setTimeout(r, 50));
    }
    await closing;
    const parsed = lines.map((l) => JSON.parse(l) as { level: string; msg: string; route?: string });
    const notReady = parsed.filter((l) => l.msg === 'not ready');
    expect(notReady).toHaveLength(1);
    expect(notReady[0]?.level).toBe('warn');
    expect(parsed.filter((l) => l.msg === 'request failed')).toEqual([]);
    expect(parsed.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
  });
});
