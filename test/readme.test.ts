/**
 * The README's first example is a promise to newcomers: its request, sent to a server on the
 * embedded demo data, gets exactly the answer the README shows.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from './http.js';
import { serverOver, type TestServer } from './server-kit.js';

/** The moment the README's answer was taken: 24 November 2026, noon in Shanghai. */
const README_NOW = Date.parse('2026-11-24T04:00:00.000Z');

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('the README example', () => {
  let kit: TestServer;
  beforeAll(async () => {
    kit = await serverOver('embedded', { DEMO_PEOPLE: '1100' }, { now: () => README_NOW });
  });
  afterAll(() => kit?.close());

  it('answers the curl request with the answer shown', async () => {
    const request = /curl -s http:\/\/localhost:8080\/v1\/decide[\s\S]*?-d '([^']+)'/.exec(readme)?.[1];
    expect(request, 'a curl line with a body in the README').toBeDefined();
    const after = readme.slice(readme.indexOf(request ?? ''));
    const shown = /```json\n([\s\S]*?)\n```/.exec(after)?.[1];
    expect(shown, 'a JSON answer after the curl line').toBeDefined();
    const reply = await postJson(`${kit.dataUrl}/v1/decide`, request ?? '');
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual(JSON.parse(shown ?? 'null'));
  });
});
