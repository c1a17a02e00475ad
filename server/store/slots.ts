/**
 * Redis Cluster hash slots. A key lives in slot CRC16(hash tag) mod 16384, where the hash tag is
 * what stands between the first `{` and the next `}` (the whole key when there is none or it is
 * empty). Keys a script touches must share one slot, so a person's keys share the `{pid}` tag.
 *
 * Counts that a person's script changes (funnel stages and moves) cannot live in one global key:
 * they are kept per slot, in keys whose hash tag is a short string chosen so that it falls in
 * that slot (`slotTag`), and gathered when read (redis.ts). The tags are found by walking the
 * strings `0`, `1`, …, `z`, `00`, … in order and keeping the first that lands in each slot, so
 * every process computes the same table (about 20 ms, once per process).
 */
import calculateSlot from 'cluster-key-slot';

export const SLOTS = 16384;

/** The hash slot of a key. */
export function slotOf(key: string): number {
  return calculateSlot(key);
}

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
let tags: string[] | null = null;

/** A short string whose hash slot is `slot`: `{tag}` in a key puts the key in that slot. */
export function slotTag(slot: number): string {
  tags ??= buildTags();
  const tag = tags[slot];
  if (tag === undefined) throw new RangeError(`no hash slot ${slot}`);
  return tag;
}

function buildTags(): string[] {
  const out = new Array<string>(SLOTS);
  let found = 0;
  for (let len = 1; found < SLOTS; len++) {
    if (len > 6) throw new Error('could not find a tag for every hash slot');
    const digits = new Array<number>(len).fill(0);
    for (;;) {
      let s = '';
      for (const d of digits) s += ALPHABET[d];
      const slot = calculateSlot(s);
      if (out[slot] === undefined) {
        out[slot] = s;
        if (++found === SLOTS) return out;
      }
      let i = len - 1;
      while (i >= 0 && digits[i] === ALPHABET.length - 1) digits[i--] = 0;
      if (i < 0) break;
      digits[i]!++;
    }
  }
  return out;
}
