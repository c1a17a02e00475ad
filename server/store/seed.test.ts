/** `npm run seed` against a real redis-server: the demo people land where the server reads them. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisHandle, startRedis } from '../../test/redis-server.js';
import { seed } from '../cli/seed.js';
import { demoAliases, demoProfile } from '../demo/profiles.js';
import { RedisStore } from './redis.js';

describe('seed command', () => {
  let redis: RedisHandle;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('writes the demo profiles and aliases, with progress and a summary', async () => {
    const lines: string[] = [];
    const code = await seed({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'seed:', DEMO_PEOPLE: '2500' }, (l) =>
      lines.push(l),
    );
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/Seeding 2500 demo profiles/);
    expect(lines.some((l) => /2500 \/ 2500 \(100%\)/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(
      /^Seeded 2500 profiles \(p-0 \.\. p-2499\) and \d+ aliases in [\d.]+ s, \d+ profiles\/s$/,
    );
    const store = new RedisStore({ url: redis.url, keyPrefix: 'seed:', log: () => {} });
    try {
      for (const i of [0, 1001, 2499]) {
        expect(await store.getProfile(`p-${i}`)).toEqual(demoProfile(i));
        for (const [kind, value] of Object.entries(demoAliases(i))) {
          expect(await store.resolveAlias(kind, value)).toBe(`p-${i}`);
        }
      }
      expect(await store.getProfile('p-2500')).toBeNull();
    } finally {
      await store.close();
    }
  });

  it('refuses to run without REDIS_URL, or when Redis cannot be reached', async () => {
    expect(await seed({}, () => {})).toBe(1);
    const dead = await startRedis();
    await dead.stop();
    expect(await seed({ REDIS_URL: dead.url, DEMO_PEOPLE: '10' }, () => {})).toBe(1);
  });
});
