/**
 * Profile encoding: the Redis layout (server/store/person-format.ts, format 2: dictionary ids,
 * varints), the embedded store's (server/store/profile-format.ts, format 1, msgpackr, positional)
 * and JSON.stringify / JSON.parse, on demo profiles (20-40 tags, stages, CLV, attributes,
 * channels, active hours), with the bytes each takes per profile. Format 2 decodes with a
 * dictionary that knows every id (the steady state of a server). Prints a table and writes the
 * figures to bench/results/codec-<date>.json and codec-latest.json. Run with `npm run bench:codec`.
 */
import { do_not_optimize } from 'mitata';
import type { Profile } from '../rules/types.js';
import { demoProfile } from '../server/demo/profiles.js';
import { splitStages } from '../server/store/person.js';
import {
  decodePerson,
  encodeBody,
  encodeStages,
  personValue,
  type StringIds,
} from '../server/store/person-format.js';
import { decodeProfile, encodeProfile } from '../server/store/profile-format.js';
import { bench, HEAD, printRatios, type Row, writeResults } from './report.js';

const POOL = 256;

/** Ids in the order strings are first met, as the store's dictionary hands them out. */
const ids = new Map<string, number>();
const names: string[] = [];
const dict: StringIds = { idOf: (name) => ids.get(name) };

/** The value the Redis store writes for a profile (stages and body). */
function encodePerson(profile: Profile): Buffer {
  const missing = new Set<string>();
  const { blob, stages } = splitStages(profile);
  const value = personValue(
    encodeStages(stages ?? [], dict, missing),
    encodeBody(blob, profile.id, dict, missing),
  );
  if (missing.size === 0) return value;
  for (const name of missing) {
    ids.set(name, names.length);
    names.push(name);
  }
  return encodePerson(profile);
}

async function main(): Promise<void> {
  // The first 2,000 demo people fill the dictionary as a store's first writes would.
  for (let i = 0; i < 2_000; i++) encodePerson(demoProfile(i));
  const people = Array.from({ length: POOL }, (_, i) => demoProfile(i + 2_000));
  const values = people.map(encodePerson);
  const packed = people.map(encodeProfile);
  const json = people.map((p) => JSON.stringify(p));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sizes = {
    tagsPerProfile: mean(people.map((p) => p.tags.length)),
    dictionaryStrings: names.length,
    redisBytes: mean(values.map((b) => b.length)),
    msgpackrBytes: mean(packed.map((b) => b.length)),
    jsonBytes: mean(json.map((s) => Buffer.byteLength(s))),
    tagBytes: mean(people.map((p) => p.tags.reduce((a, t) => a + Buffer.byteLength(t), 0))),
  };
  for (let i = 0; i < POOL; i++) {
    // The stores keep no empty `stages` (a person without stages reads without the field).
    const { stages, ...rest } = people[i]!;
    const stored = JSON.stringify(Object.keys(stages ?? {}).length === 0 ? rest : people[i]);
    if (JSON.stringify(decodePerson(values[i]!, people[i]!.id, names)) !== stored)
      throw new Error(`format 2 round trip differs at ${i}`);
    if (JSON.stringify(decodeProfile(packed[i]!)) !== json[i])
      throw new Error(`format 1 round trip differs at ${i}`);
  }
  console.log(
    `${POOL} demo profiles, ${sizes.tagsPerProfile.toFixed(1)} tags each on average (${sizes.tagBytes.toFixed(0)} bytes of tag text); ${names.length} strings in the dictionary`,
  );
  console.log(
    `bytes per profile: Redis layout ${sizes.redisBytes.toFixed(1)}, msgpackr ${sizes.msgpackrBytes.toFixed(0)}, JSON ${sizes.jsonBytes.toFixed(0)}\n`,
  );
  console.log(HEAD);
  const rows: Row[] = [];
  let k = 0;
  const row = async (name: string, fn: () => unknown) => {
    rows.push(await bench(name, fn));
    return rows[rows.length - 1]!;
  };
  const enc2 = await row('encode: Redis layout (format 2)', () =>
    do_not_optimize(encodePerson(people[k++ & 255]!)),
  );
  const enc1 = await row('encode: msgpackr (format 1)', () =>
    do_not_optimize(encodeProfile(people[k++ & 255]!)),
  );
  const encJ = await row('encode: JSON.stringify', () => do_not_optimize(JSON.stringify(people[k++ & 255]!)));
  const dec2 = await row('decode: Redis layout (format 2)', () => {
    const i = k++ & 255;
    return do_not_optimize(decodePerson(values[i]!, people[i]!.id, names));
  });
  const dec1 = await row('decode: msgpackr (format 1)', () =>
    do_not_optimize(decodeProfile(packed[k++ & 255]!)),
  );
  const decJ = await row('decode: JSON.parse', () => do_not_optimize(JSON.parse(json[k++ & 255]!)));
  const ratios = {
    'msgpackr / Redis layout, encode': enc1.medianNs / enc2.medianNs,
    'JSON.stringify / Redis layout, encode': encJ.medianNs / enc2.medianNs,
    'msgpackr / Redis layout, decode': dec1.medianNs / dec2.medianNs,
    'JSON.parse / Redis layout, decode': decJ.medianNs / dec2.medianNs,
    'Redis layout bytes / JSON bytes': sizes.redisBytes / sizes.jsonBytes,
    'msgpackr bytes / JSON bytes': sizes.msgpackrBytes / sizes.jsonBytes,
  };
  printRatios(ratios);
  writeResults('codec', { workload: { people: POOL }, sizes, results: rows, ratios });
}

await main();
