/**
 * `npm start`: the server process. Reads the configuration, loads the rule set (refusing to
 * start when it is invalid), opens the store and both listeners, and drains on SIGTERM/SIGINT.
 */
import { startServer } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import { RuleSetFileError } from './ruleset-file.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel });
  const server = await startServer(config, { logger });
  // The start-up lines are for people reading a terminal: plain text, not JSON.
  const rs = server.service.ruleSet;
  const host = config.host === '0.0.0.0' ? 'localhost' : config.host;
  console.log(
    `mindshare: deciding with rule-set version ${rs.version} (${rs.compiled.segments.length} segments, ${rs.compiled.campaigns.length} campaigns)`,
  );
  console.log(
    `mindshare: data plane on http://${host}:${server.dataPort}, control plane on http://${host}:${server.adminPort}`,
  );
  if (config.tokens.length === 0) {
    console.warn(
      [
        '',
        '  ***************************************************************************************',
        '  *  WARNING: no API tokens are configured (TOKENS, TOKENS_FILE). The control plane is  *',
        '  *  OPEN: anyone who can reach it can change rule sets, profiles and events.           *',
        '  ***************************************************************************************',
        '',
      ].join('\n'),
    );
  } else {
    const names = config.tokens.map((t) => `${t.name} (${t.scopes.join(' ')})`).join(', ');
    console.log(`mindshare: ${config.tokens.length} API token(s): ${names}`);
  }
  console.log('try:');
  console.log(
    `  curl -s http://${host}:${server.dataPort}/v1/decide -H 'content-type: application/json' -d '{"user":{"id":"p-1001"},"placements":[{"id":"home-banner","channels":["display"],"formats":["banner-300x250"]},{"id":"daily-push","channels":["app_push","sms","email"]}]}'`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${signal}: draining`);
    server.close().then(
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
