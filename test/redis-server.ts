/**
 * A real redis-server for tests (and the load run): started from the PATH on a free port (never
 * 6379), without persistence, bound to 127.0.0.1, and killed when the process that started it
 * exits, however it exits (an exit hook, and a watchdog for exits by signal).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';

export interface RedisHandle {
  url: string;
  port: number;
  /** The process id of the server running now (a restart changes it). */
  readonly pid: number;
  /** SIGKILL the server and wait until it has exited. */
  kill(): Promise<void>;
  /** Start it again on the same port; resolves when it answers PING. */
  restart(): Promise<void>;
  /** Stop it for good. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

/**
 * A test runner may end its workers with a signal, and then no 'exit' handler runs. A small
 * detached shell outlives the worker and kills the server once the worker is gone (and quits by
 * itself when the server goes first).
 */
function watchOver(child: ChildProcess): void {
  if (child.pid === undefined) return;
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 0.3; done; kill -9 ${child.pid} 2>/dev/null`;
  try {
    spawn('sh', ['-c', script], { stdio: 'ignore', detached: true }).unref();
  } catch {
    // No shell: the exit hook still covers normal exits.
  }
}

/** A port nobody listens on right now (bind port 0, read it, release it); never 6379. */
export function freePort(): Promise<number> {
  return listenOnce(0).then((port) => {
    if (port <= 0 || port === 6379) throw new Error('no free port');
    return port;
  });
}

/** Binds `port` on 127.0.0.1 (0: any) and releases it; resolves with the port, rejects when taken. */
export function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(bound));
    });
  });
}

/** Resolves true when something on the port answers PING with PONG. */
function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

export class NotInstalledError extends Error {}

/**
 * Spawns redis-server on `port` (in `dir`, with `extra` arguments, after a configuration file
 * when `configFile` is given); resolves when it answers PING, rejects if it exits first.
 */
export async function spawnOn(
  port: number,
  dir: string = tmpdir(),
  extra: readonly string[] = [],
  configFile?: string,
): Promise<ChildProcess> {
  installExitHook();
  const args = [
    ...(configFile === undefined ? [] : [configFile]),
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--dir',
    dir,
    '--loglevel',
    'warning',
    // A replica (when a test adds one) syncs at once, not after 5 s of waiting for others.
    '--repl-diskless-sync-delay',
    '0',
    ...extra,
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  });
  child.stderr?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  });
  let exited: string | null = null;
  let notInstalled = false;
  child.once('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') notInstalled = true;
    exited = err.message;
  });
  child.once('exit', (code, signal) => {
    live.delete(child);
    exited ??= `exited with ${signal ?? `code ${code}`}`;
  });
  live.add(child);
  watchOver(child);

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (notInstalled) {
      throw new NotInstalledError(
        'redis-server is not installed (not found on the PATH). Tests that use Redis need it: apt-get install -y redis-server',
      );
    }
    if (exited !== null) throw new Error(`redis-server on port ${port} ${exited}:\n${output.trim()}`);
    if (await pingOnce(port)) return child;
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  throw new Error(
    `redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms:\n${output.trim()}`,
  );
}

export function killChild(child: ChildProcess | null): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Starts a redis-server for a test on a free port. */
export async function startRedis(): Promise<RedisHandle> {
  let child: ChildProcess | null = null;
  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < 5 && child === null; attempt++) {
    port = await freePort();
    try {
      child = await spawnOn(port);
    } catch (e) {
      if (e instanceof NotInstalledError) throw e;
      lastError = e; // most likely someone took the port in between: try another
    }
  }
  if (child === null) throw lastError instanceof Error ? lastError : new Error(String(lastError));
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid ?? 0;
    },
    async kill() {
      await killChild(child);
    },
    async restart() {
      if (stopped) throw new Error('this redis-server was stopped for good');
      await killChild(child);
      child = await spawnOn(port);
    },
    async stop() {
      stopped = true;
      await killChild(child);
      child = null;
    },
  };
}
