/**
 * The control app mounted into a parent app (as the admin listener does) on a real socket:
 * the parent's own routes stay public, the control routes keep their auth and error answers,
 * and bodies stream over chunked transfer encoding.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../../test/http.js';
import { makeKit } from './test-kit.js';

describe('mounted on a listener', () => {
  let port = 0;
  let close: () => void = () => {};
  let kit: Awaited<ReturnType<typeof makeKit>>;
  beforeAll(async () => {
    kit = await makeKit({ maxBodyBytes: 1000, importBatch: 10 });
    const admin = new Hono();
    admin.get('/healthz', (c) => c.json({ status: 'ok' }));
    admin.route('/', kit.app);
    await new Promise<void>((resolve) => {
      const server = serve({ fetch: admin.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
        port = info.port;
        close = () => server.close();
        resolve();
      });
    });
  });
  afterAll(() => close());

  it('keeps the parent routes public and the control routes guarded', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const r = await fetch(`http://127.0.0.1:${port}/v1/rulesets`);
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ error: { code: 'unauthorized' } });
    expect((await fetch(`http://127.0.0.1:${port}/openapi.json`)).status).toBe(200);
  });

  it('refuses a chunked body past the limit with 413', async () => {
    const chunk = `${'x'.repeat(600)}`;
    const raw =
      'PUT /v1/profiles/p-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer root-secret\r\n' +
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      `${(600).toString(16)}\r\n${chunk}\r\n${(600).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
    const answer = await rawRequest(port, raw);
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(answer).toContain('body_too_large');
  });

  it('streams an import over chunked encoding', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const enc = new TextEncoder();
        for (let i = 0; i < 100; i++) controller.enqueue(enc.encode(`{"id": "n-${i}"}\n`));
        controller.close();
      },
    });
    const r = await fetch(`http://127.0.0.1:${port}/v1/profiles/import`, {
      method: 'POST',
      headers: { authorization: 'Bearer profiles-secret', 'content-type': 'application/x-ndjson' },
      body,
      duplex: 'half',
    } as RequestInit & { duplex: 'half' });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ lines: 100, imported: 100, failed: 0 });
    expect(kit.store.size).toBe(100);
  });
});
