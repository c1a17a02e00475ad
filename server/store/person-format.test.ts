import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../rules/types.js';
import { demoProfile } from '../demo/profiles.js';
import { splitStages } from './person.js';
import {
  bodyStart,
  decodePerson,
  encodeBody,
  encodeStages,
  MissingStrings,
  personValue,
  type StringIds,
} from './person-format.js';
import { encodeProfile } from './profile-format.js';

/** A dictionary in memory, handing out ids in the order strings are first met. */
class MemoryDictionary implements StringIds {
  readonly ids = new Map<string, number>();
  readonly names: string[] = [];
  idOf(name: string): number | undefined {
    return this.ids.get(name);
  }
  add(name: string): void {
    if (this.ids.has(name)) return;
    this.ids.set(name, this.names.length);
    this.names.push(name);
  }
}

/** A whole value as the Redis store writes it (stages kept from the profile). */
function encodeValue(profile: Profile, dict: MemoryDictionary, pid = profile.id): Buffer {
  for (let attempt = 0; attempt < 2; attempt++) {
    const missing = new Set<string>();
    const { blob, stages } = splitStages(profile);
    const value = personValue(
      encodeStages(stages ?? [], dict, missing),
      encodeBody(blob, pid, dict, missing),
    );
    if (missing.size === 0) return value;
    for (const name of missing) dict.add(name);
  }
  throw new Error('strings still missing');
}

const anyNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map((n) => n / 100),
  fc.constantFrom(
    0,
    -0,
    2 ** 50,
    -(2 ** 50),
    2 ** 50 + 1,
    2 ** 53 - 1,
    -(2 ** 53 - 1),
    1e21,
    5e-324,
    0.1 + 0.2,
  ),
);
const word = fc.oneof(
  fc.string(),
  fc.constantFrom('circle:business', 'scene:通勤', '__proto__', 'constructor', ''),
);
const hour = fc.oneof(fc.integer({ min: 0, max: 23 }), anyNumber);
const fullArb: fc.Arbitrary<Profile> = fc
  .record(
    {
      id: fc.string({ minLength: 1 }),
      tags: fc.oneof(
        fc.array(word, { maxLength: 40 }),
        fc
          .uniqueArray(fc.integer({ min: 0, max: 300 }), { maxLength: 60 })
          .map((ns) => ns.map((n) => `t${n}`)),
      ),
      stages: fc.dictionary(word, word),
      clv: fc.dictionary(word, anyNumber),
      attrs: fc.dictionary(word, fc.oneof(word, fc.boolean(), anyNumber)),
      channels: fc.oneof(
        fc.record(
          {
            display: anyNumber,
            video: fc.integer({ min: 0, max: 100 }).map((n) => n / 100),
            app_push: fc.double({ min: 0, max: 1, noNaN: true }),
            sms: fc.nat(),
          },
          { requiredKeys: [] },
        ),
        fc.dictionary(word, anyNumber),
      ),
      activeHours: fc.oneof(
        fc
          .uniqueArray(fc.integer({ min: 0, max: 23 }), { maxLength: 24 })
          .map((h) => h.sort((a, b) => a - b)),
        fc.array(hour, { maxLength: 10 }),
      ),
      timezone: word,
      updatedAt: fc.oneof(fc.integer({ min: 0, max: 4_102_444_800_000 }), anyNumber),
      nickname: fc.string(),
      // (MessagePack, which keeps unknown fields, turns a `__proto__` key into `__proto_`, as ever.)
      score: fc.dictionary(
        fc.string().filter((k) => k !== '__proto__'),
        fc.oneof(fc.string(), fc.integer(), fc.boolean()),
      ),
    },
    { requiredKeys: ['id', 'tags'] },
  )
  .map((p) => p as Profile);

describe('person codec (format 2)', () => {
  it('round-trips any profile exactly, with the dictionary it was written with', () => {
    const dict = new MemoryDictionary();
    fc.assert(
      fc.property(fullArb, fc.boolean(), (p, samePid) => {
        const pid = samePid ? p.id : `${p.id}-other`;
        const back = decodePerson(encodeValue(p, dict, pid), pid, dict.names);
        const expected = Object.keys(p.stages ?? {}).length === 0 ? withoutStages(p) : p;
        // toEqual tells -0 from 0.
        expect(back).toEqual(expected);
        // Same keys in the same order (JSON answers keep the order a profile was written in).
        expect(JSON.stringify(back)).toBe(JSON.stringify(expected));
      }),
      { numRuns: 1000 },
    );
  });

  it('keeps every number exactly, -0 included', () => {
    const dict = new MemoryDictionary();
    const numbers = [
      0,
      -0,
      1,
      -1,
      0.19,
      -0.25,
      3200.5,
      1 / 3,
      1e21,
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      2 ** 50,
      5e-324,
    ];
    for (const n of numbers) {
      const p: Profile = {
        id: 'p',
        tags: [],
        clv: { a: n },
        attrs: { a: n, b: n, s: 'x' },
        channels: { display: n },
        activeHours: [n],
        updatedAt: n,
      };
      const back = decodePerson(encodeValue(p, dict), 'p', dict.names) as Profile;
      for (const v of [
        back.clv?.a,
        back.attrs?.a,
        back.attrs?.b,
        back.channels?.display,
        back.activeHours?.[0],
      ])
        expect(Object.is(v, n)).toBe(true);
      expect(Object.is(back.updatedAt, n)).toBe(true);
    }
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => encodeValue({ id: 'p', tags: [], clv: { a: bad } }, dict)).toThrow(TypeError);
    expect(() => encodeValue({ id: 'p', tags: [1 as unknown as string] }, dict)).toThrow(TypeError);
    expect(() => encodeValue({ id: 'p', tags: [], attrs: { a: {} as unknown as string } }, dict)).toThrow(
      TypeError,
    );
  });

  it('starts with the format and the stages, ids in the order given', () => {
    const dict = new MemoryDictionary();
    for (const s of ['vivo', 'aware', 'joymall', 'act']) dict.add(s);
    const value = encodeValue({ id: 'p-1', tags: [], stages: { joymall: 'act', vivo: 'aware' } }, dict);
    // Format 2 in the low 3 bits, 2 stages above; joymall act, vivo aware; no fields, no tags.
    expect([...value]).toEqual([2 | (2 << 3), 2, 3, 0, 1, 0, 0]);
    expect(bodyStart(value)).toBe(5);
    // 31 stages and more: the count goes on in a varint.
    for (let i = 0; i < 40; i++) dict.add(`b${i}`);
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`b${i}`, 'act']));
    const big = encodeValue({ id: 'p-1', tags: [], stages: many }, dict);
    expect([big[0], big[1]]).toEqual([2 | (31 << 3), 9]);
    expect(bodyStart(big)).toBe(2 + 80);
    expect(decodePerson(big, 'p-1', dict.names)).toEqual({ id: 'p-1', tags: [], stages: many });
    expect(bodyStart(Buffer.from([1, 2, 3]))).toBe(-1);
    expect(bodyStart(Buffer.from([2 | (2 << 3), 1]))).toBe(-1);
  });

  it('writes tags as ids in order, packed, as gaps or as a bitmap, whichever is shortest', () => {
    const dict = new MemoryDictionary();
    for (let i = 0; i < 300; i++) dict.add(`t${i}`);
    /** The form of the tags (the low bits of the byte after the flags) and the body's length. */
    const written = (tags: string[]) => {
      const body = encodeBody({ id: 'p', tags }, 'p', dict, new Set());
      return { form: body[1]! & 3, width: body[1]! >> 2, bytes: body.length };
    };
    const dense = Array.from({ length: 40 }, (_, i) => `t${i}`);
    // 40 ids in a row: a bitmap of 5 bytes after the first byte (0).
    expect(written(dense)).toEqual({ form: 2, width: 0, bytes: 2 + 1 + 5 });
    // The same out of order: 6 bits each (39 < 63).
    expect(written([...dense].reverse())).toEqual({ form: 3, width: 6, bytes: 2 + 30 });
    // Ascending but spread: the first id, then gaps of 14 in a byte each.
    const spread = Array.from({ length: 20 }, (_, i) => `t${i * 15}`);
    expect(written(spread)).toEqual({ form: 1, width: 0, bytes: 2 + 20 });
    // One tag: its id in a varint, or in 8 bits when the varint takes two bytes.
    expect(written(['t5'])).toEqual({ form: 0, width: 0, bytes: 2 + 1 });
    expect(written(['t200'])).toEqual({ form: 3, width: 8, bytes: 2 + 1 });
    for (const tags of [dense, spread, [...dense].reverse(), ['t5', 't5', 't1'], ['t0'], ['t1', 't0'], []])
      expect(decodePerson(encodeValue({ id: 'p', tags }, dict), 'p', dict.names)).toEqual({ id: 'p', tags });
    // Widths from 1 bit up, with the last byte's fill of every length.
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 299 }), { maxLength: 50 }), (ns) => {
        const tags = ns.map((n) => `t${n}`);
        expect(decodePerson(encodeValue({ id: 'p', tags }, dict), 'p', dict.names)).toEqual({
          id: 'p',
          tags,
        });
      }),
    );
  });

  it('is compact: demo people take under 70 bytes on average', () => {
    const dict = new MemoryDictionary();
    let total = 0;
    let most = 0;
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const p = demoProfile(i);
      const value = encodeValue(p, dict);
      total += value.length;
      most = Math.max(most, value.length);
      if (i % 100 === 0) expect(decodePerson(value, p.id, dict.names)).toEqual(p);
    }
    expect(total / n).toBeLessThan(70);
    expect(most).toBeLessThan(96);
    expect(dict.names.length).toBeLessThan(150);
  });

  it('names the ids it lacks, and decodes once they are known', () => {
    const dict = new MemoryDictionary();
    const p: Profile = {
      id: 'p',
      tags: ['a', 'b'],
      stages: { vivo: 'aware' },
      attrs: { g: 'f' },
      timezone: 'UTC',
    };
    const value = encodeValue(p, dict);
    const partial: (string | undefined)[] = [...dict.names];
    partial[1] = undefined;
    partial[4] = undefined;
    const out = decodePerson(value, 'p', partial);
    expect(out).toBeInstanceOf(MissingStrings);
    expect([...new Set((out as MissingStrings).ids)].sort()).toEqual([1, 4]);
    expect(decodePerson(value, 'p', dict.names)).toEqual(p);
  });

  it('never throws on bytes it did not write: null instead', () => {
    const dict = new MemoryDictionary();
    for (const s of ['a', 'b', 'c', 'd']) dict.add(s);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (bytes, formatted) => {
        if (formatted && bytes.length > 0) bytes[0] = 2;
        const out = decodePerson(bytes, 'p', dict.names);
        if (out !== null && !(out instanceof MissingStrings)) {
          expect(typeof out.id).toBe('string');
          expect(Array.isArray(out.tags)).toBe(true);
        }
      }),
      { numRuns: 5000 },
    );
    // A value cut before its tags is refused (the tags run to the end: a cut among them loses tags).
    const value = encodeValue(demoProfile(7), dict);
    const tagsAt =
      value.length - encodeBody({ id: 'p-7', tags: demoProfile(7).tags }, 'p-7', dict, new Set()).length + 1;
    for (let end = 0; end <= tagsAt; end++)
      expect(decodePerson(value.subarray(0, end), 'p-7', dict.names)).toBeNull();
    for (let end = tagsAt; end < value.length; end++) decodePerson(value.subarray(0, end), 'p-7', dict.names);
    // A format-1 blob is not a format-2 value.
    expect(decodePerson(encodeProfile(demoProfile(7)), 'p-7', dict.names)).toBeNull();
    expect(decodePerson(Buffer.alloc(0), 'p', dict.names)).toBeNull();
  });
});

function withoutStages(p: Profile): Profile {
  const { stages: _s, ...rest } = p;
  return rest as Profile;
}
