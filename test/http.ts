/** Small HTTP helpers for tests that talk to a real listener. */
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
