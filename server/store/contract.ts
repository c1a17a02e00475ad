/**
 * The contract every ProfileStore passes (embedded, Redis, and the cache in front of either):
 * run it with `describeStoreContract(name, makeStore)` from a test file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Profile } from '../../rules/types.js';
import type { ProfileStore } from './types.js';

export interface StoreFixture {
  store: ProfileStore;
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
  describe(`ProfileStore contract: ${name}`, () => {
    let fx: StoreFixture;
    let store: ProfileStore;
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
      await store.putProfile({ id, tags: ['circle:student'], attrs: { age: 15 } });
      expect(await store.getProfile(id)).toEqual({ id, tags: ['circle:student'], attrs: { age: 15 } });
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
  });
}
