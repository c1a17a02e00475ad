import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, gzipSync } from 'node:zlib';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createConsoleApp, SESSION_TTL_MS } from './console.js';
import { makeKit, T0, TOKENS } from './test-kit.js';

/** A built console in a temporary folder: the page, a script with its compressed copies. */
function builtConsole(): string {
  const dir = mkdtempSync(join(tmpdir(), 'console-assets-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(
    join(dir, 'index.html'),
    '<!doctype html><script src="/console/assets/main-ABC.js"></script>',
  );
  const js = 'console.log("the console");'.repeat(50);
  writeFileSync(join(dir, 'assets', 'main-ABC.js'), js);
  writeFileSync(join(dir, 'assets', 'main-ABC.js.br'), brotliCompressSync(js));
  writeFileSync(join(dir, 'assets', 'main-ABC.js.gz'), gzipSync(js));
  return dir;
}

/** The console beside the control plane, as the admin listener mounts them. */
async function mounted(tokens = TOKENS) {
  const clock = { now: T0 };
  const kit = await makeKit({ tokens, now: () => clock.now });
  const app = new Hono();
  app.route('/', createConsoleApp({ tokens, assetsDir: builtConsole(), now: () => clock.now }));
  app.route('/', kit.app);
  const req = (path: string, init: RequestInit = {}) => app.request(path, init);
  const signIn = async (token: string, headers: Record<string, string> = {}) =>
    req('/console/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ token }),
    });
  return { kit, app, req, clock, signIn };
}

const cookieOf = (res: Response) => (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';

describe('the console: assets', () => {
  it('serves the page uncached with a strict policy, and hashed assets compressed and cached for a year', async () => {
    const { req } = await mounted();
    const page = await req('/console');
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');

    const br = await req('/console/assets/main-ABC.js', {
      headers: { 'accept-encoding': 'gzip, deflate, br' },
    });
    expect(br.headers.get('content-encoding')).toBe('br');
    expect(br.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(br.headers.get('vary')).toBe('accept-encoding');
    const body = Buffer.from(await br.arrayBuffer());
    expect(brotliDecompressSync(body).toString()).toContain('the console');
    const gz = await req('/console/assets/main-ABC.js', { headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers.get('content-encoding')).toBe('gzip');
    const plain = await req('/console/assets/main-ABC.js');
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(plain.headers.get('content-type')).toContain('text/javascript');
    const again = await req('/console/assets/main-ABC.js', {
      headers: { 'if-none-match': plain.headers.get('etag')! },
    });
    expect(again.status).toBe(304);
    expect((await req('/console/assets/nope.js')).status).toBe(404);
    expect((await req('/console/assets/..%2Fsecret')).status).toBe(404);
  });

  it('says how to build it when it is not built', async () => {
    const app = createConsoleApp({ tokens: TOKENS, assetsDir: join(tmpdir(), 'no-console-here') });
    const res = await app.request('/console');
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('npm run build');
  });
});

describe('the console: sign-in', () => {
  it('exchanges a token for an HttpOnly, SameSite=Strict session cookie that reads and, with its CSRF token, writes', async () => {
    const { req, signIn } = await mounted();
    const res = await signIn('rules-secret');
    expect(res.status).toBe(200);
    const set = res.headers.get('set-cookie') ?? '';
    expect(set).toMatch(/^mindshare_session=v1\./);
    expect(set).toContain('HttpOnly');
    expect(set).toContain('SameSite=Strict');
    expect(set).toContain(`Max-Age=${SESSION_TTL_MS / 1000}`);
    expect(set).not.toContain('Secure');
    expect(set).not.toContain('rules-secret');
    const session = (await res.json()) as { name: string; scopes: string[]; csrf: string };
    expect(session).toMatchObject({ name: 'author', scopes: ['rules:read', 'rules:write'] });
    const cookie = cookieOf(res);

    expect((await req('/v1/rulesets', { headers: { cookie } })).status).toBe(200);
    expect((await req('/console/session', { headers: { cookie } })).status).toBe(200);
    // A change: refused without the CSRF token, taken with it.
    const bare = await req('/v1/rulesets/1/activate', { method: 'POST', headers: { cookie } });
    expect(bare.status).toBe(403);
    const wrong = await req('/v1/rulesets/1/activate', {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': `${session.csrf.slice(0, -1)}x` },
    });
    expect(wrong.status).toBe(403);
    const ok = await req('/v1/rulesets/rollback', {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': session.csrf },
    });
    expect(ok.status).toBe(409); // taken: there is nothing to roll back to
    // The session has the token's scopes, no more.
    expect((await req('/v1/profiles/p-1', { headers: { cookie } })).status).toBe(403);
  });

  it('refuses a wrong token, a forged or expired cookie, a sign-in from another site; Secure behind HTTPS', async () => {
    const { req, signIn, clock } = await mounted();
    const bad = await signIn('not-a-token');
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: { code: string; path: string } }).error).toMatchObject({
      code: 'unauthorized',
      path: 'token',
    });
    expect((await signIn('')).status).toBe(400);
    expect((await signIn('root-secret', { origin: 'https://evil.example', host: 'localhost' })).status).toBe(
      403,
    );
    expect((await signIn('root-secret', { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    const secure = await signIn('root-secret', { 'x-forwarded-proto': 'https' });
    expect(secure.headers.get('set-cookie')).toContain('Secure');

    const cookie = cookieOf(await signIn('read-secret'));
    const [, name, expires, mac] = cookie.replace('mindshare_session=', '').split('.');
    // Another name with the same mac, a longer life: refused.
    const forgedName = `mindshare_session=v1.${Buffer.from('root').toString('base64url')}.${expires}.${mac}`;
    const forgedTime = `mindshare_session=v1.${name}.${Number(expires) + 1000}.${mac}`;
    for (const c of [forgedName, forgedTime, 'mindshare_session=junk']) {
      expect((await req('/v1/rulesets', { headers: { cookie: c } })).status).toBe(401);
    }
    clock.now += SESSION_TTL_MS + 1;
    expect((await req('/v1/rulesets', { headers: { cookie } })).status).toBe(401);
    expect((await req('/console/session', { headers: { cookie } })).status).toBe(401);
  });

  it('ends with its token: a server without that token refuses the cookie', async () => {
    const first = await mounted();
    const cookie = cookieOf(await first.signIn('read-secret'));
    const without = await mounted(TOKENS.filter((t) => t.name !== 'reader'));
    expect((await without.req('/v1/rulesets', { headers: { cookie } })).status).toBe(401);
    const rotated = await mounted(
      TOKENS.map((t) => (t.name === 'reader' ? { ...t, secret: 'new-secret' } : t)),
    );
    expect((await rotated.req('/v1/rulesets', { headers: { cookie } })).status).toBe(401);
  });

  it('signs out by clearing the cookie', async () => {
    const { req } = await mounted();
    const out = await req('/console/session', { method: 'DELETE' });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/mindshare_session=;.*Max-Age=0/);
  });

  it('without tokens, is as open as the API: anonymous with every scope', async () => {
    const { req, signIn } = await mounted([]);
    const s = await req('/console/session');
    expect(s.status).toBe(200);
    expect(await s.json()).toMatchObject({ name: 'anonymous', open: true });
    expect((await signIn('anything')).headers.get('set-cookie')).toBeNull();
  });
});
