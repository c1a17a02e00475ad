/**
 * The server's own data plane with nothing behind it: the same uWebSockets.js routes as the real
 * server (server/http/data-plane.ts: the header checks, the bounded body reader, JSON.parse and
 * the request's check, the answer written as JSON), with a decision service that answers every
 * request at once with a fixed decision for the person and placement asked: no store, no cache,
 * no rules, no metrics. Between bare uWS (the HTTP ceiling) and a decision from the cache, it
 * shows what the HTTP layer and the request's JSON cost apart from deciding.
 *   PORT=<port> node dist/load-tests/plane-only.js
 */
import type { DecisionOutcome } from '../server/decision/service.js';
import { createDataPlane, type DataPlaneService, listen } from '../server/http/data-plane.js';

/**
 * The placement unfilled, which is what a typical demo decision answers (about 86 bytes): the
 * answer is as long as the real server's and the bare endpoint's.
 */
function fixedOutcome(user: string | null, placement: string): DecisionOutcome {
  return { output: { ruleset: 1, user, decisions: [{ placement, campaign: null }] }, degradedBy: null };
}

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 0);
  const service: DataPlaneService = {
    decide: (input) =>
      fixedOutcome(input.user.kind === 'id' ? input.user.id : null, input.placements[0]?.id ?? ''),
  };
  const app = createDataPlane({ service, maxBodyBytes: 65_536 });
  const listener = await listen(app, '127.0.0.1', port);
  console.log(`plane-only: listening on ${listener.port}`);
}

if (process.argv[1]?.endsWith('plane-only.js')) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
