import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../rules/types.js';
import { decodeProfile, encodeProfile } from './profile-format.js';

// -0 is stored as 0 (MessagePack has no negative zero integer); they compare the same anyway.
const num = fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (d === 0 ? 0 : d));
const scalar = fc.oneof(fc.string(), fc.boolean(), num, fc.integer());
const key = fc.string({ minLength: 1, maxLength: 12 }).filter((k) => k !== '__proto__');
const profileArb: fc.Arbitrary<Profile> = fc.record(
  {
    id: fc.string({ minLength: 1 }),
    tags: fc.array(fc.string(), { maxLength: 40 }),
    stages: fc.dictionary(key, fc.string()),
    clv: fc.dictionary(key, num),
    attrs: fc.dictionary(key, scalar),
    channels: fc.record(
      {
        display: fc.double({ min: 0, max: 1, noNaN: true }),
        sms: fc.double({ min: 0, max: 1, noNaN: true }),
      },
      { requiredKeys: [] },
    ),
    activeHours: fc.array(fc.integer({ min: 0, max: 23 }), { maxLength: 24 }),
    timezone: fc.constantFrom('Asia/Shanghai', 'UTC', 'Europe/Berlin'),
    updatedAt: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  },
  { requiredKeys: ['id', 'tags'] },
);

describe('profile codec (format 1, the embedded store)', () => {
  it('round-trips any profile', () => {
    fc.assert(
      fc.property(profileArb, (p) => {
        expect(decodeProfile(encodeProfile(p))).toEqual(p);
      }),
      { numRuns: 300 },
    );
  });

  it('is compact: no field names in the bytes', () => {
    const p: Profile = { id: 'p-1', tags: ['circle:business'], activeHours: [20], timezone: 'Asia/Shanghai' };
    const text = encodeProfile(p).toString('latin1');
    expect(text).not.toContain('activeHours');
    expect(text).not.toContain('timezone');
    expect(text).not.toContain('tags');
  });

  it('keeps fields it does not know', () => {
    const p = { id: 'p-1', tags: [], nickname: 'Li', score: { a: 1 } } as unknown as Profile;
    expect(decodeProfile(encodeProfile(p))).toEqual(p);
  });

  it('never throws on bytes it did not write: null instead', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const out = decodeProfile(bytes);
        if (out !== null) {
          expect(typeof out.id).toBe('string');
          expect(Array.isArray(out.tags)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
    for (const bad of [
      Buffer.alloc(0),
      Buffer.from('hello'),
      Buffer.from([0xc1]),
      Buffer.from(JSON.stringify({ id: 'x', tags: [] })),
      encodeProfile({ id: 'x', tags: [] }).subarray(0, 5),
    ]) {
      expect(decodeProfile(bad)).toBeNull();
    }
    // Right layout, wrong types.
    const wrong = encodeProfile({ id: 'x', tags: [] });
    wrong[wrong.length - 1] = 0x01; // `extra` becomes a number
    expect(decodeProfile(wrong)).toBeNull();
  });
});
