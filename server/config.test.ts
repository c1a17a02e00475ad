import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARS, ConfigError, DEMO_RULESET, loadConfig } from './config.js';

describe('configuration', () => {
  it('has defaults that start the demo', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 8080, adminPort: 8081, redisUrl: undefined, deadlineMs: 10, maxBodyBytes: 65_536 });
    expect(c.rulesetFile).toBe(DEMO_RULESET);
  });

  it('names every bad variable at once', () => {
    expect(() => loadConfig({ PORT: 'eighty', DECISION_DEADLINE_MS: '0', REDIS_URL: 'localhost:6379' })).toThrow(
      ConfigError,
    );
    try {
      loadConfig({ PORT: 'eighty', DECISION_DEADLINE_MS: '0', REDIS_URL: 'localhost:6379' });
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toContain('PORT="eighty"');
      expect(msg).toContain('DECISION_DEADLINE_MS="0"');
      expect(msg).toContain('REDIS_URL="localhost:6379"');
    }
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
