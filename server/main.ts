/**
 * `npm start`: the server process. Reads the configuration, loads the rule set (refusing to
 * start when it is invalid), opens the store and both listeners, and drains on SIGTERM/SIGINT.
 * With Redis and WORKERS above 1, the data plane runs in that many worker threads (server/worker.ts)
 * and this thread serves the control plane.
 */
import { setFlagsFromString } from 'node:v8';
import { startServer } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import { RuleSetFileError } from './ruleset-file.js';
import { startWorkers, type WorkerPool } from './worker.js';

/**
 * V8's allocation-site pretenuring off, for every thread of the process (V8's flags are the
 * process's; worker threads start later). It watches, per allocation site, what share of the
 * objects made there are still alive at a young-generation collection, and from then on allocates
 * a site's objects straight in the old generation when nearly all were. That decision is not
 * revisited. Early traffic makes it for the arrays and objects of a decoded person (seen with
 * --trace-pretenuring-statistics: sites of the person decoder with every object alive, and its
 * code deoptimized for them), and afterwards every person read for a bid died in the old
 * generation: with uniform OpenRTB traffic over 100,000 people the heap grew by 0.7 MB at every
 * scavenge, a mark-compact came every 4 s, and a scavenge took 1.22 ms instead of 0.60 (medians,
 * --trace-gc). Off, the heap stays level and a uniform bid takes 0.92x the CPU
 * (`npm run load:compare`, 8 pairs of 4 s: 7 of 8 below 1); a uniform decision 0.99x (no change).
 */
setFlagsFromString('--no-allocation-site-pretenuring');

async function main(): Promise<void> {
  const config = loadConfig();
  // Notices name this server as the exchange reaches it: only the embedded demo may guess.
  if (config.redis !== undefined && config.openrtb.enabled && !config.openrtb.noticeUrlConfigured) {
    throw new ConfigError(
      'OPENRTB_NOTICE_URL is required with a Redis store while the OpenRTB bidder is on: bids carry win and billing notice URLs (nurl, burl) that exchanges call, so they must name this server as exchanges reach it (e.g. https://bid.example.com). Set it, or OPENRTB_BIDDER=false to serve no OpenRTB.',
    );
  }
  const logger = createLogger({ level: config.logLevel });
  const threaded = config.redis !== undefined && config.workers > 1;
  // Said only to whoever asked for workers: the default (one per core) is no request.
  if (config.redis === undefined && config.workers > 1 && (process.env.WORKERS ?? '') !== '') {
    logger.info(
      { workers: config.workers },
      'WORKERS applies with Redis only (REDIS_URL): the embedded store lives in one thread, which serves everything',
    );
  }
  // The main thread stores the rule-set file on an empty store before any worker starts.
  let pool: WorkerPool | null = null;
  // Not ready until the workers serve: the control plane answers before they have started.
  const dataPlane = () => (pool === null ? 'starting' : pool.size() > 0 ? 'ok' : 'no worker serving');
  const server = await startServer(config, {
    logger,
    role: threaded ? 'admin' : 'all',
    ...(threaded ? { dataPlane } : {}),
  });
  if (threaded) {
    try {
      pool = await startWorkers(config, config.workers, logger);
    } catch (e) {
      await server.close(0, 0);
      throw e;
    }
    const workers = pool;
    server.metrics.setSources({ workers: () => workers.size() });
    server.metrics.setPeers(() => workers.metrics(1000));
  }
  const dataPort = pool?.port ?? server.dataPort;
  // The start-up lines are for people reading a terminal: plain text, not JSON.
  const rs = server.service.ruleSet;
  const host = config.host === '0.0.0.0' ? 'localhost' : config.host;
  console.log(
    `mindshare: deciding with rule-set version ${rs.version} (${rs.compiled.segments.length} segments, ${rs.compiled.campaigns.length} campaigns)`,
  );
  console.log(
    `mindshare: data plane on http://${host}:${dataPort}, control plane on http://${host}:${server.adminPort}`,
  );
  console.log(
    pool === null
      ? 'mindshare: one thread serves the data plane and the control plane'
      : `mindshare: ${config.workers} worker threads serve the data plane`,
  );
  if (config.tokens.length === 0) {
    console.warn(
      config.allowOpenControlPlane
        ? [
            '',
            '  ***************************************************************************************',
            '  *  WARNING: no API tokens are configured (TOKENS, TOKENS_FILE) and                    *',
            '  *  ALLOW_OPEN_CONTROL_PLANE=true: anyone who can reach the control plane can change   *',
            '  *  rule sets, profiles and events.                                                    *',
            '  ***************************************************************************************',
            '',
          ].join('\n')
        : 'mindshare: no API tokens are configured (TOKENS, TOKENS_FILE): the control plane API answers clients on this machine only',
    );
  } else {
    const names = config.tokens.map((t) => `${t.name} (${t.scopes.join(' ')})`).join(', ');
    console.log(`mindshare: ${config.tokens.length} API token(s): ${names}`);
  }
  if (server.adminPort !== 0)
    console.log(`mindshare: the console on http://${host}:${server.adminPort}/console`);
  console.log('try:');
  // With tokens, deciding needs one with the decide scope: the line says where it goes.
  const auth =
    config.tokens.length === 0 ? '' : " -H 'authorization: Bearer <a token with the decide scope>'";
  console.log(
    `  curl -s http://${host}:${dataPort}/v1/decide${auth} -H 'content-type: application/json' -d '{"user":{"id":"p-1001"},"placements":[{"id":"home-banner","channels":["display"],"formats":["banner-300x250"]},{"id":"daily-push","channels":["app_push","sms","email"]}]}'`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${signal}: draining`);
    const stopped = pool === null ? server.close() : stopThreaded(pool);
    stopped.then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  // Not ready at once; the workers drain as one thread would (every listen socket closed and
  // every worker ended before the process exits); then the control plane and the store close.
  const stopThreaded = async (workers: WorkerPool) => {
    server.beginDrain();
    const { exited, total } = await workers.drain(config.drainDelayMs, config.drainTimeoutMs);
    logger.info({ exited, total }, 'data-plane workers stopped');
    await server.close(config.drainTimeoutMs, 0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof RuleSetFileError) {
    console.error(`mindshare: cannot start.\n${e.message}`);
  } else {
    console.error('mindshare: cannot start:', e);
  }
  process.exit(1);
});
