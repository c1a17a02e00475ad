/**
 * People drawn at random from Redis (RedisStore.samplePeople). Redis has no "random person": a
 * draw is RANDOMKEY on a master picked in proportion to its keys, and counts whether or not it
 * lands on a person's key (`p:{pid}`), so that the share of draws landing on people of some kind,
 * times the keys of the store, estimates how many such people there are (a binomial proportion,
 * whatever else the database holds). RANDOMKEY picks a slot of Redis' key table at random, which
 * is close to uniform over keys (Redis' own docs say "a random key"); this is an estimate, said so.
 *
 * A store of at most EXACT_KEYS keys is scanned for people's keys instead: every person is read
 * when there are at most `n` (counts are exact), else `n` of them drawn without replacement.
 */
import type { Redis } from 'ioredis';
import { sampleOf } from './measure.js';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import type { PeopleSample, PersonRecord } from './types.js';

/** Stores with at most this many keys are read whole. */
export const EXACT_KEYS = 50_000;
/** RANDOMKEY calls per round trip to a master. */
const DRAW_BATCH = 500;
/** People's records read at once. */
const LOAD_BATCH = 500;

export async function sampleRedisPeople(
  client: RedisClient,
  keys: RedisKeys,
  load: (pid: string) => Promise<PersonRecord>,
  n: number,
  deadline: number,
  exactKeys = EXACT_KEYS,
): Promise<PeopleSample> {
  const masters = client.masters();
  const sizes = (await Promise.all(masters.map((m) => m.dbsize()))).map(Number);
  let reads = masters.length;
  const population = sizes.reduce((a, b) => a + b, 0);
  const head = `${keys.prefix}p:{`;
  const pidOf = (key: string): string | null =>
    key.startsWith(head) && key.endsWith('}') ? key.slice(head.length, -1) : null;
  const draws = new Map<string, number>();
  let drawn = 0;
  let exact = false;
  let partial = false;
  let peopleOrKeys = population;

  if (population <= exactKeys) {
    // Small enough to scan whole whatever the deadline (50,000 keys: tens of SCAN calls).
    for (const m of masters) {
      let cursor = '0';
      do {
        const [next, found] = await m.scan(cursor, 'MATCH', `${escapeGlob(head)}*`, 'COUNT', 1000);
        reads++;
        cursor = next;
        for (const key of found) {
          const pid = pidOf(key);
          if (pid !== null) draws.set(pid, 1);
        }
      } while (cursor !== '0');
    }
    peopleOrKeys = draws.size;
    exact = draws.size <= n;
    if (!exact) {
      // More people than asked for: n of them without replacement.
      const chosen = sampleOf([...draws.keys()], n);
      draws.clear();
      for (const pid of chosen) draws.set(pid, 1);
    }
    drawn = draws.size;
  } else {
    // Masters in proportion to their keys, by a cumulative table.
    const cumulative: number[] = [];
    let acc = 0;
    for (const s of sizes) cumulative.push((acc += s));
    const pick = (): Redis => {
      const r = Math.random() * acc;
      let i = 0;
      while (i < cumulative.length - 1 && r >= cumulative[i]!) i++;
      return masters[i]!;
    };
    // With few people among many keys, stop after a bounded number of draws all the same.
    const maxDraws = Math.max(10 * n, 100_000);
    while (draws.size < n && drawn < maxDraws) {
      if (performance.now() > deadline) {
        partial = true;
        break;
      }
      const byMaster = new Map<Redis, number>();
      for (let i = 0; i < DRAW_BATCH; i++) {
        const m = pick();
        byMaster.set(m, (byMaster.get(m) ?? 0) + 1);
      }
      const replies = await Promise.all(
        [...byMaster].map(([m, count]) => {
          const p = m.pipeline();
          for (let i = 0; i < count; i++) p.randomkey();
          reads += count;
          return p.exec();
        }),
      );
      for (const reply of replies) {
        for (const [err, key] of reply ?? []) {
          if (err !== null) throw err;
          drawn++;
          const pid = typeof key === 'string' ? pidOf(key) : null;
          if (pid !== null) draws.set(pid, (draws.get(pid) ?? 0) + 1);
        }
      }
    }
  }

  const people: PeopleSample['people'] = [];
  const entries = [...draws];
  for (let i = 0; i < entries.length; i += LOAD_BATCH) {
    const batch = entries.slice(i, i + LOAD_BATCH);
    const records = await Promise.all(batch.map(([pid]) => load(pid)));
    reads += batch.length;
    batch.forEach(([pid, d], j) => {
      people.push({ pid, record: records[j]!, draws: d });
    });
  }
  return {
    people,
    population: peopleOrKeys,
    populationOf: population <= exactKeys ? 'people' : 'keys',
    drawn,
    exact,
    partial,
    reads,
  };
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
