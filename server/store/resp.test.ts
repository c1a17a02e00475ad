/**
 * The lean connection against a real redis-server started for this file: replies of every type,
 * scripts (and their reload after SCRIPT FLUSH), order under many commands in flight, binary and
 * large values split over many socket reads, authentication and database selection from the
 * URL, and what happens when the server goes away, comes back, or stops answering.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisHandle, startRedis } from '../../test/redis-server.js';
import { ConnectionDownError, luaScript, ReplyError, RespConnection } from './resp.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error('condition not met in time');
}

describe('RespConnection', () => {
  let server: RedisHandle;
  let admin: Redis;
  const open: RespConnection[] = [];
  const conn = (
    url = server.url,
    extra: { commandTimeoutMs?: number; preload?: ReturnType<typeof luaScript>[] } = {},
  ) => {
    const c = new RespConnection({ url, maxRetryDelayMs: 50, ...extra });
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    admin.disconnect();
    await server.stop();
  });

  it('answers each reply type: bulk, nil, integer, simple string, arrays, nested arrays', async () => {
    const c = conn();
    await admin.set('resp:s', 'héllo');
    await admin.hset('resp:h', { a: '1', b: '2' });
    expect(await c.call(['GET', 'resp:s'])).toEqual(Buffer.from('héllo'));
    expect(await c.call(['GET', 'resp:none'])).toBeNull();
    expect(await c.call(['INCRBY', 'resp:n', -5])).toBe(-5);
    expect(await c.call(['PING'])).toBe('PONG');
    const all = (await c.call(['HGETALL', 'resp:h'])) as Buffer[];
    expect(all.map(String).sort()).toEqual(['1', '2', 'a', 'b']);
    expect(await c.call(['HGETALL', 'resp:nothing'])).toEqual([]);
    const nested = luaScript("return { 1, { 'x', { 2 } }, redis.call('GET', KEYS[1]), false }");
    expect(await c.evalsha(nested, ['resp:s'], [])).toEqual([
      1,
      [Buffer.from('x'), [2]],
      Buffer.from('héllo'),
      null,
    ]);
  });

  it('rejects an error reply with its code, and goes on with the next command', async () => {
    const c = conn();
    await admin.set('resp:str', 'x');
    const err = await c.call(['HGET', 'resp:str', 'f']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplyError);
    expect((err as ReplyError).code).toBe('WRONGTYPE');
    expect(await c.call(['GET', 'resp:str'])).toEqual(Buffer.from('x'));
    const bad = await c.call(['NOSUCHCOMMAND']).catch((e: unknown) => e);
    expect((bad as ReplyError).code).toBe('ERR');
  });

  it('runs a script Redis does not know (EVAL after NOSCRIPT), also after SCRIPT FLUSH', async () => {
    const c = conn();
    const script = luaScript(`return ARGV[1] .. '-' .. KEYS[1] .. '-${Date.now()}'`);
    const first = (await c.evalsha(script, ['k'], ['v'])) as Buffer;
    expect(first.toString()).toMatch(/^v-k-\d+$/);
    // Now it is loaded: EVALSHA answers directly.
    expect(await admin.script('EXISTS', script.sha)).toEqual([1]);
    await admin.script('FLUSH');
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => c.evalsha(script, [`k${i}`], ['v'])));
    for (const [i, r] of many.entries()) expect(String(r)).toMatch(new RegExp(`^v-k${i}-`));
  });

  it('loads the scripts it is given on every connection, before the first call needs them', async () => {
    const script = luaScript(`return 'preloaded-${Date.now()}'`);
    const c = conn(server.url, { preload: [script] });
    await until(
      async () => c.status === 'ready' && ((await admin.script('EXISTS', script.sha)) as number[])[0] === 1,
    );
    // Redis restarted without its scripts: the new connection loads them again.
    await admin.script('FLUSH');
    await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await until(async () => ((await admin.script('EXISTS', script.sha)) as number[])[0] === 1);
    expect(String(await c.evalsha(script, [], []))).toMatch(/^preloaded-/);
    // A user not allowed SCRIPT still gets a working connection (EVALSHA falls back to EVAL).
    await admin.acl('SETUSER', 'noload', 'on', '>pw', '~*', '+@all', '-script');
    const url = new URL(server.url);
    url.username = 'noload';
    url.password = 'pw';
    const limited = conn(url.toString(), { preload: [luaScript("return 'limited'")] });
    expect(String(await limited.evalsha(luaScript("return 'limited'"), [], []))).toBe('limited');
    expect(await limited.call(['PING'])).toBe('PONG');
  });

  it('keeps thousands of commands in flight in order, binary-safe, with values larger than a socket read', async () => {
    const c = conn();
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 256; // every byte value, CR and LF included
    expect(await c.call(['SET', 'resp:big', big])).toBe('OK');
    const values = Array.from({ length: 3000 }, (_, i) => `v${i}\r\n${'é'.repeat(i % 7)}`);
    await Promise.all(values.map((v, i) => c.call(['SET', `resp:k${i}`, v])));
    const [bigBack, ...back] = await Promise.all([
      c.call(['GET', 'resp:big']),
      ...values.map((_, i) => c.call(['GET', `resp:k${i}`])),
    ]);
    expect(Buffer.compare(bigBack as Buffer, big)).toBe(0);
    expect(back.map(String)).toEqual(values);
  });

  it('authenticates and selects the database named in the URL', async () => {
    const own = await startRedis();
    const setup = new Redis(own.url);
    try {
      await setup.select(3);
      await setup.set('in-db-3', 'yes');
      await setup.config('SET', 'requirepass', 's3cret/pass');
      const url = new URL(own.url);
      url.password = encodeURIComponent('s3cret/pass');
      url.pathname = '/3';
      const c = conn(url.toString());
      expect(await c.call(['GET', 'in-db-3'])).toEqual(Buffer.from('yes'));
      // A wrong password: the connection is refused, calls fail, nothing hangs.
      url.password = 'wrong';
      const bad = conn(url.toString());
      await expect(bad.call(['GET', 'in-db-3'])).rejects.toBeTruthy();
    } finally {
      setup.disconnect();
      await own.stop();
    }
  });

  it('fails fast while Redis is down, rejects what was in flight, and comes back by itself', async () => {
    const own = await startRedis();
    try {
      const c = conn(own.url);
      expect(await c.call(['PING'])).toBe('PONG');
      const blocked = c.call(['BLPOP', 'resp:never', 0]).catch((e: unknown) => e);
      await sleep(50);
      await own.kill();
      expect(await blocked).toBeInstanceOf(ConnectionDownError);
      await until(() => c.status !== 'ready');
      const started = performance.now();
      await expect(c.call(['PING'])).rejects.toBeInstanceOf(ConnectionDownError);
      expect(performance.now() - started).toBeLessThan(1000);
      await own.restart();
      await until(() => c.status === 'ready');
      expect(await c.call(['PING'])).toBe('PONG');
    } finally {
      await own.stop();
    }
  });

  it('commands sent before the first connection wait for it', async () => {
    const c = conn();
    expect(c.status).toBe('connecting');
    expect(await Promise.all([c.call(['PING']), c.call(['ECHO', 'a'])])).toEqual(['PONG', Buffer.from('a')]);
  });

  it('a connection that stops answering is closed after the command timeout and opened again', async () => {
    const c = conn(server.url, { commandTimeoutMs: 200 });
    expect(await c.call(['PING'])).toBe('PONG');
    const started = performance.now();
    await expect(c.call(['BLPOP', 'resp:never', 0])).rejects.toBeInstanceOf(ConnectionDownError);
    expect(performance.now() - started).toBeLessThan(2000);
    await until(() => c.status === 'ready');
    expect(await c.call(['PING'])).toBe('PONG');
  });

  it('a connection to nowhere settles its first attempt and then fails fast', async () => {
    const c = new RespConnection({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 500, maxRetryDelayMs: 50 });
    open.push(c);
    await expect(c.call(['PING'])).rejects.toBeInstanceOf(ConnectionDownError);
    await expect(c.call(['PING'])).rejects.toBeInstanceOf(ConnectionDownError);
    c.close();
    expect(c.status).toBe('closed');
    await expect(c.call(['PING'])).rejects.toThrow(/closed/);
  });

  it('refuses URLs it cannot serve', () => {
    expect(() => new RespConnection({ url: 'http://127.0.0.1:6380' })).toThrow(/scheme/);
    expect(() => new RespConnection({ url: 'redis://127.0.0.1:6380/db' })).toThrow(/database/);
  });
});
