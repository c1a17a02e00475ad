import { describe, expect, it } from 'vitest';
import type { Profile } from '../../rules/types.js';
import { makeKit } from '../control/test-kit.js';
import { EmbeddedStore } from '../store/embedded.js';
import { ImportAborted, importProfiles } from './import.js';

async function* chunks(...parts: string[]): AsyncGenerator<string> {
  for (const p of parts) yield p;
}

describe('importProfiles', () => {
  it('writes valid lines, reports bad ones by line number, skips blank lines', async () => {
    const store = new EmbeddedStore();
    const lines = [
      '{"id": "p-1", "tags": ["a"], "aliases": {"idfa": "A-1"}}',
      '',
      '{"id": "p-2", "tags": "oops"}',
      'not json',
      '   ',
      '{"id": "p-3", "channels": {"fax": 1}}',
      '{"tags": ["no-id"]}',
      '{"id": "p-4", "stages": {"vivo": "appeal"}, "updatedAt": 5}\r',
      '{"id": "p-5", "timezone": "Asia/Shanghai"}',
    ];
    // Split mid-line and mid-character to show lines are put back together.
    const text = `${lines.join('\n')}\n{"id": "p-6", "tags": ["通勤"]}`;
    const cut = text.indexOf('通') + 1;
    const result = await importProfiles(
      chunks(text.slice(0, 17), text.slice(17, cut), text.slice(cut)),
      store,
      { batchSize: 2, now: () => 42 },
    );
    expect(result).toEqual({
      lines: 10,
      imported: 4,
      failed: 4,
      errors: [
        { line: 3, code: 'invalid_field', message: 'tags must be an array', path: 'tags' },
        { line: 4, code: 'bad_json', message: expect.stringContaining('not valid JSON') },
        { line: 6, code: 'unknown_field', message: expect.any(String), path: 'channels.fax' },
        { line: 7, code: 'missing_field', message: 'id is required', path: 'id' },
      ],
    });
    expect(await store.getProfile('p-1')).toEqual({ id: 'p-1', tags: ['a'], updatedAt: 42 });
    expect(await store.resolveAlias('idfa', 'A-1')).toBe('p-1');
    expect((await store.getProfile('p-4'))?.updatedAt).toBe(5);
    expect((await store.getProfile('p-6'))?.tags).toEqual(['通勤']);
  });

  it('caps the error list and counts the rest; refuses over-long lines', async () => {
    const store = new EmbeddedStore();
    const bad = Array.from({ length: 30 }, () => '{"id": 1}').join('\n');
    const long = `{"id": "p-long", "tags": ["${'x'.repeat(200)}"]}`;
    const r = await importProfiles(chunks(`${bad}\n${long}\n{"id":"ok"}\n`), store, {
      maxErrors: 10,
      maxLineBytes: 100,
    });
    expect(r.errors.length).toBe(10);
    expect(r.moreErrors).toBe(21);
    expect(r.failed).toBe(31);
    expect(r.imported).toBe(1);
    expect(r.lines).toBe(32);
  });

  it('writes a batch once its lines add up to the byte bound, whatever the count', async () => {
    const store = new EmbeddedStore();
    const sizes: number[] = [];
    const counting = {
      putProfiles: async (p: readonly Profile[]) => {
        sizes.push(p.length);
        await store.putProfiles(p);
      },
      linkManyAliases: store.linkManyAliases.bind(store),
    };
    // 40 lines of about 1 KB each, a 4 KB bound: at most 4 profiles (plus the one that
    // crosses the bound) per write, although a batch may hold 500.
    const line = (i: number) =>
      JSON.stringify({
        id: `big-${i}`,
        tags: Array.from({ length: 10 }, (_, t) => `note:${t}:${'x'.repeat(90)}`),
      });
    const text = Array.from({ length: 40 }, (_, i) => line(i)).join('\n');
    const r = await importProfiles(chunks(text), counting, { batchSize: 500, batchBytes: 4096 });
    expect(r.imported).toBe(40);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(5);
    expect(sizes.length).toBeGreaterThanOrEqual(8);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(40);
  });

  it('stops with the progress so far when the store fails', async () => {
    const store = new EmbeddedStore();
    let calls = 0;
    const failing = {
      putProfiles: async (p: readonly Profile[]) => {
        if (++calls === 2) throw new Error('connection lost');
        await store.putProfiles(p);
      },
      linkManyAliases: store.linkManyAliases.bind(store),
    };
    const text = Array.from({ length: 5 }, (_, i) => `{"id": "p-${i}"}`).join('\n');
    const err = await importProfiles(chunks(text), failing, { batchSize: 2 }).catch((e) => e);
    expect(err).toBeInstanceOf(ImportAborted);
    expect(err.line).toBe(3);
    expect(err.progress.imported).toBe(2);
  });
});

/** NDJSON lines made on demand, counting how many were handed out. */
function generated(total: number, linesPerChunk: number, bad: (i: number) => boolean) {
  const state = { produced: 0 };
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.produced >= total) {
        controller.close();
        return;
      }
      let text = '';
      const end = Math.min(total, state.produced + linesPerChunk);
      for (let i = state.produced; i < end; i++) {
        text += bad(i)
          ? `{"id": "p-${i}", "activeHours": [99]}\n`
          : `{"id": "p-${i}", "tags": ["circle:business", "group:g${i % 10}"], "clv": {"vivo": ${i}}}\n`;
      }
      state.produced = end;
      controller.enqueue(encoder.encode(text));
    },
  });
  return { stream, state };
}

describe('POST /v1/profiles/import', () => {
  it('streams a large import in batches with bounded memory', async () => {
    const batch = 1000;
    const total = 200_000;
    const perChunk = 250;
    const bad = (i: number) => i % 50_000 === 7;
    const { stream, state } = generated(total, perChunk, bad);
    const kit = await makeKit({ importBatch: batch });
    const sizes: number[] = [];
    let maxAhead = 0;
    let written = 0;
    const put = kit.store.putProfiles.bind(kit.store);
    kit.store.putProfiles = async (profiles) => {
      sizes.push(profiles.length);
      written += profiles.length;
      // Lines read from the body but not yet written: at most this batch and one chunk.
      maxAhead = Math.max(maxAhead, state.produced - written);
      await put(profiles);
    };
    const r = await kit.req('POST', '/v1/profiles/import', {
      token: 'profiles-secret',
      body: stream,
      type: 'application/x-ndjson',
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ lines: total, imported: total - 4, failed: 4 });
    expect(r.body.errors.map((e: { line: number }) => e.line)).toEqual([8, 50_008, 100_008, 150_008]);
    expect(r.body.errors[0]).toMatchObject({ code: 'invalid_field', path: 'activeHours[0]' });
    expect(Math.max(...sizes)).toBeLessThanOrEqual(batch);
    expect(sizes.length).toBeGreaterThanOrEqual(Math.floor((total - 4) / batch));
    expect(maxAhead).toBeLessThanOrEqual(batch + 2 * perChunk);
    expect(kit.store.size).toBe(total - 4);
    expect(await kit.store.getProfile('p-199999')).toMatchObject({ clv: { vivo: 199_999 } });
    // Every person written is announced, a message per batch.
    const announced = kit.messages.flatMap((m) =>
      m.type === 'people' ? m.pids : m.type === 'person' ? [m.pid] : [],
    );
    expect(announced.length).toBe(total - 4);
    expect(announced[0]).toBe('p-0');
    expect(kit.messages.length).toBeLessThan(total / 100);
  });

  it('answers 503 with the line it stopped at when the store fails', async () => {
    const kit = await makeKit({ importBatch: 2 });
    let calls = 0;
    const put = kit.store.putProfiles.bind(kit.store);
    kit.store.putProfiles = async (p) => {
      if (++calls === 2) throw new Error('down');
      await put(p);
    };
    const body = Array.from({ length: 6 }, (_, i) => `{"id": "p-${i}"}`).join('\n');
    const r = await kit.req('POST', '/v1/profiles/import', { body, type: 'application/x-ndjson' });
    expect(r.status).toBe(503);
    expect(r.body.error.message).toContain('line 3');
  });

  it('stops at the import limit', async () => {
    const kit = await makeKit({ maxImportBytes: 100, importBatch: 1 });
    const body = Array.from({ length: 20 }, (_, i) => `{"id": "p-${i}"}`).join('\n');
    const r = await kit.req('POST', '/v1/profiles/import', { body, type: 'application/x-ndjson' });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('body_too_large');
  });
});

describe('npm run import', () => {
  it('loads a file into the store, reports refused lines and exits 2', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { runImport } = await import('../cli/import.js');
    const dir = mkdtempSync(join(tmpdir(), 'import-'));
    const file = join(dir, 'people.ndjson');
    writeFileSync(file, '{"id": "p-1", "aliases": {"cookie": "c-1"}}\n{"id": 2}\n{"id": "p-3"}\n');
    const store = new EmbeddedStore();
    const lines: string[] = [];
    const io = {
      env: { REDIS_URL: 'redis://127.0.0.1:1' },
      stdin: chunks(),
      err: (l: string) => lines.push(l),
      openStore: () => store,
    };
    expect(await runImport([file, '--batch', '2'], io)).toBe(2);
    expect(lines.join('\n')).toContain('line 2: id must be a string [id] (invalid_field)');
    expect(lines.at(-1)).toMatch(/Imported 2 profiles from 3 lines .* 1 refused/);

    const store2 = new EmbeddedStore();
    const stdin = chunks('{"id": "s-1"}\n', '{"id": "s-2"}\n');
    expect(await runImport(['-'], { ...io, stdin, openStore: () => store2 })).toBe(0);
    expect(store2.size).toBe(2);
    expect(await runImport([], io)).toBe(1);
    expect(await runImport([file], { ...io, env: {} })).toBe(1);
    expect(
      await runImport([join(dir, 'missing.ndjson')], { ...io, openStore: () => new EmbeddedStore() }),
    ).toBe(1);
  });

  it('checks stages against the active rule set of the Redis it loads', async () => {
    const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { runImport } = await import('../cli/import.js');
    const { startRedis } = await import('../../test/redis-server.js');
    const { RedisStore } = await import('../store/redis.js');
    const { RedisRuleSets } = await import('../store/redis-rulesets.js');
    const { EmbeddedBus } = await import('../store/bus.js');
    const { DEMO_RULESET } = await import('../config.js');
    const redis = await startRedis();
    const store = new RedisStore({ url: redis.url, log: () => {} });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'import-stages-'));
      const file = join(dir, 'people.ndjson');
      writeFileSync(
        file,
        '{"id": "p-1", "stages": {"vivo": "appeal"}}\n{"id": "p-2", "stages": {"vivo": "apeal"}}\n',
      );
      const lines: string[] = [];
      const io = { env: { REDIS_URL: redis.url }, stdin: chunks(), err: (l: string) => lines.push(l) };
      // No rule set active yet: nothing to check against, and it says so.
      expect(await runImport([file], io)).toBe(0);
      expect(lines.join('\n')).toContain('No rule set is active');
      const rulesets = new RedisRuleSets({ store, bus: new EmbeddedBus() });
      const source = readFileSync(DEMO_RULESET, 'utf8');
      const version = await rulesets.addRuleSet(source, {
        checksum: 'sha256:test',
        format: 'yaml',
        createdBy: 'test',
        createdAt: Date.now(),
        bytes: source.length,
      });
      await rulesets.activateRuleSet(version, 'test', Date.now());
      lines.length = 0;
      expect(await runImport([file], io)).toBe(2);
      expect(lines.join('\n')).toContain('line 2: "apeal" is not a stage of the active rule set');
      expect(lines.join('\n')).toContain('[stages.vivo] (invalid_field)');
    } finally {
      await store.close();
      await redis.stop();
    }
  }, 30_000);
});
