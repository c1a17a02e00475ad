/**
 * Structured logs: the line format, LOG_LEVEL and LOG_DECISIONS_SAMPLE, and request ids on real
 * listeners (echoed in `x-request-id`, on every line written while a request is handled).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIZ_ID, CONTRACT_NOW, seedContractPeople } from '../test/decide.contract.js';
import { postJson } from '../test/http.js';
import { embeddedBackend, type RunningServer, startServer } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger, lineDestination, lineLogger, requestIdOf } from './log.js';
import { EmbeddedStore } from './store/embedded.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

type Line = Record<string, unknown>;

function capture(): { lines: Line[]; write: (line: string) => void } {
  const lines: Line[] = [];
  return { lines, write: (line) => lines.push(JSON.parse(line) as Line) };
}

describe('the logger', () => {
  it('writes JSON lines with a level name, an ISO time, the service and the message', () => {
    const { lines, write } = capture();
    const logger = createLogger({ destination: lineDestination(write) });
    logger.info({ route: '/x' }, 'hello');
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({ level: 'info', service: 'mindshare', route: '/x', msg: 'hello' });
    expect(typeof line?.version).toBe('string');
    expect(line?.pid).toBe(process.pid);
    expect(new Date(String(line?.time)).toISOString()).toBe(line?.time);
  });

  it('drops lines below its level', () => {
    const { lines, write } = capture();
    const logger = createLogger({ level: 'warn', destination: lineDestination(write) });
    logger.info('quiet');
    logger.debug('quieter');
    logger.warn('loud');
    expect(lines.map((l) => l.msg)).toEqual(['loud']);
    const silent = createLogger({ level: 'silent', destination: lineDestination(write) });
    silent.fatal('nothing');
    expect(lines).toHaveLength(1);
  });

  it('adapts the plain log lines: problems at warn, the rest at info', () => {
    const { lines, write } = capture();
    const log = lineLogger(createLogger({ destination: lineDestination(write) }));
    log('rule set: version 3, active in the store');
    log('control plane: store call failed (read the profile): boom');
    log('Redis unavailable (connect ECONNREFUSED); reconnecting');
    expect(lines.map((l) => l.level)).toEqual(['info', 'warn', 'warn']);
  });

  it('keeps a sane request id and replaces anything else', () => {
    expect(requestIdOf('req-42.a_b:c')).toBe('req-42.a_b:c');
    expect(requestIdOf(undefined)).toMatch(UUID);
    expect(requestIdOf('')).toMatch(UUID);
    expect(requestIdOf('has spaces in it')).toMatch(UUID);
    expect(requestIdOf('x'.repeat(129))).toMatch(UUID);
    expect(requestIdOf('{"json":1}')).toMatch(UUID);
  });
});

describe('LOG_LEVEL and LOG_DECISIONS_SAMPLE', () => {
  it('default to info and 0', () => {
    expect(loadConfig({})).toMatchObject({ logLevel: 'info', logDecisionsSample: 0 });
  });

  it('take every pino level, in any case, and a share from 0 to 1', () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
      expect(loadConfig({ LOG_LEVEL: level.toUpperCase() }).logLevel).toBe(level);
    }
    expect(loadConfig({ LOG_DECISIONS_SAMPLE: '0.25' }).logDecisionsSample).toBe(0.25);
    expect(loadConfig({ LOG_DECISIONS_SAMPLE: '1' }).logDecisionsSample).toBe(1);
    expect(loadConfig({ LOG_DECISIONS_SAMPLE: '.5' }).logDecisionsSample).toBe(0.5);
  });

  it('refuse anything else, naming the variable', () => {
    for (const env of [
      { LOG_LEVEL: 'verbose' },
      { LOG_LEVEL: 'warning' },
      { LOG_DECISIONS_SAMPLE: '2' },
      { LOG_DECISIONS_SAMPLE: '-0.1' },
      { LOG_DECISIONS_SAMPLE: 'half' },
      { LOG_DECISIONS_SAMPLE: '1e-3' },
    ]) {
      const name = Object.keys(env)[0]!;
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(new RegExp(`${name}=`));
    }
  });
});

describe('request ids on the listeners', () => {
  let server: RunningServer;
  let sampled: RunningServer;
  const logs = capture();
  const sampledLogs = capture();
  beforeAll(async () => {
    // A profile store whose profile reads fail: the control plane logs the failure.
    const people = new EmbeddedStore();
    people.getProfile = async () => {
      throw new Error('disk on fire');
    };
    const config = loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug' });
    server = await startServer(config, {
      log: logs.write,
      now: () => CONTRACT_NOW,
      backend: embeddedBackend(people),
    });
    await seedContractPeople(server.store);
    sampled = await startServer(
      loadConfig({
        PORT: '0',
        ADMIN_PORT: '0',
        HOST: '127.0.0.1',
        DEMO_PEOPLE: '0',
        LOG_DECISIONS_SAMPLE: '1',
      }),
      { log: sampledLogs.write, now: () => CONTRACT_NOW },
    );
    await seedContractPeople(sampled.store);
  });
  afterAll(async () => {
    await server?.close();
    await server?.backend.close();
    await sampled?.close();
  });

  const admin = (s: RunningServer, path: string) => `http://127.0.0.1:${s.adminPort}${path}`;

  it('echoes a sane x-request-id, and makes one up otherwise', async () => {
    const mine = await fetch(admin(server, '/healthz'), { headers: { 'x-request-id': 'req-abc.1' } });
    expect(mine.headers.get('x-request-id')).toBe('req-abc.1');
    const none = await fetch(admin(server, '/healthz'));
    expect(none.headers.get('x-request-id')).toMatch(UUID);
    const bad = await fetch(admin(server, '/healthz'), { headers: { 'x-request-id': 'no good id' } });
    expect(bad.headers.get('x-request-id')).toMatch(UUID);
    // Errors and unknown routes too.
    const missing = await fetch(admin(server, '/nope'), { headers: { 'x-request-id': 'req-404' } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-request-id')).toBe('req-404');
  });

  it('puts the request id on every line written while the request is handled', async () => {
    const before = logs.lines.length;
    const r = await fetch(admin(server, '/v1/profiles/p-1'), { headers: { 'x-request-id': 'req-store-1' } });
    expect(r.status).toBe(503);
    expect(r.headers.get('x-request-id')).toBe('req-store-1');
    const lines = logs.lines.slice(before);
    // One line for the request, carrying its id and the store's own failure.
    const aboutIt = lines.filter((l) => JSON.stringify(l).includes('disk on fire'));
    expect(aboutIt.length).toBeGreaterThan(0);
    expect(aboutIt.every((l) => l.requestId === 'req-store-1')).toBe(true);
    const access = lines.find((l) => l.msg === 'request failed' || l.msg === 'request');
    expect(JSON.stringify(access?.err)).toContain('disk on fire');
    expect(access).toMatchObject({
      level: 'error',
      requestId: 'req-store-1',
      method: 'GET',
      route: '/v1/profiles/:id',
      status: 503,
      code: 'store_unavailable',
    });
    expect(typeof access?.ms).toBe('number');
    // Nothing logged outside the request borrowed its id.
    const after = logs.lines.length;
    server.logger.info('outside any request');
    expect(logs.lines[after]?.requestId).toBeUndefined();
  });

  it('logs probes at debug and other requests at info', async () => {
    const before = logs.lines.length;
    await fetch(admin(server, '/healthz'), { headers: { 'x-request-id': 'req-probe' } });
    await fetch(admin(server, '/openapi.json'), { headers: { 'x-request-id': 'req-doc' } });
    const lines = logs.lines.slice(before);
    expect(lines.find((l) => l.requestId === 'req-probe')).toMatchObject({
      level: 'debug',
      route: '/healthz',
    });
    expect(lines.find((l) => l.requestId === 'req-doc')).toMatchObject({ level: 'info', status: 200 });
  });

  it('does not log decisions unless asked to, and logs a failed one with its request id', async () => {
    const url = `http://127.0.0.1:${server.dataPort}/v1/decide`;
    const before = logs.lines.length;
    expect((await postJson(url, { user: { id: BIZ_ID }, placements: [BANNER] })).status).toBe(200);
    expect(logs.lines.slice(before)).toEqual([]);

    const decide = server.service.decide;
    server.service.decide = () => {
      throw new Error('evaluator bug');
    };
    try {
      const r = await postJson(
        url,
        { user: { id: BIZ_ID }, placements: [BANNER] },
        { 'x-request-id': 'req-500' },
      );
      expect(r.status).toBe(500);
    } finally {
      server.service.decide = decide;
    }
    const failed = logs.lines.slice(before).find((l) => l.msg === 'decision failed');
    expect(failed).toMatchObject({ level: 'error', requestId: 'req-500' });
    expect(JSON.stringify(failed?.err)).toContain('evaluator bug');
  });

  it('logs the sampled share of decisions with request id, outcome and latency', async () => {
    const url = `http://127.0.0.1:${sampled.dataPort}/v1/decide`;
    await postJson(url, { user: { id: BIZ_ID }, placements: [BANNER] }, { 'x-request-id': 'req-d1' });
    await postJson(url, { user: { id: 'p-unknown' }, placements: [BANNER] });
    const decisions = sampledLogs.lines.filter((l) => l.msg === 'decision');
    expect(decisions).toHaveLength(2);
    expect(decisions[0]).toMatchObject({
      level: 'info',
      requestId: 'req-d1',
      outcome: 'filled',
      status: 200,
    });
    expect(typeof decisions[0]?.ms).toBe('number');
    expect(decisions[1]?.requestId).toMatch(UUID);
    expect(decisions[1]?.outcome).toBe('no_fill');
  });
});
