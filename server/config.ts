/**
 * Configuration from environment variables, validated at start. A bad value stops the server
 * with a message naming the variable. README.md has the same table.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Config {
  host: string;
  port: number;
  adminPort: number;
  /** Unset: the embedded store with demo data. */
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  rulesetFile: string;
  /** Default decision deadline; a request may ask for less. */
  deadlineMs: number;
  maxBodyBytes: number;
  cacheMaxPeople: number;
  cacheMaxAliases: number;
  cacheTtlMs: number;
  /** Synthetic demo profiles loaded into the embedded store. */
  demoPeople: number;
}

export interface ConfigVar {
  name: string;
  default: string;
  description: string;
}

/** The folder holding package.json, whether running from sources or from dist/. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the server code');
    dir = up;
  }
  return dir;
}

export const DEMO_RULESET = join(projectRoot(), 'rules', 'examples', 'demo.yaml');

/** Every variable the server reads, with its default and meaning (the README table). */
export const CONFIG_VARS: readonly ConfigVar[] = [
  { name: 'HOST', default: '0.0.0.0', description: 'Address both listeners bind to' },
  { name: 'PORT', default: '8080', description: 'Data plane (POST /v1/decide), uWebSockets.js' },
  { name: 'ADMIN_PORT', default: '8081', description: 'Control plane (health, readiness), Hono' },
  {
    name: 'REDIS_URL',
    default: '(unset)',
    description: 'Redis for profiles; unset: embedded store with demo data',
  },
  { name: 'REDIS_KEY_PREFIX', default: '(empty)', description: 'Prefix for every Redis key' },
  {
    name: 'RULESET_FILE',
    default: 'rules/examples/demo.yaml',
    description: 'Rule set loaded at start (YAML or JSON)',
  },
  {
    name: 'DECISION_DEADLINE_MS',
    default: '10',
    description: 'Deadline of a decision; requests may ask for less',
  },
  { name: 'MAX_BODY_BYTES', default: '65536', description: 'Largest request body accepted (413 above)' },
  { name: 'CACHE_MAX_PEOPLE', default: '100000', description: 'Profiles kept in the in-process cache' },
  { name: 'CACHE_MAX_ALIASES', default: '100000', description: 'Alias resolutions kept in the cache' },
  { name: 'CACHE_TTL_MS', default: '2000', description: 'Longest a cached profile or alias is used' },
  { name: 'DEMO_PEOPLE', default: '10000', description: 'Synthetic profiles loaded into the embedded store' },
];

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const redisUrl = env.REDIS_URL === undefined || env.REDIS_URL === '' ? undefined : env.REDIS_URL;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    problems.push(`REDIS_URL=${JSON.stringify(redisUrl)}: expected redis://host:port or rediss://...`);
  }
  const config: Config = {
    host: env.HOST === undefined || env.HOST === '' ? '0.0.0.0' : env.HOST,
    port: int('PORT', 8080, 0, 65535),
    adminPort: int('ADMIN_PORT', 8081, 0, 65535),
    redisUrl,
    redisKeyPrefix: env.REDIS_KEY_PREFIX ?? '',
    rulesetFile: env.RULESET_FILE === undefined || env.RULESET_FILE === '' ? DEMO_RULESET : env.RULESET_FILE,
    deadlineMs: int('DECISION_DEADLINE_MS', 10, 1, 60_000),
    maxBodyBytes: int('MAX_BODY_BYTES', 65_536, 1024, 16 * 1024 * 1024),
    cacheMaxPeople: int('CACHE_MAX_PEOPLE', 100_000, 1, 100_000_000),
    cacheMaxAliases: int('CACHE_MAX_ALIASES', 100_000, 1, 100_000_000),
    cacheTtlMs: int('CACHE_TTL_MS', 2000, 1, 3_600_000),
    demoPeople: int('DEMO_PEOPLE', 10_000, 0, 10_000_000),
  };
  if (config.port !== 0 && config.port === config.adminPort) {
    problems.push(`PORT and ADMIN_PORT are both ${config.port}: the two listeners need different ports`);
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  return config;
}
