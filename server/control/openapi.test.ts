import { describe, expect, it } from 'vitest';
import { checker } from '../contracts/check.js';
import { decideRequestSchema } from '../contracts/schemas.js';
import { checkDecideRequest } from '../decision/request.js';
import { ClientError } from '../errors.js';
import { buildOpenApi } from './openapi.js';
import { ROUTES } from './routes.js';
import { type Json, makeKit } from './test-kit.js';

/** `/v1/rulesets/:version{[0-9]+}` -> `/v1/rulesets/{version}` */
function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z]+)(\{[^}]*\})?/g, '{$1}');
}

describe('OpenAPI document', () => {
  it('lists every route the app serves, and serves every control route it lists', async () => {
    const kit = await makeKit();
    const served = new Set(
      kit.app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${openApiPath(r.path)}`),
    );
    const doc = buildOpenApi() as { paths: Record<string, Record<string, unknown>> };
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    for (const route of served) expect(documented, route).toContain(route);
    const control = ROUTES.filter((r) => r.servedBy === 'control').map(
      (r) => `${r.method.toUpperCase()} ${r.path}`,
    );
    expect(new Set(control)).toEqual(served);
    // The data plane and the health routes are documented too.
    expect(documented).toContain('POST /v1/decide');
    expect(documented).toContain('GET /healthz');
  });

  it('names a scope and the error answers of each route', () => {
    const doc = buildOpenApi() as Json;
    const upload = doc.paths['/v1/rulesets'].post;
    expect(upload.security).toEqual([{ bearer: ['rules:write'] }]);
    expect(Object.keys(upload.requestBody.content)).toEqual(
      expect.arrayContaining(['application/yaml', 'application/json']),
    );
    expect(upload.responses['422'].content['application/json'].schema.$ref).toBe(
      '#/components/schemas/RuleSetErrors',
    );
    expect(upload.responses['401'].description).toContain('unauthorized');
    const put = doc.paths['/v1/profiles/{id}'].put;
    expect(put.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Profile',
    });
    expect(put.responses['400'].description).toContain('invalid_field');
    expect(doc.paths['/openapi.json'].get.security).toEqual([]);
    expect(doc.paths['/v1/decide'].post.servers[0].description).toContain('data plane');
    // Every $ref resolves.
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z]+/g) ?? [];
    for (const ref of refs) expect(doc.components.schemas[ref.split('/').pop()!], ref).toBeDefined();
  });
});

describe('the decide schema agrees with the data plane parser', () => {
  const schemaCheck = checker(decideRequestSchema);
  const good: unknown[] = [
    { user: { id: 'p-1001' }, placements: [{ id: 'home-banner' }] },
    {
      user: { ids: { idfa: 'A-1', cookie: 'c-9' } },
      placements: [
        { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] },
        { id: 'daily-push', channels: ['app_push', 'sms', 'email'] },
      ],
      context: { tags: ['scene:commute'] },
      explain: true,
      deadlineMs: 5,
    },
    { user: { id: 'x' }, placements: [{ id: 'a', channels: [] }], context: {} },
  ];
  const bad: unknown[] = [
    {},
    { user: { id: 'p-1' } },
    { user: { id: 'p-1' }, placements: [] },
    { user: {}, placements: [{ id: 'a' }] },
    { user: { id: 'p-1', ids: { idfa: 'x' } }, placements: [{ id: 'a' }] },
    { user: { id: '' }, placements: [{ id: 'a' }] },
    { user: { ids: {} }, placements: [{ id: 'a' }] },
    { user: { ids: { IDFA: 'x' } }, placements: [{ id: 'a' }] },
    { user: { id: 'p-1' }, placements: [{ id: 'a', channels: ['fax'] }] },
    { user: { id: 'p-1' }, placements: [{ id: 'a', size: 3 }] },
    { user: { id: 'p-1' }, placements: [{ id: 'a' }], explain: 'yes' },
    { user: { id: 'p-1' }, placements: [{ id: 'a' }], deadlineMs: 0 },
    { user: { id: 'p-1' }, placements: [{ id: 'a' }], deadlineMs: 1.5 },
    { user: { id: 'p-1' }, placements: [{ id: 'a' }], extra: 1 },
    { user: { id: 'p-1' }, placements: [{ id: 'a' }], context: { tags: [''] } },
    { user: { id: 'p-1' }, placements: Array.from({ length: 17 }, (_, i) => ({ id: `p${i}` })) },
    JSON.parse('{"user": {"id": "p-1"}, "placements": [{"id": "a"}], "__proto__": {}}'),
  ];
  const parses = (body: unknown) => {
    try {
      checkDecideRequest(body);
      return true;
    } catch (e) {
      if (e instanceof ClientError) return false;
      throw e;
    }
  };

  it.each(good.map((b) => [JSON.stringify(b), b]))('accepts %s', (_, body) => {
    expect(parses(body)).toBe(true);
    expect(schemaCheck(body).ok).toBe(true);
  });

  it.each(bad.map((b) => [JSON.stringify(b), b]))('refuses %s', (_, body) => {
    expect(parses(body)).toBe(false);
    expect(schemaCheck(body).ok).toBe(false);
  });

  it('reports the same code and path for the bad ones', () => {
    for (const body of bad) {
      let code = '';
      let path: string | undefined;
      try {
        checkDecideRequest(body);
      } catch (e) {
        code = (e as ClientError).code;
        path = (e as ClientError).path;
      }
      const r = schemaCheck(body);
      if (r.ok) throw new Error('expected a problem');
      expect([r.problem.code, r.problem.path], JSON.stringify(body)).toEqual([code, path ?? '']);
    }
  });
});
