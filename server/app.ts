/**
 * Wires a running server: store (Redis or embedded) behind a cache, the active rule set, the
 * decision service, the data plane (uWebSockets.js) and the control plane (Hono).
 */
import type { Config } from './config.js';
import { DecisionService } from './decision/service.js';
import { demoAliases, demoProfile } from './demo/profiles.js';
import { createAdminApp, listenAdmin } from './http/admin.js';
import { createDataPlane, type Listener, listen } from './http/data-plane.js';
import { loadRuleSetFile } from './ruleset-file.js';
import { CachedStore } from './store/cached.js';
import { EmbeddedStore } from './store/embedded.js';
import { RedisStore } from './store/redis.js';
import type { ProfileStore } from './store/types.js';

export interface RunningServer {
  readonly dataPort: number;
  readonly adminPort: number;
  readonly service: DecisionService;
  readonly store: CachedStore;
  /** Stops accepting, lets requests in flight finish (up to `graceMs`), closes the store. */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  log?: (line: string) => void;
  /** The clock of decisions (tests pin it). */
  now?: () => number;
}

/** The backing store from the configuration: Redis when REDIS_URL is set, else embedded demo data. */
export async function openStore(config: Config, log: (line: string) => void): Promise<ProfileStore> {
  if (config.redisUrl !== undefined) {
    const store = new RedisStore({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix });
    log(`profile store: Redis at ${redact(config.redisUrl)}`);
    return store;
  }
  const store = new EmbeddedStore();
  const batch = [];
  for (let i = 0; i < config.demoPeople; i++) batch.push(demoProfile(i));
  await store.putProfiles(batch);
  for (let i = 0; i < config.demoPeople; i++) await store.linkAliases(`p-${i}`, demoAliases(i));
  log(
    `profile store: embedded, ${config.demoPeople} synthetic demo profiles loaded (p-0 .. p-${config.demoPeople - 1})`,
  );
  return store;
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const active = loadRuleSetFile(config.rulesetFile);
  const backing = await openStore(config, log);
  const store = new CachedStore(backing, {
    maxPeople: config.cacheMaxPeople,
    maxAliases: config.cacheMaxAliases,
    ttlMs: config.cacheTtlMs,
  });
  const service = new DecisionService(store, active, {
    deadlineMs: config.deadlineMs,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  });

  let inFlight = 0;
  let draining = false;
  let idle: (() => void) | null = null;
  const dataApp = createDataPlane({
    service,
    maxBodyBytes: config.maxBodyBytes,
    onDecision: () => {
      inFlight--;
      if (inFlight === 0 && idle !== null) idle();
    },
    onRequest: () => {
      inFlight++;
    },
  });
  let data: Listener;
  let admin: Listener;
  try {
    data = await listen(dataApp, config.host, config.port);
    admin = await listenAdmin(
      createAdminApp({ service, store, draining: () => draining }),
      config.host,
      config.adminPort,
    );
  } catch (e) {
    await store.close();
    throw e;
  }

  return {
    dataPort: data.port,
    adminPort: admin.port,
    service,
    store,
    async close(graceMs = 10_000) {
      if (draining) return;
      draining = true;
      data.close();
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          idle = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      admin.close();
      await store.close();
    },
  };
}

function redact(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
