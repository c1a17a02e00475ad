/**
 * The control plane, a Hono app on its own listener (ADMIN_PORT): health, readiness and metrics
 * here, and the control-plane API (server/control) mounted beside them. Every request gets a
 * request id (echoed in `x-request-id`, on every log line written while it is handled), is
 * counted by route pattern, and logged when it is answered.
 */
import type { Socket } from 'node:net';
import { serve } from '@hono/node-server';
import { type Context, Hono } from 'hono';
import { routePath } from 'hono/route';
import type { DecisionService } from '../decision/service.js';
import { ClientError, RuleSetInvalid } from '../errors.js';
import { createLogger, type Logger, requestIds } from '../log.js';
import { type Metrics, routeLabel } from '../metrics.js';
import type { ProfileStore, RuleSetHealth } from '../store/types.js';
import type { Listener } from './data-plane.js';

export interface AdminOptions {
  service: DecisionService;
  store: ProfileStore;
  /** True while the server drains before exit: not ready for new traffic. */
  draining: () => boolean;
  /** How long a readiness probe waits for the store, ms. */
  readinessTimeoutMs?: number;
  /** The control-plane API (rule sets, preview, profiles, events, funnels, OpenAPI). */
  control?: Hono;
  /** The campaign manager's console (/console), beside the API. */
  console?: Hono;
  /** Whether the data plane serves (`ok`) or why not, when it runs elsewhere (worker threads). */
  dataPlane?: () => string;
  /** Whether the rule set served is the store's active one (RuleSetSync.health). */
  rulesetHealth?: () => RuleSetHealth;
  /** How long the served rule set may differ from the store's active one before not ready, ms. Default 15 s. */
  rulesetGraceMs?: number;
  /** Served at GET /metrics; control-plane requests are counted in it. */
  metrics?: Metrics;
  /** Where request and error lines go. Default: a logger on standard output. */
  logger?: Logger;
}

/** Probes and scrapes: logged at debug, not info. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

export function createAdminApp(opts: AdminOptions): Hono {
  const app = new Hono();
  const timeout = opts.readinessTimeoutMs ?? 500;
  const metrics = opts.metrics;
  const logger = opts.logger ?? createLogger();

  app.use('*', requestIds());
  app.use('*', async (c, next) => {
    const t0 = performance.now();
    if (metrics !== undefined) c.set('metrics', metrics);
    await next();
    const route = routeLabel(routePath(c));
    const status = c.res.status;
    const code = errorCode(c, status);
    metrics?.controlRequest(route, status, code);
    const ms = Math.round((performance.now() - t0) * 1000) / 1000;
    const fields: Record<string, unknown> = {
      requestId: c.get('requestId'),
      method: c.req.method,
      route,
      status,
      ms,
    };
    if (code !== null) fields.code = code;
    // What went wrong, on the request's own line: the failure behind a 5xx answer.
    if (status >= 500 && c.error !== undefined) {
      const cause = (c.error as { cause?: unknown }).cause;
      fields.err = cause instanceof Error ? cause : c.error;
    }
    if (status === 499) logger.info(fields, 'client closed the request');
    // A probe's 503 is an answer, not a failure: readiness changes are logged once (below).
    else if (status >= 500 && !(route === '/readyz' && status === 503))
      logger.error(fields, 'request failed');
    else if (QUIET_ROUTES.has(route)) logger.debug(fields, 'request');
    else logger.info(fields, 'request');
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  const grace = opts.rulesetGraceMs ?? 15_000;
  /** What /readyz answered last (at first: ready, so that only a refusal is logged). */
  let wasReady = true;
  app.get('/readyz', async (c) => {
    const rs = opts.service.ruleSet;
    const dataPlane = opts.dataPlane?.() ?? 'ok';
    const checks: Record<string, unknown> = {
      store: 'ok',
      ruleset: rs.version,
      draining: opts.draining(),
      dataPlane,
    };
    let ready = !checks.draining && dataPlane === 'ok';
    // The rule set served must be the one the store says is active (activations take a compile).
    const health = opts.rulesetHealth?.();
    if (health !== undefined) {
      const since = health.outOfStepSince;
      if (since === null) checks.rulesetInStep = true;
      else {
        const active = health.store;
        const seconds = Math.round((Date.now() - since) / 1000);
        checks.rulesetInStep = `serving version ${rs.version} (${rs.checksum.slice(0, 19)}) but the store's active rule set is ${active === null || active === undefined ? 'none' : `version ${active.version} (${active.checksum.slice(0, 19)})`}, for ${seconds} s`;
        if (Date.now() - since > grace) ready = false;
      }
    }
    try {
      await Promise.race([
        opts.store.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), timeout).unref()),
      ]);
    } catch (e) {
      checks.store = `unreachable: ${(e as Error).message}`;
      ready = false;
    }
    if (ready !== wasReady) {
      // Once per change, not per probe (a load balancer asks every second).
      if (ready) logger.info({ checks }, 'ready');
      else logger.warn({ checks }, 'not ready');
      wasReady = ready;
    }
    return c.json({ status: ready ? 'ready' : 'not_ready', ...checks }, ready ? 200 : 503);
  });

  if (metrics !== undefined) {
    app.get('/metrics', async (c) => {
      const text = await metrics.exposition();
      return c.body(text, 200, { 'content-type': metrics.contentType });
    });
  }

  if (opts.console !== undefined) app.route('/', opts.console);
  if (opts.control !== undefined) app.route('/', opts.control);

  app.notFound((c) => c.json(new ClientError('not_found', `No route ${c.req.path}`).toBody(), 404));
  app.onError((err, c) => {
    if (err instanceof ClientError) return c.json(err.toBody(), err.status as 400);
    // Logged with the request's line (see above).
    return c.json(new ClientError('internal').toBody(), 500);
  });
  return app;
}

/** The error code of an answer, from the error thrown by the route or the status. */
function errorCode(c: Context, status: number): string | null {
  if (status < 400) return null;
  const err = c.error;
  if (err instanceof ClientError) return err.code;
  if (err instanceof RuleSetInvalid) return 'invalid_ruleset';
  if (err !== undefined) return 'internal';
  if (status === 404) return 'not_found';
  if (status === 405) return 'method_not_allowed';
  // An answer written by the route itself (readiness: 503 without an error body).
  return null;
}

export interface AdminListenOptions {
  /** The longest a request's headers may take, ms. Default 10 s. */
  headersTimeoutMs?: number;
  /** Connections open at once; more are closed as they come. Default 256. */
  maxConnections?: number;
  /** Connections open at once from one client address. Default 32. */
  maxConnectionsPerClient?: number;
}

export function listenAdmin(
  app: Hono,
  host: string,
  port: number,
  opts: AdminListenOptions = {},
): Promise<Listener> {
  return new Promise((resolve, reject) => {
    // No overall request timeout: an NDJSON import of millions of lines may stream for longer
    // than Node's default five minutes. Bodies have their own limits (ADMIN_BODY_TIMEOUT_MS, in
    // the control app); headers must arrive within headersTimeoutMs; and the connections a
    // client can hold open are capped, so that a flood of slow connections cannot take every
    // file descriptor of the process (its data plane's too).
    const server = serve(
      {
        fetch: app.fetch,
        hostname: host,
        port,
        serverOptions: {
          requestTimeout: 0,
          headersTimeout: opts.headersTimeoutMs ?? 10_000,
          // How often late headers are looked for (Node's default, 30 s, would let them linger).
          connectionsCheckingInterval: Math.max(50, Math.min(1_000, (opts.headersTimeoutMs ?? 10_000) / 4)),
          keepAliveTimeout: 5_000,
        },
      },
      (info) => {
        let open = true;
        resolve({
          port: info.port,
          close() {
            if (!open) return;
            open = false;
            server.close();
          },
        });
      },
    );
    server.maxConnections = opts.maxConnections ?? 256;
    const perClient = opts.maxConnectionsPerClient ?? 32;
    const open = new Map<string, number>();
    server.on('connection', (socket: Socket) => {
      const from = socket.remoteAddress ?? '';
      const n = (open.get(from) ?? 0) + 1;
      if (n > perClient) {
        socket.destroy();
        return;
      }
      open.set(from, n);
      socket.once('close', () => {
        const left = (open.get(from) ?? 1) - 1;
        if (left <= 0) open.delete(from);
        else open.set(from, left);
      });
    });
    server.once('error', reject);
  });
}
