/**
 * What a bid carries so that it renders, per medium: VAST for video (the creative's own, or a
 * VAST 3.0 InLine document built around its media file), a Native 1.2 response for native (the
 * request's assets answered from the creative's), and whether the imp allows the creative at all.
 * Knows nothing of HTTP; the bidder decides which medium a bid is for.
 */
import type { CompiledCampaign, CompiledCreative } from '../../rules/compile.js';
import type { NativeAsset, NativeSpec, VideoSpec } from './request.js';

/** VAST protocols (OpenRTB list: Protocols) a player may ask for, by VAST major version. */
const VAST_PROTOCOLS: Readonly<Record<string, readonly number[]>> = {
  '2': [2, 5],
  '3': [3, 6],
  '4': [7, 8, 11, 12, 13, 14],
};
/** The built document is VAST 3.0; players of VAST 4.x (7, 8, 11-14) read it too. */
const BUILT_VAST_PROTOCOLS: readonly number[] = [3, 6, 7, 8, 11, 12, 13, 14];

/** Whether a video imp allows the creative: its media type, its duration and its VAST version. */
export function videoFits(spec: VideoSpec, cr: CompiledCreative): boolean {
  const video = cr.video;
  if (video === null) return false;
  if (spec.mimes.length > 0 && !spec.mimes.includes(video.mime)) return false;
  if (spec.minduration !== undefined && video.duration < spec.minduration) return false;
  if (spec.maxduration !== undefined && spec.maxduration > 0 && video.duration > spec.maxduration)
    return false;
  if (spec.rqddurs.length > 0 && !spec.rqddurs.includes(video.duration)) return false;
  if (spec.protocols.length === 0) return true;
  const version = cr.vast === null ? null : /<VAST[^>]*\bversion\s*=\s*["'](\d)/.exec(cr.vast)?.[1];
  const accepted = version === null ? BUILT_VAST_PROTOCOLS : (VAST_PROTOCOLS[version ?? ''] ?? []);
  return spec.protocols.some((p) => accepted.includes(p));
}

/**
 * The VAST of a video bid: the creative's own, or VAST 3.0 InLine around its media file, with the
 * impression reported to `impressionUrl` (the bid's billing notice, counted once). VAST 3.0 wants
 * a media file's size: the creative's, else the player's, else 640x360.
 */
export function vastMarkup(
  c: CompiledCampaign,
  cr: CompiledCreative,
  impressionUrl: string,
  spec: VideoSpec,
): string {
  if (cr.vast !== null) return cr.vast;
  const video = cr.video!;
  const width = video.width ?? spec.w ?? 640;
  const height = video.height ?? spec.h ?? 360;
  const attrs = `delivery="progressive" type="${xml(video.mime)}" width="${width}" height="${height}"`;
  return (
    `<VAST version="3.0"><Ad id="${xml(cr.id)}"><InLine><AdSystem>Mindshare</AdSystem>` +
    `<AdTitle>${xml(`${c.brand}: ${cr.id}`)}</AdTitle><Impression>${xml(impressionUrl)}</Impression>` +
    `<Creatives><Creative id="${xml(cr.id)}"><Linear><Duration>${hms(video.duration)}</Duration>` +
    `<MediaFiles><MediaFile ${attrs}>${xml(video.url)}</MediaFile></MediaFiles></Linear></Creative></Creatives>` +
    '</InLine></Ad></VAST>'
  );
}

/** Native 1.2 image asset types (Image Asset Types): icon and main image. */
const IMG_ICON = 1;
const IMG_MAIN = 3;
/** Native data asset types: sponsored by, description, call to action. */
const DATA_TEXT: Readonly<Record<number, 'sponsored' | 'body' | 'cta'>> = {
  1: 'sponsored',
  2: 'body',
  12: 'cta',
};

/**
 * The Native response of a bid (the `adm` text): every asset of the request the creative can fill,
 * texts cut to the asset's `len`; null when a required asset cannot be filled, when the request's
 * assets could not be read, or when the creative has no native assets.
 */
export function nativeMarkup(spec: NativeSpec, cr: CompiledCreative): string | null {
  const n = cr.native;
  if (n === null || spec.assets === null) return null;
  const assets: unknown[] = [];
  for (const a of spec.assets) {
    const filled = fill(a, n);
    if (filled !== null) assets.push({ id: a.id, ...filled });
    else if (a.required) return null;
  }
  const response = { ver: spec.ver, assets, link: { url: n.clickUrl } };
  return JSON.stringify(spec.wrapped ? { native: response } : response);
}

function fill(a: NativeAsset, n: NonNullable<CompiledCreative['native']>): Record<string, unknown> | null {
  switch (a.kind) {
    case 'title':
      return { title: { text: cut(n.title, a.len) } };
    case 'img': {
      const img =
        a.type === IMG_ICON ? n.icon : a.type === IMG_MAIN || a.type === undefined ? n.image : undefined;
      if (img === undefined) return null;
      if ((a.wmin !== undefined && img.w < a.wmin) || (a.hmin !== undefined && img.h < a.hmin)) return null;
      return { img: { url: img.url, w: img.w, h: img.h } };
    }
    case 'data': {
      const field = DATA_TEXT[a.type];
      const text = field === undefined ? undefined : n[field];
      return text === undefined ? null : { data: { value: cut(text, a.len) } };
    }
    default:
      return null;
  }
}

function cut(text: string, len: number | undefined): string {
  return len !== undefined && len > 0 && text.length > len ? text.slice(0, len) : text;
}

function hms(seconds: number): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(Math.floor(seconds / 3600))}:${two(Math.floor((seconds % 3600) / 60))}:${two(seconds % 60)}`;
}

function xml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
