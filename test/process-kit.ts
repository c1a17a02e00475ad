/**
 * Running the compiled server as a process, for the tests that need the real thing (start-up
 * lines, signals, worker threads): one build per test run, shared by every test file that asks.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../server/project.js';

export const root = projectRoot();
export const main = join(root, 'dist', 'server', 'main.js');

/**
 * Compiles the server (tsc) and builds the console once per test run. Test files run in parallel worker processes of
 * one vitest run (same parent process): the first takes a lock directory and builds, the others
 * wait for it and find the run's stamp.
 */
export async function buildOnce(): Promise<void> {
  const dist = join(root, 'dist');
  const lock = join(dist, '.build-lock');
  const stamp = join(dist, '.build-run');
  const run = String(process.ppid);
  mkdirSync(dist, { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (existsSync(stamp) && readFileSync(stamp, 'utf8') === run) return;
    try {
      mkdirSync(lock);
    } catch {
      // Someone is building. A lock older than five minutes was left by a run that died.
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - since > 300_000) {
        rmSync(lock, { recursive: true, force: true });
      }
      if (Date.now() > deadline) throw new Error('timed out waiting for another test file to build');
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    try {
      execFileSync(
        process.execPath,
        [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
        {
          cwd: root,
          stdio: 'inherit',
        },
      );
      // The console the server serves at /console (as `npm run build` does).
      execFileSync(process.execPath, [join(root, 'console', 'build.mjs')], { cwd: root, stdio: 'inherit' });
      writeFileSync(stamp, run);
      return;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

export interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `node dist/server/main.js` with only PATH, HOST=127.0.0.1, a notice URL and `env` set. */
export function run(env: Record<string, string>): Run {
  const child = spawn(process.execPath, [main], {
    cwd: root,
    // A notice URL, which a server on Redis needs while the bidder is on (tests read notices by path).
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', OPENRTB_NOTICE_URL: 'http://127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out waiting for the server');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Started extends Run {
  dataPort: number;
  adminPort: number;
}

/** Starts the server on free ports and waits for its start-up lines (the curl line last). */
export async function start(env: Record<string, string>): Promise<Started> {
  const server = run({ PORT: '0', ADMIN_PORT: '0', ...env });
  const until = Date.now() + 30_000;
  while (!server.stdout().includes("-d '")) {
    if (Date.now() > until)
      throw new Error(`the server did not start:\n${server.stdout()}\n${server.stderr()}`);
    if (server.child.exitCode !== null)
      throw new Error(`the server exited:\n${server.stdout()}\n${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ...server, ...portsOf(server.stdout()) };
}

/** The two ports the server says it listens on, from its start-up lines (NaN when not said yet). */
export function portsOf(stdout: string): { dataPort: number; adminPort: number } {
  const ports =
    /data plane on http:\/\/127\.0\.0\.1:(\d+), control plane on http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
  return { dataPort: Number(ports?.[1]), adminPort: Number(ports?.[2]) };
}
