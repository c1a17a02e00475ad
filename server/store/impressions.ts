/**
 * Frequency counters: the impression times of one campaign as both stores keep them, and how an
 * impression is added to them.
 *
 * Counter times: the impression times (epoch ms) of one campaign, ascending, each a big-endian
 * IEEE-754 double (8 bytes), concatenated. Lua in Redis reads and writes them with
 * `struct.unpack('>d')` / `struct.pack('>d')` (see RECORD_IMPRESSION_LUA in lua.ts).
 *
 * Decoding never throws: bytes that are not packed times decode to null, and the caller counts
 * them.
 */

const TIME_BYTES = 8;

/** Packed impression times (ascending epoch ms). */
export function encodeTimes(times: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(times.length * TIME_BYTES);
  for (let i = 0; i < times.length; i++) buf.writeDoubleBE(times[i]!, i * TIME_BYTES);
  return buf;
}

/** The times in packed bytes; null when the bytes cannot be packed times. */
export function decodeTimes(bytes: Uint8Array): number[] | null {
  if (bytes.length % TIME_BYTES !== 0) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length / TIME_BYTES;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t = view.getFloat64(i * TIME_BYTES, false);
    if (!Number.isFinite(t)) return null;
    out[i] = t;
  }
  return out;
}

/**
 * The times of one campaign after one more impression at `at`: ascending, at most `keep` of the
 * most recent, and none older than `ttlMs` before the newest. RECORD_IMPRESSION_LUA (lua.ts) does exactly
 * the same in Redis.
 */
export function appendImpression(
  times: readonly number[],
  at: number,
  keep: number,
  ttlMs: number,
): number[] {
  const all = times.slice();
  // Insert in order (times are usually appended in order, so scan from the end).
  let i = all.length;
  while (i > 0 && all[i - 1]! > at) i--;
  all.splice(i, 0, at);
  const newest = all[all.length - 1]!;
  const floor = newest - ttlMs;
  let from = Math.max(0, all.length - Math.max(1, keep));
  while (from < all.length && all[from]! < floor) from++;
  return from === 0 ? all : all.slice(from);
}

/** Clamps the arguments of recordImpression to what the stores accept. */
export function impressionLimits(keep: number, ttlMs: number): { keep: number; ttlMs: number } {
  return {
    keep: Number.isFinite(keep) ? Math.max(1, Math.floor(keep)) : 1,
    ttlMs: Number.isFinite(ttlMs) ? Math.max(1, Math.ceil(ttlMs)) : 1,
  };
}

/** Sets one campaign's times on a counters object (safe for any campaign id). */
export function setCounter(out: Record<string, number[]>, campaign: string, times: number[]): void {
  if (campaign === '__proto__')
    Object.defineProperty(out, campaign, { value: times, enumerable: true, writable: true });
  else out[campaign] = times;
}
