/**
 * The in-process cache's hit path (CachedStore.cachedPerson / cachedAlias: what every cached decision
 * does before evaluating), with its misses for scale, over an EmbeddedStore holding 1,000 demo
 * people and their aliases. Prints a table and writes the figures to
 * bench/results/cache-<date>.json and cache-latest.json. Run with `npm run bench:cache`.
 */
import { do_not_optimize } from 'mitata';
import { demoAliases, demoProfile } from '../server/demo/profiles.js';
import { CachedStore } from '../server/store/cached.js';
import { EmbeddedStore } from '../server/store/embedded.js';
import { bench, HEAD, type Row, writeResults } from './report.js';

const PEOPLE = 1_000;
const POOL = 256;

async function main(): Promise<void> {
  const backing = new EmbeddedStore();
  const ids: string[] = [];
  const aliases: Array<[string, string]> = [];
  for (let i = 0; i < PEOPLE; i++) {
    const p = demoProfile(i);
    await backing.putProfile(p);
    const a = demoAliases(i);
    await backing.linkAliases(p.id, a);
    if (i < POOL) {
      ids.push(p.id);
      const first = Object.entries(a)[0]!;
      aliases.push([first[0], first[1]]);
    }
  }
  // A TTL far longer than the run: every look-up below is a hit.
  const cache = new CachedStore(backing, { maxPeople: 100_000, maxAliases: 100_000, ttlMs: 3_600_000 });
  for (let i = 0; i < POOL; i++) {
    await cache.loadPerson(ids[i]!);
    await cache.resolveAlias(aliases[i]![0], aliases[i]![1]);
  }
  console.log(`${PEOPLE} people in an EmbeddedStore, ${POOL} of them cached with one alias each\n`);
  console.log(HEAD);
  const rows: Row[] = [];
  let k = 0;
  rows.push(await bench('cachedPerson (hit)', () => do_not_optimize(cache.cachedPerson(ids[k++ & 255]!))));
  rows.push(
    await bench('cachedAlias (hit)', () => {
      const a = aliases[k++ & 255]!;
      return do_not_optimize(cache.cachedAlias(a[0], a[1]));
    }),
  );
  rows.push(
    await bench('cachedPerson (not cached)', () => do_not_optimize(cache.cachedPerson(`x-${k++ & 255}`))),
  );
  rows.push(
    await bench('loadPerson (hit, through a promise)', () => cache.loadPerson(ids[k++ & 255]!), 20_000),
  );
  rows.push(
    await bench('EmbeddedStore.loadPerson (no cache: decode)', () => backing.loadPerson(ids[k++ & 255]!)),
  );
  const stats = cache.stats();
  console.log(`\ncache: ${JSON.stringify(stats.people)} people, ${JSON.stringify(stats.aliases)} aliases`);
  writeResults('cache', { workload: { people: PEOPLE, cached: POOL }, results: rows, cacheStats: stats });
}

await main();
