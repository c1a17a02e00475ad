/** Small HTTP helpers for tests that talk to a real listener. */
import { type Agent, request } from 'node:http';
import { connect } from 'node:net';
import { Packr } from 'msgpackr';

export const packr = new Packr({ useRecords: false });

export interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read replies field by field
  body: any;
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? null : JSON.parse(text) };
}

export async function postMsgpack(url: string, body: unknown): Promise<Reply> {
  const payload = body instanceof Uint8Array ? body : packr.pack(body);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/msgpack' },
    body: payload,
  });
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body: buf.length === 0 ? null : packr.unpack(buf) };
}

/** Sends raw bytes over TCP and resolves with what came back (until close or `waitMs`). */
export function rawRequest(port: number, data: string | Buffer, waitMs = 1000, end = true): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(data);
      if (end) sock.end();
    });
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(finish, waitMs);
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', finish);
    sock.on('error', finish);
  });
}

/**
 * Sends a request head in two parts, `splitAt` bytes then the rest after `pauseMs` (as a slow or
 * distant client's head arrives in several TCP segments); resolves with what came back.
 */
export function splitRequest(port: number, head: string, splitAt = 100, pauseMs = 50): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(head.slice(0, splitAt));
      setTimeout(() => sock.write(head.slice(splitAt), () => {}), pauseMs);
    });
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(finish, 2000);
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', finish);
    sock.on('error', finish);
  });
}

/**
 * One decision posted through node:http: on a connection of its own (closed after the answer), or
 * on a keep-alive connection of `agent` (which stays with one data-plane thread: the kernel hands
 * each new connection to one of the threads listening on the port).
 */
export function decideOnce(port: number, body: string, agent?: Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/decide',
        method: 'POST',
        agent: agent ?? false,
        headers: { 'content-type': 'application/json', ...(agent ? {} : { connection: 'close' }) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const text = Buffer.concat(chunks).toString('utf8');
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
            resolve({ status: res.statusCode ?? 0, headers, body: text === '' ? null : JSON.parse(text) });
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A POST with bytes and headers as given, answered as bytes: nothing decoded on the way. */
export function postRaw(
  url: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}
