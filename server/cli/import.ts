/**
 * `npm run import -- FILE [--batch N]`: loads NDJSON profiles (one a line, optionally with
 * `aliases`) straight into Redis, with the same checks as POST /v1/profiles/import. FILE `-`
 * reads standard input.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run import -- people.ndjson --batch 1000
 *
 * Honours REDIS_URL and REDIS_KEY_PREFIX. Progress (lines/s) goes to stderr; the summary and the
 * refused lines (with their line numbers) too. Exit status: 0 when every line was imported, 2
 * when some lines were refused, 1 when the import could not run or stopped.
 */
import { createReadStream } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseRuleSetText } from '../../rules/parse.js';
import { ConfigError, describeRedis, loadConfig } from '../config.js';
import { ImportAborted, type ImportResult, importProfiles } from '../profiles/import.js';
import { EmbeddedBus } from '../store/bus.js';
import { RedisStore } from '../store/redis.js';
import type { RedisTopology } from '../store/redis-client.js';
import { RedisRuleSets } from '../store/redis-rulesets.js';
import type { ProfileStore } from '../store/types.js';

type BulkStore = Pick<ProfileStore, 'putProfiles' | 'linkManyAliases' | 'ping' | 'close'>;

export interface ImportIo {
  env: NodeJS.ProcessEnv;
  stdin: AsyncIterable<Uint8Array | string>;
  err: (line: string) => void;
  /** Opens the store; default a RedisStore as the server would (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS; REDIS_KEY_PREFIX). */
  openStore?: (topology: RedisTopology, keyPrefix: string) => BulkStore;
  /** Seconds between progress lines. Default 2. */
  progressEverySec?: number;
}

/** The stages of the store's active rule set (as the server checks imports against); null when none is active. */
async function activeFunnel(store: RedisStore): Promise<readonly string[] | null> {
  const rulesets = new RedisRuleSets({ store, bus: new EmbeddedBus() });
  const active = await rulesets.activeRuleSet();
  const stored = active === null ? null : await rulesets.getRuleSet(active.version);
  if (stored === null) return null;
  const parsed = parseRuleSetText(stored.source, stored.meta.format);
  return parsed.ok ? parsed.value.funnel : null;
}

const USAGE =
  'usage: npm run import -- FILE|- [--batch N]   (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS must be set)';

export async function runImport(args: readonly string[], io: ImportIo): Promise<number> {
  let file: string | undefined;
  let batch = 1000;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--batch') {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 100_000) {
        io.err(`--batch takes a whole number from 1 to 100000\n${USAGE}`);
        return 1;
      }
      batch = n;
    } else if (a === '-h' || a === '--help') {
      io.err(USAGE);
      return 0;
    } else if (file === undefined && (a === '-' || !a.startsWith('-'))) {
      file = a;
    } else {
      io.err(`unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
      return 1;
    }
  }
  if (file === undefined) {
    io.err(USAGE);
    return 1;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(io.env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.err(e.message);
    return 1;
  }
  const topology = config.redis;
  if (topology === undefined) {
    io.err(`REDIS_URL is not set: say which Redis to load, e.g. REDIS_URL=redis://127.0.0.1:6379\n${USAGE}`);
    return 1;
  }
  const prefix = config.redisKeyPrefix;
  const open =
    io.openStore ??
    ((t: RedisTopology, keyPrefix: string) => new RedisStore({ topology: t, keyPrefix, log: () => {} }));
  const store = open(topology, prefix);
  const where = `${describeRedis(topology)}${prefix === '' ? '' : ` (key prefix "${prefix}")`}`;
  try {
    try {
      await store.ping();
    } catch (e) {
      io.err(`Cannot reach ${where}: ${(e as Error).message}`);
      return 1;
    }
    const funnel = store instanceof RedisStore ? await activeFunnel(store) : null;
    if (store instanceof RedisStore && funnel === null) {
      io.err('No rule set is active in this store: stage names are not checked against a funnel.');
    }
    const source = file === '-' ? io.stdin : createReadStream(file, { highWaterMark: 256 * 1024 });
    const started = performance.now();
    let lastReport = started;
    const every = (io.progressEverySec ?? 2) * 1000;
    io.err(
      `Importing ${file === '-' ? 'standard input' : file} into ${where}, ${batch} profiles a batch ...`,
    );
    let result: ImportResult;
    try {
      result = await importProfiles(source, store, {
        batchSize: batch,
        ...(funnel === null ? {} : { funnel: () => funnel }),
        onBatch: (_, progress) => {
          const t = performance.now();
          if (t - lastReport < every) return;
          lastReport = t;
          const rate = Math.round(progress.lines / ((t - started) / 1000));
          io.err(
            `  ${progress.lines} lines, ${progress.imported} imported, ${progress.failed} refused (${rate} lines/s)`,
          );
        },
      });
    } catch (e) {
      if (e instanceof ImportAborted) {
        io.err(
          `The import stopped at line ${e.line}: ${(e.reason as Error)?.message}. ${e.progress.imported} profiles before it were written; running the import again is safe.`,
        );
        return 1;
      }
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        io.err(`Cannot read ${file}: no such file`);
        return 1;
      }
      throw e;
    }
    const seconds = (performance.now() - started) / 1000;
    for (const e of result.errors) {
      io.err(
        `line ${e.line}: ${e.message}${e.path === undefined || e.path === '' ? '' : ` [${e.path}]`} (${e.code})`,
      );
    }
    if (result.moreErrors !== undefined) io.err(`... and ${result.moreErrors} more refused lines`);
    io.err(
      `Imported ${result.imported} profiles from ${result.lines} lines in ${seconds.toFixed(2)} s (${Math.round(result.lines / Math.max(seconds, 0.001))} lines/s); ${result.failed} refused`,
    );
    return result.failed > 0 ? 2 : 0;
  } catch (e) {
    io.err(`The import failed: ${(e as Error).message}`);
    return 1;
  } finally {
    await store.close();
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  runImport(process.argv.slice(2), {
    env: process.env,
    stdin: process.stdin,
    err: (line) => process.stderr.write(`${line}\n`),
  }).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
