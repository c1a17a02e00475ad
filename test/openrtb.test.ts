/**
 * The OpenRTB bidder on a real data-plane listener, over each store: the embedded one, a real
 * redis-server and a real Redis Cluster. The specification's example requests (test/openrtb/breq.*.json) against
 * test/openrtb/ruleset.yaml; every constraint; win notices against frequency caps.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProfileStore } from '../server/store/types.js';
import { postJson, postRaw, splitRequest } from './http.js';
import { gppString, tcString } from './openrtb/consent.js';
import { serverOver, type TestServer } from './server-kit.js';

// biome-ignore lint/suspicious/noTemplateCurlyInString: the OpenRTB macro as the exchange sees it
const MACRO = '${AUCTION_PRICE}';
const RULESET = new URL('./openrtb/ruleset.yaml', import.meta.url).pathname;
// biome-ignore lint/suspicious/noExplicitAny: requests are edited field by field
type Json = any;
const example = (name: string): Json =>
  JSON.parse(readFileSync(new URL(`./openrtb/breq.${name}.json`, import.meta.url), 'utf8'));

/** A Native 1.0 request (wrapped in {native: …}): a title of up to 20 characters, a main image, the sponsor. */
const NATIVE_REQUEST = {
  native: {
    ver: '1.0',
    assets: [
      { id: 1, required: 1, title: { len: 20 } },
      { id: 2, required: 1, img: { type: 3, wmin: 600, hmin: 300 } },
      { id: 3, required: 0, data: { type: 1 } },
    ],
  },
};

interface Target {
  port: number;
  store: ProfileStore;
}

function describeBidder(name: string, target: () => Target): void {
  describe(`OpenRTB bidder: ${name}`, () => {
    const url = () => `http://127.0.0.1:${target().port}/openrtb2/bid`;
    const bid = (body: unknown) => postJson(url(), body);
    const get = (path: string) => fetch(`http://127.0.0.1:${target().port}${path}`);

    it('bids on the banner example: impid, size, price, markup, notices', async () => {
      const r = await bid(example('banner'));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ id: '1234534625254', cur: 'USD' });
      expect(r.body.seatbid).toHaveLength(1);
      expect(r.body.seatbid[0].seat).toBe('mindshare');
      const b = r.body.seatbid[0].bid[0];
      expect(b).toMatchObject({
        impid: '1',
        price: 1.5,
        adid: 'shoes-300x250',
        crid: 'shoes-300x250',
        cid: 'shoes-banner',
        adomain: ['shoes.example'],
        cat: ['IAB18-1'],
        w: 300,
        h: 250,
      });
      expect(b.adm).toContain('cdn.shoes.example');
      expect(b.nurl).toContain('/openrtb2/win?bid=');
      expect(b.nurl).toContain(`price=${MACRO}`);
      expect(b.burl).toContain('/openrtb2/bill?bid=');
    });

    it('bids on the video example through the deals, at or above every floor', async () => {
      const req = example('video');
      const r = await bid(req);
      expect(r.status).toBe(200);
      const bids: Json[] = r.body.seatbid[0].bid;
      const byImp = Object.fromEntries(bids.map((b) => [b.impid, b]));
      expect(byImp['1']).toMatchObject({ cid: 'cars-video-deal', price: 6, dealid: '1452f.eadb4.7aaa' });
      expect(byImp['2']).toMatchObject({ cid: 'cars-video-deal-b', price: 4, dealid: '1452f.eadb4.7aaa' });
      expect(byImp['2'].w).toBe(640);
      expect(byImp['3']).toMatchObject({ cid: 'cars-video-open', price: 3 });
      expect(byImp['3'].dealid).toBeUndefined();
      // Each bid carries VAST 3.0 around the creative's media file, within the imp's durations.
      for (const b of bids) {
        expect(b.mtype).toBe(2);
        expect(b.adm).toMatch(/^<VAST version="3\.0"><Ad id="[^"]+"><InLine>/);
        expect(b.adm).toContain('<Duration>00:00:30</Duration>');
        expect(b.adm).toMatch(
          /<MediaFile delivery="progressive" type="video\/mp4" width="\d+" height="\d+">https:\/\/cdn\.cars\.example\//,
        );
        expect(b.adm).toContain(`/openrtb2/bill?bid=${b.id}</Impression>`);
      }
      // A player that takes other files, or VAST 2 only, gets no bid; nor a slot too short.
      for (const edit of [
        (v: Json) => (v.mimes = ['video/webm']),
        (v: Json) => (v.protocols = [2, 5]),
        (v: Json) => (v.maxduration = 20),
        (v: Json) => (v.rqddurs = [15, 60]),
      ]) {
        const other = example('video');
        for (const imp of other.imp) edit(imp.video);
        expect((await bid(other)).status).toBe(204);
      }
      expect(new Set(bids.map((b) => b.id)).size).toBe(bids.length);
      for (const b of bids) {
        const imp = req.imp.find((i: Json) => i.id === b.impid);
        const floor = b.dealid
          ? imp.pmp.deals.find((d: Json) => d.id === b.dealid).bidfloor
          : (imp.bidfloor ?? 0);
        expect(b.price).toBeGreaterThanOrEqual(floor);
      }
    });

    it('answers the native example with no bid (its wseat excludes this seat), and bids once allowed', async () => {
      const req = example('native');
      const r = await bid(req);
      expect(r.status).toBe(204);
      expect(r.body).toBeNull();
      req.wseat.push('mindshare');
      // The example's native.request is a placeholder; the bid answers a real request's assets.
      expect((await bid(req)).status).toBe(204);
      req.imp[0].native.request = JSON.stringify(NATIVE_REQUEST);
      const ok = await bid(req);
      expect(ok.status).toBe(200);
      const b = ok.body.seatbid[0].bid[0];
      expect(b).toMatchObject({ impid: '1', cid: 'news-native', price: 0.5, mtype: 4 });
      expect(b.price).toBeGreaterThanOrEqual(0.03);
      // Native 1.0 wraps the response in {native: …}; every asset the creative has is answered.
      const adm = JSON.parse(b.adm).native;
      expect(adm.ver).toBe('1.0');
      expect(adm.link.url).toBe('https://news.example/');
      expect(adm.assets).toEqual([
        { id: 1, title: { text: 'news: news-native-card'.slice(0, 20) } },
        { id: 2, img: { url: 'https://cdn.news.example/news-native-card-1200x627.jpg', w: 1200, h: 627 } },
        { id: 3, data: { value: 'news' } },
      ]);
      // A required asset the creative cannot fill (a rating, data type 3): no bid.
      const native = NATIVE_REQUEST.native;
      const rating = {
        native: { ...native, assets: [...native.assets, { id: 4, required: 1, data: { type: 3 } }] },
      };
      req.imp[0].native.request = JSON.stringify(rating);
      expect((await bid(req)).status).toBe(204);
      req.imp[0].native.request = JSON.stringify(NATIVE_REQUEST);
      req.bseat.push('mindshare');
      expect((await bid(req)).status).toBe(204);
    });

    it('tolerates unknown fields and ext anywhere', async () => {
      const req = example('banner');
      req.ext = { prebid: { x: 1 } };
      req.imp[0].ext = { gpid: '/home' };
      req.imp[0].banner.ext = { anything: [1, 2] };
      req.someFutureField = { a: 1 };
      req.regs = { gdpr: 1, ext: {} };
      expect((await bid(req)).status).toBe(200);
      // ext of odd shapes where the 2.5 places are: read leniently, never a refused request.
      for (const user of [
        { ext: 'x' },
        { ext: { eids: {} } },
        { ext: { eids: [{ source: 'x.com', uids: [{ id: 123 }] }] } },
        { ext: { consent: 1 } },
      ]) {
        expect((await bid({ ...example('banner'), user, regs: { ext: { gpp_sid: 'all' } } })).status).toBe(
          200,
        );
      }
    });

    it('does not bid for a blocked advertiser domain', async () => {
      const req = example('banner');
      req.badv.push('shoes.example');
      expect((await bid(req)).status).toBe(204);
    });

    it('does not bid for a blocked category (a tier-1 category blocks its subcategories)', async () => {
      const req = example('banner');
      req.bcat = ['IAB18'];
      expect((await bid(req)).status).toBe(204);
    });

    it('does not bid with a blocked creative attribute', async () => {
      const req = example('banner');
      req.imp[0].banner.battr = [2];
      expect((await bid(req)).status).toBe(204);
    });

    it('answers 204 when the floor is above every bid, or in another currency', async () => {
      const req = example('banner');
      req.imp[0].bidfloor = 100;
      expect((await bid(req)).status).toBe(204);
      const eur = example('banner');
      eur.imp[0].bidfloor = 0.1;
      eur.imp[0].bidfloorcur = 'EUR';
      expect((await bid(eur)).status).toBe(204);
    });

    it('bids in the campaign currency only where the exchange takes it (USD when it does not say)', async () => {
      const req = example('banner');
      req.imp[0].banner = { w: 320, h: 50 };
      req.cur = ['EUR'];
      const r = await bid(req);
      expect(r.status).toBe(200);
      expect(r.body.cur).toBe('EUR');
      // No rates on this server: a EUR campaign cannot bid in USD, said or implied.
      req.cur = ['USD'];
      expect((await bid(req)).status).toBe(204);
      delete req.cur;
      expect((await bid(req)).status).toBe(204);
    });

    it('answers a private auction without a matching deal with no bid', async () => {
      const req = example('video');
      req.imp = [req.imp[0]];
      req.imp[0].pmp.deals = [{ id: 'someone-else', bidfloor: 1 }];
      expect((await bid(req)).status).toBe(204);
    });

    it('answers 204 at once when tmax leaves no time after the margin', async () => {
      const req = example('banner');
      req.tmax = 10;
      const t0 = performance.now();
      const r = await bid(req);
      expect(r.status).toBe(204);
      expect(performance.now() - t0).toBeLessThan(500);
    });

    it.each([
      ['a missing id', (r: Json) => delete r.id, 'missing_field', 'id'],
      ['no imp', (r: Json) => delete r.imp, 'missing_field', 'imp'],
      ['an empty imp', (r: Json) => (r.imp = []), 'invalid_field', 'imp'],
      ['duplicate imp ids', (r: Json) => r.imp.push(structuredClone(r.imp[0])), 'invalid_field', 'imp[1].id'],
      ['both site and app', (r: Json) => (r.app = { id: 'a' }), 'invalid_field', 'app'],
      ['an imp without media', (r: Json) => delete r.imp[0].banner, 'missing_field', 'imp[0]'],
      [
        'a floor that is not a number',
        (r: Json) => (r.imp[0].bidfloor = 'x'),
        'invalid_field',
        'imp[0].bidfloor',
      ],
    ])('refuses %s with 400', async (_name, edit, code, path) => {
      const req = example('banner');
      edit(req);
      const r = await bid(req);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code, path });
    });

    it('refuses a body that is not JSON, and one over the limit', async () => {
      const r = await bid('{"id":');
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('bad_json');
      const text = JSON.stringify(example('banner'));
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/msgpack']) {
        const refused = await fetch(url(), { method: 'POST', headers: { 'content-type': type }, body: text });
        expect(refused.status, type).toBe(415);
        expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
          'unsupported_media_type',
        );
      }
      const broken = Buffer.from(text.replace('Site ABCD', 'Site \u0001\u0001'));
      broken[broken.indexOf(1)] = 0xc3;
      broken[broken.indexOf(1)] = 0x28;
      const notUtf8 = await fetch(url(), {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: broken,
      });
      expect(notUtf8.status).toBe(400);
      expect(((await notUtf8.json()) as { error: { code: string } }).error.code).toBe('bad_request');
      const big = example('banner');
      big.ext = { pad: 'x'.repeat(70_000) };
      const r2 = await bid(big);
      expect(r2.status).toBe(413);
      expect(r2.body.error.code).toBe('body_too_large');
    });

    it('counts a win once against the caps; the capped person then gets no bid', async () => {
      const pid = `capped-${name.replace(/\W/g, '')}`;
      await target().store.putProfile({ id: pid, tags: ['circle:capped'] });
      await target().store.linkAliases(pid, { cookie: `buyer-${pid}` });
      const req = example('banner');
      req.id = 'cap-1';
      req.user = { id: 'exchange-user', buyeruid: `buyer-${pid}` };
      req.imp[0].banner = { format: [{ w: 728, h: 90 }] };
      const r = await bid(req);
      expect(r.status).toBe(200);
      const b = r.body.seatbid[0].bid[0];
      expect(b).toMatchObject({ cid: 'capped-leaderboard', w: 728, h: 90, price: 2 });
      // The exchange and the page learn nothing of the person from the bid or its notices.
      for (const url of [b.nurl, b.burl]) expect(new URL(url).searchParams.get('bid')).toBe(b.id);
      for (const text of [b.id, Buffer.from(b.id, 'base64url').toString('latin1'), b.nurl, b.burl]) {
        expect(text).not.toContain(pid);
      }
      const win = b.nurl.replace(/^https?:\/\/[^/]+/, '').replace(MACRO, '1.75');
      expect((await get(win)).status).toBe(204);
      expect((await get(win)).status).toBe(204); // repeated: counted once
      const bill = b.burl.replace(/^https?:\/\/[^/]+/, '').replace(MACRO, '1.75');
      expect((await get(bill)).status).toBe(204);
      const record = await target().store.loadPerson(pid);
      expect(record.counters['capped-leaderboard']).toHaveLength(1);
      let capped = false;
      for (let i = 0; i < 50 && !capped; i++) {
        capped = (await bid({ ...req, id: `cap-${i + 2}` })).status === 204;
        if (!capped) await new Promise((res) => setTimeout(res, 20));
      }
      expect(capped).toBe(true);
    });

    it('takes gzip bodies within the same limit, gzips large answers for who asks, says its OpenRTB version', async () => {
      const json = { 'content-type': 'application/json' };
      const zipped = { ...json, 'content-encoding': 'gzip' };
      const plain = await postRaw(url(), Buffer.from(JSON.stringify(example('banner'))), json);
      expect(plain.status).toBe(200);
      expect(plain.headers['x-openrtb-version']).toBe('2.6');
      const fromGzip = await postRaw(url(), gzipSync(JSON.stringify(example('banner'))), zipped);
      expect(fromGzip.status).toBe(200);
      expect(JSON.parse(fromGzip.body.toString()).seatbid).toEqual(
        expect.arrayContaining([expect.objectContaining({ seat: 'mindshare' })]),
      );
      const noBid = await postRaw(
        url(),
        Buffer.from(JSON.stringify({ ...example('banner'), bcat: ['IAB18'] })),
        json,
      );
      expect([noBid.status, noBid.headers['x-openrtb-version'], noBid.body.length]).toEqual([204, '2.6', 0]);
      // Not gzip, a bomb past the body limit, an encoding not taken: 400, 413, 415; never a 5xx.
      const broken = await postRaw(url(), Buffer.from('not gzip at all'), zipped);
      expect([broken.status, JSON.parse(broken.body.toString()).error.code]).toEqual([400, 'bad_request']);
      const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20));
      expect(bomb.length).toBeLessThan(65_536);
      const boom = await postRaw(url(), bomb, zipped);
      expect([boom.status, JSON.parse(boom.body.toString()).error.code]).toEqual([413, 'body_too_large']);
      const brotli = await postRaw(url(), Buffer.from('{}'), { ...json, 'content-encoding': 'br' });
      expect(brotli.status).toBe(415);
      // An answer over 4 KiB (here by its echoed request id) comes gzipped to a client that takes gzip.
      const many = example('banner');
      many.id = 'r'.repeat(5000);
      const small = await postRaw(url(), Buffer.from(JSON.stringify(example('banner'))), {
        ...json,
        'accept-encoding': 'gzip',
      });
      expect(small.headers['content-encoding']).toBeUndefined();
      const big = await postRaw(url(), Buffer.from(JSON.stringify(many)), {
        ...json,
        'accept-encoding': 'gzip',
      });
      expect([big.status, big.headers['content-encoding']]).toEqual([200, 'gzip']);
      expect(big.body.length).toBeLessThan(2000);
      expect(JSON.parse(gunzipSync(big.body).toString())).toMatchObject({ id: many.id, cur: 'USD' });
      const refused = await postRaw(url(), Buffer.from(JSON.stringify(many)), {
        ...json,
        'accept-encoding': 'gzip;q=0',
      });
      expect(refused.headers['content-encoding']).toBeUndefined();
      expect(JSON.parse(refused.body.toString()).id).toBe(many.id);
    });

    it('takes up to 128 imps, and says so when there are more; a device id in any case finds the person', async () => {
      const req = example('banner');
      req.imp = Array.from({ length: 128 }, (_, i) => ({ ...req.imp[0], id: `imp-${i}` }));
      expect((await bid(req)).status).toBe(200);
      req.imp.push({ ...req.imp[0], id: 'one-too-many' });
      const over = await bid(req);
      expect([over.status, over.body.error.path, over.body.error.message]).toEqual([
        400,
        'imp',
        'imp has more than 128 impressions',
      ]);
      const pid = `ifa-${name.replace(/\W/g, '')}`;
      await target().store.putProfile({ id: pid, tags: ['circle:capped'] });
      await target().store.linkAliases(pid, { idfa: `ab12cd34-${pid}` });
      const byIfa = example('banner');
      byIfa.device = { ifa: `AB12CD34-${pid}`.toUpperCase() };
      byIfa.imp[0].banner = { format: [{ w: 728, h: 90 }] };
      const r = await bid(byIfa);
      expect(r.body.seatbid[0].bid[0].cid).toBe('capped-leaderboard');
    });

    it('bids only what renders: a banner at a size the imp allows, each medium with its own size and mtype', async () => {
      const req = example('banner');
      req.site.keywords = 'anysize';
      req.imp[0].banner = {};
      const unsized = await bid(req);
      expect(unsized.status).toBe(204);
      req.imp[0].banner = { format: [{ w: 320, h: 100 }] };
      const sized = await bid(req);
      expect(sized.status).toBe(200);
      expect(sized.body.seatbid[0].bid[0]).toMatchObject({
        crid: 'any-size-creative',
        w: 320,
        h: 100,
        mtype: 1,
      });

      const multi = example('banner');
      multi.imp[0].banner = { w: 300, h: 250 };
      multi.imp[0].video = { w: 640, h: 480, mimes: ['video/mp4'] };
      const seen = new Set<number>();
      for (const cat of [['IAB2-1'], ['IAB9']]) {
        multi.site.cat = cat;
        const r = await bid(multi);
        expect(r.status).toBe(200);
        for (const b of r.body.seatbid[0].bid) {
          seen.add(b.mtype);
          expect([b.mtype, b.w, b.h]).toEqual(b.mtype === 2 ? [2, 640, 480] : [1, 300, 250]);
        }
      }
      expect(seen).toEqual(new Set([1, 2]));

      // The decision may pick a medium the imp cannot show the creative in (here the banner, at a
      // size the creative lacks): the bid is made in one it can (the video).
      const dual = example('banner');
      dual.site.keywords = 'dual';
      dual.site.cat = ['IAB9'];
      dual.imp[0].banner = { w: 728, h: 90 };
      dual.imp[0].video = { w: 640, h: 480, mimes: ['video/mp4'], protocols: [2, 3] };
      const d = await bid(dual);
      expect(d.status).toBe(200);
      expect(d.body.seatbid[0].bid[0]).toMatchObject({ cid: 'dual-media', mtype: 2, w: 640, h: 480 });
    });

    it('uses no personal data when a privacy signal forbids it: context alone, no person in the bid', async () => {
      const pid = `private-${name.replace(/\W/g, '')}`;
      await target().store.putProfile({ id: pid, tags: ['circle:capped'] });
      await target().store.linkAliases(pid, { cookie: `buyer-${pid}` });
      const base = example('banner');
      base.user = { buyeruid: `buyer-${pid}`, data: [{ id: 'dmp', segment: [{ id: 'sports' }] }] };
      base.imp[0].banner = {
        format: [
          { w: 728, h: 90 },
          { w: 970, h: 250 },
        ],
      };
      const campaigns = async (edit: (req: Json) => void): Promise<string[]> => {
        const req = structuredClone(base);
        req.id = `privacy-${Math.random()}`;
        edit(req);
        const r = await bid(req);
        expect([200, 204]).toContain(r.status);
        return r.status === 204 ? [] : r.body.seatbid[0].bid.map((b: Json) => b.cid);
      };
      // Allowed: the stored person (capped-leaderboard) and the third-party segment compete.
      const personal = await campaigns(() => {});
      expect(personal).toEqual(['capped-leaderboard']);
      expect(await campaigns((r) => (r.imp[0].banner = { w: 970, h: 250 }))).toEqual(['dmp-sports']);
      const consent = tcString([755], [1, 3, 4]);
      expect(
        await campaigns((r) => Object.assign(r, { regs: { gdpr: 1 }, user: { ...r.user, consent } })),
      ).toEqual(personal);
      expect(
        await campaigns((r) =>
          Object.assign(r, { regs: { ext: { gdpr: 1 } }, user: { ...r.user, ext: { consent } } }),
        ),
      ).toEqual(personal);
      // Forbidden: neither the person nor their segments are used, in 2.6 and 2.5 places alike.
      const forbidding: Array<(r: Json) => void> = [
        (r) => (r.regs = { coppa: 1 }),
        (r) => (r.regs = { gdpr: 1 }),
        (r) => (r.regs = { ext: { gdpr: 1 } }),
        (r) =>
          Object.assign(r, { regs: { gdpr: 1 }, user: { ...r.user, consent: tcString([10], [1, 3, 4]) } }),
        (r) => Object.assign(r, { regs: { gdpr: 1 }, user: { ...r.user, consent: 'garbage' } }),
        (r) => (r.regs = { us_privacy: '1YYN' }),
        (r) => (r.regs = { ext: { us_privacy: '1YYY' } }),
        (r) => (r.regs = { gpp: gppString({ usnat: { SaleOptOut: 1 } }), gpp_sid: [7] }),
      ];
      for (const edit of forbidding) {
        const cids = await campaigns(edit);
        expect(cids).not.toContain('capped-leaderboard');
        expect(cids).not.toContain('dmp-sports');
      }
      // A context-only bid carries no person: its notice counts nothing against anyone's caps.
      const open = example('banner');
      open.user = base.user;
      open.regs = { coppa: 1 };
      const r = await bid(open);
      expect(r.status).toBe(200);
      const b = r.body.seatbid[0].bid[0];
      const win = b.nurl.replace(/^https?:\/\/[^/]+/, '').replace(MACRO, '1');
      expect((await get(win)).status).toBe(204);
      expect((await target().store.loadPerson(pid)).counters).toEqual({});
      // A flag of the wrong kind is refused with its path.
      const bad = await bid({ ...base, regs: { coppa: 'yes' } });
      expect([bad.status, bad.body.error.path]).toEqual([400, 'regs.coppa']);
    });

    it('refuses a clearing price above the bid, counting nothing for it', async () => {
      const r = await bid(example('banner'));
      const b = r.body.seatbid[0].bid[0];
      for (const price of [`1${'0'.repeat(308)}`, String(b.price * 2), String(b.price + 0.02)]) {
        const res = await get(`/openrtb2/win?bid=${b.id}&price=${price}`);
        expect(res.status, price).toBe(400);
        const body = (await res.json()) as { error: { code: string; path: string; message: string } };
        expect(body.error).toMatchObject({ code: 'invalid_field', path: 'price' });
        expect(body.error.message).toContain('above the bid');
      }
      // Nothing was counted: the first acceptable notice counts, a cent of rounding allowed.
      expect((await get(`/openrtb2/win?bid=${b.id}&price=${b.price + 0.01}`)).status).toBe(204);
      expect((await get(`/openrtb2/bill?bid=${b.id}&price=${b.price}`)).status).toBe(204);
    });

    it('answers a notice whose request head is too long with 431, in one TCP segment or several', async () => {
      const head = `GET /openrtb2/win?bid=${'a'.repeat(100_000)}&price=1 HTTP/1.1\r\nHost: x\r\n\r\n`;
      for (const splitAt of [100, 20_000]) {
        expect(await splitRequest(target().port, head, splitAt), `split at ${splitAt}`).toMatch(
          /^HTTP\/1\.1 431 /,
        );
      }
      // The server goes on answering.
      expect((await get('/openrtb2/win?bid=nonsense')).status).toBe(400);
    });

    it('answers 404 for an unknown bid and 400 for a malformed notice', async () => {
      const r = await bid(example('banner'));
      const id: string = r.body.seatbid[0].bid[0].id;
      const forged = `${id.slice(0, -2)}${id.endsWith('AA') ? 'BB' : 'AA'}`;
      const unknown = await get(`/openrtb2/win?bid=${forged}&price=1`);
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('bid_not_found');
      expect((await get('/openrtb2/win?price=1')).status).toBe(400);
      expect((await get('/openrtb2/win?bid=nonsense')).status).toBe(400);
      expect((await get(`/openrtb2/bill?bid=${id}&price=abc`)).status).toBe(400);
      expect((await get(`/openrtb2/win?bid=${id}&price=0.9`)).status).toBe(204);
    });
  });
}

describe('embedded store', () => {
  let kit: TestServer;
  beforeAll(async () => {
    kit = await serverOver('embedded', {
      DEMO_PEOPLE: '0',
      RULESET_FILE: RULESET,
      OPENRTB_TCF_VENDOR_ID: '755',
    });
  });
  afterAll(() => kit.close());
  describeBidder('embedded store', () => kit);

  it('reports bids, no-bids and notices in /metrics', async () => {
    const text = await (await fetch(`${kit.adminUrl}/metrics`)).text();
    expect(text).toMatch(/mindshare_openrtb_bids_total [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_no_bids_total\{reason="blocked"\} [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_no_bids_total\{reason="timeout"\} [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_no_bids_total\{reason="invalid"\} [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_notices_total\{type="win",outcome="counted"\} [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_notices_total\{type="win",outcome="duplicate"\} [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_notice_price_total\{type="win",currency="USD"\} [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_no_bids_total\{reason="format"\} [1-9]/);
    expect(text).toMatch(
      /mindshare_decision_duration_seconds_count\{route="\/openrtb2\/bid",outcome="bid"\} [1-9]/,
    );
    expect(text).toMatch(
      /mindshare_decision_duration_seconds_count\{route="\/openrtb2\/bid",outcome="no_bid"\} [1-9]/,
    );
    expect(text).toMatch(/mindshare_openrtb_tmax_used_ratio_count [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_context_only_total\{reason="coppa",answer="bid"\} [1-9]/);
    expect(text).toMatch(/mindshare_openrtb_context_only_total\{reason="gdpr",answer="no_bid"\} [1-9]/);
  });
});

/** Over Redis: the rule set of these tests, a deadline of 50 ms, and people cached briefly. */
const OVER_REDIS = {
  RULESET_FILE: RULESET,
  DECISION_DEADLINE_MS: '50',
  CACHE_TTL_MS: '50',
  OPENRTB_TCF_VENDOR_ID: '755',
};

describe('Redis store', () => {
  let kit: TestServer;
  beforeAll(async () => {
    kit = await serverOver('redis', OVER_REDIS);
  });
  afterAll(() => kit?.close());
  describeBidder('Redis store', () => kit);
});

describe('Redis Cluster store', () => {
  let kit: TestServer;
  beforeAll(async () => {
    kit = await serverOver('cluster', OVER_REDIS);
  }, 60_000);
  afterAll(() => kit?.close());
  describeBidder('Redis Cluster store', () => kit);
});

describe('currency rates', () => {
  let kit: TestServer;
  const RATES = { date: '2026-11-20', base: 'USD', rates: { EUR: 0.92, GBP: 0.79 } };
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rates-'));
    const file = join(dir, 'rates.json');
    writeFileSync(file, JSON.stringify(RATES));
    kit = await serverOver('embedded', { DEMO_PEOPLE: '0', RULESET_FILE: RULESET, OPENRTB_RATES_FILE: file });
  });
  afterAll(() => kit?.close());
  const bid = (body: unknown) => postJson(`${kit.dataUrl}/openrtb2/bid`, body);
  const rates = (body?: unknown) =>
    fetch(`${kit.adminUrl}/v1/openrtb/rates`, {
      method: body === undefined ? 'GET' : 'PUT',
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('compares floors in the bid currency and prices bids in one the exchange takes', async () => {
    // A EUR floor against a USD campaign: 0.1 EUR is 0.11 USD, under the 1.5 USD bid.
    const eurFloor = example('banner');
    eurFloor.imp[0].bidfloor = 0.1;
    eurFloor.imp[0].bidfloorcur = 'EUR';
    const r = await bid(eurFloor);
    expect([r.status, r.body?.cur, r.body?.seatbid[0].bid[0].price]).toEqual([200, 'USD', 1.5]);
    // 1.45 EUR is 1.576 USD: over the bid.
    eurFloor.imp[0].bidfloor = 1.45;
    expect((await bid(eurFloor)).status).toBe(204);
    // An exchange that takes EUR only gets the USD campaign's bid in EUR (1.5 x 0.92).
    const inEur = example('banner');
    inEur.cur = ['EUR'];
    inEur.imp[0].bidfloor = 1.3;
    inEur.imp[0].bidfloorcur = 'EUR';
    const e = await bid(inEur);
    expect([e.status, e.body?.cur, e.body?.seatbid[0].bid[0].price]).toEqual([200, 'EUR', 1.38]);
    // The EUR campaign bids in USD where USD is what the exchange takes (1 EUR = 1.087 USD).
    const euroCampaign = example('banner');
    euroCampaign.imp[0].banner = { w: 320, h: 50 };
    const u = await bid(euroCampaign);
    expect([u.status, u.body?.cur, u.body?.seatbid[0].bid[0].price]).toEqual([200, 'USD', 1.087]);
    // A currency named like an object's member is a currency without a rate.
    const odd = example('banner');
    odd.cur = ['constructor'];
    expect((await bid(odd)).status).toBe(204);
    // A currency the table does not name: no bid, counted.
    const yen = example('banner');
    yen.cur = ['JPY'];
    expect((await bid(yen)).status).toBe(204);
    const metrics = await (await fetch(`${kit.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/mindshare_openrtb_no_bids_total\{reason="currency"\} [1-9]/);
    expect(metrics).toMatch(/mindshare_openrtb_rates_age_seconds [0-9]/);
  });

  it('reads and replaces the table for the fleet, refusing a bad one with the path of the bad field', async () => {
    const got = await rates();
    expect(got.status).toBe(200);
    expect(await got.json()).toEqual({ ...RATES, rates: { ...RATES.rates, USD: 1 } });
    for (const [bad, path] of [
      [{ ...RATES, rates: { EUR: 0 } }, 'rates.EUR'],
      [{ ...RATES, rates: { eur: 1 } }, 'rates.eur'],
      [{ ...RATES, date: '2026-02-30' }, 'date'],
      [{ ...RATES, base: 'dollar' }, 'base'],
    ] as const) {
      const r = await rates(bad);
      expect(r.status, JSON.stringify(bad)).toBe(400);
      expect(((await r.json()) as Json).error.path).toBe(path);
    }
    const put = await rates({ date: '2026-11-27', base: 'USD', rates: { EUR: 0.5 } });
    expect(put.status).toBe(200);
    expect(await kit.server.backend.rulesets.getDocument('currency-rates')).toContain('"EUR":0.5');
    const inEur = example('banner');
    inEur.cur = ['EUR'];
    const e = await bid(inEur);
    expect([e.body?.cur, e.body?.seatbid[0].bid[0].price]).toEqual(['EUR', 0.75]);
  });
});
