/**
 * Reads an OpenRTB 2.5/2.6 BidRequest (JSON) into what the bidder needs. Tolerant like an
 * exchange expects: unknown fields and `ext` are ignored. Strict where the specification is: a
 * request `id`; at least one `imp`, each with a unique `id` and one of banner, video, audio or
 * native; not both `site` and `app`. Fields the bidder reads must have their specified types.
 * Every problem is a ClientError with a code and the path of the field at fault.
 */
import { isUtf8 } from 'node:buffer';
import type { Channel } from '../../rules/types.js';
import { ClientError } from '../errors.js';
import { NO_SIGNALS, type PrivacySignals } from './privacy.js';

export interface Deal {
  id: string;
  bidfloor: number;
  bidfloorcur: string;
  /** Seats allowed to bid on the deal; empty: any. */
  wseats: readonly string[];
}

/** What a video imp allows: durations (seconds), media types and VAST protocols (empty: any). */
export interface VideoSpec {
  minduration: number | undefined;
  maxduration: number | undefined;
  /** OpenRTB 2.6: the only durations allowed, seconds (empty: any within min and max). */
  rqddurs: number[];
  /** The player's size, when the imp says. */
  w: number | undefined;
  h: number | undefined;
  mimes: string[];
  protocols: number[];
}

/** One asset a native request asks for (Native 1.2 `assets[]`). */
export type NativeAsset = { id: number; required: boolean } & (
  | { kind: 'title'; len: number | undefined }
  | { kind: 'img'; type: number | undefined; w?: number; h?: number; wmin?: number; hmin?: number }
  | { kind: 'data'; type: number; len: number | undefined }
  | { kind: 'other' }
);

/** A native request's assets; null `assets` when `native.request` could not be read. */
export interface NativeSpec {
  /** Native 1.0/1.1 wrap request and response in `{"native": …}`; 1.2 does not. */
  wrapped: boolean;
  /** The request's version, answered with the same (1.1 when a wrapped one does not say). */
  ver: string;
  assets: NativeAsset[] | null;
}

export interface Imp {
  id: string;
  video: VideoSpec | null;
  native: NativeSpec | null;
  channels: Channel[];
  formats: string[];
  /** The sized formats of `formats` (`banner-300x250`, `video-640x480`), in their order. */
  sizes: Array<{ medium: 'banner' | 'video'; w: number; h: number; format: string }>;
  bidfloor: number;
  bidfloorcur: string;
  /** Blocked creative attributes, of every media object of the imp. */
  battr: number[];
  privateAuction: boolean;
  deals: Deal[];
}

export interface BidRequest {
  id: string;
  imps: Imp[];
  /** ms, when the exchange said */
  tmax: number | undefined;
  /** Currencies the exchange takes; empty: any. */
  cur: readonly string[];
  /** Blocked advertiser domains (lower case) and IAB categories. */
  badv: readonly string[];
  bcat: readonly string[];
  wseat: readonly string[];
  bseat: readonly string[];
  /** Aliases of the person, best first: `[kind, value]`. Personal data. */
  aliases: Array<[string, string]>;
  /** Tags of the inventory: site or app, content, publisher. */
  contextTags: string[];
  /** Tags of third-party segments of the person (`user.data`). Personal data. */
  userTags: string[];
  privacy: PrivacySignals;
}

/** Bounds of a BidRequest; exchanges send up to about a hundred imps (video pods, multi-slot pages). */
export const OPENRTB_LIMITS = { imps: 128, deals: 64, aliases: 8, tags: 256, tagLength: 128 } as const;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// The checks below take the path of a field in two parts (`imp[0]`, `.banner.w`), joined only for
// an error: a valid request builds no path strings.

function objectAt(v: unknown, path: string, field = ''): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new ClientError('invalid_field', `${path}${field} must be an object`, path + field);
  return v;
}

function stringAt(v: unknown, path: string, field = ''): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string')
    throw new ClientError('invalid_field', `${path}${field} must be a string`, path + field);
  return v;
}

function numberAt(v: unknown, path: string, field = ''): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new ClientError('invalid_field', `${path}${field} must be a number of at least 0`, path + field);
  }
  return v;
}

const NONE: readonly never[] = Object.freeze([]);

/** The array at `v` (a shared empty one when absent: never to be changed). */
function arrayAt(v: unknown, path: string, field = ''): readonly unknown[] {
  if (v === undefined || v === null) return NONE;
  if (!Array.isArray(v))
    throw new ClientError('invalid_field', `${path}${field} must be an array`, path + field);
  return v;
}

/** The strings at `v` (a shared empty list when absent: never to be changed). */
function stringsAt(v: unknown, path: string, field = ''): readonly string[] {
  if (v === undefined || v === null) return NONE;
  const list = arrayAt(v, path, field);
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'string')
      throw new ClientError(
        'invalid_field',
        `${path}${field}[${i}] must be a string`,
        `${path}${field}[${i}]`,
      );
  }
  return list.slice() as readonly string[];
}

function intsAt(v: unknown, path: string, field = ''): number[] {
  if (v === undefined || v === null) return [];
  const list = arrayAt(v, path, field);
  for (let i = 0; i < list.length; i++) {
    const x = list[i];
    if (typeof x !== 'number' || !Number.isInteger(x))
      throw new ClientError(
        'invalid_field',
        `${path}${field}[${i}] must be an integer`,
        `${path}${field}[${i}]`,
      );
  }
  return list.slice() as number[];
}

/** An id exchanges send for "unknown": empty, or zeros only (`00000000-0000-...`). */
export function isBlankId(id: string): boolean {
  return /^[0-]*$/.test(id);
}

export function parseBidRequest(body: Buffer): BidRequest {
  if (!isUtf8(body)) throw new ClientError('bad_request', 'The body is not valid UTF-8');
  let data: unknown;
  try {
    data = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new ClientError('bad_json', `The body is not valid JSON: ${(e as Error).message}`);
  }
  return checkBidRequest(data);
}

export function checkBidRequest(data: unknown): BidRequest {
  if (!isObject(data)) throw new ClientError('invalid_field', 'the body must be a BidRequest object', '');
  const id = stringAt(data.id, 'id');
  if (id === undefined || id === '') throw new ClientError('missing_field', 'id is required', 'id');
  if (data.imp === undefined || data.imp === null)
    throw new ClientError('missing_field', 'imp is required', 'imp');
  const rawImps = arrayAt(data.imp, 'imp');
  if (rawImps.length === 0)
    throw new ClientError('invalid_field', 'imp must list at least one impression', 'imp');
  if (rawImps.length > OPENRTB_LIMITS.imps) {
    throw new ClientError('invalid_field', `imp has more than ${OPENRTB_LIMITS.imps} impressions`, 'imp');
  }
  // Unique ids: searched in the list while it is short (most requests have one imp), in a set past that.
  const imps: Imp[] = [];
  let seen: Set<string> | null = null;
  for (let i = 0; i < rawImps.length; i++) {
    const imp = checkImp(rawImps[i], `imp[${i}]`);
    if (i === 8) seen = new Set(imps.map((x) => x.id));
    const twice = seen === null ? imps.some((x) => x.id === imp.id) : seen.has(imp.id);
    if (twice) {
      throw new ClientError('invalid_field', `imp[${i}].id: "${imp.id}" appears twice`, `imp[${i}].id`);
    }
    seen?.add(imp.id);
    imps.push(imp);
  }
  const site = objectAt(data.site, 'site');
  const app = objectAt(data.app, 'app');
  if (site !== undefined && app !== undefined) {
    throw new ClientError('invalid_field', 'a bid request has site or app, not both', 'app');
  }
  const tmax = numberAt(data.tmax, 'tmax');
  const user = objectAt(data.user, 'user');
  const device = objectAt(data.device, 'device');
  const tags = contextTags(site ?? app, site !== undefined ? 'site' : 'app', user);
  return {
    id,
    imps,
    tmax,
    cur: stringsAt(data.cur, 'cur'),
    badv: data.badv == null ? NONE : stringsAt(data.badv, 'badv').map((d) => d.toLowerCase()),
    bcat: stringsAt(data.bcat, 'bcat'),
    wseat: stringsAt(data.wseat, 'wseat'),
    bseat: stringsAt(data.bseat, 'bseat'),
    aliases: identity(user, device),
    contextTags: tags.context,
    userTags: tags.user,
    privacy: privacySignals(objectAt(data.regs, 'regs'), user),
  };
}

/**
 * The privacy signals, each from its OpenRTB 2.6 place or else its 2.5 one (`ext`). Flags may come
 * as 0/1 numbers or "0"/"1" strings (both are seen in the wild); anything else is refused.
 */
function privacySignals(regs: Obj | undefined, user: Obj | undefined): PrivacySignals {
  // No signal anywhere (the common case): the shared answer, without reading each place.
  if (regs === undefined && (user === undefined || (user.consent == null && user.ext == null)))
    return NO_SIGNALS;
  const regsExt = extOf(regs?.ext);
  const userExt = extOf(user?.ext);
  return {
    coppa: read(regs, regsExt, 'regs', 'coppa', flag, 1) === 1,
    gdpr: read(regs, regsExt, 'regs', 'gdpr', flag, 1),
    consent: read(user, userExt, 'user', 'consent', stringAt, ''),
    usPrivacy: read(regs, regsExt, 'regs', 'us_privacy', stringAt, ''),
    gpp: read(regs, regsExt, 'regs', 'gpp', stringAt, ''),
    gppSid: read(regs, regsExt, 'regs', 'gpp_sid', intsAt, [0]) ?? [],
  };
}

function flag(v: unknown, path: string, field = ''): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 0 || v === 1) return v;
  if (v === '0' || v === '1') return Number(v);
  throw new ClientError('invalid_field', `${path}${field} must be 0 or 1`, path + field);
}

/**
 * A field from its 2.6 place, checked; else from its 2.5 place under `ext`, read leniently as
 * `ext` is: a value of the wrong type there counts as the most protective one (a flag as 1, a
 * string as one that does not decode), never as a refused request.
 */
function read<T>(
  o: Obj | undefined,
  ext: Obj | undefined,
  base: 'regs' | 'user',
  field: string,
  check: (v: unknown, path: string, field: string) => T | undefined,
  protective: T,
): T | undefined {
  const top = o?.[field];
  if (top !== undefined && top !== null) return check(top, base, `.${field}`);
  const low = ext?.[field];
  if (low === undefined || low === null) return undefined;
  try {
    return check(low, base, `.ext.${field}`);
  } catch {
    return protective;
  }
}

/** An `ext` object, or undefined when it is anything else: `ext` is free-form, never refused. */
function extOf(v: unknown): Obj | undefined {
  return isObject(v) ? v : undefined;
}

/**
 * The format names of sizes (`banner-300x250`), made once per size and medium: the same string
 * for every request, whose comparisons with the creatives' formats are then quick.
 */
const formatNames = { banner: new Map<number, string>(), video: new Map<number, string>() };

/** `battr` with the attributes listed at `v` after it (itself when `v` is absent). */
function withBlocked(battr: number[], v: unknown, path: string, field: string): number[] {
  if (v === undefined || v === null) return battr;
  const list = intsAt(v, path, field);
  return battr.length === 0 ? list : battr.concat(list);
}

/** Adds a sized format to an imp's formats once, and to its sizes when whole pixels. */
function addSize(
  formats: string[],
  sizes: Imp['sizes'],
  medium: 'banner' | 'video',
  w: number,
  h: number,
): void {
  let format: string | undefined;
  const whole = Number.isInteger(w) && Number.isInteger(h);
  if (whole && w < 100_000 && h < 100_000) {
    const names = formatNames[medium];
    const key = w * 100_000 + h;
    format = names.get(key);
    if (format === undefined) {
      format = `${medium}-${w}x${h}`;
      if (names.size < 4096) names.set(key, format);
    }
  } else format = `${medium}-${w}x${h}`;
  if (formats.includes(format)) return;
  formats.push(format);
  // Only whole pixels make a size a bid can carry.
  if (whole) sizes.push({ medium, w, h, format });
}

function checkImp(raw: unknown, path: string): Imp {
  const imp = objectAt(raw, path);
  if (imp === undefined) throw new ClientError('invalid_field', `${path} must be an object`, path);
  const id = stringAt(imp.id, path, '.id');
  if (id === undefined || id === '')
    throw new ClientError('missing_field', `${path}.id is required`, `${path}.id`);
  const banner = objectAt(imp.banner, path, '.banner');
  const video = objectAt(imp.video, path, '.video');
  const audio = objectAt(imp.audio, path, '.audio');
  const native = objectAt(imp.native, path, '.native');
  if (banner === undefined && video === undefined && audio === undefined && native === undefined) {
    throw new ClientError('missing_field', `${path} needs one of banner, video, audio or native`, path);
  }
  const channels: Channel[] = [];
  const formats: string[] = [];
  const sizes: Imp['sizes'] = [];
  let battr: number[] = [];
  if (banner !== undefined) {
    channels.push('display');
    const w = numberAt(banner.w, path, '.banner.w');
    const h = numberAt(banner.h, path, '.banner.h');
    if (w !== undefined && h !== undefined) addSize(formats, sizes, 'banner', w, h);
    const bannerFormats = arrayAt(banner.format, path, '.banner.format');
    for (let j = 0; j < bannerFormats.length; j++) {
      const at = `${path}.banner.format[${j}]`;
      const fo = objectAt(bannerFormats[j], at);
      const fw = numberAt(fo?.w, at, '.w');
      const fh = numberAt(fo?.h, at, '.h');
      if (fw !== undefined && fh !== undefined) addSize(formats, sizes, 'banner', fw, fh);
    }
    if (formats.length === 0) formats.push('banner');
    battr = withBlocked(battr, banner.battr, path, '.banner.battr');
  }
  if (video !== undefined) {
    channels.push('video');
    const w = numberAt(video.w, path, '.video.w');
    const h = numberAt(video.h, path, '.video.h');
    if (w !== undefined && h !== undefined) addSize(formats, sizes, 'video', w, h);
    formats.push('video');
    battr = withBlocked(battr, video.battr, path, '.video.battr');
  }
  if (audio !== undefined) {
    // No audio channel: an audio-only impression gets no bid.
    formats.push('audio');
    battr = withBlocked(battr, audio.battr, path, '.audio.battr');
  }
  if (native !== undefined) {
    channels.push('native');
    formats.push('native');
    battr = withBlocked(battr, native.battr, path, '.native.battr');
  }
  const pmp = objectAt(imp.pmp, path, '.pmp');
  const rawDeals = arrayAt(pmp?.deals, path, '.pmp.deals');
  if (rawDeals.length > OPENRTB_LIMITS.deals) {
    throw new ClientError(
      'invalid_field',
      `${path}.pmp.deals has more than ${OPENRTB_LIMITS.deals} deals`,
      `${path}.pmp.deals`,
    );
  }
  const deals = rawDeals.map((d, j): Deal => {
    const at = `${path}.pmp.deals[${j}]`;
    const deal = objectAt(d, at);
    if (deal === undefined) throw new ClientError('invalid_field', `${at} must be an object`, at);
    const did = stringAt(deal.id, at, '.id');
    if (did === undefined || did === '')
      throw new ClientError('missing_field', `${at}.id is required`, `${at}.id`);
    return {
      id: did,
      bidfloor: numberAt(deal.bidfloor, at, '.bidfloor') ?? 0,
      bidfloorcur: stringAt(deal.bidfloorcur, at, '.bidfloorcur') ?? 'USD',
      wseats: stringsAt(deal.wseat ?? deal.wseats, at, '.wseat'),
    };
  });
  const pa = numberAt(pmp?.private_auction, path, '.pmp.private_auction');
  return {
    id,
    video:
      video === undefined
        ? null
        : {
            minduration: numberAt(video.minduration, path, '.video.minduration'),
            maxduration: numberAt(video.maxduration, path, '.video.maxduration'),
            rqddurs: intsAt(video.rqddurs, path, '.video.rqddurs'),
            w: numberAt(video.w, path, '.video.w'),
            h: numberAt(video.h, path, '.video.h'),
            mimes: stringsAt(video.mimes, path, '.video.mimes').map((m) => m.toLowerCase()),
            protocols: intsAt(video.protocols, path, '.video.protocols'),
          },
    native: native === undefined ? null : nativeSpec(native.request),
    channels,
    formats,
    sizes,
    bidfloor: numberAt(imp.bidfloor, path, '.bidfloor') ?? 0,
    bidfloorcur: stringAt(imp.bidfloorcur, path, '.bidfloorcur') ?? 'USD',
    battr,
    privateAuction: pa === 1,
    deals,
  };
}

/**
 * The assets a native imp asks for, from `native.request` (JSON text, or an object as some
 * exchanges send): read tolerantly, since a request the bidder cannot read only means no native
 * bid for that imp, not a refused request.
 */
function nativeSpec(request: unknown): NativeSpec {
  let data: unknown = request;
  if (typeof request === 'string') {
    try {
      data = JSON.parse(request);
    } catch {
      return { wrapped: false, ver: '1.2', assets: null };
    }
  }
  if (!isObject(data)) return { wrapped: false, ver: '1.2', assets: null };
  const wrapped = isObject(data.native);
  const body = wrapped ? (data.native as Obj) : data;
  const ver =
    typeof body.ver === 'string' && /^1\.[0-9]$/.test(body.ver) ? body.ver : wrapped ? '1.1' : '1.2';
  if (!Array.isArray(body.assets)) return { wrapped, ver, assets: null };
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const assets: NativeAsset[] = [];
  for (const raw of body.assets.slice(0, 64)) {
    if (!isObject(raw) || typeof raw.id !== 'number') return { wrapped, ver, assets: null };
    const base = { id: raw.id, required: raw.required === 1 };
    if (isObject(raw.title)) assets.push({ ...base, kind: 'title', len: num(raw.title.len) });
    else if (isObject(raw.img)) {
      const img = raw.img;
      const sizes: { w?: number; h?: number; wmin?: number; hmin?: number } = {};
      for (const k of ['w', 'h', 'wmin', 'hmin'] as const) {
        const v = num(img[k]);
        if (v !== undefined) sizes[k] = v;
      }
      assets.push({ ...base, kind: 'img', type: num(img.type), ...sizes });
    } else if (isObject(raw.data) && num(raw.data.type) !== undefined) {
      assets.push({ ...base, kind: 'data', type: num(raw.data.type)!, len: num(raw.data.len) });
    } else assets.push({ ...base, kind: 'other' });
  }
  return { wrapped, ver, assets };
}

/**
 * The person's aliases, best first: `buyeruid` (the id this bidder gave the exchange in a cookie
 * sync: kind `cookie`), the device's advertising id (`device.ifa`: kind `idfa`, unless limit-ad-
 * tracking is on), extended ids (`user.eids[].uids[].id`, else their OpenRTB 2.5 place
 * `user.ext.eids`: kind `eid-<source>`), and the exchange's own user id (`user.id`: kind
 * `exchange`). Blank and all-zero ids are ignored.
 */
function identity(user: Obj | undefined, device: Obj | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  addAlias(out, 'cookie', stringAt(user?.buyeruid, 'user.buyeruid'));
  const lmt = numberAt(device?.lmt, 'device.lmt');
  if (lmt !== 1) addAlias(out, 'idfa', stringAt(device?.ifa, 'device.ifa'));
  // Extended ids: their 2.6 place when set, else their 2.5 one (`user.ext.eids`, where Prebid
  // Server and most 2.5 exchanges send them).
  const top = user?.eids;
  const fromExt = top === undefined || top === null;
  const eids = fromExt ? extOf(user?.ext)?.eids : top;
  if (eids !== undefined && eids !== null) extendedIds(out, eids, fromExt);
  addAlias(out, 'exchange', stringAt(user?.id, 'user.id'));
  return out;
}

/** Adds an alias unless blank, too long, already there, or past the limit. */
function addAlias(out: Array<[string, string]>, kind: string, value: string | undefined): void {
  if (value === undefined || value.length > 256 || isBlankId(value)) return;
  if (out.length >= OPENRTB_LIMITS.aliases) return;
  if (!out.some(([k, v]) => k === kind && v === value)) out.push([kind, value]);
}

/** The aliases of extended ids, from `user.eids` or (`fromExt`) `user.ext.eids`. */
function extendedIds(out: Array<[string, string]>, eids: unknown, fromExt: boolean): void {
  const at = fromExt ? 'user.ext.eids' : 'user.eids';
  const add = (kind: string, value: string | undefined) => addAlias(out, kind, value);
  // `ext` is read leniently: a malformed entry there is skipped, not a refused request.
  const each = (list: readonly unknown[], visit: (x: unknown, i: number) => void) =>
    list.forEach((x, i) => {
      try {
        visit(x, i);
      } catch (e) {
        if (!fromExt) throw e;
      }
    });
  each(fromExt && !Array.isArray(eids) ? [] : arrayAt(eids, at), (e, i) => {
    const eid = objectAt(e, `${at}[${i}]`);
    const source = stringAt(eid?.source, `${at}[${i}].source`);
    if (source === undefined || source === '') return;
    const kind = `eid-${source.toLowerCase().replace(/[^a-z0-9-]+/g, '-')}`.slice(0, 32);
    each(arrayAt(eid?.uids, `${at}[${i}].uids`), (u, j) => {
      const uid = objectAt(u, `${at}[${i}].uids[${j}]`);
      add(kind, stringAt(uid?.id, `${at}[${i}].uids[${j}].id`));
    });
  });
}

/**
 * Tags true for this request: `src:openrtb`; `iab:<category>` of the site or app, its pages
 * and its content; `kw:<keyword>` of the content (and site or app); `pub:<publisher id>`;
 * `site:<domain>` or `app:<bundle>`; and apart, as they are the person's, `seg:<provider>:<segment
 * id>` of `user.data`.
 */
function contextTags(
  inventory: Obj | undefined,
  where: 'site' | 'app',
  user: Obj | undefined,
): { context: string[]; user: string[] } {
  const t: Tags = { context: ['src:openrtb'], user: [], seen: null };
  if (inventory !== undefined) {
    categories(t, inventory.cat, where, '.cat');
    categories(t, inventory.sectioncat, where, '.sectioncat');
    categories(t, inventory.pagecat, where, '.pagecat');
    keywords(t, inventory);
    const publisher = objectAt(inventory.publisher, where, '.publisher');
    const pub = stringAt(publisher?.id, where, '.publisher.id');
    if (pub !== undefined && pub !== '') addTag(t, `pub:${pub}`, t.context);
    const name =
      where === 'site' ? stringAt(inventory.domain, 'site.domain') : stringAt(inventory.bundle, 'app.bundle');
    if (name !== undefined && name !== '') addTag(t, `${where}:${name.toLowerCase()}`, t.context);
    const content = objectAt(inventory.content, where, '.content');
    if (content !== undefined) {
      categories(t, content.cat, where, '.content.cat');
      keywords(t, content);
    }
  }
  const data = user?.data;
  if (data !== undefined && data !== null) segments(t, data);
  return { context: t.context, user: t.user };
}

/** `seg:<provider>:<segment id>` of each segment of `user.data`, the person's tags. */
function segments(t: Tags, list: unknown): void {
  const data = arrayAt(list, 'user.data');
  for (let i = 0; i < data.length; i++) {
    const d = objectAt(data[i], `user.data[${i}]`);
    const provider = stringAt(d?.id, `user.data[${i}].id`) ?? stringAt(d?.name, `user.data[${i}].name`);
    if (provider === undefined || provider === '') continue;
    const segs = arrayAt(d?.segment, `user.data[${i}].segment`);
    for (let j = 0; j < segs.length; j++) {
      const seg = objectAt(segs[j], `user.data[${i}].segment[${j}]`);
      const sid = stringAt(seg?.id, `user.data[${i}].segment[${j}].id`);
      if (sid !== undefined && sid !== '') addTag(t, `seg:${provider}:${sid}`, t.user);
    }
  }
}

/**
 * The tags of a request being read. Lists, searched while short: a request has a handful of tags,
 * and a set costs more to make than a few comparisons (the load run's request checked in 2.1 µs,
 * against 2.5 with two sets). Past a few, a set of what each list holds keeps this linear.
 */
interface Tags {
  context: string[];
  user: string[];
  seen: { context: Set<string>; user: Set<string> } | null;
}

function addTag(t: Tags, tag: string, to: string[]): void {
  const { context, user } = t;
  if (tag.length > OPENRTB_LIMITS.tagLength || context.length + user.length >= OPENRTB_LIMITS.tags) return;
  if (t.seen === null) {
    if (to.includes(tag)) return;
    if (context.length + user.length >= 16) t.seen = { context: new Set(context), user: new Set(user) };
  } else if ((to === context ? t.seen.context : t.seen.user).has(tag)) return;
  to.push(tag);
  if (t.seen !== null) (to === context ? t.seen.context : t.seen.user).add(tag);
}

function keyword(t: Tags, k: unknown): void {
  if (typeof k !== 'string') return;
  const w = k.trim().toLowerCase();
  if (w !== '') addTag(t, `kw:${w}`, t.context);
}

/** `keywords` (a comma-separated string, or a list), `kwarray` and `keyword` of an object. */
function keywords(t: Tags, o: Obj): void {
  const kw = o.keywords;
  if (typeof kw === 'string') for (const k of kw.split(',')) keyword(t, k);
  else if (Array.isArray(kw)) for (const k of kw) keyword(t, k);
  if (Array.isArray(o.kwarray)) for (const k of o.kwarray) keyword(t, k);
  if (Array.isArray(o.keyword)) for (const k of o.keyword) keyword(t, k);
}

function categories(t: Tags, v: unknown, where: string, field: string): void {
  if (v === undefined || v === null) return; // most are absent: no iterator made for nothing
  for (const c of stringsAt(v, where, field)) addTag(t, `iab:${c}`, t.context);
}
