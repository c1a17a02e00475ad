/**
 * The decision contract, run against every store behind the real data-plane listener.
 * POST /v1/decide as in the public contract: formats, identity, caps, explain, errors.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { hashString, mixHash } from '../rules/compile.js';
import type { Profile } from '../rules/types.js';
import type { ErrorBody } from '../server/errors.js';
import type { ProfileStore } from '../server/store/types.js';
import { packr, postJson, postMsgpack, postRaw, rawRequest } from './http.js';

/** 2026-11-24 12:00 in Shanghai. */
export const CONTRACT_NOW = Date.parse('2026-11-24T04:00:00.000Z');

export interface DecideTarget {
  port: number;
  /** The store behind the server (writes through it reach the server's cache). */
  store: ProfileStore;
}

/** An id derived from `base` that is in no hold-out of the given campaigns. */
export function treatedId(base: string, campaigns: Record<string, number>): string {
  for (let i = 0; ; i++) {
    const id = `${base}-${i}`;
    const h = hashString(id);
    const held = Object.entries(campaigns).some(
      ([c, share]) => mixHash(h, hashString(c) ^ 0x5bd1e995) / 2 ** 32 < share,
    );
    if (!held) return id;
  }
}

export const BIZ_ID = treatedId('t-biz', { 'x90-launch': 0.05 });
export const PARENT_ID = treatedId('t-parent', { 'brightpad-back-to-school': 0.1 });

export const contractPeople: Profile[] = [
  {
    id: BIZ_ID,
    tags: ['circle:business', 'category:phone'],
    attrs: { price_band: 6000, city_tier: 1 },
    stages: { vivo: 'appeal' },
    clv: { vivo: 3000 },
    channels: { display: 0.3, app_push: 0.8 },
    activeHours: [20],
    timezone: 'Asia/Shanghai',
  },
  {
    id: PARENT_ID,
    tags: ['circle:k12-parent'],
    attrs: { city_tier: 2 },
    stages: { brightpad: 'appeal' },
    channels: { sms: 0.9, app_push: 0.4 },
    activeHours: [19],
    timezone: 'Asia/Shanghai',
  },
];

export async function seedContractPeople(store: ProfileStore): Promise<void> {
  await store.putProfiles(contractPeople);
  await store.linkAliases(BIZ_ID, { idfa: `idfa-${BIZ_ID}`, cookie: `ck-${BIZ_ID}` });
}

const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };
const PUSH = { id: 'daily-push', channels: ['app_push', 'sms', 'email'] };

export function describeDecideContract(name: string, target: () => DecideTarget): void {
  describe(`POST /v1/decide contract: ${name}`, () => {
    const url = () => `http://127.0.0.1:${target().port}/v1/decide`;

    it('decides creative, channel and send time for a known person, placements in request order', async () => {
      const r = await postJson(url(), { user: { id: BIZ_ID }, placements: [BANNER, PUSH] });
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/json');
      expect(r.body).toEqual({
        ruleset: 1,
        user: BIZ_ID,
        decisions: [
          {
            placement: 'home-banner',
            campaign: 'x90-launch',
            creative: 'x90-camera-hero',
            brand: 'vivo',
            segment: 'highend-business',
            stage: 'appeal',
            sellingPoints: ['camera'],
            message: 'selling-point',
            channel: 'display',
            sendAt: '2026-11-24T04:00:00.000Z',
            variant: 'treatment',
          },
          { placement: 'daily-push', campaign: null },
        ],
      });
    });

    it('times a push for the next active hour outside quiet hours, on the favourite channel', async () => {
      const r = await postJson(url(), { user: { id: PARENT_ID }, placements: [PUSH] });
      expect(r.status).toBe(200);
      expect(r.body.decisions[0]).toMatchObject({
        campaign: 'brightpad-back-to-school',
        creative: 'brightpad-eye-care',
        sellingPoints: ['eye-care'],
        channel: 'sms',
        sendAt: '2026-11-24T11:00:00.000Z',
      });
    });

    it('speaks MessagePack both ways', async () => {
      const r = await postMsgpack(url(), { user: { id: BIZ_ID }, placements: [BANNER] });
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/msgpack');
      expect(r.body.decisions[0]).toMatchObject({ campaign: 'x90-launch', creative: 'x90-camera-hero' });
    });

    it('resolves aliases to the person', async () => {
      const r = await postJson(url(), { user: { ids: { cookie: `ck-${BIZ_ID}` } }, placements: [BANNER] });
      expect(r.body.user).toBe(BIZ_ID);
      expect(r.body.decisions[0]).toMatchObject({ campaign: 'x90-launch' });
    });

    it('decides an unknown person on context tags alone', async () => {
      const r = await postJson(url(), {
        user: { ids: { idfa: 'nobody-knows-me' } },
        placements: [BANNER],
        context: { tags: ['circle:mobile-gamer'] },
      });
      expect(r.status).toBe(200);
      expect(r.body.user).toBeNull();
      expect(r.body.degraded).toBeUndefined();
      expect(r.body.decisions[0]).toMatchObject({
        campaign: 'x90-launch',
        segment: 'mobile-gamer',
        stage: 'aware',
      });
      const byId = await postJson(url(), { user: { id: 'p-never-seen' }, placements: [BANNER] });
      expect(byId.body).toMatchObject({
        user: 'p-never-seen',
        decisions: [{ placement: 'home-banner', campaign: null }],
      });
    });

    it('explains on request', async () => {
      const r = await postJson(url(), { user: { id: BIZ_ID }, placements: [BANNER], explain: true });
      expect(r.body.explain.segments).toContain('highend-business');
      const byId = Object.fromEntries(
        r.body.explain.campaigns.map((c: { campaign: string }) => [c.campaign, c]),
      );
      expect(byId['x90-launch']).toMatchObject({ status: 'chosen', placement: 'home-banner' });
      expect(byId['brightpad-back-to-school']).toMatchObject({ status: 'dropped', reason: 'no_segment' });
    });

    it('counts frequency caps per person across all their aliases', async () => {
      const { store } = target();
      const before = await postJson(url(), {
        user: { ids: { idfa: `idfa-${BIZ_ID}` } },
        placements: [BANNER],
      });
      expect(before.body.decisions[0].campaign).toBe('x90-launch');
      // Three impressions seen on other devices today: the daily cap of 3 is reached.
      for (let i = 1; i <= 3; i++)
        await store.recordImpression(BIZ_ID, 'x90-launch', CONTRACT_NOW - i * 3_600_000, 10, 86_400_000 * 30);
      for (const user of [
        { ids: { idfa: `idfa-${BIZ_ID}` } },
        { ids: { cookie: `ck-${BIZ_ID}` } },
        { id: BIZ_ID },
      ]) {
        const r = await postJson(url(), { user, placements: [BANNER], explain: true });
        expect(r.body.decisions[0]).toEqual({ placement: 'home-banner', campaign: null });
        const x90 = r.body.explain.campaigns.find((c: { campaign: string }) => c.campaign === 'x90-launch');
        expect(x90.reason).toBe('frequency_cap');
      }
    });

    describe('bad input gets a clear error and the server keeps answering', () => {
      const cases: Array<[string, string | Buffer, string, number, string, string?]> = [
        ['malformed JSON', '{"user": {"id": "x"', 'application/json', 400, 'bad_json'],
        [
          'JSON that is not UTF-8',
          Buffer.concat([
            Buffer.from('{"user":{"id":"'),
            Buffer.from([0xc3, 0x28]),
            Buffer.from('"},"placements":[{"id":"a"}]}'),
          ]),
          'application/json',
          400,
          'bad_request',
        ],
        ['a body that is not an object', '[1,2]', 'application/json', 400, 'invalid_field'],
        ['no placements', '{"user":{"id":"x"}}', 'application/json', 400, 'missing_field', 'placements'],
        [
          'a wrong type',
          '{"user":{"id":7},"placements":[{"id":"a"}]}',
          'application/json',
          400,
          'invalid_field',
          'user.id',
        ],
        [
          'an unknown channel',
          '{"user":{"id":"x"},"placements":[{"id":"a","channels":["display","fax"]}]}',
          'application/json',
          400,
          'invalid_field',
          'placements[0].channels[1]',
        ],
        [
          'an unknown field',
          '{"user":{"id":"x"},"placements":[{"id":"a","channel":"display"}]}',
          'application/json',
          400,
          'unknown_field',
          'placements[0].channel',
        ],
        [
          'a __proto__ key',
          '{"user":{"id":"x","__proto__":{"admin":true}},"placements":[{"id":"a"}]}',
          'application/json',
          400,
          'forbidden_key',
          'user.__proto__',
        ],
        ['garbage MessagePack', Buffer.from([0xc1, 0xff, 0x00]), 'application/msgpack', 400, 'bad_msgpack'],
        [
          'an unsupported media type',
          'user=x',
          'application/x-www-form-urlencoded',
          415,
          'unsupported_media_type',
        ],
      ];
      it.each(cases)('%s', async (_name, body, type, status, code, path) => {
        const res = await fetch(url(), { method: 'POST', headers: { 'content-type': type }, body });
        expect(res.status).toBe(status);
        const buf = Buffer.from(await res.arrayBuffer());
        const parsed = type === 'application/msgpack' ? packr.unpack(buf) : JSON.parse(buf.toString('utf8'));
        expect(parsed.error.code).toBe(code);
        if (path !== undefined) expect(parsed.error.path).toBe(path);
        const ok = await postJson(url(), { user: { id: BIZ_ID }, placements: [BANNER] });
        expect(ok.status).toBe(200);
      });

      it('a body over 64 KiB gets 413, declared or streamed', async () => {
        const big = JSON.stringify({
          user: { id: 'x' },
          placements: [{ id: 'a' }],
          context: { tags: ['x'.repeat(70_000)] },
        });
        const declared = await postJson(url(), big);
        expect(declared.status).toBe(413);
        expect(declared.body.error.code).toBe('body_too_large');
        const chunked = await rawRequest(
          target().port,
          `POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${(70_000).toString(16)}\r\n${'x'.repeat(70_000)}\r\n0\r\n\r\n`,
        );
        expect(chunked).toMatch(/^HTTP\/1\.1 413/);
        expect((await postJson(url(), { user: { id: BIZ_ID }, placements: [BANNER] })).status).toBe(200);
      });

      it('takes a gzip body (bounded after inflating), and refuses broken gzip and other encodings', async () => {
        const body = JSON.stringify({ user: { id: BIZ_ID }, placements: [BANNER] });
        const zipped = { 'content-type': 'application/json', 'content-encoding': 'gzip' };
        const plain = await postRaw(url(), Buffer.from(body), { 'content-type': 'application/json' });
        const fromGzip = await postRaw(url(), gzipSync(body), zipped);
        expect(fromGzip.status).toBe(200);
        expect(JSON.parse(fromGzip.body.toString()).decisions).toEqual(
          JSON.parse(plain.body.toString()).decisions,
        );
        expect((await postRaw(url(), Buffer.from(body), zipped)).status).toBe(400);
        expect((await postRaw(url(), gzipSync(Buffer.alloc(1 << 20, 0x20)), zipped)).status).toBe(413);
        const other = { 'content-type': 'application/json', 'content-encoding': 'deflate' };
        expect((await postRaw(url(), Buffer.from(body), other)).status).toBe(415);
      });

      it('unknown routes get 404 and wrong methods 405', async () => {
        const notFound = await fetch(`http://127.0.0.1:${target().port}/v1/nope`);
        expect(notFound.status).toBe(404);
        expect(((await notFound.json()) as ErrorBody).error.code).toBe('not_found');
        const wrong = await fetch(url(), { method: 'GET' });
        expect(wrong.status).toBe(405);
        expect(wrong.headers.get('allow')).toBe('POST');
        expect(((await wrong.json()) as ErrorBody).error.code).toBe('method_not_allowed');
      });

      it('survives clients that send half a body and vanish', async () => {
        for (let i = 0; i < 20; i++) {
          await rawRequest(
            target().port,
            'POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"user":',
            20,
            false,
          );
        }
        expect((await postJson(url(), { user: { id: BIZ_ID }, placements: [BANNER] })).status).toBe(200);
      });
    });
  });
}
