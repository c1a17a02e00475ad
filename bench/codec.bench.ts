/**
 * Profile encoding: the stored codec (server/store/codec.ts, msgpackr, positional) against
 * JSON.stringify / JSON.parse, on demo profiles (20-40 tags, stages, CLV, attributes, channels,
 * active hours), with the bytes each takes per profile. Prints a table and writes the figures to
 * bench/results/codec-<date>.json and codec-latest.json. Run with `npm run bench:codec`.
 */
import { do_not_optimize } from 'mitata';
import { demoProfile } from '../server/demo/profiles.js';
import { decodeProfile, encodeProfile } from '../server/store/codec.js';
import { bench, HEAD, type Row, writeResults } from './report.js';

const POOL = 256;

async function main(): Promise<void> {
  const people = Array.from({ length: POOL }, (_, i) => demoProfile(i + 2_000));
  const packed = people.map(encodeProfile);
  const json = people.map((p) => JSON.stringify(p));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sizes = {
    tagsPerProfile: mean(people.map((p) => p.tags.length)),
    msgpackrBytes: mean(packed.map((b) => b.length)),
    jsonBytes: mean(json.map((s) => Buffer.byteLength(s))),
    tagBytes: mean(people.map((p) => p.tags.reduce((a, t) => a + Buffer.byteLength(t), 0))),
  };
  for (let i = 0; i < POOL; i++) {
    if (JSON.stringify(decodeProfile(packed[i]!)) !== json[i])
      throw new Error(`codec round trip differs at ${i}`);
  }
  console.log(
    `${POOL} demo profiles, ${sizes.tagsPerProfile.toFixed(1)} tags each on average (${sizes.tagBytes.toFixed(0)} bytes of tag text)`,
  );
  console.log(
    `bytes per profile: msgpackr ${sizes.msgpackrBytes.toFixed(0)}, JSON ${sizes.jsonBytes.toFixed(0)} (${(sizes.msgpackrBytes / sizes.jsonBytes).toFixed(2)}x)\n`,
  );
  console.log(HEAD);
  const rows: Row[] = [];
  let k = 0;
  rows.push(await bench('encode: msgpackr codec', () => do_not_optimize(encodeProfile(people[k++ & 255]!))));
  rows.push(await bench('encode: JSON.stringify', () => do_not_optimize(JSON.stringify(people[k++ & 255]!))));
  rows.push(await bench('decode: msgpackr codec', () => do_not_optimize(decodeProfile(packed[k++ & 255]!))));
  rows.push(await bench('decode: JSON.parse', () => do_not_optimize(JSON.parse(json[k++ & 255]!))));
  const ratios = {
    'JSON.stringify / encode': rows[1]!.medianNs / rows[0]!.medianNs,
    'JSON.parse / decode': rows[3]!.medianNs / rows[2]!.medianNs,
    'msgpackr bytes / JSON bytes': sizes.msgpackrBytes / sizes.jsonBytes,
  };
  console.log('\nratios (medians)');
  for (const [name, r] of Object.entries(ratios))
    console.log(`  ${name.padEnd(40)}${r.toFixed(2).padStart(8)}`);
  writeResults('codec', { workload: { people: POOL }, sizes, results: rows, ratios });
}

await main();
