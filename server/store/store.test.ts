/**
 * Every store against the one contract: the embedded store, the Redis store on a real
 * redis-server and on a real Redis Cluster (3 masters, a replica each) started for this file,
 * and the cache in front of each.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Profile } from '../../rules/types.js';
import { type RedisHandle, startRedis } from '../../test/redis-server.js';
import { clusterTarget, type RedisTarget, singleTarget } from '../../test/redis-targets.js';
import { demoProfile } from '../demo/profiles.js';
import { EmbeddedBus } from './bus.js';
import { CachedStore } from './cached.js';
import { describeStoreContract, type StoreFixture } from './contract.js';
import { EmbeddedStore } from './embedded.js';
import { encodeProfile } from './profile-format.js';
import { RedisStore, type RedisStoreOptions, StoreDataLostError } from './redis.js';
import { busChannel, RedisBus } from './redis-bus.js';
import { NotReplicatedError } from './redis-client.js';
import { RedisRuleSets } from './redis-rulesets.js';
import { EmbeddedRuleSets } from './rulesets.js';
import { slotOf, slotTag } from './slots.js';
import type { Bus, BusMessage, EventWrite } from './types.js';

const quiet = () => {};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => Promise<void> } {
  let t = start;
  return {
    now: () => t,
    advance: async (ms) => {
      t += ms;
    },
  };
}

/** Keys on the server whose name or string value mentions `text`. */
async function keysMentioning(target: RedisTarget, text: string): Promise<string[]> {
  const found: string[] = [];
  const keys = await target.keys('*');
  const values = await Promise.all(keys.map((key) => target.admin.getBuffer(key).catch(() => null)));
  keys.forEach((key, i) => {
    // Other types answer WRONGTYPE to GET: only their names matter here.
    const value = values[i];
    const text2 = Buffer.isBuffer(value) ? value.toString('latin1') : '';
    if (key.includes(text) || text2.includes(text)) found.push(key);
  });
  return found;
}

const number = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.integer({ min: -100_000, max: 100_000 }).map((n) => n / 100),
);
const text = fc.oneof(fc.string(), fc.constantFrom('circle:business', 'scene:通勤', '__proto__', ''));
const randomProfile: fc.Arbitrary<Profile> = fc
  .record(
    {
      id: fc.constant(''),
      tags: fc.array(text, { maxLength: 30 }),
      stages: fc.dictionary(text, text, { maxKeys: 4 }),
      clv: fc.dictionary(text, number, { maxKeys: 4 }),
      attrs: fc.dictionary(text, fc.oneof(text, fc.boolean(), number), { maxKeys: 6 }),
      channels: fc.record(
        { display: number, sms: fc.integer({ min: 0, max: 100 }).map((n) => n / 100) },
        { requiredKeys: [] },
      ),
      activeHours: fc.array(fc.integer({ min: 0, max: 23 }), { maxLength: 6 }),
      timezone: text,
      updatedAt: fc.oneof(fc.integer({ min: 0, max: 4_102_444_800_000 }), number),
      nickname: fc.string(),
    },
    { requiredKeys: ['id', 'tags'] },
  )
  .map((p) => p as Profile);

function withoutStages(p: Profile): Profile {
  const { stages: _s, ...rest } = p;
  return rest as Profile;
}

let prefixSerial = 0;
const freshPrefix = () => `t${process.pid}x${++prefixSerial}:`;

/** Rule sets and buses of an embedded fleet: one hub, a handle per instance. */
function embeddedFleet(): Pick<StoreFixture, 'ruleSets' | 'bus' | 'makeBus'> {
  const hub = new EmbeddedBus({ log: quiet });
  const bus = hub.attach();
  return { bus, ruleSets: new EmbeddedRuleSets({ bus }), makeBus: async () => hub.attach() };
}

describeStoreContract('EmbeddedStore', (): StoreFixture => {
  const clock = fakeClock();
  return { store: new EmbeddedStore({ now: clock.now }), advance: clock.advance, ...embeddedFleet() };
});

describeStoreContract('CachedStore over EmbeddedStore', (): StoreFixture => {
  const clock = fakeClock();
  const backing = new EmbeddedStore({ now: clock.now });
  return {
    store: new CachedStore(backing, { maxPeople: 1000, maxAliases: 1000, ttlMs: 100, now: clock.now }),
    advance: clock.advance,
    ...embeddedFleet(),
  };
});

/** Every Redis deployment the store runs on: the contract and the store's own tests on each. */
for (const [name, startTarget] of [
  ['on a real redis-server', singleTarget],
  ['on a real Redis Cluster', clusterTarget],
] as const) {
  describe(name, () => {
    let target: RedisTarget;
    beforeAll(async () => {
      target = await startTarget();
    }, 60_000);
    afterAll(async () => {
      await target?.stop();
    });

    const open = (keyPrefix: string, more: Partial<RedisStoreOptions> = {}) =>
      new RedisStore({ topology: target.topology, keyPrefix, log: quiet, ...more } as RedisStoreOptions);
    /**
     * The tag of the keys of a person's slot (its marker, its pending counts): the slot's own on
     * a cluster, the global one on a single Redis.
     */
    const tagOf = (pid: string) => (target.topology.kind === 'cluster' ? slotTag(slotOf(`{${pid}}`)) : 'ms');
    /** Every key under a prefix. */
    const keysUnder = async (prefix: string) => (await target.keys(`${prefix}*`)).sort();

    /** A Redis store with its bus and rule sets; other instances' buses open their own store. */
    function redisFixture(prefix: string, cached: boolean): StoreFixture {
      const backing = open(prefix);
      const bus = new RedisBus({ store: backing, log: quiet });
      const others: Bus[] = [];
      return {
        store: cached ? new CachedStore(backing, { maxPeople: 1000, maxAliases: 1000, ttlMs: 100 }) : backing,
        bus,
        ruleSets: new RedisRuleSets({ store: backing, bus }),
        makeBus: async () => {
          const other = new RedisBus({
            redis: { topology: target.topology, keyPrefix: prefix, log: quiet },
            log: quiet,
          });
          others.push(other);
          return other;
        },
        publishRaw: async (text) => {
          await target.publishRaw(busChannel(prefix), text);
        },
        advance: sleep,
        keysMentioning: (text) => keysMentioning(target, text),
        dispose: async () => {
          await bus.close();
          for (const other of others) await other.close();
          await backing.close();
        },
      };
    }

    describeStoreContract('RedisStore', () => redisFixture(freshPrefix(), false));
    describeStoreContract('RedisStore without a key prefix', () => redisFixture('', false));
    describeStoreContract('CachedStore over RedisStore', () => redisFixture(freshPrefix(), true));

    it('lays keys out as documented: one hash slot per script, under the prefix', async () => {
      const store = open('layout:');
      try {
        await store.putProfile({ id: 'p-7', tags: ['a'], stages: { vivo: 'aware' } });
        await store.recordImpression('p-7', 'x90-launch', 1_795_000_000_000, 3, 60_000);
        await store.linkAliases('p-7', { idfa: 'ABC', cookie: 'c1' });
        await store.applyEvents([
          {
            eventId: 'e-1',
            pid: 'p-7',
            at: Date.parse('2026-11-24T10:00:00Z'),
            stage: { brand: 'vivo', defaultStage: 'aware', next: { aware: 'appeal' } },
          },
        ]);
        const t = tagOf('p-7');
        const always = [
          'layout:a:{cookie:c1}',
          'layout:a:{idfa:abc}',
          'layout:ax:{p-7}',
          'layout:dict:r:{ms}',
          'layout:dict:{ms}',
          'layout:ev:{p-7}',
          'layout:fc:{p-7}',
          'layout:meta:{ms}',
          'layout:p:{p-7}',
          `layout:sl:{${t}}`,
        ];
        // Before the counts are gathered, the stage changes wait in the person's slot.
        expect(await keysUnder('layout:')).toEqual([...always, `layout:fq:{${t}}`].sort());
        const ids = await target.admin.hgetall('layout:dict:{ms}');
        expect(Object.keys(ids).sort()).toEqual(['a', 'appeal', 'aware', 'vivo']);
        expect(await target.admin.hgetall(`layout:fq:{${t}}`)).toEqual({
          [`s|${ids.vivo}|${ids.appeal}`]: '1',
          [`m|${ids.vivo}|2026-11-24|${ids.aware}|${ids.appeal}`]: '1',
        });
        expect(await store.funnel('vivo', '2026-11-24', '2026-11-24')).toEqual({
          brand: 'vivo',
          stages: { appeal: 1 },
          moves: { '2026-11-24': { 'aware>appeal': 1 } },
        });
        // Gathered: the counts by name in the global slot, the applied generations, the lease.
        expect(await keysUnder('layout:')).toEqual(
          [...always, 'layout:fm:{ms}:vivo:2026-11-24', 'layout:fn:{ms}:vivo', 'layout:fold:{ms}'].sort(),
        );
        // The dictionary: string -> id and id -> string, and the next id; the identity beside it.
        const names = await target.admin.hgetall('layout:dict:r:{ms}');
        expect(names.n).toBe('4');
        for (const [name, id] of Object.entries(ids)) expect(names[id]).toBe(name);
        const meta = await target.admin.hgetall('layout:meta:{ms}');
        expect(meta.epoch).toBe(store.epoch);
        expect(meta.epoch).toMatch(/^[0-9a-z]+\.[0-9a-f]{12}$/);
        expect(Number(meta.createdAt)).toBeGreaterThan(Date.now() - 60_000);
        // The slot's marker names the dictionary its ids come from.
        expect(await target.admin.hget(`layout:sl:{${t}}`, 'epoch')).toBe(store.epoch);
        // The person: format 2 and one stage (vivo appeal), then no fields but tags: ['a'], as ids.
        const value = (await target.admin.getBuffer('layout:p:{p-7}'))!;
        expect([...value]).toEqual([2 | (1 << 3), Number(ids.vivo), Number(ids.appeal), 0, 0, Number(ids.a)]);
        expect(await store.getProfile('p-7')).toEqual({ id: 'p-7', tags: ['a'], stages: { vivo: 'appeal' } });
        expect(await target.admin.hgetall('layout:fn:{ms}:vivo')).toEqual({ appeal: '1' });
        expect(await target.admin.hgetall('layout:fm:{ms}:vivo:2026-11-24')).toEqual({ 'aware>appeal': '1' });
        const fmTtl = await target.admin.pttl('layout:fm:{ms}:vivo:2026-11-24');
        expect(fmTtl).toBeGreaterThan(399 * 86_400_000);
        expect(fmTtl).toBeLessThanOrEqual(400 * 86_400_000);
        expect(Object.keys(await target.admin.hgetall('layout:ev:{p-7}'))).toEqual(['e:e-1']);
        const evTtl = await target.admin.pttl('layout:ev:{p-7}');
        expect(evTtl).toBeGreaterThan(6 * 86_400_000);
        expect(evTtl).toBeLessThanOrEqual(7 * 86_400_000);
        expect(await target.admin.get('layout:a:{idfa:abc}')).toBe('p-7');
        expect((await target.admin.smembers('layout:ax:{p-7}')).sort()).toEqual(['cookie:c1', 'idfa:abc']);
        // A device id linked in its own case (before ids were kept in lower case) is still found.
        await target.admin.set('layout:a:{idfa:OLD-ID}', 'p-7');
        expect(await store.resolveAlias('idfa', 'OLD-ID')).toBe('p-7');
        expect(await store.resolveAlias('cookie', 'OLD-ID')).toBeNull();
        expect(await target.admin.type('layout:fc:{p-7}')).toBe('hash');
        const pttl = await target.admin.pttl('layout:fc:{p-7}');
        expect(pttl).toBeGreaterThan(0);
        expect(pttl).toBeLessThanOrEqual(60_000);
        expect(await target.admin.hkeys('layout:fc:{p-7}')).toEqual(['x90-launch']);
        expect((await target.admin.hgetBuffer('layout:fc:{p-7}', 'x90-launch'))?.length).toBe(8);
        expect(store.keys.person('p-7')).toBe('layout:p:{p-7}');
        // The keys each script touches share a slot.
        const same = (keys: string[]) => expect(new Set(keys.map(slotOf)).size).toBe(1);
        same([
          'layout:p:{p-7}',
          'layout:fc:{p-7}',
          'layout:ax:{p-7}',
          'layout:ev:{p-7}',
          // On a single Redis every key is on one node: one marker and one pending hash serve all.
          ...(target.topology.kind === 'cluster' ? [`layout:sl:{${t}}`, `layout:fq:{${t}}`] : []),
        ]);
        same([
          'layout:meta:{ms}',
          'layout:dict:{ms}',
          'layout:dict:r:{ms}',
          'layout:fn:{ms}:vivo',
          'layout:fold:{ms}',
          'layout:rs:seq:{ms}',
        ]);
      } finally {
        await store.close();
      }
    });

    it('estimates how many people hold a tag from keys drawn at random, whatever else the server holds', async () => {
      const store = open('sample:', { sampleExactKeys: 0 });
      try {
        const people = Array.from({ length: 600 }, (_, i) => ({
          id: `s-${i}`,
          tags: [i % 3 === 0 ? 'kind:wanted' : 'kind:other'],
        }));
        await store.putProfiles(people);
        // More than there are: draws go on to their bound (100,000), across every master.
        const s = await store.samplePeople(10_000, performance.now() + 60_000);
        expect(s.exact).toBe(false);
        expect(s.drawn).toBe(100_000);
        expect(s.population).toBeGreaterThanOrEqual(600);
        const mine = s.people.filter((p) => p.pid.startsWith('s-'));
        expect(mine.length).toBeGreaterThan(500);
        const hits = mine
          .filter((p) => p.record.profile?.tags.includes('kind:wanted'))
          .reduce((n, p) => n + p.draws, 0);
        const share = hits / s.drawn;
        const estimate = share * s.population;
        // Within four standard errors of the 200 there are (fails by chance about once in 15,000 runs).
        const sd = s.population * Math.sqrt((share * (1 - share)) / s.drawn);
        expect(Math.abs(estimate - 200)).toBeLessThan(4 * sd + 1);
        // A deadline already past: nothing drawn, said so.
        const late = await store.samplePeople(10, performance.now() - 1);
        expect(late).toMatchObject({ partial: true, drawn: 0, people: [] });
      } finally {
        await store.close();
      }
    }, 60_000);

    it('keeps a demo person in one value of under 80 bytes', async () => {
      const store = open('compact:');
      try {
        const people = Array.from({ length: 2000 }, (_, i) => demoProfile(i));
        await store.putProfiles(people);
        let total = 0;
        for (const p of people) total += await target.admin.strlen(`compact:p:{${p.id}}`);
        expect(total / people.length).toBeLessThan(68);
        expect(Number(await target.admin.hlen('compact:dict:{ms}'))).toBeLessThan(150);
      } finally {
        await store.close();
      }
    });

    it('agrees on ids across instances, also when they hand them out at the same time', async () => {
      const stores = Array.from({ length: 4 }, () => open('agree:'));
      try {
        // Every instance writes people with the same new strings, in different orders, at once.
        const vocabulary = Array.from({ length: 60 }, (_, i) => `tag-${i}`);
        const peopleOf = (k: number): Profile[] =>
          Array.from({ length: 50 }, (_, i) => ({
            id: `s${k}-${i}`,
            tags: vocabulary.filter((_, j) => (j + i + k) % 3 === 0).reverse(),
            stages: { [`brand-${(i + k) % 5}`]: `stage-${i % 4}` },
            attrs: { colour: `c-${(i * k) % 7}`, n: i },
            timezone: `tz-${k}`,
          }));
        await Promise.all(stores.map((store, k) => store.putProfiles(peopleOf(k))));
        // One id per string, one string per id.
        const ids = await target.admin.hgetall('agree:dict:{ms}');
        const names = await target.admin.hgetall('agree:dict:r:{ms}');
        const count = Object.keys(ids).length;
        expect(Number(names.n)).toBe(count);
        expect(Object.keys(names).length).toBe(count + 1);
        expect(new Set(Object.values(ids)).size).toBe(count);
        for (const [name, id] of Object.entries(ids)) expect(names[id]).toBe(name);
        // Every instance reads what every other wrote; so does one that knows nothing yet.
        const fresh = open('agree:');
        try {
          for (const [k] of stores.entries()) {
            const expected = peopleOf(k);
            for (const reader of [...stores, fresh]) {
              for (const i of [0, 17, 49]) {
                expect(await reader.getProfile(`s${k}-${i}`)).toEqual(expected[i]);
                expect((await reader.loadPerson(`s${k}-${i}`)).profile).toEqual(expected[i]);
              }
            }
          }
          expect(fresh.stats().corruptValues).toBe(0);
          // The counts are the sum of what every instance wrote.
          const funnel = await fresh.funnel('brand-0', '2026-11-24', '2026-11-24');
          const expectedCounts: Record<string, number> = {};
          for (let k = 0; k < 4; k++)
            for (const p of peopleOf(k)) {
              const stage = p.stages?.['brand-0'];
              if (stage !== undefined) expectedCounts[stage] = (expectedCounts[stage] ?? 0) + 1;
            }
          expect(funnel.stages).toEqual(expectedCounts);
        } finally {
          await fresh.close();
        }
      } finally {
        for (const store of stores) await store.close();
      }
    });

    it('a process loads the dictionary as it starts, whole up to a bound', async () => {
      const writer = open('first:');
      try {
        const few: Profile[] = Array.from({ length: 20 }, (_, i) => ({
          id: `f${i}`,
          tags: [`t-${i}`, 'shared'],
        }));
        await writer.putProfiles(few);
        const strings = Number(await target.admin.hget('first:dict:r:{ms}', 'n'));
        const small = open('first:');
        const big = open('first:', { dictionaryAtStart: 10 });
        try {
          // The first decision read finds every string already known: one round trip.
          expect((await small.loadPerson('f3')).profile).toEqual(few[3]);
          expect(small.stats().dictionaryStrings).toBe(strings);
          // Past the bound, only the ids a person needs are asked for.
          expect((await big.loadPerson('f17')).profile).toEqual(few[17]);
          expect(big.stats().dictionaryStrings).toBe(2);
          expect(big.stats().corruptValues).toBe(0);
        } finally {
          await small.close();
          await big.close();
        }
      } finally {
        await writer.close();
      }
    });

    it('starts afresh when the store lost its data, and says so', async () => {
      const a = open('lost:');
      const b = open('lost:');
      const resets: string[] = [];
      a.onReset((r) => resets.push(`${r.before}->${r.after}`));
      const wipe = async () => target.del(await target.keys('lost:*'));
      try {
        await a.putProfile({ id: 'p-1', tags: ['old-1', 'old-2'], stages: { vivo: 'aware' } });
        expect((await a.loadPerson('p-1')).profile?.tags).toEqual(['old-1', 'old-2']);
        const before = a.epoch;
        // Everything under the prefix goes (as after a restart without persistence), and another
        // instance writes people whose strings take the ids `a` knew for other strings.
        await wipe();
        await b.putProfile({ id: 'p-2', tags: ['new-1', 'new-2', 'new-3'], stages: { pad: 'act' } });
        expect((await a.loadPerson('p-2')).profile).toEqual({
          id: 'p-2',
          tags: ['new-1', 'new-2', 'new-3'],
          stages: { pad: 'act' },
        });
        expect(resets).toEqual([`${before}->${b.epoch}`]);
        expect(a.stats().resets).toBe(1);
        // Writes with ids `a` knew from before are refused by Redis, and made again with new ones.
        await wipe();
        await b.putProfile({ id: 'p-3', tags: ['x', 'y'] });
        await a.putProfile({ id: 'p-1', tags: ['new-1', 'old-2'], stages: { vivo: 'act' } });
        expect(await b.getProfile('p-1')).toEqual({
          id: 'p-1',
          tags: ['new-1', 'old-2'],
          stages: { vivo: 'act' },
        });
        await wipe();
        await b.putProfile({ id: 'p-1', tags: ['z'] });
        expect(await a.patchProfile('p-1', { addTags: ['old-1'] }, 5)).toEqual({
          id: 'p-1',
          tags: ['z', 'old-1'],
          updatedAt: 5,
        });
        expect(await b.getProfile('p-1')).toEqual({ id: 'p-1', tags: ['z', 'old-1'], updatedAt: 5 });
        await wipe();
        await b.putProfile({ id: 'p-9', tags: [] });
        await a.putProfiles([
          { id: 'p-1', tags: ['old-1'] },
          { id: 'p-2', tags: [] },
        ]);
        expect(await b.getProfile('p-1')).toEqual({ id: 'p-1', tags: ['old-1'] });
        // A lost store seen only through the identity check (nobody wrote since).
        await wipe();
        const seen = await a.checkIdentity();
        expect(seen.epoch).not.toBe(b.epoch);
        expect(a.stats().resets).toBeGreaterThanOrEqual(4);
        expect(a.stats().corruptValues).toBe(0);
        expect(b.stats().corruptValues).toBe(0);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('treats values whose slot names a dictionary the store lost as lost, and refuses writes there', async () => {
      // A cluster's global slot can lose its data while other slots keep theirs; a single Redis
      // loses everything at once (handled by the test above).
      if (target.topology.kind !== 'cluster') return;
      const store = open('orphan:');
      try {
        await store.putProfile({ id: 'p-kept', tags: ['a', 'b'], stages: { vivo: 'aware' } });
        // The global slot alone loses its data (a shard lost with its replicas): the dictionary
        // and identity go, the people stay.
        await target.del(['orphan:meta:{ms}', 'orphan:dict:{ms}', 'orphan:dict:r:{ms}']);
        await store.putProfile({ id: 'p-new', tags: ['c'] });
        expect(await store.getProfile('p-new')).toEqual({ id: 'p-new', tags: ['c'] });
        expect(await store.getProfile('p-kept')).toBeNull();
        expect((await store.loadPerson('p-kept')).profile).toBeNull();
        expect(store.stats().lostValues).toBe(2);
        await expect(store.putProfile({ id: 'p-kept', tags: ['d'] })).rejects.toThrow(StoreDataLostError);
        await expect(store.putProfile({ id: 'p-kept', tags: ['d'] })).rejects.toThrow(
          /import its people again/,
        );
      } finally {
        await store.close();
      }
    });

    it('treats a value of another format, or with ids nobody handed out, as absent and counts it', async () => {
      const store = open('legacy:');
      try {
        await store.putProfile({ id: 'p-ok', tags: ['a'] });
        const mark = (pid: string) => target.admin.hset(`legacy:sl:{${tagOf(pid)}}`, 'epoch', store.epoch);
        // A profile as the first layout wrote it (MessagePack).
        await mark('p-old');
        await target.admin.set(
          'legacy:p:{p-old}',
          encodeProfile({ id: 'p-old', tags: ['a'], stages: { vivo: 'aware' } }),
        );
        expect(await store.getProfile('p-old')).toBeNull();
        expect(await store.loadPerson('p-old')).toEqual({ profile: null, counters: {} });
        expect(store.stats().corruptValues).toBe(2);
        // Ids past the dictionary.
        await mark('p-ghost');
        await target.admin.set('legacy:p:{p-ghost}', Buffer.from([2, 0, 0, 100, 101]));
        expect(await store.getProfile('p-ghost')).toBeNull();
        expect((await store.loadPerson('p-ghost')).profile).toBeNull();
        expect(store.stats().corruptValues).toBe(4);
        // Patches see nobody; an event gives the person a stage and nothing else.
        expect(await store.patchProfile('p-old', { addTags: ['b'] }, 5)).toBeNull();
        await store.applyEvents([
          {
            eventId: 'legacy-1',
            pid: 'p-old',
            at: Date.parse('2026-11-24T10:00:00Z'),
            stage: { brand: 'vivo', defaultStage: 'aware', next: { aware: 'appeal' } },
          },
        ]);
        expect(await store.getProfile('p-old')).toEqual({
          id: 'p-old',
          tags: [],
          stages: { vivo: 'appeal' },
        });
        expect(await store.getProfile('p-ok')).toEqual({ id: 'p-ok', tags: ['a'] });
      } finally {
        await store.close();
      }
    });

    it('round-trips random profiles through Redis', async () => {
      const store = open('random:');
      const other = open('random:');
      try {
        let n = 0;
        await fc.assert(
          fc.asyncProperty(randomProfile, async (drawn) => {
            const p = { ...drawn, id: `r-${n++}` };
            await store.putProfile(p);
            const expected = Object.keys(p.stages ?? {}).length === 0 ? withoutStages(p) : p;
            expect(await store.getProfile(p.id)).toEqual(expected);
            expect((await other.loadPerson(p.id)).profile).toEqual(expected);
          }),
          { numRuns: 150 },
        );
      } finally {
        await store.close();
        await other.close();
      }
    });

    it('patches without losing a change when two instances patch one person', async () => {
      const a = open('cas:');
      const b = open('cas:');
      try {
        await a.putProfile({ id: 'p-c', tags: [] });
        await Promise.all(
          Array.from({ length: 24 }, (_, i) =>
            (i % 2 === 0 ? a : b).patchProfile('p-c', { addTags: [`t${i}`], stages: { [`b${i}`]: 's' } }, i),
          ),
        );
        const back = await a.getProfile('p-c');
        expect(back?.tags.length).toBe(24);
        expect(Object.keys(back?.stages ?? {}).length).toBe(24);
        const funnel = await b.funnel('b7', '2026-11-24', '2026-11-24');
        expect(funnel.stages).toEqual({ s: 1 });
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('applies events exactly once when the connections drop in the middle of a batch', async () => {
      const store = open('drop:', { maxRetryDelayMs: 50 });
      try {
        const t0 = Date.parse('2026-11-24T10:00:00Z');
        const batch: EventWrite[] = Array.from({ length: 20_000 }, (_, i) => ({
          eventId: `d-${i}`,
          pid: `p-${i % 100}`,
          at: t0 + i,
          impression: { campaign: 'c', keep: 1000, ttlMs: 86_400_000 },
        }));
        await store.ping();
        const first = store.applyEvents(batch).then(
          () => 'resolved',
          () => 'rejected',
        );
        // Drop every client connection of the store while the batch is on its way.
        await sleep(5);
        await target.killClients();
        const outcome = await first;
        let results = null;
        for (let i = 0; i < 100 && results === null; i++) {
          results = await store.applyEvents(batch).catch(() => null);
          if (results === null) await sleep(50);
        }
        expect(results).not.toBeNull();
        const applied = results!.filter((r) => r.outcome === 'applied').length;
        if (outcome === 'resolved') expect(applied).toBe(0);
        // Every event counted once overall: 200 impressions per person.
        for (const pid of ['p-0', 'p-42', 'p-99']) {
          expect((await store.loadPerson(pid)).counters.c?.length).toBe(200);
        }
        expect((await store.applyEvents(batch)).every((r) => r.outcome === 'duplicate')).toBe(true);
      } finally {
        await store.close();
      }
    });

    it('treats a corrupt stored value as absent and counts it', async () => {
      const store = open('corrupt:');
      try {
        await store.checkIdentity();
        for (const pid of ['p-bad', 'p-str'])
          await target.admin.hset(`corrupt:sl:{${tagOf(pid)}}`, 'epoch', store.epoch);
        await target.admin.set('corrupt:p:{p-bad}', Buffer.from([0x93, 0x01, 0xff, 0xc1]));
        await target.admin.hset('corrupt:fc:{p-bad}', 'c', Buffer.from([1, 2, 3]), 'ok', Buffer.alloc(8));
        expect(await store.loadPerson('p-bad')).toEqual({ profile: null, counters: { ok: [0] } });
        expect(await store.getProfile('p-bad')).toBeNull();
        expect(store.stats().corruptValues).toBe(3);
        await target.admin.set('corrupt:p:{p-str}', 'just text');
        expect(await store.getProfile('p-str')).toBeNull();
      } finally {
        await store.close();
      }
    });

    it('writes the profiles of putProfiles in batches', async () => {
      const store = open('batch:', { batchSize: 7 });
      try {
        const profiles = Array.from({ length: 50 }, (_, i) => ({ id: `b-${i}`, tags: [`t${i}`] }));
        await store.putProfiles(profiles);
        expect((await target.keys('batch:p:*')).length).toBe(50);
        expect(await store.getProfile('b-49')).toEqual({ id: 'b-49', tags: ['t49'] });
      } finally {
        await store.close();
      }
    });

    it('records impressions atomically under concurrency', async () => {
      const store = open('atomic:');
      try {
        const t0 = 1_795_000_000_000;
        await Promise.all(
          Array.from({ length: 200 }, (_, i) => store.recordImpression('p-a', 'c', t0 + i, 50, 3_600_000)),
        );
        const { counters } = await store.loadPerson('p-a');
        expect(counters.c).toEqual(Array.from({ length: 50 }, (_, i) => t0 + 150 + i));
      } finally {
        await store.close();
      }
    });

    /** Every key under `prefix` whose name, string value, hash or set mentions `text`. */
    async function anywhere(prefix: string, text: string): Promise<string[]> {
      const found: string[] = [];
      for (const key of await target.keys(`${prefix}*`)) {
        const type = await target.admin.type(key);
        let parts: string[] = [];
        if (type === 'string') parts = [(await target.admin.getBuffer(key))?.toString('latin1') ?? ''];
        else if (type === 'hash') parts = Object.entries(await target.admin.hgetall(key)).flat();
        else if (type === 'set') parts = await target.admin.smembers(key);
        if (key.includes(text) || parts.some((p) => p.includes(text))) found.push(key);
      }
      return found;
    }

    it('erases from the dictionary the strings only deleted people held, and keeps the others', async () => {
      const prefix = freshPrefix();
      const fast = { identityEveryMs: 50 };
      const a = open(prefix, fast);
      const b = open(prefix, fast);
      try {
        const alice: Profile = {
          id: 'p-alice',
          tags: ['common', 'crm:alice-4711'],
          attrs: { email: 'alice@example.com', band: 'gold' },
          stages: { 'alice-brand': 'aware' },
          timezone: 'Europe/Alice',
        };
        const bob: Profile = { id: 'p-bob', tags: ['common'], attrs: { band: 'gold' } };
        await a.putProfiles([alice, bob]);
        // Another process learns Alice's strings by reading her.
        expect(await b.getProfile('p-alice')).toEqual(alice);
        expect(await a.forgetPerson('p-alice')).toBe(true);
        expect(await anywhere(prefix, 'alice')).not.toEqual([]);
        const swept = await a.sweepDictionary({ graceMs: 300 });
        expect(swept?.erased).toBe(6);
        expect(swept?.checked).toBeGreaterThanOrEqual(6);
        expect(await anywhere(prefix, 'alice')).toEqual([]);
        expect(a.stats().erasedStrings).toBe(6);
        // What others hold stays, for every process, new or old.
        const fresh = open(prefix);
        try {
          expect(await fresh.getProfile('p-bob')).toEqual(bob);
          expect(await b.getProfile('p-bob')).toEqual(bob);
        } finally {
          await fresh.close();
        }
        // A process that knew an erased string does not write its old id: it asks again.
        await sleep(200);
        await b.putProfile({ id: 'p-carol', tags: ['crm:alice-4711'] });
        const later = open(prefix);
        try {
          expect(await later.getProfile('p-carol')).toEqual({ id: 'p-carol', tags: ['crm:alice-4711'] });
        } finally {
          await later.close();
        }
        // Nothing left to check: the next sweep has nothing to do.
        expect(await a.sweepDictionary({ graceMs: 0 })).toEqual({ checked: 0, erased: 0 });
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('keeps a string written again while a sweep checks it, and sweeps one at a time', async () => {
      const prefix = freshPrefix();
      const fast = { identityEveryMs: 50 };
      const a = open(prefix, fast);
      const b = open(prefix, fast);
      try {
        await a.putProfile({ id: 'p-dan', tags: ['crm:dan-1', 'only-dan'] });
        await b.getProfile('p-dan');
        await a.forgetPerson('p-dan');
        const sweeping = a.sweepDictionary({ graceMs: 600 });
        await sleep(200);
        // Meanwhile: a second sweep waits its turn, and Dan comes back with one of his strings.
        expect(await b.sweepDictionary({ graceMs: 0 })).toBeNull();
        await b.putProfile({ id: 'p-dan', tags: ['crm:dan-1'] });
        expect((await sweeping)?.erased).toBe(1);
        const fresh = open(prefix);
        try {
          expect(await fresh.getProfile('p-dan')).toEqual({ id: 'p-dan', tags: ['crm:dan-1'] });
        } finally {
          await fresh.close();
        }
        expect(await anywhere(prefix, 'only-dan')).toEqual([]);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('refuses an empty person id (its keys would not share a slot)', async () => {
      const store = open('empty:');
      try {
        await expect(store.putProfile({ id: '', tags: [] })).rejects.toThrow(TypeError);
        await expect(store.applyEvents([{ eventId: 'e', pid: '', at: 1 }])).rejects.toThrow(TypeError);
      } finally {
        await store.close();
      }
    });
  });
}

describe('RedisStore when Redis fails', () => {
  let redis: RedisHandle;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('fails fast while Redis is down and reconnects by itself when it is back', async () => {
    const lines: string[] = [];
    const store = new RedisStore({
      url: redis.url,
      keyPrefix: 'fail:',
      log: (l) => lines.push(l),
      maxRetryDelayMs: 200,
    });
    try {
      await store.putProfile({ id: 'p-1', tags: ['a'] });
      expect((await store.loadPerson('p-1')).profile).toEqual({ id: 'p-1', tags: ['a'] });

      await redis.kill();
      // Give the client a moment to see the connection drop.
      await sleep(50);
      const operations: Array<[string, () => Promise<unknown>]> = [
        ['loadPerson', () => store.loadPerson('p-1')],
        ['resolveAlias', () => store.resolveAlias('idfa', 'x')],
        ['getProfile', () => store.getProfile('p-1')],
        ['putProfile', () => store.putProfile({ id: 'p-2', tags: [] })],
        ['putProfiles', () => store.putProfiles([{ id: 'p-3', tags: [] }])],
        ['linkAliases', () => store.linkAliases('p-1', { idfa: 'x' })],
        ['recordImpression', () => store.recordImpression('p-1', 'c', 1, 3, 1000)],
        ['forgetPerson', () => store.forgetPerson('p-1')],
        ['ping', () => store.ping()],
      ];
      for (let round = 0; round < 3; round++) {
        for (const [name, op] of operations) {
          const t0 = performance.now();
          const outcome = await op().then(
            () => 'resolved',
            () => 'rejected',
          );
          const elapsed = performance.now() - t0;
          expect(`${name}: ${outcome}`).toBe(`${name}: rejected`);
          expect(elapsed).toBeLessThan(1000); // generous: it fails at once, the machine is shared
        }
        await sleep(150);
      }
      expect(lines.some((l) => /Redis/.test(l))).toBe(true);
      expect(store.stats().status).not.toBe('ready');

      await redis.restart();
      let back = false;
      for (let i = 0; i < 100 && !back; i++) {
        // Both connections (decision reads take a second one) must be back.
        back = await store
          .ping()
          .then(() => store.loadPerson('p-1'))
          .then(
            () => true,
            () => false,
          );
        if (!back) await sleep(100);
      }
      expect(back).toBe(true);
      // The server came back empty (no persistence): the store works as before.
      expect(await store.loadPerson('p-1')).toEqual({ profile: null, counters: {} });
      await store.putProfile({ id: 'p-1', tags: ['b'] });
      await store.recordImpression('p-1', 'c', 5, 3, 60_000);
      expect(await store.loadPerson('p-1')).toEqual({
        profile: { id: 'p-1', tags: ['b'] },
        counters: { c: [5] },
      });
      expect(lines.some((l) => /ready again/.test(l))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('rejects quickly when nothing listens at all, and can be used right after construction', async () => {
    const dead = await startRedis();
    const port = dead.port;
    await dead.stop();
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, log: quiet });
    try {
      const t0 = performance.now();
      await expect(store.ping()).rejects.toThrow();
      await expect(store.loadPerson('p-1')).rejects.toThrow();
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      await store.close();
    }
  });

  it('rejects events quickly while Redis is down; a retry after it is back counts each event once', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: 'ev-fail:', log: quiet, maxRetryDelayMs: 100 });
    try {
      const t0 = Date.parse('2026-11-24T10:00:00Z');
      const stage = { brand: 'vivo', defaultStage: 'aware', next: { aware: 'appeal', appeal: 'act' } };
      const batch = (from: number): EventWrite[] =>
        Array.from({ length: 10 }, (_, k) => ({
          eventId: `k-${from + k}`,
          pid: 'p-1',
          at: t0 + from + k,
          impression: { campaign: 'c', keep: 100, ttlMs: 86_400_000 },
          ...(k === 0 ? { stage } : {}),
        }));
      expect((await store.applyEvents(batch(0))).every((r) => r.outcome === 'applied')).toBe(true);
      await redis.kill();
      await sleep(50);
      const started = performance.now();
      await expect(store.applyEvents(batch(10))).rejects.toThrow();
      expect(performance.now() - started).toBeLessThan(1000);
      await redis.restart();
      let results = null;
      for (let i = 0; i < 100 && results === null; i++) {
        results = await store.applyEvents(batch(10)).catch(() => null);
        if (results === null) await sleep(100);
      }
      // The server came back empty (no persistence): the retried batch applies once, whole.
      expect(results?.map((r) => r.outcome)).toEqual(Array(10).fill('applied'));
      expect(results?.[0]?.moved).toEqual({ brand: 'vivo', from: 'aware', to: 'appeal' });
      expect((await store.applyEvents(batch(10))).every((r) => r.outcome === 'duplicate')).toBe(true);
      expect((await store.loadPerson('p-1')).counters.c?.length).toBe(10);
      expect(await store.funnel('vivo', '2026-11-24', '2026-11-24')).toEqual({
        brand: 'vivo',
        stages: { appeal: 1 },
        moves: { '2026-11-24': { 'aware>appeal': 1 } },
      });
    } finally {
      await store.close();
    }
  });

  it('keeps the bus listening across a Redis restart', async () => {
    const store = new RedisStore({
      url: redis.url,
      keyPrefix: 'bus-fail:',
      log: quiet,
      maxRetryDelayMs: 100,
    });
    let reconnects = 0;
    const bus = new RedisBus({ store, log: quiet, onReconnect: () => reconnects++ });
    try {
      const heard: BusMessage[] = [];
      await bus.subscribe((m) => heard.push(m));
      expect(bus.stats().listening).toBe(true);
      await bus.publish({ type: 'ruleset', version: 1 });
      for (let i = 0; i < 100 && heard.length === 0; i++) await sleep(10);
      expect(heard).toEqual([{ type: 'ruleset', version: 1 }]);
      await redis.kill();
      await sleep(50);
      await expect(bus.publish({ type: 'ruleset', version: 2 })).rejects.toThrow();
      await redis.restart();
      let delivered = false;
      for (let i = 0; i < 100 && !delivered; i++) {
        await bus.publish({ type: 'ruleset', version: 3 }).catch(() => undefined);
        await sleep(50);
        delivered = heard.some((m) => m.type === 'ruleset' && m.version === 3);
      }
      expect(delivered).toBe(true);
      expect(reconnects).toBeGreaterThanOrEqual(1);
    } finally {
      await bus.close();
      await store.close();
    }
  });

  it('acknowledges events only once a replica has them, when the master has one', async () => {
    const replica = await startRedis();
    const link = new Redis(replica.url);
    try {
      await link.replicaof('127.0.0.1', String(redis.port));
      const store = new RedisStore({ url: redis.url, keyPrefix: 'wait:', log: quiet, waitTimeoutMs: 300 });
      try {
        const event = (n: number): EventWrite => ({
          eventId: `w-${n}`,
          pid: 'p-w',
          at: Date.parse('2026-11-24T10:00:00Z') + n,
          impression: { campaign: 'c', keep: 100, ttlMs: 86_400_000 },
        });
        // In sync: the master streams writes to the replica (after a diskless sync it starts only
        // at the replica's first acknowledgement, up to a second later). Then: acknowledged, and
        // the replica has it.
        const master = new Redis(redis.url);
        for (let i = 0; i < 50; i++) {
          await master.set('wait:sync', String(i));
          if (Number(await master.wait(1, 200)) === 1) break;
        }
        master.disconnect();
        expect(await store.applyEvents([event(1)])).toEqual([{ outcome: 'applied' }]);
        expect((await link.hkeys('wait:ev:{p-w}')).sort()).toEqual(['e:w-1']);
        // The replica stops answering (frozen, still connected): the event is applied on the
        // master but not acknowledged; sent again once the replica is back, it is a duplicate.
        process.kill(replica.pid, 'SIGSTOP');
        const t0 = performance.now();
        await expect(store.applyEvents([event(2)])).rejects.toThrow(NotReplicatedError);
        expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
        process.kill(replica.pid, 'SIGCONT');
        // Sent again (as a client does on a 503) until the replica, catching up, confirms it.
        let again: unknown = null;
        for (let i = 0; i < 50 && again === null; i++)
          again = await store.applyEvents([event(2)]).catch(() => null);
        expect(again).toEqual([{ outcome: 'duplicate' }]);
        expect((await link.hkeys('wait:ev:{p-w}')).sort()).toEqual(['e:w-1', 'e:w-2']);
        // (Without a replica, `auto` waits for none: every other test here runs so.)
      } finally {
        await store.close();
      }
    } finally {
      await link.replicaof('NO', 'ONE').catch(() => undefined);
      link.disconnect();
      await replica.stop();
    }
  }, 30_000);

  it('closes cleanly while Redis is down', async () => {
    const store = new RedisStore({ url: redis.url, log: quiet });
    await store.ping();
    await redis.kill();
    await sleep(50);
    await store.close();
    await store.close();
    await redis.restart();
  });
});
