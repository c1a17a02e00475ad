import { describe, expect, it } from 'vitest';
import { ClientError } from '../errors.js';
import { checkBidRequest, OPENRTB_LIMITS } from './request.js';

// biome-ignore lint/suspicious/noExplicitAny: requests are edited field by field
type Json = Record<string, any>;

const base = (): Json => ({
  id: 'r1',
  imp: [{ id: '1', banner: { w: 300, h: 250 } }],
  site: { id: 's', domain: 'News.example', cat: ['IAB2'], publisher: { id: 'pub-1' } },
  user: { buyeruid: 'ck_1' },
});

function refusal(edit: (r: Json) => void): { code: string; path: string; message: string } {
  const r = base();
  edit(r);
  try {
    checkBidRequest(r);
  } catch (e) {
    if (!(e instanceof ClientError)) throw e;
    return { code: e.code, path: e.path ?? '', message: e.message };
  }
  throw new Error('accepted');
}

describe('checkBidRequest', () => {
  it.each([
    ['imp[0].banner.w', (r: Json) => (r.imp[0].banner.w = '300')],
    [
      'imp[0].banner.format[1].h',
      (r: Json) =>
        (r.imp[0].banner.format = [
          { w: 1, h: 2 },
          { w: 3, h: -1 },
        ]),
    ],
    ['imp[0].banner.battr[0]', (r: Json) => (r.imp[0].banner.battr = [1.5])],
    ['imp[0].video.mimes[1]', (r: Json) => (r.imp[0].video = { mimes: ['video/mp4', 7] })],
    ['imp[0].video.protocols', (r: Json) => (r.imp[0].video = { protocols: 2 })],
    [
      'imp[1].pmp.deals[0].bidfloor',
      (r: Json) => r.imp.push({ id: '2', native: {}, pmp: { deals: [{ id: 'd', bidfloor: 'x' }] } }),
    ],
    ['imp[0].bidfloorcur', (r: Json) => (r.imp[0].bidfloorcur = 1)],
    ['site.publisher.id', (r: Json) => (r.site.publisher.id = 9)],
    ['site.content.cat[0]', (r: Json) => (r.site.content = { cat: [2] })],
    ['site.pagecat', (r: Json) => (r.site.pagecat = 'IAB1')],
    [
      'app.bundle',
      (r: Json) => {
        delete r.site;
        r.app = { bundle: 4 };
      },
    ],
    [
      'user.data[0].segment[1].id',
      (r: Json) => (r.user.data = [{ id: 'dmp', segment: [{ id: 'a' }, { id: 2 }] }]),
    ],
    ['user.eids[0].uids[0].id', (r: Json) => (r.user.eids = [{ source: 'x.com', uids: [{ id: 5 }] }])],
    ['regs.gdpr', (r: Json) => (r.regs = { gdpr: 2 })],
    ['user.consent', (r: Json) => (r.user.consent = 1)],
    ['bcat[1]', (r: Json) => (r.bcat = ['IAB1', null])],
    ['device.lmt', (r: Json) => (r.device = { lmt: 'yes' })],
  ])('names %s when it has the wrong type', (path, edit) => {
    const got = refusal(edit);
    expect(got.code).toBe('invalid_field');
    expect(got.path).toBe(path);
    expect(got.message.startsWith(`${path} must be`)).toBe(true);
  });

  it('reads 2.5 places leniently: a wrong type under ext is the protective value, not a refusal', () => {
    const r = base();
    r.regs = { ext: { gdpr: 'yes', us_privacy: 7 } };
    r.user.ext = { consent: 12 };
    const req = checkBidRequest(r);
    expect(req.privacy).toMatchObject({ gdpr: 1, usPrivacy: '', consent: '' });
    r.user.ext.eids = [{ source: 'x.com', uids: [{ id: 5 }, { id: 'ok' }] }];
    expect(checkBidRequest(r).aliases).toEqual([
      ['cookie', 'ck_1'],
      ['eid-x-com', 'ok'],
    ]);
  });

  it('refuses an imp id seen before, among few imps and among many', () => {
    const imps = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: `i${i}`, banner: { w: 1, h: 1 } }));
    for (const [n, dup] of [
      [3, 2],
      [20, 5],
      [20, 15],
    ] as const) {
      const got = refusal((r) => {
        r.imp = imps(n);
        r.imp[dup].id = r.imp[dup === 2 ? 0 : dup - 1].id;
      });
      expect(got).toMatchObject({ code: 'invalid_field', path: `imp[${dup}].id` });
    }
    const r = base();
    r.imp = imps(OPENRTB_LIMITS.imps);
    expect(checkBidRequest(r).imps).toHaveLength(OPENRTB_LIMITS.imps);
  });

  it('reads sizes and blocked attributes of every medium of an imp', () => {
    const r = base();
    r.imp[0].banner = {
      w: 300,
      h: 250,
      format: [null, { w: 728, h: 90 }, { w: 300, h: 250 }, { w: 320.5, h: 50 }],
      battr: [1],
    };
    r.imp[0].video = { w: 640, h: 480, battr: [2, 3] };
    r.imp[0].native = { request: '{}', battr: [4] };
    const imp = checkBidRequest(r).imps[0]!;
    expect(imp.formats).toEqual([
      'banner-300x250',
      'banner-728x90',
      'banner-320.5x50',
      'video-640x480',
      'video',
      'native',
    ]);
    expect(imp.sizes.map((s) => s.format)).toEqual(['banner-300x250', 'banner-728x90', 'video-640x480']);
    expect(imp.battr).toEqual([1, 2, 3, 4]);
    expect(imp.channels).toEqual(['display', 'video', 'native']);
    const again = checkBidRequest(base()).imps[0]!;
    expect(again.formats).toEqual(['banner-300x250']);
    expect(again.battr).toEqual([]);
  });

  it('makes each context tag once, however many there are, up to the bound', () => {
    const r = base();
    const words = Array.from({ length: 40 }, (_, i) => `w${i % 25}`);
    r.site.keywords = words.join(',');
    r.site.kwarray = ['W3', 'extra'];
    r.site.cat = ['IAB2', 'IAB2', 'IAB3'];
    r.user.data = [{ id: 'dmp', segment: Array.from({ length: 30 }, (_, i) => ({ id: `s${i % 20}` })) }];
    const req = checkBidRequest(r);
    expect(new Set(req.contextTags).size).toBe(req.contextTags.length);
    expect(new Set(req.userTags).size).toBe(req.userTags.length);
    expect(req.contextTags).toContain('kw:w24');
    expect(req.contextTags).toContain('kw:extra');
    expect(req.contextTags.filter((t) => t === 'kw:w3')).toHaveLength(1);
    expect(req.contextTags.filter((t) => t.startsWith('iab:'))).toEqual(['iab:IAB2', 'iab:IAB3']);
    expect(req.userTags).toHaveLength(20);
    expect(req.contextTags.slice(0, 1)).toEqual(['src:openrtb']);
    expect(req.contextTags).toContain('site:news.example');

    r.site.keywords = Array.from({ length: 400 }, (_, i) => `k${i}`).join(',');
    const full = checkBidRequest(r);
    expect(full.contextTags.length + full.userTags.length).toBe(OPENRTB_LIMITS.tags);
  });
});
