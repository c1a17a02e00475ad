/**
 * The control plane, a Hono app on its own listener (ADMIN_PORT): health and readiness here,
 * and the control-plane API (server/control) mounted beside them.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { DecisionService } from '../decision/service.js';
import { ClientError } from '../errors.js';
import type { ProfileStore } from '../store/types.js';
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
}

export function createAdminApp(opts: AdminOptions): Hono {
  const app = new Hono();
  const timeout = opts.readinessTimeoutMs ?? 500;

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const rs = opts.service.ruleSet;
    const checks = { store: 'ok', ruleset: rs.version, draining: opts.draining() };
    let ready = !checks.draining;
    try {
      await Promise.race([
        opts.store.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), timeout).unref()),
      ]);
    } catch (e) {
      checks.store = `unreachable: ${(e as Error).message}`;
      ready = false;
    }
    return c.json({ status: ready ? 'ready' : 'not_ready', ...checks }, ready ? 200 : 503);
  });

  if (opts.control !== undefined) app.route('/', opts.control);

  app.notFound((c) => c.json(new ClientError('not_found', `No route ${c.req.path}`).toBody(), 404));
  app.onError((err, c) => {
    if (err instanceof ClientError) return c.json(err.toBody(), err.status as 400);
    console.error('control plane error', err);
    return c.json(new ClientError('internal').toBody(), 500);
  });
  return app;
}

export function listenAdmin(app: Hono, host: string, port: number): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info) => {
      let open = true;
      resolve({
        port: info.port,
        close() {
          if (!open) return;
          open = false;
          server.close();
        },
      });
    });
    server.once('error', reject);
  });
}
