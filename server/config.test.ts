import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARS, ConfigError, DEMO_RULESET, loadConfig } from './config.js';

describe('configuration', () => {
  it('has defaults that start the demo', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      adminPort: 8081,
      redis: undefined,
      deadlineMs: 10,
      maxBodyBytes: 65_536,
    });
    expect(c.rulesetFile).toBe(DEMO_RULESET);
  });

  it('names every bad variable at once', () => {
    expect(() =>
      loadConfig({ PORT: 'eighty', DECISION_DEADLINE_MS: '0', REDIS_URL: 'localhost:6379' }),
    ).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'eighty', DECISION_DEADLINE_MS: '0', REDIS_URL: 'localhost:6379' });
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toContain('PORT="eighty"');
      expect(msg).toContain('DECISION_DEADLINE_MS="0"');
      expect(msg).toContain('REDIS_URL="localhost:6379"');
    }
  });

  it('names one Redis deployment: a single Redis, a cluster or a sentinel-watched master', () => {
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.1:6380/2' }).redis).toEqual({
      kind: 'single',
      url: 'redis://10.0.0.1:6380/2',
    });
    expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7000' }).redis).toEqual({
      kind: 'cluster',
      nodes: ['10.0.0.1:7000', '10.0.0.2:7000'],
      url: 'redis://localhost',
    });
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'rediss://ms:pw@10.0.0.1:7000,10.0.0.2:7001' }).redis).toEqual({
      kind: 'cluster',
      nodes: ['10.0.0.1:7000', '10.0.0.2:7001'],
      url: 'rediss://ms:pw@10.0.0.1:7000',
    });
    expect(
      loadConfig({
        REDIS_SENTINELS: '10.0.0.5:26379,10.0.0.6:26379',
        REDIS_SENTINEL_MASTER: 'profiles',
        REDIS_URL: 'redis://:pw@ignored:1/3',
        REDIS_SENTINEL_PASSWORD: 'spw',
      }).redis,
    ).toEqual({
      kind: 'sentinel',
      sentinels: ['10.0.0.5:26379', '10.0.0.6:26379'],
      master: 'profiles',
      url: 'redis://:pw@ignored:1/3',
      sentinelPassword: 'spw',
    });
    const c = loadConfig({
      REDIS_URL: 'redis://a:1',
      REDIS_WAIT_REPLICAS: '2',
      REDIS_WAIT_TIMEOUT_MS: '250',
    });
    expect([c.redisWaitReplicas, c.redisWaitTimeoutMs]).toEqual([2, 250]);
    expect(loadConfig({}).redisWaitReplicas).toBe('auto');
    for (const [env, problem] of [
      [{ REDIS_CLUSTER_NODES: '10.0.0.1:7000', REDIS_SENTINELS: '10.0.0.5:26379' }, /name one way/],
      [{ REDIS_CLUSTER_NODES: '10.0.0.1:7000', REDIS_URL: 'redis://a:1' }, /credentials/],
      [{ REDIS_CLUSTER_NODES: 'not a node' }, /"not a node" is not host:port/],
      [{ REDIS_CLUSTER_NODES: ' , ' }, /at least one node/],
      [{ REDIS_SENTINELS: '10.0.0.5:26379' }, /REDIS_SENTINEL_MASTER/],
      [{ REDIS_SENTINELS: 'sentinel', REDIS_SENTINEL_MASTER: 'm' }, /"sentinel" is not host:port/],
      [{ REDIS_URL: 'redis://a:1', REDIS_WAIT_REPLICAS: 'all' }, /REDIS_WAIT_REPLICAS="all"/],
    ] as const) {
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(problem);
    }
  });

  it('reads the form of the bid ids to issue', () => {
    expect(loadConfig({}).openrtb.bidIdForm).toBe('xchacha20');
    expect(loadConfig({ OPENRTB_BID_IDS: 'AES-CTR' }).openrtb.bidIdForm).toBe('aes-ctr');
    expect(() => loadConfig({ OPENRTB_BID_IDS: 'gcm' })).toThrow(
      /OPENRTB_BID_IDS="gcm": expected one of xchacha20, aes-ctr/,
    );
  });

  it('reads the OpenRTB privacy policy: our TCF vendor id and the purposes that need consent', () => {
    expect(loadConfig({}).openrtb).toMatchObject({ tcfVendorId: null, tcfPurposes: [1, 3, 4] });
    expect(
      loadConfig({ OPENRTB_TCF_VENDOR_ID: '755', OPENRTB_TCF_PURPOSES: '1, 2,7' }).openrtb,
    ).toMatchObject({
      tcfVendorId: 755,
      tcfPurposes: [1, 2, 7],
    });
    for (const [env, problem] of [
      [{ OPENRTB_TCF_VENDOR_ID: 'acme' }, /OPENRTB_TCF_VENDOR_ID="acme"/],
      [{ OPENRTB_TCF_VENDOR_ID: '0' }, /OPENRTB_TCF_VENDOR_ID="0"/],
      [{ OPENRTB_TCF_PURPOSES: '1,25' }, /OPENRTB_TCF_PURPOSES="1,25"/],
      [{ OPENRTB_TCF_PURPOSES: '1,1' }, /OPENRTB_TCF_PURPOSES/],
      [{ OPENRTB_TCF_PURPOSES: 'all' }, /OPENRTB_TCF_PURPOSES/],
    ] as const) {
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(problem);
    }
  });

  it('keeps event ids at least as long as bids take notices, and events no older than that', () => {
    expect(loadConfig({}).eventDedupeMs).toBe(7 * 86_400_000);
    expect(loadConfig({ EVENT_DEDUPE_MS: String(30 * 86_400_000) }).eventDedupeMs).toBe(30 * 86_400_000);
    expect(() => loadConfig({ EVENT_DEDUPE_MS: '3600000', OPENRTB_BID_TTL_MS: '7200000' })).toThrow(
      /OPENRTB_BID_TTL_MS \(7200000\) is longer than EVENT_DEDUPE_MS/,
    );
    expect(() => loadConfig({ EVENT_DEDUPE_MS: String(401 * 86_400_000) })).toThrow(/EVENT_DEDUPE_MS/);
  });

  it('refuses the same port for both listeners', () => {
    expect(() => loadConfig({ PORT: '9000', ADMIN_PORT: '9000' })).toThrow(/different ports/);
  });

  it('is documented in the README, variable for variable', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const documented = [...readme.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual(CONFIG_VARS.map((v) => v.name));
  });
});

describe('tokens', () => {
  const secret = 's3cret-s3cret-s3cret';
  it('come from TOKENS as name:secret:scope+scope, and from a JSON file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mindshare-tokens-'));
    const file = join(dir, 'tokens.json');
    writeFileSync(
      file,
      JSON.stringify([{ name: 'pipeline', token: `${secret}-2`, scopes: ['events:write'] }]),
    );
    const c = loadConfig({
      TOKENS: `ops:${secret}:admin, cm:${secret}-1:rules:read+rules:write`,
      TOKENS_FILE: file,
    });
    expect(c.tokens).toEqual([
      { name: 'ops', secret, scopes: ['admin'] },
      { name: 'cm', secret: `${secret}-1`, scopes: ['rules:read', 'rules:write'] },
      { name: 'pipeline', secret: `${secret}-2`, scopes: ['events:write'] },
    ]);
  });

  it('take scopes joined by +', () => {
    const c = loadConfig({ TOKENS: `cm:${secret}:decide+admin` });
    expect(c.tokens).toEqual([{ name: 'cm', secret, scopes: ['decide', 'admin'] }]);
  });

  it('are empty when none are configured', () => {
    expect(loadConfig({}).tokens).toEqual([]);
  });

  it('refuse unknown scopes, short secrets and duplicates, without ever printing a secret', () => {
    const bad = [
      { TOKENS: `a:${secret}:everything` },
      { TOKENS: 'a:short:admin' },
      { TOKENS: `a:${secret}:admin,a:${secret}-x:admin` },
      { TOKENS: `a:${secret}:admin,b:${secret}:admin` },
      { TOKENS: `just-a-secret-${secret}` },
      { TOKENS_FILE: '/nonexistent/tokens.json' },
    ];
    for (const env of bad) {
      let message = '';
      try {
        loadConfig(env);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        message = (e as Error).message;
      }
      expect(message, JSON.stringify(env)).toMatch(/TOKENS/);
      expect(message).not.toContain(secret);
    }
  });
});
