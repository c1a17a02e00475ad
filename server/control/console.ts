/**
 * The campaign manager's console: a single-page app built by `npm run build` (console/build.mjs,
 * into dist/console) and served here on the control plane's listener, with its sign-in.
 *
 *   GET    /console                  the page (no-cache: it names the assets of this build)
 *   GET    /console/assets/<file>    the app's script and styles, named by their content hash:
 *                                    cached for a year, answered brotli or gzip compressed when
 *                                    the browser takes it (compressed once, at build time)
 *   GET    /console/session          who is signed in: {name, scopes, csrf, expiresAt}, else 401
 *   POST   /console/session          sign in: {token} → the session cookie and the same answer
 *   DELETE /console/session          sign out (clears the cookie)
 *
 * The token is sent once, to sign in; the browser keeps only the session cookie (auth.ts,
 * Session): HttpOnly (no script, so no injected one either, can read it), SameSite=Strict (no
 * other site's page sends it), Secure behind HTTPS, for SESSION_TTL_MS. The page talks to the
 * control plane's routes with that cookie, and every change also carries the session's CSRF token
 * (checked in app.ts) and comes from this origin (refuseCrossSite). Without TOKENS the console is
 * as open as the API: signed in as `anonymous`, from this machine only unless
 * ALLOW_OPEN_CONTROL_PLANE.
 *
 * The console calls only control-plane routes: never the data plane's decide route.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { type Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { ClientError } from '../errors.js';
import { projectRoot } from '../project.js';
import { type ApiToken, SCOPES } from '../scopes.js';
import { refuseForeignSite } from './app.js';
import { SESSION_COOKIE, type Session, TokenAuth } from './auth.js';
import { decodeText, mediaType, parseJson, readBody } from './body.js';

/** How long a sign-in lasts. */
export const SESSION_TTL_MS = 8 * 3600_000;

export interface ConsoleOptions {
  tokens: readonly ApiToken[];
  /** Where the built console is. Default dist/console of the project. */
  assetsDir?: string;
  now?: () => number;
}

interface Asset {
  type: string;
  etag: string;
  identity: Buffer;
  gzip?: Buffer;
  br?: Buffer;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The headers of the page: only this origin's scripts; styles inline too (the editor sets them). */
const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** Reads the built console (every file with its precompressed variants) into memory. */
export function loadAssets(dir: string): Map<string, Asset> | null {
  if (!existsSync(join(dir, 'index.html'))) return null;
  const assets = new Map<string, Asset>();
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const rel = sub === '' ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory()) {
        walk(rel);
        continue;
      }
      const ext = extname(entry.name);
      const type = TYPES[ext];
      if (type === undefined) continue;
      const identity = readFileSync(join(dir, rel));
      const asset: Asset = {
        type,
        identity,
        etag: `"${createHash('sha256').update(identity).digest('base64url').slice(0, 22)}"`,
      };
      const gz = join(dir, `${rel}.gz`);
      const br = join(dir, `${rel}.br`);
      if (existsSync(gz)) asset.gzip = readFileSync(gz);
      if (existsSync(br)) asset.br = readFileSync(br);
      assets.set(rel, asset);
    }
  };
  walk('');
  return assets;
}

export function createConsoleApp(opts: ConsoleOptions): Hono {
  const app = new Hono();
  const auth = new TokenAuth(opts.tokens);
  const now = opts.now ?? Date.now;
  const dir = opts.assetsDir ?? join(projectRoot(), 'dist', 'console');
  const assets = loadAssets(dir);

  const serve = (c: Context, name: string, cache: string) => {
    if (assets === null) {
      return c.text(
        `The console is not built: run npm run build (it writes ${dir}), then restart the server.\n`,
        503,
      );
    }
    const asset = assets.get(name);
    if (asset === undefined)
      return c.json(new ClientError('not_found', `No console file ${name}`).toBody(), 404);
    c.header('content-type', asset.type);
    c.header('cache-control', cache);
    c.header('etag', asset.etag);
    c.header('vary', 'accept-encoding');
    if (name === 'index.html') for (const [k, v] of Object.entries(PAGE_HEADERS)) c.header(k, v);
    else c.header('x-content-type-options', 'nosniff');
    if (c.req.header('if-none-match') === asset.etag) return c.body(null, 304);
    const accepted = c.req.header('accept-encoding') ?? '';
    let body = asset.identity;
    if (asset.br !== undefined && /\bbr\b/.test(accepted)) {
      body = asset.br;
      c.header('content-encoding', 'br');
    } else if (asset.gzip !== undefined && /\bgzip\b/.test(accepted)) {
      body = asset.gzip;
      c.header('content-encoding', 'gzip');
    }
    return c.body(new Uint8Array(body), 200);
  };

  app.get('/console', (c) => serve(c, 'index.html', 'no-cache'));
  app.get('/console/', (c) => c.redirect('/console', 301));
  app.get('/console/assets/:file{[A-Za-z0-9._-]+}', (c) =>
    serve(c, `assets/${c.req.param('file')}`, 'public, max-age=31536000, immutable'),
  );

  const answer = (c: Context, s: Session | null) => {
    c.header('cache-control', 'no-store');
    if (auth.open) {
      return c.json({ name: 'anonymous', scopes: [...SCOPES], csrf: '', open: true, expiresAt: null });
    }
    if (s === null) {
      return c.json(
        new ClientError('unauthorized', 'Not signed in: sign in with an API token').toBody(),
        401,
      );
    }
    return c.json({
      name: s.caller.name,
      scopes: [...s.caller.scopes],
      csrf: s.csrf,
      open: false,
      expiresAt: new Date(s.expiresAt).toISOString(),
    });
  };

  app.get('/console/session', async (c) =>
    answer(c, await auth.session(getCookie(c, SESSION_COOKIE), now())),
  );

  app.post('/console/session', async (c) => {
    refuseForeignSite(c, 'Sign in and out from the console of this server');
    if (mediaType(c.req.header('content-type')) !== 'application/json') {
      throw new ClientError('unsupported_media_type', 'Send the token as JSON: {"token": "..."}');
    }
    const body = parseJson(decodeText(await readBody(c.req.raw, 16 * 1024, 10_000)));
    const token = (body as { token?: unknown } | null)?.token;
    if (typeof token !== 'string' || token === '') {
      throw new ClientError('missing_field', 'Send the API token to sign in with', 'token');
    }
    if (auth.open) return answer(c, null);
    const session = await auth.signIn(token, now(), SESSION_TTL_MS);
    if (session === null) throw new ClientError('unauthorized', 'The token is not valid', 'token');
    setCookie(c, SESSION_COOKIE, session.cookie, {
      httpOnly: true,
      sameSite: 'Strict',
      secure: isHttps(c),
      path: '/',
      maxAge: Math.floor(SESSION_TTL_MS / 1000),
    });
    return answer(c, session);
  });

  app.delete('/console/session', (c) => {
    refuseForeignSite(c, 'Sign in and out from the console of this server');
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure: isHttps(c) });
    c.header('cache-control', 'no-store');
    return c.body(null, 204);
  });

  app.onError((err, c) => {
    if (err instanceof ClientError) {
      if (err.code === 'unauthorized') c.header('WWW-Authenticate', 'Bearer');
      return c.json(err.toBody(), err.status as 400);
    }
    return c.json(new ClientError('internal').toBody(), 500);
  });
  return app;
}

/** Behind a TLS-terminating proxy the request's URL says http; the proxy's header says https. */
function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
}
