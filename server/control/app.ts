/**
 * The control plane API as a Hono app: rule sets, preview, profiles, import, events, funnels and
 * the OpenAPI document. Every route is registered from the route table (server/control/routes.ts),
 * which decides its auth scope, the media types and size limit of its body, and the schema the
 * body must satisfy; the handlers in rulesets.ts, preview.ts, profiles.ts, events.ts and
 * funnels.ts get a checked body and the caller.
 *
 * Order of checks for a request: token (401), scope (403), media type (415), size (413),
 * syntax (400 bad_json), schema (400 with the path), then the handler. A handler either
 * completes its change or makes none; store failures answer 503 store_unavailable.
 */
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import { DEFAULT_CHECK_TIMEOUT_MS } from '../../rules/check-thread.js';
import { check } from '../contracts/check.js';
import { ClientError, type ErrorBody, RuleSetInvalid } from '../errors.js';
import { StoreDataLostError } from '../store/redis.js';
import { NotReplicatedError } from '../store/redis-client.js';
import { registerAudience } from './audience.js';
import { type Caller, csrfMatches, hasScope, SESSION_COOKIE, TokenAuth } from './auth.js';
import { decodeText, mediaType, parseJson, readBody } from './body.js';
import { registerCampaigns } from './campaigns.js';
import type { ControlContext, ControlDeps, Register, RouteHandler, RouteRequest } from './context.js';
import { registerEvents } from './events.js';
import { registerFunnels } from './funnels.js';
import { buildOpenApi } from './openapi.js';
import { registerPreview } from './preview.js';
import { registerProfiles } from './profiles.js';
import { registerRates } from './rates.js';
import { honoPath, ROUTES, type RouteSpec, routeSpec, YAML_TYPES } from './routes.js';
import { registerRuleSets } from './rulesets.js';
import { registerWhatIf } from './what-if.js';

export type { ControlDeps } from './context.js';

export function createControlApp(deps: ControlDeps): Hono {
  const app = new Hono();
  const auth = new TokenAuth(deps.tokens);
  const log = deps.log ?? ((line: string) => console.log(line));
  const maxBody = deps.maxBodyBytes ?? 1024 * 1024;
  const maxRuleSet = deps.maxRuleSetBytes ?? 8 * 1024 * 1024;
  const maxImport = deps.maxImportBytes ?? 4 * 1024 * 1024 * 1024;
  const limits = { json: maxBody, ruleset: maxRuleSet, import: maxImport };

  const ctx: ControlContext = {
    deps,
    now: deps.now ?? Date.now,
    log,
    importBatch: Math.max(1, deps.importBatch ?? 500),
    maxImportBytes: maxImport,
    bodyTimeoutMs: Math.max(1, deps.bodyTimeoutMs ?? 10_000),
    rulesetCheckTimeoutMs: Math.max(1, deps.rulesetCheckTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS),
    async storeCall(what, call) {
      try {
        return await call();
      } catch (e) {
        if (e instanceof ClientError || e instanceof RuleSetInvalid) throw e;
        // A bug, not an outage: answered 500, never "retry it".
        if (e instanceof TypeError || e instanceof RangeError) throw e;
        if (e instanceof StoreDataLostError)
          throw Object.assign(new ClientError('store_data_lost'), { cause: e });
        if (e instanceof NotReplicatedError) {
          throw Object.assign(
            new ClientError(
              'store_unavailable',
              `The store took the change (${what}) but no replica confirmed it in time; send it again (it counts once)`,
            ),
            { cause: e },
          );
        }
        // The store's own error travels as the cause: the request's log line shows it.
        throw Object.assign(
          new ClientError(
            'store_unavailable',
            `The store did not answer (${what}); nothing was changed by this call, retry it`,
          ),
          { cause: e },
        );
      }
    },
  };

  const registered = new Map<string, Set<string>>();
  const register: Register = <B>(id: string, handler: RouteHandler<B>) => {
    const spec = routeSpec(id);
    if (spec.servedBy !== 'control') throw new Error(`${id} is not served by the control plane`);
    const path = honoPath(spec);
    let methods = registered.get(path);
    if (methods === undefined) registered.set(path, (methods = new Set()));
    methods.add(spec.method.toUpperCase());
    app.on(spec.method.toUpperCase(), path, async (c) => {
      refuseCrossSite(c, spec);
      if (auth.open && spec.scope !== null && !deps.allowOpen && !(fromLoopback(c) && loopbackHost(c))) {
        throw new ClientError(
          'forbidden',
          'Without API tokens this API answers only clients on its own machine; configure TOKENS (or ALLOW_OPEN_CONTROL_PLANE=true)',
        );
      }
      const caller = await authorize(c, spec, auth, ctx.now());
      const req: RouteRequest<B> = { c, caller, body: undefined as B, stream: null, format: undefined };
      if (spec.body !== undefined)
        await takeBody(c, spec, req, limits[spec.body.limit ?? 'json'], ctx.bodyTimeoutMs);
      return handler(req);
    });
  };

  registerRuleSets(register, ctx);
  registerPreview(register, ctx);
  registerProfiles(register, ctx);
  registerEvents(register, ctx);
  registerFunnels(register, ctx);
  registerCampaigns(register, ctx);
  registerAudience(register, ctx);
  registerWhatIf(register, ctx);
  registerRates(register, ctx);
  let doc: Record<string, unknown> | null = null;
  register('openapi', ({ c }) => c.json((doc ??= buildOpenApi())));

  // A known path with a method it does not take: 405 with Allow.
  for (const [path, methods] of registered) {
    const allow = [...methods].sort().join(', ');
    app.all(path, (c) => {
      c.header('Allow', allow);
      return c.json(
        new ClientError('method_not_allowed', `${c.req.method} is not allowed here; use ${allow}`).toBody(),
        405,
      );
    });
  }

  app.notFound((c) => c.json(new ClientError('not_found', `No route ${c.req.path}`).toBody(), 404));
  app.onError((err, c) => errorResponse(err, c, log));
  return app;
}

/** The answer for an error thrown by a route. */
export function errorResponse(err: unknown, c: Context, log: (line: string) => void): Response {
  // The client hung up (mid-body, say): whatever broke did so for that reason; no one hears the
  // answer, and it is no failure of ours.
  if (c.req.raw.signal.aborted && !(err instanceof ClientError && err.code === 'request_timeout')) {
    return c.json(new ClientError('client_closed_request').toBody(), 499 as 400);
  }
  if (err instanceof RuleSetInvalid) {
    const body = {
      ...new ClientError('invalid_ruleset', err.message).toBody(),
      errors: err.errors,
    };
    return c.json(body, 422);
  }
  if (err instanceof ClientError) {
    if (err.code === 'unauthorized') c.header('WWW-Authenticate', 'Bearer');
    return c.json(err.toBody(), err.status as 400);
  }
  // The request's log line (written by the listener around this app) carries the error.
  if (c.get('requestId') === undefined) {
    log(`control plane error on ${c.req.method} ${c.req.path}: ${(err as Error)?.stack ?? String(err)}`);
  }
  const body: ErrorBody = new ClientError('internal').toBody();
  return c.json(body, 500);
}

/**
 * Refuses a change asked for by another web site (a browser sends Origin, and Sec-Fetch-Site, on
 * a cross-site request): a page elsewhere must not be able to make its visitor's browser change
 * rule sets or profiles. Reads and requests from outside browsers (no Origin) pass.
 */
function refuseCrossSite(c: Context, spec: RouteSpec): void {
  if (spec.method === 'get') return;
  refuseForeignSite(c, 'Requests from another web site may not change anything here');
}

/** Throws 403 when a browser says the request comes from another site (Sec-Fetch-Site, Origin). */
export function refuseForeignSite(c: Context, message: string): void {
  const site = c.req.header('sec-fetch-site');
  const origin = c.req.header('origin');
  let foreign = site !== undefined && site !== 'same-origin' && site !== 'none';
  if (!foreign && origin !== undefined) {
    let host: string | null = null;
    try {
      host = origin === 'null' ? null : new URL(origin).host;
    } catch {
      host = null;
    }
    foreign = host === null || host !== c.req.header('host');
  }
  if (foreign) throw new ClientError('forbidden', message);
}

/**
 * Whether the request names this machine as its host (`localhost`, `127.x`, `[::1]`): a page of
 * another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) still sends its own
 * name, so it cannot use an open API through a browser on this machine.
 */
export function loopbackHost(c: Context): boolean {
  const host = c.req.header('host');
  if (host === undefined) return true;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] ?? '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** Whether the client is on this machine (a request made in process, as tests do, counts). */
function fromLoopback(c: Context): boolean {
  let address: string | undefined;
  try {
    address = getConnInfo(c).remote.address;
  } catch {
    return true;
  }
  if (address === undefined) return true;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/**
 * Who calls: a bearer token, or else the console's sign-in cookie (control/console.ts). A change
 * made with the cookie must also send the session's CSRF token in `x-csrf-token`: the cookie is
 * SameSite=Strict and changes from another site are refused anyway (refuseCrossSite), this is the
 * third lock.
 */
async function authorize(c: Context, spec: RouteSpec, auth: TokenAuth, now: number): Promise<Caller> {
  const header = c.req.header('authorization');
  if (header === undefined && !auth.open) {
    const session = await auth.session(getCookie(c, SESSION_COOKIE), now);
    if (session !== null) {
      if (spec.method !== 'get' && !csrfMatches(session, c.req.header('x-csrf-token'))) {
        throw new ClientError(
          'forbidden',
          'A change made with the console session must send its CSRF token (x-csrf-token)',
        );
      }
      if (!hasScope(session.caller, spec.scope)) {
        throw new ClientError('forbidden', `This route needs a token with the scope ${spec.scope}`);
      }
      return session.caller;
    }
  }
  const result = auth.authenticate(header);
  if (!result.ok) {
    if (spec.scope === null) return { name: 'anonymous', scopes: new Set() };
    throw new ClientError(
      'unauthorized',
      result.reason === 'missing'
        ? 'Send a token: Authorization: Bearer <secret>'
        : 'The bearer token is not valid',
    );
  }
  if (!hasScope(result.caller, spec.scope)) {
    throw new ClientError('forbidden', `This route needs a token with the scope ${spec.scope}`);
  }
  return result.caller;
}

async function takeBody<B>(
  c: Context,
  spec: RouteSpec,
  req: RouteRequest<B>,
  limit: number,
  timeoutMs: number,
): Promise<void> {
  const body = spec.body!;
  const type = mediaType(c.req.header('content-type'));
  const accepted = body.contentTypes;
  // Every body names its type: a form or text/plain body is what another web site can make a
  // browser send without asking first, so they are refused (as is none at all).
  if (body.kind === 'ruleset') {
    if (YAML_TYPES.includes(type)) req.format = 'yaml';
    else if (type === 'application/json') req.format = 'json';
    else throw unsupported(type, accepted);
    req.body = decodeText(await readBody(c.req.raw, limit, timeoutMs)) as B;
    return;
  }
  if (body.kind === 'ndjson') {
    if (!accepted.includes(type)) throw unsupported(type, accepted);
    const declared = c.req.header('content-length');
    if (declared !== undefined && Number(declared) > limit) {
      throw new ClientError('body_too_large', `The body is larger than ${limit} bytes`);
    }
    req.stream = c.req.raw.body;
    return;
  }
  if (!accepted.includes(type)) throw unsupported(type, accepted);
  const data = parseJson(decodeText(await readBody(c.req.raw, limit, timeoutMs)));
  req.body = (
    body.checkedBy === 'handler' || body.schema === undefined ? data : check(body.schema, data)
  ) as B;
}

function unsupported(type: string, accepted: readonly string[]): ClientError {
  return new ClientError(
    'unsupported_media_type',
    `${type === '' ? 'A Content-Type' : `Content-Type ${type}`} is not taken here; send ${accepted.join(', ')}`,
  );
}

/** Every route of the control plane in the table (for tests and docs). */
export const CONTROL_ROUTES: readonly RouteSpec[] = ROUTES.filter((r) => r.servedBy === 'control');
