/**
 * The control plane's defaults, over real sockets: without tokens its API answers clients on its
 * own machine only (probes, metrics and the contract answer everyone), unless that is opened on
 * purpose; writes from another web site, and bodies a browser can send without asking first, are
 * refused.
 */
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../server/app.js';
import { loadConfig } from '../server/config.js';

const quiet = () => {};

/** An address of this machine that is not loopback: connecting to it comes from it. */
const external = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close(0, 0);
  server = undefined;
});

async function start(env: Record<string, string> = {}): Promise<number> {
  server = await startServer(
    loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '0.0.0.0', DEMO_PEOPLE: '10', ...env }),
    { log: quiet },
  );
  return server.adminPort;
}

const status = async (url: string, init?: RequestInit) => (await fetch(url, init)).status;

describe('the control plane without tokens', () => {
  it.skipIf(external === undefined)(
    'answers its own machine, and only probes, metrics and the contract elsewhere',
    async () => {
      const port = await start();
      expect(await status(`http://127.0.0.1:${port}/v1/rulesets`)).toBe(200);
      const far = `http://${external}:${port}`;
      const refused = await fetch(`${far}/v1/rulesets`);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({
        code: 'forbidden',
        message: expect.stringContaining('ALLOW_OPEN_CONTROL_PLANE'),
      });
      expect(await status(`${far}/v1/profiles/p-1`, { method: 'DELETE' })).toBe(403);
      for (const open of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
        expect(await status(`${far}${open}`), open).toBe(200);
      }
    },
  );

  it.skipIf(external === undefined)('answers everyone when opened on purpose, or with a token', async () => {
    let port = await start({ ALLOW_OPEN_CONTROL_PLANE: 'true' });
    expect(await status(`http://${external}:${port}/v1/rulesets`)).toBe(200);
    await server?.close(0, 0);
    port = await start({ TOKENS: 'ops:s3cret-s3cret-s3cret:admin' });
    const url = `http://${external}:${port}/v1/rulesets`;
    expect(await status(url)).toBe(401);
    expect(await status(url, { headers: { authorization: 'Bearer s3cret-s3cret-s3cret' } })).toBe(200);
  });
});

describe('changes asked for by another web site', () => {
  it('are refused, while the same site and clients outside browsers may make them', async () => {
    const port = await start();
    const base = `http://127.0.0.1:${port}`;
    const activate = (headers: Record<string, string>) =>
      fetch(`${base}/v1/rulesets/1/activate`, { method: 'POST', headers });
    const foreign = await activate({ origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    expect((await activate({ origin: 'null' })).status).toBe(403);
    expect((await activate({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await activate({ 'sec-fetch-site': 'same-site' })).status).toBe(403);
    expect(
      (await activate({ origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' })).status,
    ).toBe(200);
    expect((await activate({})).status).toBe(200);
    // Reads are not changes: a dashboard elsewhere may read (CORS still keeps the answer from it).
    expect(await status(`${base}/v1/rulesets`, { headers: { origin: 'https://evil.example' } })).toBe(200);
  });

  it('are refused when the body is one a form or a script can send without a preflight', async () => {
    const port = await start();
    const base = `http://127.0.0.1:${port}`;
    const event = JSON.stringify({ eventId: 'e-1', type: 'click', user: { id: 'p-1' }, brand: 'vivo' });
    for (const type of ['', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
      const headers: Record<string, string> = type === '' ? {} : { 'content-type': type };
      const body = type === '' ? new Blob([event]) : event;
      const r = await fetch(`${base}/v1/events`, { method: 'POST', headers, body });
      expect(r.status, `events as ${type || 'no type'}`).toBe(415);
      const rs = await fetch(`${base}/v1/rulesets`, { method: 'POST', headers, body: 'funnel: [a]' });
      expect(rs.status, `rule set as ${type || 'no type'}`).toBe(415);
    }
    const json = await fetch(`${base}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: event,
    });
    expect(json.status).toBe(200);
  });
});
