/**
 * The contract every store passes (embedded, Redis, and the cache in front of either): profiles,
 * aliases, counters, events, patches, funnels, and (where the fixture brings them) versioned
 * rule sets and the bus. Run it with `describeStoreContract(name, makeStore)` from a test file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Profile } from '../../rules/types.js';
import type { BudgetReport, Bus, BusMessage, EventWrite, PersonStore, RuleSetStore } from './types.js';

export interface StoreFixture {
  store: PersonStore;
  /** Rule sets on the same backend, announcing activations on `bus`. */
  ruleSets?: RuleSetStore;
  /** The bus of this instance. */
  bus?: Bus;
  /** Another instance's bus on the same backend (closed by the fixture's dispose). */
  makeBus?(): Promise<Bus>;
  /** Puts raw text on the bus channel, as a foreign or broken publisher would. */
  publishRaw?(text: string): Promise<void>;
  /** Moves time on by `ms` for everything the store ages by (a fake clock, or a real sleep). */
  advance(ms: number): Promise<void>;
  /** Keys left on the server whose name or string value mentions `text` (stores with a server). */
  keysMentioning?(text: string): Promise<string[]>;
  /** Extra clean-up after the store is closed. */
  dispose?(): Promise<void>;
}

const T0 = Date.parse('2026-11-24T04:00:00.000Z');
const MINUTE = 60_000;
const DAY = 86_400_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until `check` holds (for deliveries that arrive asynchronously), failing after a while. */
async function eventually(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

let serial = 0;
/** A person id no other test uses (stores may share a server). */
function freshId(label: string): string {
  serial++;
  return `ct-${label}-${process.pid}-${serial}-${Math.floor(Math.random() * 1e9).toString(36)}`;
}

function fullProfile(id: string): Profile {
  return {
    id,
    tags: [
      'circle:business',
      'category:phone',
      'age:25-34',
      'city-tier:1',
      'group:g3',
      'scene:通勤',
      'interest:esports',
    ],
    stages: { vivo: 'appeal', brightpad: 'aware', joymall: 'advocate' },
    clv: { vivo: 3200.5, brightpad: 0, joymall: 12 },
    attrs: { price_band: 6000, city_tier: 1, age: 31, vip: true, gender: 'f', score: -0.25 },
    channels: { display: 0.3, app_push: 0.85, email: 0, sms: 1 },
    activeHours: [8, 12, 20, 21],
    timezone: 'Asia/Shanghai',
    updatedAt: 1_795_000_000_123,
  };
}

export function describeStoreContract(
  name: string,
  makeStore: () => StoreFixture | Promise<StoreFixture>,
): void {
  describe(`store contract: ${name}`, () => {
    let fx: StoreFixture;
    let store: PersonStore;
    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
    });
    afterEach(async () => {
      await fx?.store.close();
      await fx?.dispose?.();
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it('round-trips a full profile, every field', async () => {
      const id = freshId('full');
      const profile = fullProfile(id);
      await store.putProfile(profile);
      expect(await store.getProfile(id)).toEqual(profile);
      const record = await store.loadPerson(id);
      expect(record.profile).toEqual(profile);
      expect(record.counters).toEqual({});
    });

    it('round-trips numbers, strings, the order of tags and keys, and unknown fields exactly', async () => {
      const id = freshId('exact');
      const profile = {
        id,
        tags: ['z', 'a', '通勤', 'a', '', 'circle:business'],
        stages: { 'brand b': 'stage x', vivo: 'aware' },
        clv: { big: 2 ** 53 - 1, negative: -12, sum: 0.1 + 0.2, cents: 12.34, zero: 0, huge: 1e21 },
        attrs: { s: 'text', t: true, f: false, n: -0.25, tiny: 5e-324, big: -(2 ** 40), empty: '' },
        channels: { sms: 0.19, display: 1, email: 0, video: 0.333 },
        activeHours: [23, 0, 12.5],
        timezone: 'Europe/Berlin',
        updatedAt: 1_795_000_000_123.5,
        nickname: 'Li',
        score: { a: [1, 'x'], b: null },
      } as unknown as Profile;
      await store.putProfile(profile);
      /** The keys of every map in the order written (answers keep it). */
      const order = (p: Profile | null) =>
        [p?.stages, p?.clv, p?.attrs, p?.channels].map((m) => Object.keys(m ?? {}));
      for (const back of [await store.getProfile(id), (await store.loadPerson(id)).profile]) {
        expect(back).toEqual(profile);
        expect(order(back)).toEqual(order(profile));
      }
      const other = { ...profile, id: freshId('exact-bulk'), tags: [...profile.tags].reverse() };
      await store.putProfiles([other]);
      const back = await store.getProfile(other.id);
      expect(back).toEqual(other);
      expect(order(back)).toEqual(order(other));
    });

    it('round-trips a minimal profile without inventing fields', async () => {
      const id = freshId('min');
      await store.putProfile({ id, tags: [] });
      const back = await store.getProfile(id);
      expect(back).toEqual({ id, tags: [] });
      expect(Object.keys(back ?? {}).sort()).toEqual(['id', 'tags']);
    });

    it('replaces a profile on put', async () => {
      const id = freshId('replace');
      await store.putProfile(fullProfile(id));
      await store.putProfile({ id, tags: ['circle:student'], attrs: { age: 15 }, stages: {} });
      expect(await store.getProfile(id)).toEqual({ id, tags: ['circle:student'], attrs: { age: 15 } });
      // Without a `stages` field the stored stages stay (events move them).
      await store.putProfile({ ...fullProfile(id), tags: ['x'] });
      await store.putProfile({ id, tags: ['y'] });
      expect(await store.getProfile(id)).toEqual({ id, tags: ['y'], stages: fullProfile(id).stages });
    });

    it('never lets a returned object change what is stored', async () => {
      const id = freshId('immutable');
      const profile = fullProfile(id);
      await store.putProfile(profile);
      profile.tags.push('written-after-put');
      const first = await store.getProfile(id);
      try {
        first?.tags.push('mutated');
        (first as Profile).attrs!.price_band = 1;
      } catch {
        // Frozen: fine too.
      }
      const loaded = (await store.loadPerson(id)).profile;
      try {
        loaded?.tags.push('mutated');
      } catch {
        // Frozen: fine too.
      }
      const again = await store.getProfile(id);
      expect(again).toEqual(fullProfile(id));
    });

    it('has a null profile and no counters for someone unknown', async () => {
      const id = freshId('nobody');
      expect(await store.getProfile(id)).toBeNull();
      expect(await store.loadPerson(id)).toEqual({ profile: null, counters: {} });
    });

    it('loads profile and counters together', async () => {
      const id = freshId('together');
      await store.putProfile(fullProfile(id));
      await store.recordImpression(id, 'x90-launch', T0, 10, 7 * DAY);
      await store.recordImpression(id, 'x90-launch', T0 + MINUTE, 10, 7 * DAY);
      await store.recordImpression(id, 'brightpad-back-to-school', T0 + 2 * MINUTE, 2, DAY);
      const record = await store.loadPerson(id);
      expect(record.profile).toEqual(fullProfile(id));
      expect(record.counters).toEqual({
        'x90-launch': [T0, T0 + MINUTE],
        'brightpad-back-to-school': [T0 + 2 * MINUTE],
      });
    });

    it('keeps counters for people without a profile (impressions of an anonymous id)', async () => {
      const id = freshId('anon');
      await store.recordImpression(id, 'c', T0, 3, DAY);
      expect(await store.loadPerson(id)).toEqual({ profile: null, counters: { c: [T0] } });
    });

    it('writes thousands of profiles at once', async () => {
      const base = freshId('bulk');
      const n = 3000;
      const profiles: Profile[] = [];
      for (let i = 0; i < n; i++) {
        profiles.push({
          id: `${base}-${i}`,
          tags: [`group:g${i % 10}`, `n:${i}`],
          attrs: { i },
          updatedAt: T0 + i,
        });
      }
      await store.putProfiles(profiles);
      for (const i of [0, 1, 999, 1000, 1001, 2500, n - 1]) {
        expect(await store.getProfile(`${base}-${i}`)).toEqual(profiles[i]);
      }
      const loaded = await Promise.all(profiles.map((p) => store.loadPerson(p.id)));
      expect(loaded.every((r, i) => r.profile?.id === profiles[i]!.id && r.profile.attrs?.i === i)).toBe(
        true,
      );
      await store.putProfiles([]);
    });

    it('resolves aliases to the person', async () => {
      const id = freshId('alias');
      await store.putProfile(fullProfile(id));
      await store.linkAliases(id, { idfa: `idfa-${id}`, cookie: `ck-${id}`, phone: `ph:${id}` });
      expect(await store.resolveAlias('idfa', `idfa-${id}`)).toBe(id);
      expect(await store.resolveAlias('cookie', `ck-${id}`)).toBe(id);
      expect(await store.resolveAlias('phone', `ph:${id}`)).toBe(id);
      // The kind is part of the alias.
      expect(await store.resolveAlias('cookie', `idfa-${id}`)).toBeNull();
      expect(await store.resolveAlias('idfa', `unknown-${id}`)).toBeNull();
      // Linking again is harmless.
      await store.linkAliases(id, { idfa: `idfa-${id}` });
      await store.linkAliases(id, {});
      expect(await store.resolveAlias('idfa', `idfa-${id}`)).toBe(id);
    });

    it('loads the person an alias names with their record, where the store does it at once', async () => {
      if (store.loadPersonByAlias === undefined) return;
      const id = freshId('by-alias');
      await store.putProfile(fullProfile(id));
      await store.linkAliases(id, { cookie: `ck-${id}`, idfa: `IDFA-${id}` });
      await store.recordImpression(id, 'spring', T0, 10, 86_400_000);
      const found = await store.loadPersonByAlias('cookie', `ck-${id}`);
      expect(found.pid).toBe(id);
      expect(found.record).toEqual(await store.loadPerson(id));
      expect((await store.loadPersonByAlias('idfa', `idfa-${id}`)).pid).toBe(id);
      expect(await store.loadPersonByAlias('cookie', `nobody-${id}`)).toEqual({ pid: null, record: null });
      // An alias of someone without a profile: the id, and an empty record.
      const bare = freshId('by-alias-bare');
      await store.linkAliases(bare, { cookie: `ck-${bare}` });
      expect(await store.loadPersonByAlias('cookie', `ck-${bare}`)).toEqual({
        pid: bare,
        record: await store.loadPerson(bare),
      });
    });

    it('matches device advertising ids in any case, and other aliases exactly', async () => {
      const id = freshId('ifa');
      const ifa = `6D92078A-8246-4BA4-AE5B-76104861E7DC-${id}`;
      await store.linkAliases(id, { idfa: ifa, cookie: `CK-${id}` });
      expect(await store.resolveAlias('idfa', ifa)).toBe(id);
      expect(await store.resolveAlias('idfa', ifa.toLowerCase())).toBe(id);
      expect(await store.aliasesOf(id)).toEqual({ idfa: ifa.toLowerCase(), cookie: `CK-${id}` });
      expect(await store.resolveAlias('cookie', `ck-${id}`)).toBeNull();
    });

    it('moves an alias to another person, and forgetting the first leaves it with the second', async () => {
      const a = freshId('from');
      const b = freshId('to');
      const cookie = `ck-shared-${a}`;
      await store.linkAliases(a, { cookie, idfa: `idfa-${a}` });
      expect(await store.resolveAlias('cookie', cookie)).toBe(a);
      await store.linkAliases(b, { cookie });
      expect(await store.resolveAlias('cookie', cookie)).toBe(b);
      expect(await store.forgetPerson(a)).toBe(true);
      expect(await store.resolveAlias('cookie', cookie)).toBe(b);
      expect(await store.resolveAlias('idfa', `idfa-${a}`)).toBeNull();
      expect(await store.forgetPerson(b)).toBe(true);
      expect(await store.resolveAlias('cookie', cookie)).toBeNull();
    });

    it('links the aliases of many people at once, moving an alias listed twice to the later person', async () => {
      const a = freshId('many-a');
      const b = freshId('many-b');
      const c = freshId('many-c');
      const shared = `ck-many-${a}`;
      await store.linkAliases(c, { cookie: shared });
      await store.linkManyAliases([
        [a, { idfa: `idfa-${a}`, cookie: shared }],
        [b, { idfa: `idfa-${b}`, cookie: shared }],
      ]);
      expect(await store.resolveAlias('idfa', `idfa-${a}`)).toBe(a);
      expect(await store.resolveAlias('idfa', `idfa-${b}`)).toBe(b);
      expect(await store.resolveAlias('cookie', shared)).toBe(b);
      expect(await store.aliasesOf(a)).toEqual({ idfa: `idfa-${a}` });
      expect(await store.aliasesOf(b)).toEqual({ cookie: shared, idfa: `idfa-${b}` });
      expect(await store.aliasesOf(c)).toEqual({});
      await store.linkManyAliases([]);
    });

    it('keeps only the `keep` most recent impressions, in time order', async () => {
      const id = freshId('keep');
      for (const m of [1, 5, 2, 4, 3])
        await store.recordImpression(id, 'x90-launch', T0 + m * MINUTE, 3, DAY);
      expect((await store.loadPerson(id)).counters).toEqual({
        'x90-launch': [T0 + 3 * MINUTE, T0 + 4 * MINUTE, T0 + 5 * MINUTE],
      });
      // An old impression arriving late does not push out newer ones.
      await store.recordImpression(id, 'x90-launch', T0, 3, DAY);
      expect((await store.loadPerson(id)).counters['x90-launch']).toEqual([
        T0 + 3 * MINUTE,
        T0 + 4 * MINUTE,
        T0 + 5 * MINUTE,
      ]);
      // keep below 1 still keeps the one just recorded.
      await store.recordImpression(id, 'other', T0, 0, DAY);
      expect((await store.loadPerson(id)).counters.other).toEqual([T0]);
    });

    it('drops impressions older than the ttl before the newest', async () => {
      const id = freshId('window');
      await store.recordImpression(id, 'c', T0, 10, 5 * MINUTE);
      await store.recordImpression(id, 'c', T0 + 3 * MINUTE, 10, 5 * MINUTE);
      await store.recordImpression(id, 'c', T0 + 10 * MINUTE, 10, 5 * MINUTE);
      expect((await store.loadPerson(id)).counters).toEqual({ c: [T0 + 10 * MINUTE] });
    });

    it('forgets counters not touched for the ttl, but a short ttl never cuts a longer one', async () => {
      const id = freshId('ttl');
      await store.recordImpression(id, 'short', T0, 3, 300);
      expect((await store.loadPerson(id)).counters).toEqual({ short: [T0] });
      await fx.advance(700);
      expect((await store.loadPerson(id)).counters).toEqual({});

      const other = freshId('ttl-long');
      await store.recordImpression(other, 'long', T0, 3, 60_000);
      await store.recordImpression(other, 'short', T0, 3, 300);
      await fx.advance(700);
      expect((await store.loadPerson(other)).counters).toEqual({ long: [T0], short: [T0] });
    });

    it('forgets a person completely: profile, counters, aliases', async () => {
      const id = freshId('forget');
      await store.putProfile(fullProfile(id));
      await store.recordImpression(id, 'x90-launch', T0, 10, DAY);
      await store.linkAliases(id, { idfa: `idfa-${id}`, cookie: `ck-${id}`, member: `m-${id}` });
      expect(await store.forgetPerson(id)).toBe(true);
      expect(await store.getProfile(id)).toBeNull();
      expect(await store.loadPerson(id)).toEqual({ profile: null, counters: {} });
      for (const [kind, value] of [
        ['idfa', `idfa-${id}`],
        ['cookie', `ck-${id}`],
        ['member', `m-${id}`],
      ] as const) {
        expect(await store.resolveAlias(kind, value)).toBeNull();
      }
      if (fx.keysMentioning !== undefined) expect(await fx.keysMentioning(id)).toEqual([]);
      expect(await store.forgetPerson(id)).toBe(false);
    });

    it('notes a key once, for every instance, until its time runs out', async () => {
      const key = freshId('note');
      const results = await Promise.all(Array.from({ length: 8 }, () => store.noteOnce(key, 400)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.noteOnce(key, 400)).toBe(false);
      expect(await store.noteOnce(freshId('note'), 400)).toBe(true);
      await fx.advance(600);
      expect(await store.noteOnce(key, 400)).toBe(true);
      if (fx.keysMentioning !== undefined) {
        await sleep(50);
        expect(await fx.keysMentioning(key)).toHaveLength(1);
      }
    });

    it('says whether there was anything to forget', async () => {
      expect(await store.forgetPerson(freshId('never'))).toBe(false);
      const onlyAlias = freshId('only-alias');
      await store.linkAliases(onlyAlias, { cookie: `ck-${onlyAlias}` });
      expect(await store.forgetPerson(onlyAlias)).toBe(true);
      const onlyCounters = freshId('only-counters');
      await store.recordImpression(onlyCounters, 'c', T0, 1, DAY);
      expect(await store.forgetPerson(onlyCounters)).toBe(true);
      if (fx.keysMentioning !== undefined) {
        expect(await fx.keysMentioning(onlyAlias)).toEqual([]);
        expect(await fx.keysMentioning(onlyCounters)).toEqual([]);
      }
    });

    // ---- stages, funnels, events, patches ----------------------------------------------------------

    it('keeps stages beside the profile and merges them in wherever a profile is read', async () => {
      const id = freshId('stages');
      const brand = freshId('brand');
      await store.putProfile({ id, tags: ['a'], stages: { [brand]: 'aware', other: 'act' } });
      expect(await store.getProfile(id)).toEqual({
        id,
        tags: ['a'],
        stages: { [brand]: 'aware', other: 'act' },
      });
      const [result] = await store.applyEvents([
        {
          eventId: freshId('ev'),
          pid: id,
          at: T0,
          stage: { brand, defaultStage: 'aware', next: { aware: 'appeal' } },
        },
      ]);
      expect(result).toEqual({ outcome: 'applied', moved: { brand, from: 'aware', to: 'appeal' } });
      const expected = { id, tags: ['a'], stages: { [brand]: 'appeal', other: 'act' } };
      expect(await store.getProfile(id)).toEqual(expected);
      expect((await store.loadPerson(id)).profile).toEqual(expected);
      // A person known only by a stage an event gave them is a profile without tags.
      const anon = freshId('anon-stage');
      await store.applyEvents([
        {
          eventId: freshId('ev'),
          pid: anon,
          at: T0,
          stage: { brand, defaultStage: 'aware', next: { aware: 'appeal' } },
        },
      ]);
      expect(await store.getProfile(anon)).toEqual({ id: anon, tags: [], stages: { [brand]: 'appeal' } });
      expect(await store.loadPerson(anon)).toEqual({
        profile: { id: anon, tags: [], stages: { [brand]: 'appeal' } },
        counters: {},
      });
      // A profile written without stages keeps the stored ones (events move them); an empty
      // `stages` clears them. Imports alike.
      await store.putProfile({ id, tags: ['b'] });
      expect(await store.getProfile(id)).toEqual({
        id,
        tags: ['b'],
        stages: { [brand]: 'appeal', other: 'act' },
      });
      await store.putProfiles([{ id, tags: ['c'] }]);
      expect(await store.getProfile(id)).toEqual({
        id,
        tags: ['c'],
        stages: { [brand]: 'appeal', other: 'act' },
      });
      expect((await store.funnel(brand, '2026-11-24', '2026-11-24')).stages).toMatchObject({ appeal: 2 });
      await store.putProfile({ id, tags: ['b'], stages: {} });
      expect(await store.getProfile(id)).toEqual({ id, tags: ['b'] });
      expect((await store.funnel(brand, '2026-11-24', '2026-11-24')).stages).toMatchObject({ appeal: 1 });
    });

    it('keeps funnel counts equal to the stored stages through puts, imports, patches, events and forgetting', async () => {
      const b = freshId('brand');
      const [p1, p2, p3, p4] = [1, 2, 3, 4].map((i) => freshId(`fn${i}`)) as [string, string, string, string];
      const counts = async () => (await store.funnel(b, '2026-11-24', '2026-11-24')).stages;
      expect(await store.funnel(b, '2026-11-24', '2026-11-24')).toEqual({ brand: b, stages: {}, moves: {} });
      await store.putProfile({ id: p1, tags: [], stages: { [b]: 'aware' } });
      await store.putProfile({ id: p2, tags: [], stages: { [b]: 'aware', unrelated: 'act' } });
      await store.putProfile({ id: p3, tags: [], stages: { [b]: 'act' } });
      expect(await counts()).toEqual({ aware: 2, act: 1 });
      // A put changing A to B moves one person; the same put again changes nothing.
      await store.putProfile({ id: p1, tags: [], stages: { [b]: 'appeal' } });
      await store.putProfile({ id: p1, tags: ['x'], stages: { [b]: 'appeal' } });
      expect(await counts()).toEqual({ aware: 1, appeal: 1, act: 1 });
      await store.putProfiles([
        { id: p2, tags: [], stages: { [b]: 'act' } },
        { id: p4, tags: [], stages: { [b]: 'aware' } },
      ]);
      expect(await counts()).toEqual({ appeal: 1, act: 2, aware: 1 });
      await store.putProfile({ id: p3, tags: [] });
      expect(await counts()).toEqual({ appeal: 1, act: 2, aware: 1 });
      await store.putProfile({ id: p3, tags: [], stages: {} });
      expect(await counts()).toEqual({ appeal: 1, act: 1, aware: 1 });
      await store.patchProfile(p1, { stages: { [b]: null } }, T0);
      await store.patchProfile(p4, { stages: { [b]: 'advocate' } }, T0);
      expect(await counts()).toEqual({ act: 1, advocate: 1 });
      const [moved] = await store.applyEvents([
        {
          eventId: freshId('ev'),
          pid: p2,
          at: T0,
          stage: { brand: b, defaultStage: 'aware', next: { act: 'advocate' } },
        },
      ]);
      expect(moved?.moved).toEqual({ brand: b, from: 'act', to: 'advocate' });
      expect(await counts()).toEqual({ advocate: 2 });
      expect(await store.forgetPerson(p2)).toBe(true);
      expect(await counts()).toEqual({ advocate: 1 });
      expect(await store.forgetPerson(p4)).toBe(true);
      expect(await counts()).toEqual({});
      // Only the event was a move.
      expect((await store.funnel(b, '2026-11-24', '2026-11-24')).moves).toEqual({
        '2026-11-24': { 'act>advocate': 1 },
      });
      if (fx.keysMentioning !== undefined) expect(await fx.keysMentioning(p2)).toEqual([]);
    });

    it('applies each event once: the same batch again is all duplicates, counted once', async () => {
      const id = freshId('idem');
      const b = freshId('brand');
      const stage = { brand: b, defaultStage: 'aware', next: { aware: 'appeal', appeal: 'act' } };
      const batch: EventWrite[] = [
        { eventId: freshId('e1'), pid: id, at: T0, impression: { campaign: 'c', keep: 10, ttlMs: DAY } },
        { eventId: freshId('e2'), pid: id, at: T0 + MINUTE, stage },
        { eventId: freshId('e3'), pid: id, at: T0 + 2 * MINUTE, stage },
      ];
      expect(await store.applyEvents(batch)).toEqual([
        { outcome: 'applied' },
        { outcome: 'applied', moved: { brand: b, from: 'aware', to: 'appeal' } },
        { outcome: 'applied', moved: { brand: b, from: 'appeal', to: 'act' } },
      ]);
      expect(await store.applyEvents(batch)).toEqual([
        { outcome: 'duplicate' },
        { outcome: 'duplicate' },
        { outcome: 'duplicate' },
      ]);
      // The same id twice in one batch: the second is a duplicate.
      const again = freshId('e4');
      const twice = await store.applyEvents([
        { eventId: again, pid: id, at: T0, impression: { campaign: 'c', keep: 10, ttlMs: DAY } },
        { eventId: again, pid: id, at: T0, impression: { campaign: 'c', keep: 10, ttlMs: DAY } },
      ]);
      expect(twice.map((r) => r.outcome)).toEqual(['applied', 'duplicate']);
      expect(await store.applyEvents([])).toEqual([]);
      const record = await store.loadPerson(id);
      expect(record.counters).toEqual({ c: [T0, T0] });
      expect(record.profile?.stages).toEqual({ [b]: 'act' });
      const f = await store.funnel(b, '2026-11-24', '2026-11-24');
      expect(f.stages).toEqual({ act: 1 });
      expect(f.moves).toEqual({ '2026-11-24': { 'aware>appeal': 1, 'appeal>act': 1 } });
    });

    it('counts an impression event against caps exactly like recordImpression', async () => {
      const direct = freshId('direct');
      const viaEvents = freshId('events');
      const impressions: Array<[string, number, number, number]> = [
        ['x90', T0 + 5 * MINUTE, 3, DAY],
        ['x90', T0 + 1 * MINUTE, 3, DAY],
        ['x90', T0 + 3 * MINUTE, 3, DAY],
        ['x90', T0 + 4 * MINUTE, 3, DAY],
        ['x90', T0, 3, DAY],
        ['pad', T0, 10, 5 * MINUTE],
        ['pad', T0 + 10 * MINUTE, 10, 5 * MINUTE],
        ['zero', T0, 0, DAY],
      ];
      for (const [campaign, at, keep, ttlMs] of impressions)
        await store.recordImpression(direct, campaign, at, keep, ttlMs);
      await store.applyEvents(
        impressions.map(([campaign, at, keep, ttlMs]) => ({
          eventId: freshId('imp'),
          pid: viaEvents,
          at,
          impression: { campaign, keep, ttlMs },
        })),
      );
      const a = (await store.loadPerson(direct)).counters;
      expect(a).toEqual({
        x90: [T0 + 3 * MINUTE, T0 + 4 * MINUTE, T0 + 5 * MINUTE],
        pad: [T0 + 10 * MINUTE],
        zero: [T0],
      });
      expect((await store.loadPerson(viaEvents)).counters).toEqual(a);
    });

    it('moves people along the table: default stage, listed stages, `*`, and no move', async () => {
      const b = freshId('brand');
      const id = freshId('mover');
      const next = { aware: 'appeal', appeal: 'act', '*': 'aware' };
      const move = (n: Readonly<Record<string, string>>, defaultStage = 'aware') =>
        store
          .applyEvents([
            { eventId: freshId('mv'), pid: id, at: T0, stage: { brand: b, defaultStage, next: n } },
          ])
          .then((r) => r[0]);
      // Nothing recorded: at the default stage, which is not counted, so only the new stage is.
      expect(await move(next)).toEqual({
        outcome: 'applied',
        moved: { brand: b, from: 'aware', to: 'appeal' },
      });
      expect((await store.funnel(b, '2026-11-24', '2026-11-24')).stages).toEqual({ appeal: 1 });
      expect((await move(next))?.moved).toEqual({ brand: b, from: 'appeal', to: 'act' });
      // `act` is not listed: `*` applies.
      expect((await move(next))?.moved).toEqual({ brand: b, from: 'act', to: 'aware' });
      // Not listed and no `*`: no move. A move to where they are: no move.
      expect(await move({ act: 'advocate' })).toEqual({ outcome: 'applied' });
      expect(await move({ aware: 'aware', '*': 'act' })).toEqual({ outcome: 'applied' });
      // Inherited object keys are not stages of the table.
      expect(await move({ aware: 'constructor' })).toEqual({
        outcome: 'applied',
        moved: { brand: b, from: 'aware', to: 'constructor' },
      });
      expect(await move({ toString: 'aware' })).toEqual({ outcome: 'applied' });
      expect((await store.funnel(b, '2026-11-24', '2026-11-24')).stages).toEqual({ constructor: 1 });
      // A person at the default stage the table does not move records nothing.
      const idle = freshId('idle');
      const [r] = await store.applyEvents([
        {
          eventId: freshId('mv'),
          pid: idle,
          at: T0,
          stage: { brand: b, defaultStage: 'aware', next: { act: 'advocate' } },
        },
      ]);
      expect(r).toEqual({ outcome: 'applied' });
      expect(await store.getProfile(idle)).toBeNull();
      expect((await store.funnel(b, '2026-11-24', '2026-11-24')).moves).toEqual({
        '2026-11-24': { 'aware>appeal': 1, 'appeal>act': 1, 'act>aware': 1, 'aware>constructor': 1 },
      });
    });

    it('counts moves per UTC day of the event', async () => {
      const b = freshId('brand');
      const next = { aware: 'appeal', appeal: 'act' };
      const lateOn23 = Date.parse('2026-11-23T23:59:59.999Z');
      const startOf24 = Date.parse('2026-11-24T00:00:00.000Z');
      const events: EventWrite[] = [];
      for (const [i, at] of [lateOn23, lateOn23, startOf24].entries()) {
        events.push({
          eventId: freshId('d'),
          pid: `${b}-p${i}`,
          at,
          stage: { brand: b, defaultStage: 'aware', next },
        });
      }
      events.push({
        eventId: freshId('d'),
        pid: `${b}-p0`,
        at: startOf24 + DAY,
        stage: { brand: b, defaultStage: 'aware', next },
      });
      await store.applyEvents(events);
      const f = await store.funnel(b, '2026-11-22', '2026-11-25');
      expect(f).toEqual({
        brand: b,
        stages: { appeal: 2, act: 1 },
        moves: {
          '2026-11-23': { 'aware>appeal': 2 },
          '2026-11-24': { 'aware>appeal': 1 },
          '2026-11-25': { 'appeal>act': 1 },
        },
      });
      expect((await store.funnel(b, '2026-11-24', '2026-11-24')).moves).toEqual({
        '2026-11-24': { 'aware>appeal': 1 },
      });
      expect((await store.funnel(b, '2026-11-25', '2026-11-24')).moves).toEqual({});
      await expect(store.funnel(b, '2026-13-01', '2026-11-24')).rejects.toThrow();
      await expect(store.funnel(b, '2020-01-01', '2026-11-24')).rejects.toThrow();
      for (const pid of [0, 1, 2]) await store.forgetPerson(`${b}-p${pid}`);
    });

    it("counts a move on the day the event names (the brand's time zone's), else the UTC day", async () => {
      const b = freshId('brand');
      const pid = `${b}-p`;
      await store.applyEvents([
        {
          eventId: freshId('d'),
          pid,
          at: Date.parse('2026-11-24T20:30:00.000Z'),
          stage: { brand: b, defaultStage: 'aware', next: { aware: 'appeal' }, day: '2026-11-25' },
        },
      ]);
      expect((await store.funnel(b, '2026-11-24', '2026-11-25')).moves).toEqual({
        '2026-11-25': { 'aware>appeal': 1 },
      });
      await store.forgetPerson(pid);
    });

    it('counts each exposed person once per arm, and a window again once it closed', async () => {
      const c = freshId('campaign');
      const [a, b, z] = [freshId('x'), freshId('x'), freshId('x')];
      const week = 7 * DAY;
      await store.recordExposures([
        { pid: a, campaign: c, arm: 'treatment', at: T0, windowMs: week },
        { pid: a, campaign: c, arm: 'treatment', at: T0 + DAY, windowMs: week },
        { pid: b, campaign: c, arm: 'control', at: T0, windowMs: week },
        // The other arm after the first: not counted (the first arm holds).
        { pid: b, campaign: c, arm: 'treatment', at: T0 + MINUTE, windowMs: week },
      ]);
      await store.recordExposures([
        { pid: a, campaign: c, arm: 'treatment', at: T0 + week + 1, windowMs: week },
      ]);
      await store.recordExposures([{ pid: z, campaign: c, arm: 'control', at: T0, windowMs: week }]);
      expect(await store.lift(c)).toEqual({
        treatment: { people: 1, exposures: 2, conversions: 0, purchases: 0 },
        control: { people: 2, exposures: 2, conversions: 0, purchases: 0 },
      });
      expect(await store.lift(freshId('none'))).toEqual({
        treatment: { people: 0, exposures: 0, conversions: 0, purchases: 0 },
        control: { people: 0, exposures: 0, conversions: 0, purchases: 0 },
      });
      for (const pid of [a, b, z]) await store.forgetPerson(pid);
    });

    it('attributes conversions and purchases inside the window to the arm, once per person', async () => {
      const [c1, c2] = [freshId('campaign'), freshId('campaign')];
      const [a, b, late, early] = [freshId('o'), freshId('o'), freshId('o'), freshId('o')];
      const window = 2 * DAY;
      await store.recordExposures([
        { pid: a, campaign: c1, arm: 'treatment', at: T0 - DAY, windowMs: window },
        { pid: a, campaign: c2, arm: 'control', at: T0 - DAY, windowMs: window },
        { pid: b, campaign: c1, arm: 'control', at: T0 - DAY, windowMs: window },
        { pid: late, campaign: c1, arm: 'treatment', at: T0 - 3 * DAY, windowMs: window },
        { pid: early, campaign: c1, arm: 'treatment', at: T0 + MINUTE, windowMs: window },
      ]);
      const conversion = (pid: string, id = freshId('ev')): EventWrite => ({
        eventId: id,
        pid,
        at: T0,
        outcome: 'conversions',
      });
      const again = freshId('ev');
      const results = await store.applyEvents([
        conversion(a, again),
        conversion(a, again), // the same event: a duplicate, nothing counted
        conversion(a), // a second conversion of the same person: counted once
        conversion(b),
        conversion(late), // after the window closed
        conversion(early), // before the exposure
        { eventId: freshId('ev'), pid: a, at: T0, outcome: 'purchases' },
      ]);
      expect(results.map((r) => r.outcome)).toEqual([
        'applied',
        'duplicate',
        'applied',
        'applied',
        'applied',
        'applied',
        'applied',
      ]);
      expect(await store.lift(c1)).toEqual({
        treatment: { people: 3, exposures: 3, conversions: 1, purchases: 1 },
        control: { people: 1, exposures: 1, conversions: 1, purchases: 0 },
      });
      expect(await store.lift(c2)).toEqual({
        treatment: { people: 0, exposures: 0, conversions: 0, purchases: 0 },
        control: { people: 1, exposures: 1, conversions: 1, purchases: 1 },
      });
      // Forgetting a person forgets their exposures: a later conversion is theirs no more.
      expect(await store.forgetPerson(b)).toBe(true);
      await store.applyEvents([{ eventId: freshId('ev'), pid: b, at: T0, outcome: 'purchases' }]);
      expect((await store.lift(c1)).control.purchases).toBe(0);
      for (const pid of [a, late, early]) await store.forgetPerson(pid);
    });

    it('draws stored people at random, every one of them when there are few', async () => {
      const tag = freshId('sample');
      const ids = Array.from({ length: 30 }, (_, i) => `${tag}-${i}`);
      await store.putProfiles(ids.map((id) => ({ id, tags: ['t:sampled'] })));
      const far = performance.now() + 30_000;
      const all = await store.samplePeople(1_000_000, far);
      const mine = all.people.filter((p) => p.pid.startsWith(tag));
      // Every person of ours, once, with their record (other tests' people may share the server).
      expect(mine.map((p) => p.pid).sort()).toEqual([...ids].sort());
      expect(mine.every((p) => p.record.profile?.tags.includes('t:sampled') && p.draws >= 1)).toBe(true);
      expect(all.exact).toBe(true);
      expect(all.population).toBe(all.people.length);
      expect(all.drawn).toBe(all.people.length);
      // Fewer than there are: at most that many, drawn without replacement.
      const few = await store.samplePeople(5, far);
      expect(few.exact).toBe(false);
      expect(few.people).toHaveLength(5);
      expect(new Set(few.people.map((p) => p.pid)).size).toBe(5);
      expect(few.population).toBe(all.people.length);
      for (const id of ids) await store.forgetPerson(id);
    });

    describe('budget lines', () => {
      const SETTLE = 60_000;
      const base = (campaign: string, over: Partial<BudgetReport> = {}): BudgetReport => ({
        campaign,
        creative: '',
        unit: 'impressions',
        day: '2026-11-24',
        overdraft: 0,
        delivered: [],
        decisions: 0,
        opportunities: [],
        ask: 0,
        dailyCap: null,
        totalCap: null,
        daysLeft: null,
        paceShare: 1,
        ...over,
      });

      it('grants what the budget has room for, counting leases as committed until given back or delivered', async () => {
        const c = freshId('budget {odd} "name"');
        const [a] = await store.leaseBudgets(
          [base(c, { ask: 600, dailyCap: 1000, totalCap: 5000 })],
          T0,
          SETTLE,
        );
        expect(a).toMatchObject({ units: 600, at: T0, limit: null, dayLimit: 1000 });
        expect(a!.day).toEqual({ spent: 0, committed: 600, decisions: 0 });
        // A second holder gets only what is left of the day.
        const [b] = await store.leaseBudgets(
          [base(c, { ask: 600, dailyCap: 1000, totalCap: 5000 })],
          T0 + 10,
          SETTLE,
        );
        expect(b).toMatchObject({ units: 400, limit: 'budget' });
        // The first gives back 100 of its 600 and reports 250 delivered: 500 + 400 committed, less 250 settled.
        const [c2] = await store.leaseBudgets(
          [
            base(c, {
              returned: { day: '2026-11-24', at: T0, units: 100 },
              delivered: [{ day: '2026-11-24', units: 250 }],
              decisions: 7,
              ask: 1000,
              dailyCap: 1000,
              totalCap: 5000,
            }),
          ],
          T0 + 1000,
          SETTLE,
        );
        expect(c2).toMatchObject({ units: 100, limit: 'budget' });
        expect(c2!.day).toEqual({ spent: 250, committed: 750, decisions: 7 });
        expect(c2!.total).toEqual({ spent: 250, committed: 750, decisions: 7 });
        // Past the settle window what was leased and never delivered lapses; the spent stays.
        const [d] = await store.leaseBudgets(
          [base(c, { ask: 2000, dailyCap: 1000, totalCap: 5000 })],
          T0 + SETTLE + 5000,
          SETTLE,
        );
        expect(d).toMatchObject({ units: 750, limit: 'budget' });
        const counts = await store.budgetCounts(
          c,
          '',
          'impressions',
          ['2026-11-24', '2026-11-25'],
          T0 + SETTLE + 5000,
          SETTLE,
        );
        expect(counts.days['2026-11-24']).toMatchObject({ spent: 250, committed: 750, decisions: 7 });
        expect(counts.days['2026-11-25']).toMatchObject({ spent: 0, committed: 0, decisions: 0 });
        expect(counts.total).toEqual({ spent: 250, committed: 750, decisions: 7 });
      });

      it('stops at the total across days, paces by the share given, and spreads an even total over the days left', async () => {
        const c = freshId('budget-total');
        const [a] = await store.leaseBudgets(
          [base(c, { ask: 900, totalCap: 1000, delivered: [{ day: '2026-11-24', units: 900 }] })],
          T0,
          SETTLE,
        );
        // 900 delivered on the 24th (nothing was leased: spent only); 100 left in all.
        expect(a).toMatchObject({ units: 100, limit: 'budget', dayLimit: null });
        // A day later the 100 leased and never delivered has lapsed: it may be leased again, once.
        const next = () =>
          store.leaseBudgets([base(c, { day: '2026-11-25', ask: 60, totalCap: 1000 })], T0 + DAY, SETTLE);
        expect((await next())[0]).toMatchObject({ units: 60, limit: null });
        expect((await next())[0]).toMatchObject({ units: 40, limit: 'budget' });
        expect((await next())[0]).toMatchObject({ units: 0, limit: 'budget' });
        // Pace: 40% of a 1000 daily by now, 0 used: 400 at most.
        const p = freshId('budget-pace');
        const [paced] = await store.leaseBudgets(
          [base(p, { ask: 1000, dailyCap: 1000, paceShare: 0.4 })],
          T0,
          SETTLE,
        );
        expect(paced).toMatchObject({ units: 400, limit: 'pace' });
        // Even total: 3000 over 3 days, 1000 spent before today -> 1000 today.
        const e = freshId('budget-even');
        await store.leaseBudgets(
          [base(e, { delivered: [{ day: '2026-11-24', units: 1000 }], totalCap: 3000, daysLeft: 3 })],
          T0,
          SETTLE,
        );
        const [even] = await store.leaseBudgets(
          [base(e, { day: '2026-11-25', ask: 5000, totalCap: 3000, daysLeft: 2 })],
          T0 + DAY,
          SETTLE,
        );
        expect(even).toMatchObject({ units: 1000, limit: 'budget', dayLimit: 1000 });
      });

      it('counts a delivery just after midnight on the day before while that day has commitments, and keeps units apart', async () => {
        const c = freshId('budget-midnight');
        const late = T0 + 20 * 3_600_000 - 10_000; // 2026-11-24T23:59:50Z
        const [a] = await store.leaseBudgets([base(c, { ask: 10, dailyCap: 10 })], late, SETTLE);
        expect(a).toMatchObject({ units: 10 });
        // Twelve delivered at 00:00:20 of the 25th: ten settle the 24th's commitments (and count
        // there), two count on the 25th.
        const [b] = await store.leaseBudgets(
          [
            base(c, {
              day: '2026-11-25',
              delivered: [{ day: '2026-11-25', units: 12, previous: '2026-11-24' }],
              ask: 10,
              dailyCap: 10,
            }),
          ],
          late + 30_000,
          SETTLE,
        );
        expect(b).toMatchObject({ units: 8, limit: 'budget' });
        expect(b!.day).toMatchObject({ spent: 2, committed: 8 });
        const counts = await store.budgetCounts(
          c,
          '',
          'impressions',
          ['2026-11-24', '2026-11-25'],
          late + 30_000,
          SETTLE,
        );
        expect(counts.days['2026-11-24']).toMatchObject({ spent: 10, committed: 0 });
        expect(counts.total.spent).toBe(12);
        // The same line counting another unit starts afresh.
        const [other] = await store.leaseBudgets(
          [base(c, { unit: 'clicks', day: '2026-11-25', ask: 10, dailyCap: 10 })],
          late + 30_000,
          SETTLE,
        );
        expect(other).toMatchObject({ units: 10, limit: null });
        expect(other!.day).toMatchObject({ spent: 0, committed: 10 });
      });

      it('keeps lines of a campaign and its creatives apart, with opportunities per hour, and large amounts exactly', async () => {
        const c = freshId('budget-lines');
        const big = 123_456_789_012_345;
        await store.leaseBudgets(
          [
            base(c, {
              ask: big,
              dailyCap: big + 1,
              opportunities: [
                { hour: 0, n: 3 },
                { hour: 23, n: 2 },
              ],
            }),
            base(c, { creative: 'cr|1', ask: 5, dailyCap: 10, decisions: 2 }),
          ],
          T0,
          SETTLE,
        );
        const whole = await store.budgetCounts(c, '', 'impressions', ['2026-11-24'], T0, SETTLE);
        expect(whole.days['2026-11-24']!.committed).toBe(big);
        expect(whole.days['2026-11-24']!.opportunities).toEqual([3, ...new Array(22).fill(0), 2]);
        const cr = await store.budgetCounts(c, 'cr|1', 'impressions', ['2026-11-24'], T0, SETTLE);
        expect(cr.days['2026-11-24']).toMatchObject({ committed: 5, decisions: 2 });
        const none = await store.budgetCounts(
          freshId('budget-none'),
          '',
          'impressions',
          ['2026-11-24'],
          T0,
          SETTLE,
        );
        expect(none.total).toEqual({ spent: 0, committed: 0, decisions: 0 });
        await expect(store.leaseBudgets([base(c, { ask: -1 })], T0, SETTLE)).rejects.toThrow(RangeError);
        await expect(store.leaseBudgets([base(c, { ask: 0.5 })], T0, SETTLE)).rejects.toThrow(RangeError);
      });
    });

    it('keeps delivery rows per day, creative and channel, from counts and from events', async () => {
      const c = freshId('campaign "odd|name/é"');
      const pid = freshId('d');
      await store.addDelivery([
        { campaign: c, day: '2026-11-24', creative: 'cr-1', channel: 'display', metric: 'decisions', n: 3 },
        { campaign: c, day: '2026-11-24', creative: 'cr-1', channel: 'display', metric: 'decisions', n: 2 },
        { campaign: c, day: '2026-11-24', creative: 'cr|2', channel: 'video', metric: 'ghosts', n: 1 },
        { campaign: c, day: '2026-11-26', creative: 'cr-1', channel: 'display', metric: 'decisions', n: 1 },
      ]);
      const shown = {
        eventId: freshId('ev'),
        pid,
        at: T0,
        delivery: [
          {
            campaign: c,
            day: '2026-11-24',
            creative: 'cr-1',
            channel: 'display',
            metric: 'impressions',
            n: 1,
          },
          {
            campaign: c,
            day: '2026-11-24',
            creative: 'cr-1',
            channel: 'display',
            metric: 'spend:EUR',
            n: 1250,
          },
        ],
      } satisfies EventWrite;
      await store.applyEvents([shown, shown]);
      expect(await store.delivery(c, '2026-11-23', '2026-11-26')).toEqual([
        {
          day: '2026-11-24',
          creative: 'cr-1',
          channel: 'display',
          counts: { decisions: 5, impressions: 1, 'spend:EUR': 1250 },
        },
        { day: '2026-11-24', creative: 'cr|2', channel: 'video', counts: { ghosts: 1 } },
        { day: '2026-11-26', creative: 'cr-1', channel: 'display', counts: { decisions: 1 } },
      ]);
      expect(await store.delivery(c, '2026-11-25', '2026-11-25')).toEqual([]);
      await expect(
        store.addDelivery([
          { campaign: c, day: '2026-13-01', creative: '', channel: '', metric: 'clicks', n: 1 },
        ]),
      ).rejects.toThrow();
      await store.forgetPerson(pid);
    });

    it('patches a profile: tags, maps with null removals, active hours and time zone', async () => {
      const id = freshId('patch');
      const b = freshId('brand');
      await store.putProfile({
        ...fullProfile(id),
        stages: { [b]: 'aware', joymall: 'advocate' },
      });
      const patched = await store.patchProfile(
        id,
        {
          removeTags: ['age:25-34', 'not-there'],
          addTags: ['circle:new-parent', 'group:g3', 'circle:new-parent'],
          stages: { [b]: 'act', joymall: null },
          clv: { vivo: null, brightpad: 50 },
          attrs: { price_band: null, kids: 2 },
          channels: { email: null, video: 0.5 },
          activeHours: [7, 22],
          timezone: null,
        },
        T0,
      );
      const full = fullProfile(id);
      const expected: Profile = {
        id,
        tags: [...full.tags.filter((t) => t !== 'age:25-34'), 'circle:new-parent'],
        stages: { [b]: 'act' },
        clv: { brightpad: 50, joymall: 12 },
        attrs: { city_tier: 1, age: 31, vip: true, gender: 'f', score: -0.25, kids: 2 },
        channels: { display: 0.3, app_push: 0.85, sms: 1, video: 0.5 },
        activeHours: [7, 22],
        updatedAt: T0,
      };
      expect(patched).toEqual(expected);
      expect(await store.getProfile(id)).toEqual(expected);
      expect((await store.loadPerson(id)).profile).toEqual(expected);
      expect((await store.funnel(b, '2026-11-24', '2026-11-24')).stages).toEqual({ act: 1 });
      // Clearing active hours; maps emptied by a patch are dropped; an empty patch only stamps.
      const cleared = await store.patchProfile(
        id,
        { activeHours: null, stages: { [b]: null }, clv: { brightpad: null, joymall: null } },
        T0 + 1,
      );
      const { activeHours: _a, stages: _s, clv: _c, ...rest } = expected;
      expect(cleared).toEqual({ ...rest, updatedAt: T0 + 1 });
      expect(await store.patchProfile(id, {}, T0 + 2)).toEqual({ ...rest, updatedAt: T0 + 2 });
      expect((await store.funnel(b, '2026-11-24', '2026-11-24')).stages).toEqual({});
      // Unknown people are not created by a patch.
      const ghost = freshId('ghost');
      expect(await store.patchProfile(ghost, { addTags: ['x'] }, T0)).toBeNull();
      expect(await store.getProfile(ghost)).toBeNull();
    });

    it('patches concurrently without losing a change', async () => {
      const id = freshId('concurrent');
      await store.putProfile({ id, tags: [] });
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.patchProfile(id, { addTags: [`t${i}`], attrs: { [`a${i}`]: i } }, T0 + i),
        ),
      );
      const back = await store.getProfile(id);
      expect(back?.tags.slice().sort()).toEqual(Array.from({ length: 20 }, (_, i) => `t${i}`).sort());
      expect(Object.keys(back?.attrs ?? {}).length).toBe(20);
    });

    it('lists the aliases of a person', async () => {
      const a = freshId('aliases');
      const b = freshId('aliases-b');
      expect(await store.aliasesOf(a)).toEqual({});
      await store.linkAliases(a, { idfa: `idfa-${a}`, phone: `ph:${a}` });
      expect(await store.aliasesOf(a)).toEqual({ idfa: `idfa-${a}`, phone: `ph:${a}` });
      await store.linkAliases(b, { phone: `ph:${a}` });
      expect(await store.aliasesOf(a)).toEqual({ idfa: `idfa-${a}` });
      expect(await store.aliasesOf(b)).toEqual({ phone: `ph:${a}` });
      await store.forgetPerson(a);
      await store.forgetPerson(b);
      expect(await store.aliasesOf(a)).toEqual({});
    });

    // ---- rule sets and the bus ------------------------------------------------------------------

    it('keeps rule-set versions, newest first, and announces an activation on the bus', async () => {
      const rs = fx.ruleSets;
      const bus = fx.bus;
      if (rs === undefined || bus === undefined) return;
      const heard: BusMessage[] = [];
      const off = await bus.subscribe((m) => heard.push(m));
      const meta = (n: number) => ({
        checksum: `sha256:${n}`,
        format: 'yaml' as const,
        createdBy: 'ops',
        createdAt: T0 + n,
        bytes: 10 + n,
      });
      const v1 = await rs.addRuleSet('funnel: [a]\n', meta(1));
      const v2 = await rs.addRuleSet('{"funnel": ["b"]}', { ...meta(2), format: 'json' });
      expect(v2).toBe(v1 + 1);
      const list = await rs.listRuleSets();
      expect(list.slice(0, 2)).toEqual([
        { version: v2, ...meta(2), format: 'json' },
        { version: v1, ...meta(1) },
      ]);
      expect(list.map((m) => m.version)).toEqual([...list.map((m) => m.version)].sort((x, y) => y - x));
      expect(await rs.getRuleSet(v1)).toEqual({ meta: { version: v1, ...meta(1) }, source: 'funnel: [a]\n' });
      expect(await rs.getRuleSet(v2 + 1000)).toBeNull();
      expect(await rs.activateRuleSet(v2 + 1000, 'ops', T0)).toBe(false);
      expect(await rs.activateRuleSet(v1, 'alice', T0 + 100)).toBe(true);
      expect(await rs.activeRuleSet()).toEqual({ version: v1, checksum: 'sha256:1' });
      expect((await rs.getRuleSet(v1))?.meta).toEqual({
        version: v1,
        ...meta(1),
        activatedAt: T0 + 100,
        activatedBy: 'alice',
      });
      await eventually(() => heard.some((m) => m.type === 'ruleset' && m.version === v1), 'the activation');
      // Rollback to another version.
      expect(await rs.activateRuleSet(v2, 'bob', T0 + 200)).toBe(true);
      expect(await rs.activeRuleSet()).toEqual({ version: v2, checksum: 'sha256:2' });
      // Only when none is active, when asked so.
      expect(await rs.activateRuleSet(v1, 'carol', T0 + 300, { ifNoneActive: true })).toBe(false);
      expect(await rs.activeRuleSet()).toEqual({ version: v2, checksum: 'sha256:2' });
      await eventually(() => heard.some((m) => m.type === 'ruleset' && m.version === v2), 'the rollback');
      // Only while a given version is active (a roll back must not undo a change it did not see).
      expect(await rs.activateRuleSet(v1, 'dave', T0 + 400, { ifActive: v1, rollback: true })).toBe(false);
      expect(await rs.activateRuleSet(v1, 'dave', T0 + 500, { ifActive: v2, rollback: true })).toBe(true);
      expect(await rs.activeRuleSet()).toEqual({ version: v1, checksum: 'sha256:1' });
      // The log: what took effect, newest first; refused activations are not in it.
      expect(await rs.activations(3)).toEqual([
        { version: v1, by: 'dave', at: T0 + 500, rollback: true },
        { version: v2, by: 'bob', at: T0 + 200, rollback: false },
        { version: v1, by: 'alice', at: T0 + 100, rollback: false },
      ]);
      expect(await rs.activations(0)).toEqual([]);
      expect(heard.filter((m) => m.type !== 'ruleset')).toEqual([]);
      off();
    });

    it('keeps named configuration documents beside the rule sets', async () => {
      const rs = fx.ruleSets;
      if (rs === undefined) return;
      const name = freshId('doc');
      expect(await rs.getDocument(name)).toBeNull();
      await rs.putDocument(name, '{"date":"2026-11-27"}');
      expect(await rs.getDocument(name)).toBe('{"date":"2026-11-27"}');
      await rs.putDocument(name, 'é, and more: ✓');
      expect(await rs.getDocument(name)).toBe('é, and more: ✓');
    });

    it('delivers bus messages to every subscriber, the publisher included, and ignores malformed ones', async () => {
      const bus = fx.bus;
      if (bus === undefined || fx.makeBus === undefined) return;
      const other = await fx.makeBus();
      const mine: BusMessage[] = [];
      const theirs: BusMessage[] = [];
      const offMine = await bus.subscribe((m) => mine.push(m));
      const offTheirs = await other.subscribe((m) => theirs.push(m));
      const tag = freshId('bus');
      await bus.publish({ type: 'person', pid: tag });
      await other.publish({ type: 'alias', kind: 'idfa', value: tag });
      const both = [
        { type: 'person', pid: tag },
        { type: 'alias', kind: 'idfa', value: tag },
      ];
      const ours = (list: BusMessage[]) =>
        list.filter((m) => (m.type === 'person' && m.pid === tag) || (m.type === 'alias' && m.value === tag));
      await eventually(
        () => ours(mine).length === 2 && ours(theirs).length === 2,
        'both messages on both buses',
      );
      expect(ours(mine)).toEqual(both);
      expect(ours(theirs)).toEqual(both);
      if (fx.publishRaw !== undefined) {
        for (const raw of [
          'not json',
          '{"type":"ruleset","version":"7"}',
          '[1,2]',
          'null',
          '{"type":"nope"}',
        ])
          await fx.publishRaw(raw);
        await bus.publish({ type: 'ruleset', version: 424242 });
        await eventually(
          () => mine.some((m) => m.type === 'ruleset' && m.version === 424242),
          'a message after junk',
        );
        expect(mine.filter((m) => m.type === 'ruleset' && m.version !== 424242)).toEqual([]);
      }
      // A handler that throws does not stop the others.
      const offThrow = await bus.subscribe(() => {
        throw new Error('boom');
      });
      await bus.publish({ type: 'person', pid: `${tag}-2` });
      await eventually(
        () => theirs.some((m) => m.type === 'person' && m.pid === `${tag}-2`),
        'delivery past a throwing handler',
      );
      offThrow();
      // Unsubscribed: no more deliveries.
      offTheirs();
      await bus.publish({ type: 'person', pid: `${tag}-3` });
      await eventually(
        () => mine.some((m) => m.type === 'person' && m.pid === `${tag}-3`),
        'the last message',
      );
      await sleep(20);
      expect(theirs.some((m) => m.type === 'person' && m.pid === `${tag}-3`)).toBe(false);
      offMine();
    });
  });
}
