import { describe, expect, it } from 'vitest';
import { CONTROL_ROUTES } from './app.js';
import { decideAuthorizer, hasScope, TokenAuth } from './auth.js';
import { makeKit, samplePath, TOKENS } from './test-kit.js';

describe('tokens', () => {
  it('lets everyone in as anonymous when no token is configured', () => {
    const auth = new TokenAuth([]);
    expect(auth.open).toBe(true);
    const r = auth.authenticate(undefined);
    expect(r.ok && r.caller.name).toBe('anonymous');
  });

  it('tells a missing token from an invalid one, and finds the right token', () => {
    const auth = new TokenAuth(TOKENS);
    expect(auth.authenticate(undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(auth.authenticate('Basic abc')).toEqual({ ok: false, reason: 'missing' });
    expect(auth.authenticate('Bearer nope')).toEqual({ ok: false, reason: 'invalid' });
    expect(auth.authenticate('Bearer root-secret ')).toMatchObject({ ok: true, caller: { name: 'root' } });
    expect(auth.authenticate('bearer events-secret')).toMatchObject({
      ok: true,
      caller: { name: 'tracker' },
    });
    // A prefix or an extension of a secret is not the secret.
    expect(auth.authenticate('Bearer root-secre')).toEqual({ ok: false, reason: 'invalid' });
    expect(auth.authenticate('Bearer root-secrets')).toEqual({ ok: false, reason: 'invalid' });
  });

  it('grants every scope to admin', () => {
    const auth = new TokenAuth(TOKENS);
    const root = auth.authenticate('Bearer root-secret');
    const reader = auth.authenticate('Bearer read-secret');
    if (!root.ok || !reader.ok) throw new Error('expected tokens');
    expect(hasScope(root.caller, 'events:write')).toBe(true);
    expect(hasScope(reader.caller, 'rules:read')).toBe(true);
    expect(hasScope(reader.caller, 'rules:write')).toBe(false);
    expect(hasScope(reader.caller, null)).toBe(true);
  });
});

describe('every route', () => {
  const guarded = CONTROL_ROUTES.filter((r) => r.scope !== null);

  it.each(guarded.map((r) => [`${r.method.toUpperCase()} ${r.path}`, r] as const))(
    '%s: 401 without a token, 401 with a wrong one, 403 without the scope',
    async (_, route) => {
      const kit = await makeKit();
      const path = samplePath(route.path);
      const method = route.method.toUpperCase();
      const body = route.body === undefined ? undefined : {};
      const missing = await kit.req(method, path, { token: null, body });
      expect(missing.status).toBe(401);
      expect(missing.body.error.code).toBe('unauthorized');
      expect(missing.headers.get('www-authenticate')).toBe('Bearer');
      const wrong = await kit.req(method, path, { token: 'guess', body });
      expect(wrong.status).toBe(401);
      // The exchange's token has only `decide`, which no control route takes.
      const scope = await kit.req(method, path, { token: 'decide-secret', body });
      expect(scope.status).toBe(403);
      expect(scope.body.error.code).toBe('forbidden');
      expect(scope.body.error.message).toContain(route.scope);
      expect(kit.messages).toEqual([]);
      expect(kit.logs.join('\n')).not.toMatch(/secret/);
    },
  );

  it.each(
    CONTROL_ROUTES.filter((r) => r.body !== undefined).map(
      (r) => [`${r.method.toUpperCase()} ${r.path}`, r] as const,
    ),
  )('%s: 415 for a media type it does not take, 413 past the limit', async (_, route) => {
    const kit = await makeKit({ maxBodyBytes: 64, maxRuleSetBytes: 64, maxImportBytes: 64 });
    const path = samplePath(route.path);
    const method = route.method.toUpperCase();
    const media = await kit.req(method, path, { body: 'a=1', type: 'application/x-www-form-urlencoded' });
    expect(media.status).toBe(415);
    expect(media.body.error.code).toBe('unsupported_media_type');
    const type = route.body!.contentTypes[0]!;
    const big = await kit.req(method, path, {
      body: `{"x": "${'y'.repeat(100)}"}`,
      type,
      headers: { 'content-length': '110' },
    });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('body_too_large');
  });

  it('is open without tokens, to requests naming this machine only', async () => {
    const kit = await makeKit({ tokens: [] });
    const r = await kit.req('GET', '/v1/rulesets', { token: null });
    expect(r.status).toBe(200);
    for (const host of ['localhost:8081', '127.0.0.1:8081', '[::1]:8081', 'localhost']) {
      expect((await kit.req('GET', '/v1/rulesets', { token: null, headers: { host } })).status, host).toBe(
        200,
      );
    }
    // A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) sends its own name.
    for (const host of ['evil.example:8081', '127.0.0.1.evil.example', 'localhost.evil.example']) {
      const refused = await kit.req('POST', '/v1/rulesets/rollback', { token: null, headers: { host } });
      expect(refused.status, host).toBe(403);
      expect(refused.body.error.code).toBe('forbidden');
    }
    // ALLOW_OPEN_CONTROL_PLANE opens it to every name.
    const open = await makeKit({ tokens: [], allowOpen: true });
    expect(
      (await open.req('GET', '/v1/rulesets', { token: null, headers: { host: 'mindshare.internal' } }))
        .status,
    ).toBe(200);
  });

  it('serves the OpenAPI document without a token', async () => {
    const kit = await makeKit();
    const r = await kit.req('GET', '/openapi.json', { token: null });
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
  });
});

describe('the data plane check', () => {
  it('is open without tokens, and asks for the decide scope with them', () => {
    expect(decideAuthorizer([])).toBeUndefined();
    const check = decideAuthorizer([
      { name: 'exchange', secret: 'exchange-secret-0123456789', scopes: ['decide'] },
      { name: 'ops', secret: 'ops-secret-0123456789abcdef', scopes: ['admin'] },
      { name: 'cm', secret: 'cm-secret-0123456789abcdefg', scopes: ['rules:read'] },
    ]);
    expect(check?.('')).toBe('unauthorized');
    expect(check?.('Bearer nope')).toBe('unauthorized');
    expect(check?.('Bearer exchange-secret-0123456789')).toBe('ok');
    expect(check?.('Bearer ops-secret-0123456789abcdef')).toBe('ok');
    expect(check?.('Bearer cm-secret-0123456789abcdefg')).toBe('forbidden');
  });
});
