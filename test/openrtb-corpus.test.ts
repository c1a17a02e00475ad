/**
 * The OpenRTB bidder against a corpus of real-world BidRequests: the requests Prebid Server's
 * adapters send to bidders (test/openrtb/corpus/requests.ndjson, see its README), posted to a real
 * server over the embedded store with campaigns that bid broadly (test/openrtb/corpus/ruleset.yaml).
 * Every answer is checked against the specification: never a 5xx; a 400 exactly for the requests
 * an independent validity check calls invalid; a 204 with an empty body; every 200 a valid
 * BidResponse for its request.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from './http.js';
import { serverOver, type TestServer } from './server-kit.js';

const RULESET = new URL('./openrtb/corpus/ruleset.yaml', import.meta.url).pathname;
const CORPUS = readFileSync(new URL('./openrtb/corpus/requests.ndjson', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => JSON.parse(line) as unknown);
/** The fixture each corpus line was taken from (after the first line, the commit). */
const SOURCES = readFileSync(new URL('./openrtb/corpus/sources.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line !== '' && !line.startsWith('#'));
/** Requests posted at once. */
const PARALLEL = 4;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const absent = (v: unknown): boolean => v === undefined || v === null;
const isInt = (v: unknown, min = 0): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min;
const isNum = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * Why a BidRequest is invalid by the rules the bidder enforces, written from the specification
 * (OpenRTB 2.6, and the 2.5 `ext` places of the privacy signals and extended ids): an empty list
 * when it is valid. Absent and null fields are alike. Fields the bidder does not read, or reads
 * only when they have their type (keywords), are not checked.
 */
function requestProblems(req: unknown): string[] {
  const problems: string[] = [];
  const bad = (path: string, what: string) => problems.push(`${path}: ${what}`);
  const obj = (v: unknown, path: string): Obj | undefined => {
    if (absent(v)) return undefined;
    if (!isObj(v)) bad(path, 'not an object');
    return isObj(v) ? v : undefined;
  };
  const str = (v: unknown, path: string) => {
    if (!absent(v) && typeof v !== 'string') bad(path, 'not a string');
  };
  const num = (v: unknown, path: string) => {
    if (!absent(v) && !isNum(v)) bad(path, 'not a non-negative number');
  };
  const int = (v: unknown, path: string) => {
    if (!absent(v) && !isInt(v)) bad(path, 'not a non-negative integer');
  };
  const list = (v: unknown, path: string): unknown[] => {
    if (absent(v)) return [];
    if (!Array.isArray(v)) bad(path, 'not an array');
    return Array.isArray(v) ? v : [];
  };
  const strings = (v: unknown, path: string) => {
    list(v, path).forEach((x, i) => {
      if (typeof x !== 'string') bad(`${path}[${i}]`, 'not a string');
    });
  };
  const ints = (v: unknown, path: string) => {
    list(v, path).forEach((x, i) => {
      if (!isInt(x, Number.MIN_SAFE_INTEGER)) bad(`${path}[${i}]`, 'not an integer');
    });
  };
  /** 0 or 1; the strings "0" and "1" are taken as well (seen in the wild). */
  const flag = (v: unknown, path: string) => {
    if (!absent(v) && ![0, 1, '0', '1'].includes(v as number | string)) bad(path, 'not 0 or 1');
  };

  if (!isObj(req)) return ['the request is not an object'];
  if (typeof req.id !== 'string' || req.id === '') bad('id', 'not a non-empty string');
  if (!Array.isArray(req.imp) || req.imp.length === 0) bad('imp', 'not a non-empty array');
  const imps = Array.isArray(req.imp) ? req.imp : [];
  if (imps.length > 128) bad('imp', 'more imps than the bidder takes (128)');
  const ids = new Set<unknown>();
  imps.forEach((imp, i) => {
    const at = `imp[${i}]`;
    if (!isObj(imp)) {
      bad(at, 'not an object');
      return;
    }
    if (typeof imp.id !== 'string' || imp.id === '') bad(`${at}.id`, 'not a non-empty string');
    else if (ids.has(imp.id)) bad(`${at}.id`, 'not unique');
    ids.add(imp.id);
    const media = (['banner', 'video', 'audio', 'native'] as const).map((m) => obj(imp[m], `${at}.${m}`));
    if (media.every((m) => m === undefined)) bad(at, 'none of banner, video, audio, native');
    const [banner, video, audio, native] = media;
    if (banner !== undefined) {
      int(banner.w, `${at}.banner.w`);
      int(banner.h, `${at}.banner.h`);
      list(banner.format, `${at}.banner.format`).forEach((f, j) => {
        const format = obj(f, `${at}.banner.format[${j}]`);
        int(format?.w, `${at}.banner.format[${j}].w`);
        int(format?.h, `${at}.banner.format[${j}].h`);
      });
    }
    if (video !== undefined) {
      int(video.w, `${at}.video.w`);
      int(video.h, `${at}.video.h`);
    }
    for (const [m, o] of [
      ['banner', banner],
      ['video', video],
      ['audio', audio],
      ['native', native],
    ] as const) {
      ints(o?.battr, `${at}.${m}.battr`);
    }
    num(imp.bidfloor, `${at}.bidfloor`);
    str(imp.bidfloorcur, `${at}.bidfloorcur`);
    const pmp = obj(imp.pmp, `${at}.pmp`);
    int(pmp?.private_auction, `${at}.pmp.private_auction`);
    const deals = list(pmp?.deals, `${at}.pmp.deals`);
    if (deals.length > 64) bad(`${at}.pmp.deals`, 'more deals than the bidder takes (64)');
    deals.forEach((d, j) => {
      const dat = `${at}.pmp.deals[${j}]`;
      if (!isObj(d)) {
        bad(dat, 'not an object');
        return;
      }
      if (typeof d.id !== 'string' || d.id === '') bad(`${dat}.id`, 'not a non-empty string');
      num(d.bidfloor, `${dat}.bidfloor`);
      str(d.bidfloorcur, `${dat}.bidfloorcur`);
      strings(d.wseat, `${dat}.wseat`);
    });
  });

  const site = obj(req.site, 'site');
  const app = obj(req.app, 'app');
  if (site !== undefined && app !== undefined) bad('app', 'both site and app');
  int(req.tmax, 'tmax');
  for (const field of ['cur', 'badv', 'bcat', 'wseat', 'bseat']) strings(req[field], field);
  for (const [name, inv] of [
    ['site', site],
    ['app', app],
  ] as const) {
    if (inv === undefined) continue;
    for (const field of ['cat', 'sectioncat', 'pagecat']) strings(inv[field], `${name}.${field}`);
    str(obj(inv.publisher, `${name}.publisher`)?.id, `${name}.publisher.id`);
    str(name === 'site' ? inv.domain : inv.bundle, `${name}.${name === 'site' ? 'domain' : 'bundle'}`);
    strings(obj(inv.content, `${name}.content`)?.cat, `${name}.content.cat`);
  }

  const user = obj(req.user, 'user');
  const device = obj(req.device, 'device');
  const regs = obj(req.regs, 'regs');
  str(user?.id, 'user.id');
  str(user?.buyeruid, 'user.buyeruid');
  str(device?.ifa, 'device.ifa');
  int(device?.lmt, 'device.lmt');
  // Extended ids: their 2.6 place, else their 2.5 place under `user.ext`.
  const userExt = obj(user?.ext, 'user.ext');
  const [eids, eidsAt] = absent(user?.eids) ? [userExt?.eids, 'user.ext.eids'] : [user?.eids, 'user.eids'];
  list(eids, eidsAt).forEach((e, i) => {
    const eid = obj(e, `${eidsAt}[${i}]`);
    str(eid?.source, `${eidsAt}[${i}].source`);
    list(eid?.uids, `${eidsAt}[${i}].uids`).forEach((u, j) => {
      str(obj(u, `${eidsAt}[${i}].uids[${j}]`)?.id, `${eidsAt}[${i}].uids[${j}].id`);
    });
  });
  list(user?.data, 'user.data').forEach((d, i) => {
    const data = obj(d, `user.data[${i}]`);
    str(data?.id, `user.data[${i}].id`);
    if (absent(data?.id)) str(data?.name, `user.data[${i}].name`);
    list(data?.segment, `user.data[${i}].segment`).forEach((s, j) => {
      str(obj(s, `user.data[${i}].segment[${j}]`)?.id, `user.data[${i}].segment[${j}].id`);
    });
  });
  // The privacy signals: their 2.6 place, else their 2.5 place under `ext`.
  const regsExt = obj(regs?.ext, 'regs.ext');
  const signal = (o: Obj | undefined, ext: Obj | undefined, base: string, field: string) =>
    absent(o?.[field])
      ? ([ext?.[field], `${base}.ext.${field}`] as const)
      : ([o?.[field], `${base}.${field}`] as const);
  flag(...signal(regs, regsExt, 'regs', 'coppa'));
  flag(...signal(regs, regsExt, 'regs', 'gdpr'));
  str(...signal(user, userExt, 'user', 'consent'));
  str(...signal(regs, regsExt, 'regs', 'us_privacy'));
  str(...signal(regs, regsExt, 'regs', 'gpp'));
  ints(...signal(regs, regsExt, 'regs', 'gpp_sid'));
  return problems;
}

/** The sizes a banner imp allows: `banner.w`×`banner.h` and `banner.format[]`. */
function bannerSizes(banner: Obj): string[] {
  const sizes: string[] = [];
  if (isInt(banner.w) && isInt(banner.h)) sizes.push(`${banner.w}x${banner.h}`);
  if (Array.isArray(banner.format)) {
    for (const f of banner.format) if (isObj(f) && isInt(f.w) && isInt(f.h)) sizes.push(`${f.w}x${f.h}`);
  }
  return sizes;
}

const MTYPE_MEDIUM: Record<number, string> = { 1: 'banner', 2: 'video', 3: 'audio', 4: 'native' };

/** Why a 200's body is not a valid BidResponse to `req`: an empty list when it is. */
function responseProblems(req: Obj, body: unknown): string[] {
  const problems: string[] = [];
  if (!isObj(body)) return ['the body is not an object'];
  if (body.id !== req.id) problems.push(`id ${JSON.stringify(body.id)} is not the request's`);
  const cur = body.cur ?? 'USD';
  if (typeof cur !== 'string') problems.push('cur is not a string');
  const allowed = Array.isArray(req.cur) ? req.cur : [];
  if (allowed.length > 0 && !allowed.includes(cur)) problems.push(`cur ${cur} is not in the request's cur`);
  const imps = new Map<string, Obj>();
  for (const imp of req.imp as Obj[]) imps.set(imp.id as string, imp);
  if (!Array.isArray(body.seatbid) || body.seatbid.length === 0) return [...problems, 'no seatbid'];
  const bidIds = new Set<unknown>();
  let count = 0;
  body.seatbid.forEach((sb: unknown, s) => {
    if (!isObj(sb) || !Array.isArray(sb.bid) || sb.bid.length === 0) {
      problems.push(`seatbid[${s}] has no bid`);
      return;
    }
    sb.bid.forEach((b: unknown, i) => {
      const at = `seatbid[${s}].bid[${i}]`;
      const bad = (what: string) => problems.push(`${at}: ${what}`);
      count++;
      if (!isObj(b)) {
        bad('not an object');
        return;
      }
      if (typeof b.id !== 'string' || b.id === '') bad('no id');
      else if (bidIds.has(b.id)) bad('its id is not unique in the response');
      bidIds.add(b.id);
      const imp = typeof b.impid === 'string' ? imps.get(b.impid) : undefined;
      if (imp === undefined) {
        bad(`impid ${JSON.stringify(b.impid)} names no imp of the request`);
        return;
      }
      if (typeof b.price !== 'number' || !(b.price > 0)) bad(`price ${JSON.stringify(b.price)} is not > 0`);
      const deal =
        typeof b.dealid === 'string' && isObj(imp.pmp) && Array.isArray(imp.pmp.deals)
          ? (imp.pmp.deals as unknown[]).find((d) => isObj(d) && d.id === b.dealid)
          : undefined;
      if (b.dealid !== undefined && !isObj(deal)) bad(`dealid ${JSON.stringify(b.dealid)} is not the imp's`);
      const floorOf = isObj(deal) ? deal : imp;
      const floor = typeof floorOf.bidfloor === 'number' ? floorOf.bidfloor : 0;
      const floorCur = typeof floorOf.bidfloorcur === 'string' ? floorOf.bidfloorcur : 'USD';
      if (floorCur === cur && typeof b.price === 'number' && b.price < floor) {
        bad(`price ${b.price} is below the floor ${floor} ${floorCur}`);
      }
      if ((typeof b.adm !== 'string' || b.adm === '') && (typeof b.nurl !== 'string' || b.nurl === '')) {
        bad('neither adm nor nurl');
      }
      const medium = typeof b.mtype === 'number' ? MTYPE_MEDIUM[b.mtype] : undefined;
      if (medium === undefined) {
        bad(`mtype ${JSON.stringify(b.mtype)} is not 1 to 4`);
        return;
      }
      if (!isObj(imp[medium])) bad(`mtype ${b.mtype} (${medium}) is not a medium of the imp`);
      if (medium === 'banner' && isObj(imp.banner)) {
        const sizes = bannerSizes(imp.banner);
        if (!sizes.includes(`${b.w}x${b.h}`)) bad(`size ${b.w}x${b.h} is not one of ${sizes.join(', ')}`);
      }
      // A video bid's size, when it says one, is the player's.
      if (medium === 'video' && isObj(imp.video) && (b.w !== undefined || b.h !== undefined)) {
        if (b.w !== imp.video.w || b.h !== imp.video.h) {
          bad(`size ${b.w}x${b.h} is not the player's ${imp.video.w}x${imp.video.h}`);
        }
      }
    });
  });
  if (count === 0) problems.push('no bid');
  return problems;
}

interface Outcome {
  line: number;
  status: number;
  text: string;
  invalid: string[];
}

describe('OpenRTB bidder: a corpus of Prebid Server bid requests', () => {
  let kit: TestServer;
  const outcomes: Outcome[] = [];
  const where = (o: Outcome) => `line ${o.line} (${SOURCES[o.line - 1] ?? '?'})`;

  beforeAll(async () => {
    kit = await serverOver('embedded', { DEMO_PEOPLE: '0', RULESET_FILE: RULESET });
    const url = `${kit.dataUrl}/openrtb2/bid`;
    let next = 0;
    const worker = async () => {
      while (next < CORPUS.length) {
        const i = next++;
        const req = CORPUS[i];
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(req),
        });
        outcomes.push({
          line: i + 1,
          status: res.status,
          text: await res.text(),
          invalid: requestProblems(req),
        });
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    outcomes.sort((a, b) => a.line - b.line);
    const count = (s: number) => outcomes.filter((o) => o.status === s).length;
    const others = outcomes.length - count(200) - count(204) - count(400);
    console.log(
      `OpenRTB corpus: ${outcomes.length} requests, ${count(200)} x 200, ${count(204)} x 204, ${count(400)} x 400, ${others} other`,
    );
  }, 60_000);
  afterAll(() => kit?.close());

  it('holds several hundred distinct requests of many adapters, one fixture named for each', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(300);
    expect(new Set(CORPUS.map((r) => JSON.stringify(r))).size).toBe(CORPUS.length);
    expect(SOURCES).toHaveLength(CORPUS.length);
    expect(new Set(SOURCES.map((s) => s.split('/')[1])).size).toBeGreaterThanOrEqual(100);
  });

  it('answers every request with 200, 204 or 400: never a 5xx', () => {
    const odd = outcomes.filter((o) => ![200, 204, 400].includes(o.status));
    expect(odd.map((o) => `${where(o)}: ${o.status} ${o.text.slice(0, 200)}`)).toEqual([]);
    expect(outcomes).toHaveLength(CORPUS.length);
  });

  it('refuses with 400 exactly the requests the specification calls invalid, with a code and the path', () => {
    const mismatches = outcomes
      .filter((o) => (o.status === 400) !== o.invalid.length > 0)
      .map((o) =>
        o.status === 400
          ? `${where(o)}: refused, valid: ${o.text}`
          : `${where(o)}: ${o.status}, invalid: ${o.invalid.join('; ')}`,
      );
    expect(mismatches).toEqual([]);
    for (const o of outcomes.filter((x) => x.status === 400)) {
      const error = (JSON.parse(o.text) as { error?: { code?: unknown; path?: unknown } }).error;
      expect(typeof error?.code, where(o)).toBe('string');
      expect(typeof error?.path, where(o)).toBe('string');
    }
  });

  it('answers no bid with 204 and an empty body', () => {
    const bodies = outcomes.filter((o) => o.status === 204 && o.text !== '');
    expect(bodies.map((o) => `${where(o)}: ${o.text.slice(0, 200)}`)).toEqual([]);
  });

  it('answers every bid with a valid BidResponse for its request', () => {
    const invalid = outcomes
      .filter((o) => o.status === 200)
      .flatMap((o) =>
        responseProblems(CORPUS[o.line - 1] as Obj, JSON.parse(o.text)).map((p) => `${where(o)}: ${p}`),
      );
    expect(invalid).toEqual([]);
  });

  it('bids on a good share of the corpus', () => {
    const bids = outcomes.filter((o) => o.status === 200).length;
    expect(bids / outcomes.length).toBeGreaterThanOrEqual(0.2);
  });

  it('finds the person by extended ids in their 2.6 place (user.eids) and their 2.5 one (user.ext.eids)', async () => {
    // Most of the corpus carries its extended ids in the 2.5 place, as Prebid Server sends them.
    expect(
      CORPUS.filter((r) => isObj(r) && isObj(r.user) && isObj(r.user.ext) && r.user.ext.eids),
    ).not.toEqual([]);
    await kit.store.putProfile({ id: 'corpus-known', tags: ['circle:corpus-known'] });
    await kit.store.linkAliases('corpus-known', { 'eid-liveramp-com': 'ramp-known' });
    const eids = (id: string) => [{ source: 'liveramp.com', uids: [{ id, atype: 3 }] }];
    const campaign = async (user: unknown, n: number) => {
      const r = await postJson(`${kit.dataUrl}/openrtb2/bid`, {
        id: `eids-${n}`,
        imp: [{ id: '1', banner: { format: [{ w: 300, h: 250 }] } }],
        site: { page: 'https://example.com/' },
        user,
      });
      return r.status === 200 ? r.body.seatbid[0].bid[0].cid : r.status;
    };
    expect(await campaign(undefined, 1)).not.toBe('known-person');
    expect(await campaign({ eids: eids('ramp-known') }, 2)).toBe('known-person');
    expect(await campaign({ ext: { eids: eids('ramp-known') } }, 3)).toBe('known-person');
    // The 2.6 place, when set, is the one read.
    expect(await campaign({ eids: eids('ramp-other'), ext: { eids: eids('ramp-known') } }, 4)).not.toBe(
      'known-person',
    );
    // A bad type is refused with its path in the 2.6 place; in the free-form ext it is skipped.
    const badIds = [{ source: 'liveramp.com', uids: [{ id: 7 }] }];
    const bad = await postJson(`${kit.dataUrl}/openrtb2/bid`, {
      id: 'eids-5',
      imp: [{ id: '1', banner: { w: 300, h: 250 } }],
      user: { eids: badIds },
    });
    expect([bad.status, bad.body.error.path]).toEqual([400, 'user.eids[0].uids[0].id']);
    const skipped = await postJson(`${kit.dataUrl}/openrtb2/bid`, {
      id: 'eids-6',
      imp: [{ id: '1', banner: { w: 300, h: 250 } }],
      user: { ext: { eids: badIds } },
    });
    expect(skipped.status).not.toBe(400);
  });
});
