/**
 * How fast profiles go into Redis through putProfiles (the import path: one PUT_PERSON_LUA call
 * per profile, pipelined), with demo profiles (20-40 tags, a stage and CLV for 3 brands).
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run bench:import -- [people] [chunk]
 *
 * Writes under the key prefix `import-bench:` (deleted before and after), then prints profiles/s
 * (time spent in putProfiles) for a first import (no stages stored yet) and for importing the
 * same people again (every stage compared), and checks the funnel counts against the people.
 */
import type { Redis } from 'ioredis';
import { demoProfile } from '../server/demo/profiles.js';
import { RedisStore } from '../server/store/redis.js';

const PREFIX = 'import-bench:';

async function main(): Promise<void> {
  const url = process.env.REDIS_URL;
  if (url === undefined) throw new Error('set REDIS_URL to a Redis you may write to');
  const people = Number(process.argv[2] ?? 200_000);
  const chunk = Number(process.argv[3] ?? 10_000);
  const store = new RedisStore({ url, keyPrefix: PREFIX, log: () => {} });
  await store.ping();
  const redis = store.client.main as Redis;
  const wipe = async () => {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 10_000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  };
  try {
    await wipe();
    let withStage = 0;
    for (const label of ['first import', 'same people again']) {
      // Only putProfiles is timed; a chunk is made just before it is written (as an import
      // parses one chunk of lines at a time), so few profiles are alive at once.
      let ms = 0;
      withStage = 0;
      for (let i = 0; i < people; i += chunk) {
        const profiles = [];
        for (let j = i; j < Math.min(people, i + chunk); j++) profiles.push(demoProfile(j));
        withStage += profiles.filter((p) => p.stages?.vivo !== undefined).length;
        const t0 = performance.now();
        await store.putProfiles(profiles);
        ms += performance.now() - t0;
      }
      const s = ms / 1000;
      console.log(`${label}: ${people} profiles in ${s.toFixed(2)} s, ${Math.round(people / s)} profiles/s`);
    }
    const funnel = await store.funnel('vivo', '2026-11-24', '2026-11-24');
    const counted = Object.values(funnel.stages).reduce((a, b) => a + b, 0);
    console.log(`funnel vivo: ${JSON.stringify(funnel.stages)} (${counted} counted, ${withStage} stored)`);
    if (counted !== withStage) process.exitCode = 1;
  } finally {
    await wipe();
    await store.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
