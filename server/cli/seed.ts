/**
 * `npm run seed`: writes the deterministic demo people (server/demo/profiles.ts) and their
 * aliases to Redis, so that a server started with the same REDIS_URL answers for p-0 … p-N.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run seed
 *
 * Honours REDIS_KEY_PREFIX and DEMO_PEOPLE (default 10000). Exits 1 with a message when Redis is
 * not configured or not reachable.
 */
import { pathToFileURL } from 'node:url';
import { ConfigError, describeRedis, loadConfig } from '../config.js';
import { demoAliases, demoProfile } from '../demo/profiles.js';
import { RedisStore } from '../store/redis.js';
import type { AliasLink } from '../store/types.js';

const BATCH = 1000;

export async function seed(
  env: NodeJS.ProcessEnv = process.env,
  out: (line: string) => void = console.log,
): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 1;
    }
    throw e;
  }
  if (config.redis === undefined) {
    console.error(
      'REDIS_URL is not set: say which Redis to seed, e.g. REDIS_URL=redis://127.0.0.1:6379 npm run seed (or REDIS_CLUSTER_NODES, REDIS_SENTINELS)',
    );
    return 1;
  }
  const where = `${describeRedis(config.redis)}${config.redisKeyPrefix === '' ? '' : ` (key prefix "${config.redisKeyPrefix}")`}`;
  const store = new RedisStore({ topology: config.redis, keyPrefix: config.redisKeyPrefix, log: () => {} });
  try {
    try {
      await store.ping();
    } catch (e) {
      console.error(`Cannot reach ${where}: ${(e as Error).message}`);
      return 1;
    }
    const total = config.demoPeople;
    out(`Seeding ${total} demo profiles and their aliases into ${where} ...`);
    const started = performance.now();
    let aliases = 0;
    let reportedTenths = 0;
    for (let from = 0; from < total; from += BATCH) {
      const to = Math.min(total, from + BATCH);
      const profiles = [];
      for (let i = from; i < to; i++) profiles.push(demoProfile(i));
      await store.putProfiles(profiles);
      const links: AliasLink[] = [];
      for (let i = from; i < to; i++) {
        const a = demoAliases(i);
        aliases += Object.keys(a).length;
        links.push([`p-${i}`, a]);
      }
      await store.linkManyAliases(links);
      const tenths = Math.floor((to * 10) / total);
      if (tenths > reportedTenths || to === total) {
        reportedTenths = tenths;
        out(`  ${to} / ${total} (${Math.floor((to / total) * 100)}%)`);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(total / seconds) : total;
    out(
      `Seeded ${total} profiles${total > 0 ? ` (p-0 .. p-${total - 1})` : ''} and ${aliases} aliases in ${seconds.toFixed(2)} s, ${rate} profiles/s`,
    );
    return 0;
  } catch (e) {
    console.error(`Seeding failed: ${(e as Error).message}`);
    return 1;
  } finally {
    await store.close();
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  seed().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
