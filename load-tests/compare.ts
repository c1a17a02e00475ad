/**
 * Two builds of the server side by side, for a change too small for one load run to show:
 * `npm run load:compare -- <checkout A> <checkout B> [--scenario openrtb|decide] [--rounds N]
 * [--duration S]`. Each checkout is a directory holding a built `dist/` (`npm run build` there)
 * and its `node_modules` (or a link to one).
 *
 * One redis-server with the load run's people (100,000, with their aliases), one server of each
 * build on it (1 worker, the same rule set from this checkout), then alternating closed-loop runs
 * of the load run's uniform scenario, A then B, B then A, ... (`--rounds` pairs, default 10, of
 * `--duration` seconds, default 5), each driven by the load run's driver. Whatever else the
 * machine does falls on both alike; the figure to read is the median of the pairs' ratios of
 * server CPU per request (B / A), with its range. Prints each run and the summary; writes
 * nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { projectRoot } from '../server/project.js';
import { drive, median, stopChild, waitReady } from './measure.js';
import { cpuPerRequestUs, cpuTimes } from './proc.js';
import { freePort, startRedis, track } from './redis.js';
import { loadOpenrtbPeople, ORTB_PREFIX } from './scenarios.js';

const PEOPLE = 100_000;
const SECRET = 'compare-secret-0123456789abcdef';

interface Build {
  label: 'A' | 'B';
  dir: string;
  child: ChildProcess;
  url: string;
  cpu: number[];
}

function usage(problem: string): never {
  console.error(
    `${problem}\nusage: npm run load:compare -- <checkout A> <checkout B> [--scenario openrtb|decide] [--rounds N] [--duration S]`,
  );
  process.exit(2);
}

function parse(argv: readonly string[]) {
  const dirs: string[] = [];
  let scenario: 'openrtb' | 'decide' = 'openrtb';
  let rounds = 10;
  let durationS = 5;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--scenario') {
      const s = next();
      if (s !== 'openrtb' && s !== 'decide') usage(`--scenario ${s}: openrtb or decide`);
      scenario = s;
    } else if (a === '--rounds' || a === '--duration') {
      const n = Number(next());
      if (!Number.isInteger(n) || n < 1) usage(`${a} needs a whole number of at least 1`);
      if (a === '--rounds') rounds = n;
      else durationS = n;
    } else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else dirs.push(resolve(a));
  }
  if (dirs.length !== 2) usage('name two checkouts');
  for (const d of dirs) {
    if (!existsSync(join(d, 'dist', 'server', 'main.js'))) usage(`${d} has no dist/server/main.js: build it`);
  }
  return { dirs: dirs as [string, string], scenario, rounds, durationS };
}

async function main(): Promise<void> {
  const opt = parse(process.argv.slice(2));
  const redis = await startRedis();
  // The OpenRTB server's people of the load run, under its key prefix: both scenarios use them.
  await loadOpenrtbPeople(redis.url, PEOPLE);
  const openrtb = opt.scenario === 'openrtb';
  const builds: Build[] = [];
  for (const [k, dir] of opt.dirs.entries()) {
    const port = await freePort();
    const env: Record<string, string> = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: ORTB_PREFIX,
      LOG_LEVEL: 'warn',
      WORKERS: '1',
      HOST: '127.0.0.1',
      PORT: String(port),
      ADMIN_PORT: String(await freePort()),
      // As in the load run: the bidder on in both (the decide server serves it too, unused).
      OPENRTB_NOTICE_URL: `http://127.0.0.1:${port}`,
    };
    if (openrtb) {
      env.RULESET_FILE = join(projectRoot(), 'test', 'openrtb', 'ruleset.yaml');
      env.OPENRTB_SECRET = SECRET;
    }
    const child = spawn(process.execPath, [join(dir, 'dist', 'server', 'main.js')], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    track(child);
    const url = `http://127.0.0.1:${port}/${openrtb ? 'openrtb2/bid' : 'v1/decide'}`;
    builds.push({ label: k === 0 ? 'A' : 'B', dir, child, url, cpu: [] });
  }
  const probe = openrtb
    ? '{"id":"probe","imp":[{"id":"1","banner":{"w":300,"h":250}}]}'
    : '{"user":{"id":"p-1"},"placements":[{"id":"home-banner","channels":["display"]}]}';
  for (const b of builds) await waitReady(b.url, probe, [200, 204]);
  const run = (b: Build, durationS: number) =>
    drive({
      url: b.url,
      connections: 32,
      durationS,
      format: 'json',
      placements: 1,
      people: PEOPLE,
      ...(openrtb ? { openrtb: true } : {}),
    });
  console.log(`${opt.scenario} uniform over ${PEOPLE} people; A ${opt.dirs[0]}, B ${opt.dirs[1]}`);
  for (const b of builds) await run(b, 3);
  for (let r = 0; r < opt.rounds; r++) {
    for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
      const c0 = cpuTimes(b.child.pid!);
      const result = await run(b, opt.durationS);
      const c1 = cpuTimes(b.child.pid!);
      const us = cpuPerRequestUs(c0.user + c0.system, c1.user + c1.system, result.requests) ?? Number.NaN;
      b.cpu.push(us);
      const errors = result.errors + result.timeouts + result.non2xx;
      console.log(
        `round ${r + 1} ${b.label}: ${Math.round(result.rps)} req/s, ${us.toFixed(1)} µs CPU/req${errors > 0 ? `, ${errors} failed` : ''}`,
      );
    }
  }
  const [a, b] = builds as [Build, Build];
  const pairs = b.cpu.map((x, i) => x / a.cpu[i]!);
  console.log(
    `\nserver CPU µs/req, medians: A ${median(a.cpu)!.toFixed(1)}, B ${median(b.cpu)!.toFixed(1)}\n` +
      `B / A by pair: ${pairs.map((p) => p.toFixed(2)).join(' ')}\n` +
      `B / A, median of ${pairs.length} pairs: ${median(pairs)!.toFixed(3)} (range ${Math.min(...pairs).toFixed(2)}-${Math.max(...pairs).toFixed(2)}, ${pairs.filter((p) => p < 1).length} below 1)`,
  );
  for (const x of builds) await stopChild(x.child);
  await redis.stop();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
