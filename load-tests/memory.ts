/**
 * The load run's first step: the people loaded into a private Redis, and what they take there.
 * The store layout the server uses, then the layouts it is compared with (a JSON string and a
 * Redis hash per person), the aliases and the frequency counters, each measured by INFO memory
 * before and after. Its own module, as cluster.ts is for the cluster, because it is the one step
 * that `--memory-only` runs alone and its figures feed the report's memory table and aims.
 */
import type { Redis } from 'ioredis';
import { demoAliases, demoProfile } from '../server/demo/profiles.js';
import { RedisStore } from '../server/store/redis.js';

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  const m = /used_memory:(\d+)/.exec(info);
  return Number(m?.[1] ?? 0);
}

/** Stores demo people 0 to n - 1 with putProfiles, 10,000 a call, as an import would; seconds taken. */
export async function storeDemoPeople(store: RedisStore, n: number): Promise<number> {
  const CHUNK = 10_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i += CHUNK) {
    const chunk = [];
    for (let j = i; j < Math.min(n, i + CHUNK); j++) chunk.push(demoProfile(j));
    await store.putProfiles(chunk);
  }
  return (performance.now() - t0) / 1000;
}

export interface Memory {
  people: number;
  ours: {
    bytesPerPerson: number;
    /** MEMORY USAGE of a person's key, and the length of its value (sampled) */
    profileKeyBytes: number;
    valueBytes: number;
    /** the string dictionary: strings, and MEMORY USAGE of its two hashes */
    dictionary: { strings: number; bytes: number };
  };
  json: { bytesPerPerson: number; keyBytes: number };
  hash: { people: number; bytesPerPerson: number; keyBytes: number };
  aliases: { people: number; aliasesPerPerson: number; bytesPerPerson: number; bytesPerAlias: number };
  counters: { people: number; impressionsPerPerson: number; bytesPerPerson: number };
  loadSeconds: { ours: number; json: number };
}

/** Mean MEMORY USAGE of keys. */
async function sampleUsage(redis: Redis, keys: string[]): Promise<number> {
  let total = 0;
  for (const k of keys) total += Number((await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) ?? 0);
  return total / keys.length;
}

async function meanLength(redis: Redis, keys: string[]): Promise<number> {
  let total = 0;
  for (const k of keys) total += await redis.strlen(k);
  return total / keys.length;
}

/** The same Redis, another database. */
function databaseUrl(url: string, db: number): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** A connection to another database of the store's Redis, once it is ready. */
async function openDatabase(store: RedisStore, db: number): Promise<Redis> {
  const redis = (store.client.main as Redis).duplicate({ db });
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis;
}

function hashFields(p: ReturnType<typeof demoProfile>): Record<string, string> {
  const f: Record<string, string> = { id: p.id, tags: p.tags.join(',') };
  for (const [k, v] of Object.entries(p.stages ?? {})) f[`stage:${k}`] = v;
  for (const [k, v] of Object.entries(p.clv ?? {})) f[`clv:${k}`] = String(v);
  for (const [k, v] of Object.entries(p.attrs ?? {})) f[`attr:${k}`] = String(v);
  for (const [k, v] of Object.entries(p.channels ?? {})) f[`ch:${k}`] = String(v);
  if (p.activeHours !== undefined) f.activeHours = p.activeHours.join(',');
  if (p.timezone !== undefined) f.timezone = p.timezone;
  if (p.updatedAt !== undefined) f.updatedAt = String(p.updatedAt);
  return f;
}

/**
 * Loads the people and measures what they take. Our layout goes first, into an empty database;
 * the hash-per-person baseline and the aliases go into databases of their own, so that no figure
 * carries the growth of another's key table (a table doubles when its keys pass a power of two).
 * The JSON strings stay beside our layout, where the typical stack reads them: their figure
 * carries the main table's growth from 2^20 to 2^21 buckets (about 8 bytes a person at 1M).
 */
async function loadInto(
  store: RedisStore,
  url: string,
  n: number,
  log: (s: string) => void,
): Promise<Memory> {
  await store.ping();
  const redis = store.client.main as Redis;
  const CHUNK = 10_000;
  const sampleIds = Array.from({ length: 200 }, (_, k) => Math.floor((k * n) / 200));

  const m0 = await usedMemory(redis);
  const oursS = await storeDemoPeople(store, n);
  // As a running fleet keeps it: the funnel changes gathered (every few seconds).
  await store.foldCounts();
  const m1 = await usedMemory(redis);
  log(`  ${n} profiles stored with putProfiles in ${oursS.toFixed(1)} s`);
  const profileKeys = sampleIds.map((i) => store.keys.person(`p-${i}`));
  const dictKeys = { ids: store.keys.dict, names: store.keys.dictNames };
  const ours = {
    bytesPerPerson: (m1 - m0) / n,
    profileKeyBytes: await sampleUsage(redis, profileKeys),
    valueBytes: await meanLength(redis, profileKeys),
    dictionary: {
      strings: await redis.hlen(dictKeys.ids),
      bytes: 2 * (await sampleUsage(redis, [dictKeys.ids, dictKeys.names])),
    },
  };

  const t0 = performance.now();
  for (let i = 0; i < n; i += CHUNK) {
    const pipe = redis.pipeline();
    for (let j = i; j < Math.min(n, i + CHUNK); j++) pipe.set(`json:p:${j}`, JSON.stringify(demoProfile(j)));
    await pipe.exec();
  }
  const jsonS = (performance.now() - t0) / 1000;
  const m2 = await usedMemory(redis);
  log(`  the same people as JSON strings in ${jsonS.toFixed(1)} s`);

  const hashPeople = Math.min(n, 100_000);
  const hashDb = await openDatabase(store, 1);
  for (let i = 0; i < hashPeople; i += CHUNK) {
    const pipe = hashDb.pipeline();
    for (let j = i; j < Math.min(hashPeople, i + CHUNK); j++)
      pipe.hset(`h:p:${j}`, hashFields(demoProfile(j)));
    await pipe.exec();
  }
  const m3 = await usedMemory(redis);
  const hashKeyBytes = await sampleUsage(
    hashDb,
    sampleIds.filter((i) => i < hashPeople).map((i) => `h:p:${i}`),
  );
  hashDb.disconnect();

  const aliasPeople = Math.min(n, 100_000);
  let aliasCount = 0;
  const aliasStore = new RedisStore({ url: databaseUrl(url, 2), log: () => {} });
  for (let i = 0; i < aliasPeople; i += CHUNK) {
    const links: Array<readonly [string, Record<string, string>]> = [];
    for (let j = i; j < Math.min(aliasPeople, i + CHUNK); j++) {
      const a = demoAliases(j);
      aliasCount += Object.keys(a).length;
      links.push([`p-${j}`, a]);
    }
    await aliasStore.linkManyAliases(links);
  }
  await aliasStore.close();
  const m4 = await usedMemory(redis);

  // Impressions: 3 of x90-launch and 2 of brightpad for people spread over the whole range.
  const counterPeople = Math.min(n, 20_000);
  const now = Date.now();
  for (let i = 0; i < counterPeople; i += 1_000) {
    const calls: Promise<void>[] = [];
    for (let j = i; j < Math.min(counterPeople, i + 1_000); j++) {
      const pid = `p-${Math.floor((j * n) / counterPeople)}`;
      for (let k = 0; k < 3; k++)
        calls.push(store.recordImpression(pid, 'x90-launch', now - k * 60_000, 10, 7 * 86_400_000));
      for (let k = 0; k < 2; k++)
        calls.push(store.recordImpression(pid, 'brightpad-back-to-school', now - k * 60_000, 2, 86_400_000));
    }
    await Promise.all(calls);
  }
  const m5 = await usedMemory(redis);

  return {
    people: n,
    ours,
    json: {
      bytesPerPerson: (m2 - m1) / n,
      keyBytes: await sampleUsage(
        redis,
        sampleIds.map((i) => `json:p:${i}`),
      ),
    },
    hash: { people: hashPeople, bytesPerPerson: (m3 - m2) / hashPeople, keyBytes: hashKeyBytes },
    aliases: {
      people: aliasPeople,
      aliasesPerPerson: aliasCount / aliasPeople,
      bytesPerPerson: (m4 - m3) / aliasPeople,
      bytesPerAlias: (m4 - m3) / aliasCount,
    },
    counters: { people: counterPeople, impressionsPerPerson: 5, bytesPerPerson: (m5 - m4) / counterPeople },
    loadSeconds: { ours: oursS, json: jsonS },
  };
}

/** Loads `n` people into the empty Redis at `url` and measures what they take (see loadInto). */
export async function loadPeople(url: string, n: number, log: (s: string) => void): Promise<Memory> {
  const store = new RedisStore({ url, log: () => {} });
  const memory = await loadInto(store, url, n, log);
  await store.close();
  return memory;
}
