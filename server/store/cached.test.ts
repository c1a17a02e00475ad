/** The cache in front of a store: ages, misses, coalescing, and writes that keep it honest. */
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../rules/types.js';
import { alwaysCached, CachedStore } from './cached.js';
import { EmbeddedStore } from './embedded.js';
import type { PersonRecord, PersonStore } from './types.js';

const T0 = Date.parse('2026-11-24T04:00:00.000Z');
const DAY = 86_400_000;
const TTL = 1000;

/** An embedded store that counts reads and can hold them until released. */
class CountingStore extends EmbeddedStore {
  loads = 0;
  aliasLookups = 0;
  closedCalls = 0;
  private gate: Promise<void> | null = null;
  private open: (() => void) | null = null;

  hold(): void {
    this.gate = new Promise((r) => {
      this.open = r;
    });
  }
  release(): void {
    this.open?.();
    this.gate = null;
  }
  override async loadPerson(pid: string): Promise<PersonRecord> {
    this.loads++;
    const gate = this.gate;
    // Read after the gate opens, as a slow network would deliver a read made earlier...
    if (gate !== null) {
      const record = await super.loadPerson(pid);
      await gate;
      return record;
    }
    return super.loadPerson(pid);
  }
  override async resolveAlias(kind: string, value: string): Promise<string | null> {
    this.aliasLookups++;
    const gate = this.gate;
    const pid = await super.resolveAlias(kind, value);
    if (gate !== null) await gate;
    return pid;
  }
  /** As a single Redis answers it: alias and person in one read (held like the others). */
  byAliasLoads = 0;
  failByAlias = false;
  async loadPersonByAlias(
    kind: string,
    value: string,
  ): Promise<{ pid: string | null; record: PersonRecord | null }> {
    this.byAliasLoads++;
    if (this.failByAlias) throw new Error('store down');
    const gate = this.gate;
    const pid = await super.resolveAlias(kind, value);
    const record = pid === null ? null : await super.loadPerson(pid);
    if (gate !== null) await gate;
    return { pid, record };
  }
  override async close(): Promise<void> {
    this.closedCalls++;
    return super.close();
  }
}

function setup(
  opts: { maxPeople?: number; maxAliases?: number; admitAfter?: number; standAside?: boolean } = {},
) {
  let t = 5_000_000;
  const now = () => t;
  const backing = new CountingStore({ now });
  const cache = new CachedStore(backing, {
    maxPeople: opts.maxPeople ?? 100,
    maxAliases: opts.maxAliases ?? 100,
    ttlMs: TTL,
    now,
    ...(opts.admitAfter === undefined ? {} : { admitAfter: opts.admitAfter }),
    ...(opts.standAside === undefined ? {} : { standAside: opts.standAside }),
  });
  return {
    backing,
    cache,
    advance(ms: number) {
      t += ms;
    },
  };
}

const alice: Profile = {
  id: 'alice',
  tags: ['circle:business'],
  attrs: { price_band: 6000 },
  stages: { vivo: 'appeal' },
};

describe('CachedStore', () => {
  it('serves a person from the cache until the TTL, then loads again', async () => {
    const { backing, cache, advance } = setup();
    await backing.putProfile(alice);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    const first = await cache.loadPerson('alice');
    expect(first.profile).toEqual(alice);
    expect(await cache.loadPerson('alice')).toBe(first);
    expect(cache.cachedPerson('alice')).toBe(first);
    expect(backing.loads).toBe(1);
    advance(TTL - 1);
    expect(cache.cachedPerson('alice')).toBe(first);
    advance(2);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    await cache.loadPerson('alice');
    expect(backing.loads).toBe(2);
  });

  it('does not let a look-up or a hit refresh the age', async () => {
    const { cache, advance, backing } = setup();
    await backing.putProfile(alice);
    await cache.loadPerson('alice');
    for (let k = 0; k < 5; k++) {
      advance(TTL / 4);
      cache.cachedPerson('alice');
    }
    expect(cache.cachedPerson('alice')).toBeUndefined();
  });

  it('caches misses: unknown people and unknown aliases reach the store once per TTL', async () => {
    const { backing, cache, advance } = setup();
    for (let k = 0; k < 5; k++) {
      expect(await cache.loadPerson('ghost')).toEqual({ profile: null, counters: {} });
      expect(await cache.resolveAlias('idfa', 'nobody')).toBeNull();
    }
    expect(backing.loads).toBe(1);
    expect(backing.aliasLookups).toBe(1);
    expect(cache.cachedPerson('ghost')).toEqual({ profile: null, counters: {} });
    expect(cache.cachedAlias('idfa', 'nobody')).toBeNull();
    expect(cache.cachedAlias('idfa', 'never-asked')).toBeUndefined();
    advance(TTL + 1);
    expect(cache.cachedAlias('idfa', 'nobody')).toBeUndefined();
    await cache.resolveAlias('idfa', 'nobody');
    expect(backing.aliasLookups).toBe(2);
  });

  it('caches alias hits', async () => {
    const { backing, cache } = setup();
    await backing.linkAliases('alice', { cookie: 'c-1' });
    expect(await cache.resolveAlias('cookie', 'c-1')).toBe('alice');
    expect(cache.cachedAlias('cookie', 'c-1')).toBe('alice');
    expect(await cache.resolveAlias('cookie', 'c-1')).toBe('alice');
    expect(backing.aliasLookups).toBe(1);
  });

  it('coalesces concurrent loads of one person into one backing call', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    backing.hold();
    const loads = Array.from({ length: 25 }, () => cache.loadPerson('alice'));
    const aliases = Array.from({ length: 25 }, () => cache.resolveAlias('idfa', 'x'));
    backing.release();
    const records = await Promise.all(loads);
    await Promise.all(aliases);
    expect(backing.loads).toBe(1);
    expect(backing.aliasLookups).toBe(1);
    for (const r of records) expect(r).toBe(records[0]);
    expect(cache.stats()).toMatchObject({ backingLoads: 2, coalesced: 48 });
  });

  it('does not coalesce loads of different people', async () => {
    const { backing, cache } = setup();
    await Promise.all(['a', 'b', 'c'].map((p) => cache.loadPerson(p)));
    expect(backing.loads).toBe(3);
  });

  it('shares a failed load among the waiters, caches nothing, and tries again next time', async () => {
    const { backing, cache } = setup();
    const original = backing.loadPerson.bind(backing);
    let fail = true;
    backing.loadPerson = async (pid: string) => {
      if (fail) {
        backing.loads++;
        throw new Error('down');
      }
      return original(pid);
    };
    const outcomes = await Promise.allSettled([cache.loadPerson('alice'), cache.loadPerson('alice')]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect(backing.loads).toBe(1);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    fail = false;
    await backing.putProfile(alice);
    expect((await cache.loadPerson('alice')).profile).toEqual(alice);
  });

  it('drops a person at once when the profile is written through it', async () => {
    const { cache } = setup();
    await cache.putProfile(alice);
    expect((await cache.loadPerson('alice')).profile).toEqual(alice);
    const changed = { ...alice, tags: ['circle:student'] };
    await cache.putProfile(changed);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect((await cache.loadPerson('alice')).profile).toEqual(changed);
    await cache.putProfiles([{ ...alice, tags: ['x'] }]);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect((await cache.loadPerson('alice')).profile?.tags).toEqual(['x']);
    // A cached miss is dropped by a write too.
    await cache.loadPerson('bob');
    await cache.putProfile({ id: 'bob', tags: ['b'] });
    expect((await cache.loadPerson('bob')).profile).toEqual({ id: 'bob', tags: ['b'] });
  });

  it('does not cache a load that a write overtook', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    backing.hold();
    const stale = cache.loadPerson('alice');
    await cache.putProfile({ ...alice, tags: ['new'] });
    backing.release();
    expect((await stale).profile?.tags).toEqual(alice.tags);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect((await cache.loadPerson('alice')).profile?.tags).toEqual(['new']);
  });

  it('updates cached aliases when they are linked or moved through it', async () => {
    const { cache } = setup();
    expect(await cache.resolveAlias('cookie', 'c-1')).toBeNull();
    await cache.linkAliases('alice', { cookie: 'c-1' });
    expect(cache.cachedAlias('cookie', 'c-1')).toBeUndefined();
    expect(await cache.resolveAlias('cookie', 'c-1')).toBe('alice');
    await cache.linkAliases('bob', { cookie: 'c-1' });
    expect(await cache.resolveAlias('cookie', 'c-1')).toBe('bob');
  });

  it('updates cached counters on an impression without a load, keeping the entry age', async () => {
    const { backing, cache, advance } = setup();
    await backing.putProfile(alice);
    const before = await cache.loadPerson('alice');
    advance(TTL / 2);
    await cache.recordImpression('alice', 'x90-launch', T0, 3, DAY);
    await cache.recordImpression('alice', 'x90-launch', T0 + 1, 3, DAY);
    const after = cache.cachedPerson('alice');
    expect(after?.counters).toEqual({ 'x90-launch': [T0, T0 + 1] });
    // Same profile object: work the evaluator keyed on it stays valid.
    expect(after?.profile).toBe(before.profile);
    expect(before.counters).toEqual({});
    expect(backing.loads).toBe(1);
    expect((await backing.loadPerson('alice')).counters).toEqual(after?.counters);
    for (let k = 2; k < 6; k++) await cache.recordImpression('alice', 'x90-launch', T0 + k, 3, DAY);
    expect(cache.cachedPerson('alice')?.counters['x90-launch']).toEqual([T0 + 3, T0 + 4, T0 + 5]);
    advance(TTL / 2 + 1);
    expect(cache.cachedPerson('alice')).toBeUndefined();
  });

  it('forgets a person and the aliases cached for them', async () => {
    const { cache } = setup();
    await cache.putProfile(alice);
    await cache.linkAliases('alice', { cookie: 'c-1', idfa: 'i-1' });
    await cache.linkAliases('bob', { cookie: 'c-2' });
    expect(await cache.resolveAlias('cookie', 'c-1')).toBe('alice');
    expect(await cache.resolveAlias('idfa', 'i-1')).toBe('alice');
    expect(await cache.resolveAlias('cookie', 'c-2')).toBe('bob');
    await cache.loadPerson('alice');
    expect(await cache.forgetPerson('alice')).toBe(true);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect(cache.cachedAlias('cookie', 'c-1')).toBeUndefined();
    expect(cache.cachedAlias('idfa', 'i-1')).toBeUndefined();
    expect(cache.cachedAlias('cookie', 'c-2')).toBe('bob');
    expect(await cache.loadPerson('alice')).toEqual({ profile: null, counters: {} });
    expect(await cache.resolveAlias('cookie', 'c-1')).toBeNull();
  });

  it('drops entries on request (writes made on other instances)', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    await backing.linkAliases('alice', { cookie: 'c-1' });
    await cache.loadPerson('alice');
    await cache.resolveAlias('cookie', 'c-1');
    await backing.putProfile({ ...alice, tags: ['elsewhere'] });
    await backing.linkAliases('bob', { cookie: 'c-1' });
    expect(cache.cachedPerson('alice')?.profile?.tags).toEqual(alice.tags);
    cache.invalidatePerson('alice');
    cache.invalidateAlias('cookie', 'c-1');
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect(cache.cachedAlias('cookie', 'c-1')).toBeUndefined();
    expect((await cache.loadPerson('alice')).profile?.tags).toEqual(['elsewhere']);
    expect(await cache.resolveAlias('cookie', 'c-1')).toBe('bob');
  });

  it('hands out frozen records', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    await backing.recordImpression('alice', 'c', T0, 3, DAY);
    const record = await cache.loadPerson('alice');
    expect(Object.isFrozen(record)).toBe(true);
    expect(Object.isFrozen(record.profile)).toBe(true);
    expect(Object.isFrozen(record.profile?.tags)).toBe(true);
    expect(Object.isFrozen(record.profile?.attrs)).toBe(true);
    expect(Object.isFrozen(record.counters)).toBe(true);
    expect(Object.isFrozen(record.counters.c)).toBe(true);
    expect(() => record.profile?.tags.push('x')).toThrow(TypeError);
  });

  it('is bounded by entries', async () => {
    const { backing, cache } = setup({ maxPeople: 10, maxAliases: 5 });
    for (let i = 0; i < 50; i++) await cache.loadPerson(`p-${i}`);
    for (let i = 0; i < 50; i++) await cache.resolveAlias('idfa', `i-${i}`);
    const stats = cache.stats();
    expect(stats.people.size).toBe(10);
    expect(stats.aliases.size).toBe(5);
    // The most recent stay, the oldest went.
    expect(cache.cachedPerson('p-49')).toBeDefined();
    expect(cache.cachedPerson('p-0')).toBeUndefined();
    expect(backing.loads).toBe(50);
  });

  it('counts hits and misses', async () => {
    const { cache, backing } = setup();
    await backing.putProfile(alice);
    cache.cachedPerson('alice'); // a look-up miss is counted by the load that follows it
    await cache.loadPerson('alice');
    cache.cachedPerson('alice');
    await cache.loadPerson('alice');
    await cache.resolveAlias('idfa', 'x');
    cache.cachedAlias('idfa', 'x');
    expect(cache.stats()).toMatchObject({
      people: { size: 1, hits: 2, misses: 1 },
      aliases: { size: 1, hits: 1, misses: 1 },
      backingLoads: 2,
    });
  });

  it('passes kind, ping and close through to the backing store', async () => {
    const { backing, cache } = setup();
    expect(cache.kind).toBe('embedded');
    await cache.ping();
    await cache.close();
    expect(backing.closedCalls).toBe(1);
    await expect(backing.ping()).rejects.toThrow();
    const fakeRedis = { kind: 'redis' } as PersonStore;
    expect(new CachedStore(fakeRedis, { maxPeople: 1, maxAliases: 1, ttlMs: 1 }).kind).toBe('redis');
  });

  it('drops the cached people that events and patches touch', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    await cache.loadPerson('alice');
    await cache.loadPerson('bob');
    const loads = backing.loads;
    await cache.applyEvents([
      { eventId: 'e-1', pid: 'alice', at: T0, impression: { campaign: 'c', keep: 3, ttlMs: DAY } },
      {
        eventId: 'e-2',
        pid: 'alice',
        at: T0,
        stage: { brand: 'vivo', defaultStage: 'aware', next: { appeal: 'act' } },
      },
    ]);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect(cache.cachedPerson('bob')).toBeDefined();
    expect(await cache.loadPerson('alice')).toEqual({
      profile: { ...alice, stages: { vivo: 'act' } },
      counters: { c: [T0] },
    });
    expect(backing.loads).toBe(loads + 1);
    const patched = await cache.patchProfile('alice', { addTags: ['x'] }, T0);
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect((await cache.loadPerson('alice')).profile).toEqual(patched);
    expect(await cache.funnel('vivo', '2026-11-24', '2026-11-24')).toEqual(
      await backing.funnel('vivo', '2026-11-24', '2026-11-24'),
    );
    await backing.linkAliases('alice', { idfa: 'a' });
    expect(await cache.aliasesOf('alice')).toEqual({ idfa: 'a' });
  });

  it('reads a single profile from the backing store, not the cache', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    await cache.loadPerson('alice');
    await backing.putProfile({ ...alice, tags: ['fresh'] });
    expect((await cache.getProfile('alice'))?.tags).toEqual(['fresh']);
  });

  describe('admission (admitAfter)', () => {
    it('caches a person from the n-th load on, not before', async () => {
      const { backing, cache } = setup({ admitAfter: 3 });
      await backing.putProfile(alice);
      for (let i = 1; i <= 3; i++) {
        expect((await cache.loadPerson('alice')).profile?.id).toBe('alice');
        expect(backing.loads).toBe(i);
        expect(cache.cachedPerson('alice') !== undefined).toBe(i === 3);
      }
      await cache.loadPerson('alice');
      expect(backing.loads).toBe(3);
      expect(cache.stats().people.notAdmitted).toBe(2);
      expect(Object.isFrozen((await cache.loadPerson('alice')).profile)).toBe(true);
    });

    it("caches an alias's resolution from the n-th load on, by itself and with its person", async () => {
      const { backing, cache } = setup({ admitAfter: 2 });
      await backing.putProfile(alice);
      await backing.linkAliases('alice', { idfa: 'A-1', cookie: 'c-1' });
      // Resolved alone.
      expect(await cache.resolveAlias('idfa', 'A-1')).toBe('alice');
      expect(cache.cachedAlias('idfa', 'A-1')).toBeUndefined();
      expect(await cache.resolveAlias('idfa', 'A-1')).toBe('alice');
      expect(cache.cachedAlias('idfa', 'A-1')).toBe('alice');
      expect(await cache.resolveAlias('idfa', 'A-1')).toBe('alice');
      expect(backing.aliasLookups).toBe(2);
      // With the person in one read: the alias and the person each admitted at their second load.
      const first = await cache.loadPersonByAlias('cookie', 'c-1');
      expect(first.pid).toBe('alice');
      expect(cache.cachedAlias('cookie', 'c-1')).toBeUndefined();
      await cache.loadPersonByAlias('cookie', 'c-1');
      expect(cache.cachedAlias('cookie', 'c-1')).toBe('alice');
      expect(backing.byAliasLoads).toBe(2);
      expect((await cache.loadPersonByAlias('cookie', 'c-1')).record?.profile?.id).toBe('alice');
      expect(backing.byAliasLoads).toBe(2);
      // An alias naming nobody is admitted the same way, as a cached miss.
      expect(await cache.resolveAlias('idfa', 'nobody')).toBeNull();
      expect(await cache.resolveAlias('idfa', 'nobody')).toBeNull();
      expect(cache.cachedAlias('idfa', 'nobody')).toBeNull();
      expect(cache.stats().aliases.notAdmitted).toBe(3);
    });

    it('keeps aliases asked for once out of the cache', async () => {
      const { backing, cache } = setup({ admitAfter: 2, maxAliases: 1000 });
      for (let i = 0; i < 3000; i++) await cache.loadPersonByAlias('cookie', `once-${i}`);
      expect(cache.stats().aliases.size).toBeLessThan(150);
      expect(backing.byAliasLoads).toBe(3000);
    });

    it('keeps people asked for once out of the cache, and still caches those asked for twice', async () => {
      // Admission alone: standing aside would send 'twice' straight to the store.
      const { backing, cache } = setup({ admitAfter: 2, maxPeople: 1000, standAside: false });
      for (let i = 0; i < 3000; i++) await cache.loadPerson(`once-${i}`);
      // A count-min sketch may say "seen" for someone it has not seen: a few, not many.
      expect(cache.stats().people.size).toBeLessThan(150);
      await cache.loadPerson('twice');
      await cache.loadPerson('twice');
      expect(cache.cachedPerson('twice')).toBeDefined();
      expect(backing.loads).toBe(3002);
    });

    it('forgets loads as newer ones are counted', async () => {
      // 1000 people: 16k counters, halved after every 2048 loads.
      const { cache } = setup({ admitAfter: 2, maxPeople: 1000 });
      for (let i = 0; i < 50; i++) await cache.loadPerson(`early-${i}`);
      for (let i = 0; i < 9000; i++) await cache.loadPerson(`other-${i}`);
      let remembered = 0;
      for (let i = 0; i < 50; i++) {
        await cache.loadPerson(`early-${i}`);
        if (cache.cachedPerson(`early-${i}`) !== undefined) remembered++;
      }
      expect(remembered).toBeLessThan(10);
    });

    it('forgets a load after about a TTL: asked for twice within it is cached, further apart is not', async () => {
      const { cache, advance } = setup({ admitAfter: 2 });
      await cache.loadPerson('slow');
      advance(TTL + 1);
      await cache.loadPerson('slow');
      expect(cache.cachedPerson('slow')).toBeUndefined();
      await cache.loadPerson('quick');
      advance(TTL / 4);
      await cache.loadPerson('quick');
      expect(cache.cachedPerson('quick')).toBeDefined();
    });

    it('a write in flight still keeps a stale load out, admitted or not', async () => {
      const { backing, cache } = setup({ admitAfter: 2 });
      await backing.putProfile(alice);
      await cache.loadPerson('alice');
      backing.hold();
      const late = cache.loadPerson('alice');
      await cache.putProfile({ ...alice, tags: ['new'] });
      backing.release();
      await late;
      expect((await cache.loadPerson('alice')).profile?.tags).toEqual(['new']);
    });
  });
});

describe('CachedStore: standing aside while hardly anything hits', () => {
  /** Keys of `prefix` whose look-ups the cache keeps counting while it stands aside, or not. */
  const keysWhere = (prefix: string, sampled: boolean, n: number): string[] => {
    const out: string[] = [];
    for (let i = 0; out.length < n; i++)
      if (alwaysCached(`${prefix}${i}`) === sampled) out.push(`${prefix}${i}`);
    return out;
  };
  /** A cache that has just seen 1,100 people once each: no look-up hit. */
  const spread = async () => {
    const kit = setup({ maxPeople: 5000 });
    for (let i = 0; i < 1100; i++) await kit.cache.loadPerson(`spread-${i}`);
    return kit;
  };

  it('keys of a sixteenth keep the cache while it stands aside', () => {
    const all = Array.from({ length: 16_000 }, (_, i) => `cookie:c-${i}`);
    const kept = all.filter(alwaysCached).length;
    expect(kept).toBeGreaterThan(800);
    expect(kept).toBeLessThan(1200);
    expect(alwaysCached('cookie:c-1')).toBe(alwaysCached('cookie:c-1'));
  });

  it('stands aside after a window of misses: a miss then goes straight to the store, uncached', async () => {
    const { backing, cache } = await spread();
    expect(cache.stats().aside).toBe(true);
    expect(cache.stats().asideChanges).toBe(1);
    const [other] = keysWhere('other-', false, 1);
    await backing.putProfile({ ...alice, id: other! });
    const before = backing.loads;
    const bypassed = cache.stats().people.bypassed;
    expect((await cache.loadPerson(other!)).profile?.id).toBe(other);
    expect((await cache.loadPerson(other!)).profile?.id).toBe(other);
    expect(backing.loads).toBe(before + 2);
    expect(cache.cachedPerson(other!)).toBeUndefined();
    expect(cache.stats().people.bypassed).toBe(bypassed + 2);
    // Two loads at once are not shared either.
    await Promise.all([cache.loadPerson(other!), cache.loadPerson(other!)]);
    expect(backing.loads).toBe(before + 4);
    // A key of the sixteenth is still loaded once and cached.
    const [kept] = keysWhere('kept-', true, 1);
    await backing.putProfile({ ...alice, id: kept! });
    await cache.loadPerson(kept!);
    await cache.loadPerson(kept!);
    expect(backing.loads).toBe(before + 5);
    expect(cache.cachedPerson(kept!)?.profile?.id).toBe(kept);
  });

  it('still answers from what it holds, and a write still replaces it', async () => {
    const { backing, cache } = setup({ maxPeople: 5000 });
    await backing.putProfile(alice);
    await cache.loadPerson('alice');
    for (let i = 0; i < 1100; i++) await cache.loadPerson(`spread-${i}`);
    expect(cache.stats().aside).toBe(true);
    const before = backing.loads;
    expect((await cache.loadPerson('alice')).profile?.tags).toEqual(alice.tags);
    expect(cache.cachedPerson('alice')).toBeDefined();
    expect(backing.loads).toBe(before);
    await cache.putProfile({ ...alice, tags: ['changed'] });
    expect((await cache.loadPerson('alice')).profile?.tags).toEqual(['changed']);
  });

  it('reads by alias straight from the store while aside, for the keys outside the sixteenth', async () => {
    const { backing, cache } = await spread();
    // The alias as the cache keys it, `cookie:<value>`, outside the sixteenth.
    const [member] = keysWhere('cookie:c-', false, 1);
    const cookie = member!.slice('cookie:'.length);
    await backing.putProfile(alice);
    await backing.linkAliases('alice', { cookie });
    const loads = backing.byAliasLoads;
    expect((await cache.loadPersonByAlias('cookie', cookie)).record?.profile?.id).toBe('alice');
    expect((await cache.loadPersonByAlias('cookie', cookie)).pid).toBe('alice');
    expect(backing.byAliasLoads).toBe(loads + 2);
    expect(cache.cachedAlias('cookie', cookie)).toBeUndefined();
    expect(cache.stats().aliases.bypassed).toBe(2);
    // Resolved alone, the same.
    const lookups = backing.aliasLookups;
    expect(await cache.resolveAlias('cookie', cookie)).toBe('alice');
    expect(await cache.resolveAlias('cookie', cookie)).toBe('alice');
    expect(backing.aliasLookups).toBe(lookups + 2);
  });

  it('takes everyone back once the sixteenth it still serves hits again', async () => {
    const { backing, cache } = await spread();
    const hot = keysWhere('hot-', true, 20);
    for (const pid of hot) await backing.putProfile({ ...alice, id: pid });
    for (let round = 0; round < 60 && cache.stats().aside; round++) {
      for (const pid of hot) await cache.loadPerson(pid);
    }
    expect(cache.stats().aside).toBe(false);
    expect(cache.stats().asideChanges).toBe(2);
    // Every key is cached again.
    const [other] = keysWhere('other-', false, 1);
    await backing.putProfile({ ...alice, id: other! });
    await cache.loadPerson(other!);
    expect(cache.cachedPerson(other!)?.profile?.id).toBe(other);
  });

  it('does not stand aside when told not to, nor while look-ups hit', async () => {
    const off = setup({ maxPeople: 5000, standAside: false });
    for (let i = 0; i < 1100; i++) await off.cache.loadPerson(`spread-${i}`);
    expect(off.cache.stats().aside).toBe(false);
    const hot = setup({ maxPeople: 5000 });
    // One person in ten asked for again: 10% of look-ups hit, above the 5% it stands aside below.
    for (let i = 0; i < 3000; i++) await hot.cache.loadPerson(i % 10 === 9 ? `p-${i - 9}` : `p-${i}`);
    expect(hot.cache.stats().people.hits).toBeGreaterThan(250);
    expect(hot.cache.stats().aside).toBe(false);
  });
});

describe('CachedStore: a person by alias in one read', () => {
  it('caches both the alias and the person from one backing read', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    await backing.linkAliases('alice', { cookie: 'ck-a' });
    const first = await cache.loadPersonByAlias('cookie', 'ck-a');
    expect(first.pid).toBe('alice');
    expect(first.record?.profile).toEqual(alice);
    expect([backing.byAliasLoads, backing.loads, backing.aliasLookups]).toEqual([1, 0, 0]);
    const again = await cache.loadPersonByAlias('cookie', 'ck-a');
    expect(again.record).toBe(first.record);
    expect(cache.cachedAlias('cookie', 'ck-a')).toBe('alice');
    expect([backing.byAliasLoads, backing.loads, backing.aliasLookups]).toEqual([1, 0, 0]);
    expect(await cache.loadPersonByAlias('cookie', 'nobody')).toEqual({ pid: null, record: null });
    expect(cache.cachedAlias('cookie', 'nobody')).toBeNull();
  });

  it('does not cache what a write changed while the read was on its way', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    await backing.linkAliases('alice', { cookie: 'ck-a' });
    backing.hold();
    const pending = cache.loadPersonByAlias('cookie', 'ck-a');
    cache.invalidatePerson('alice');
    backing.release();
    expect((await pending).pid).toBe('alice');
    expect(cache.cachedPerson('alice')).toBeUndefined();
    backing.hold();
    const second = cache.loadPersonByAlias('cookie', 'ck-b');
    cache.invalidateAlias('cookie', 'ck-b');
    backing.release();
    await second;
    expect(cache.cachedAlias('cookie', 'ck-b')).toBeUndefined();
    // An impression recorded here meanwhile: the counters read before it are not kept.
    await backing.linkAliases('alice', { cookie: 'ck-c' });
    backing.hold();
    const third = cache.loadPersonByAlias('cookie', 'ck-c');
    await cache.recordImpression('alice', 'spring', 1000, 10, 86_400_000);
    backing.release();
    await third;
    expect(cache.cachedPerson('alice')).toBeUndefined();
    expect((await cache.loadPerson('alice')).counters).toEqual({ spring: [1000] });
  });

  it('lets a second read of the same alias join the one on its way, in success and in failure', async () => {
    const { backing, cache } = setup();
    await backing.putProfile(alice);
    await backing.linkAliases('alice', { cookie: 'ck-a' });
    backing.hold();
    const first = cache.loadPersonByAlias('cookie', 'ck-a');
    const second = cache.loadPersonByAlias('cookie', 'ck-a');
    const alias = cache.resolveAlias('cookie', 'ck-a');
    backing.release();
    expect((await first).pid).toBe('alice');
    expect((await second).record?.profile).toEqual(alice);
    expect(await alias).toBe('alice');
    expect(backing.byAliasLoads).toBe(1);
    expect(cache.stats().coalesced).toBe(2);

    backing.failByAlias = true;
    const failing = cache.loadPersonByAlias('cookie', 'ck-z');
    const joining = cache.resolveAlias('cookie', 'ck-z');
    await expect(failing).rejects.toThrow('store down');
    await expect(joining).rejects.toThrow('store down');
  });

  it('passes a failure to its caller only (no unhandled rejection), and caches nothing', async () => {
    const { backing, cache } = setup();
    backing.failByAlias = true;
    await expect(cache.loadPersonByAlias('cookie', 'ck-a')).rejects.toThrow('store down');
    expect(cache.cachedAlias('cookie', 'ck-a')).toBeUndefined();
    backing.failByAlias = false;
    await backing.linkAliases('alice', { cookie: 'ck-a' });
    expect((await cache.loadPersonByAlias('cookie', 'ck-a')).pid).toBe('alice');
  });
});
