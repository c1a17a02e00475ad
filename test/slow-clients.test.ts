/**
 * Clients that hold the control plane's connections: bodies that never finish, imports that stop
 * sending, headers that trickle, a flood of connections from one address. Each is cut off within
 * its limit, what arrived before is kept, and probes and the data plane keep answering meanwhile.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/app.js';
import { serverOver, type TestServer } from './server-kit.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A raw connection (from `localAddress` when given); resolves once connected. */
function open(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the server sends on `s` until it closes it (or `waitMs` passes). */
function readAll(s: Socket, waitMs: number): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('utf8');
    });
    const t = setTimeout(() => resolve({ text, closed: false }), waitMs);
    s.once('close', () => {
      clearTimeout(t);
      resolve({ text, closed: true });
    });
    s.on('error', () => {});
  });
}

describe('slow and greedy clients of the control plane', () => {
  let kit: TestServer;
  let server: RunningServer;
  const logs: string[] = [];
  beforeAll(async () => {
    kit = await serverOver(
      'embedded',
      {
        DEMO_PEOPLE: '10',
        ADMIN_BODY_TIMEOUT_MS: '400',
        ADMIN_HEADERS_TIMEOUT_MS: '600',
        ADMIN_MAX_CONNECTIONS: '100',
        ADMIN_MAX_CONNECTIONS_PER_CLIENT: '10',
      },
      { log: (line) => logs.push(line), now: Date.now },
    );
    server = kit.server;
  });
  afterAll(() => kit?.close(0, 0));

  const post = (path: string, type: string, extra = '') =>
    `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${type}\r\n${extra}`;

  it.each([
    ['/v1/events', 'application/json'],
    ['/v1/rulesets/validate', 'application/yaml'],
    ['/v1/preview', 'application/json'],
  ])('answers 408 to a body on %s that stops arriving, and closes the connection', async (path, type) => {
    const s = await open(server.adminPort);
    s.write(`${post(path, type, 'Content-Length: 100000\r\n')}\r\n{"events": [`);
    const { text, closed } = await readAll(s, 5000);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('"code":"request_timeout"');
    expect(closed).toBe(true);
  });

  it('takes a client that hangs up mid-body for what it is: no 500, no error logged', async () => {
    const scrape = async () => (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    const count = (text: string, status: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith('mindshare_http_requests_total{') && l.includes('listener="control"'))
        .filter((l) => l.includes(`status="${status}"`))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const before = await scrape();
    const logged = logs.length;
    for (const [path, type] of [
      ['/v1/events', 'application/json'],
      ['/v1/rulesets', 'application/yaml'],
      ['/v1/profiles/import', 'application/x-ndjson'],
    ] as const) {
      const s = await open(server.adminPort);
      s.write(`${post(path, type, 'Content-Length: 100000\r\n')}\r\n{"id": "p-1", "tags": []}\n{"id"`);
      await sleep(100);
      s.destroy();
    }
    await sleep(300);
    const after = await scrape();
    expect(count(after, '500') - count(before, '500')).toBe(0);
    expect(count(after, '499') - count(before, '499')).toBe(3);
    const lines = logs.slice(logged).join('\n');
    expect(lines).not.toMatch(/"level":(50|"error")/);
    expect(lines).toContain('client closed the request');
  });

  it('cuts an endless chunked body off the same way', async () => {
    const s = await open(server.adminPort);
    s.write(`${post('/v1/events', 'application/json', 'Transfer-Encoding: chunked\r\n')}\r\n`);
    // A byte every 100 ms: never silent, never done.
    const drip = setInterval(() => s.write('1\r\n \r\n'), 100);
    const { text } = await readAll(s, 5000);
    clearInterval(drip);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('stops an import that sends nothing, keeping the lines before', async () => {
    const s = await open(server.adminPort);
    s.write(`${post('/v1/profiles/import', 'application/x-ndjson', 'Transfer-Encoding: chunked\r\n')}\r\n`);
    const lines = '{"id": "slow-1"}\n{"id": "slow-2"}\n{"id": "sl';
    s.write(`${Buffer.byteLength(lines).toString(16)}\r\n${lines}\r\n`);
    const { text } = await readAll(s, 5000);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('the import stopped after line 2 with 2 profiles written');
    expect(await server.store.getProfile('slow-2')).toMatchObject({ id: 'slow-2' });
    expect(await server.store.getProfile('sl')).toBeNull();
  });

  it('lets an import that keeps sending take longer than the body limit', async () => {
    const s = await open(server.adminPort);
    s.write(
      `${post('/v1/profiles/import', 'application/x-ndjson', 'Transfer-Encoding: chunked\r\nConnection: close\r\n')}\r\n`,
    );
    const answer = readAll(s, 10_000);
    for (let i = 0; i < 8; i++) {
      const line = `{"id": "steady-${i}"}\n`;
      s.write(`${Buffer.byteLength(line).toString(16)}\r\n${line}\r\n`);
      await sleep(150); // 1.2 s in all, three times the body limit
    }
    s.write('0\r\n\r\n');
    const { text } = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('"imported":8');
    s.destroy();
  });

  it('closes connections whose headers trickle, and a flood from one address leaves probes and decisions alone', async () => {
    // 40 connections from 127.0.0.2, each sending half a request line and nothing more.
    const flood: Socket[] = [];
    const closed: Array<Promise<unknown>> = [];
    for (let i = 0; i < 40; i++) {
      const s = await open(server.adminPort, '127.0.0.2').catch(() => null);
      if (s === null) continue;
      closed.push(readAll(s, 5000));
      s.write('GET /healthz HT');
      flood.push(s);
    }
    // Probes from another address, and the data plane, answer throughout.
    for (let k = 0; k < 5; k++) {
      expect((await fetch(`http://127.0.0.1:${server.adminPort}/healthz`)).status).toBe(200);
      const decided = await fetch(`http://127.0.0.1:${server.dataPort}/v1/decide`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: { id: 'p-1' }, placements: [{ id: 'b', channels: ['display'] }] }),
      });
      expect(decided.status).toBe(200);
    }
    // Past the per-client cap, the flood's connections were closed at once; the others once their
    // headers were late.
    const outcomes = (await Promise.all(closed)) as Array<{ text: string; closed: boolean }>;
    expect(outcomes.every((o) => o.closed)).toBe(true);
    expect(outcomes.filter((o) => o.text === '').length).toBeGreaterThanOrEqual(30);
    for (const s of flood) s.destroy();
  });
});
