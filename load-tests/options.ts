/**
 * The load run's command line (see run.ts for what each option does). Its own module because the
 * scenarios, the measuring and the report each read a few of the options, and the results file
 * records them all as they are here, field for field.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface Options {
  quick: boolean;
  profiles: number;
  workers: number;
  durationS: number;
  connections: number;
  fractions: number[];
  wrk: boolean;
  openrtbOnly: boolean;
  memoryOnly: boolean;
  cluster: boolean;
}

export function options(argv: readonly string[]): Options {
  const quick = argv.includes('--quick');
  const value = (name: string, fallback: number) => {
    const i = argv.indexOf(name);
    if (i < 0) return fallback;
    const n = Number(argv[i + 1]);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number`);
    return n;
  };
  return {
    quick,
    profiles: Math.floor(value('--profiles', quick ? 20_000 : 1_000_000)),
    workers: Math.floor(value('--workers', Math.max(1, Math.floor(availableParallelism() / 2)))),
    durationS: value('--duration', quick ? 2 : 10),
    connections: Math.floor(value('--connections', 32)),
    fractions: quick ? [0.5] : [0.25, 0.5, 0.75],
    wrk: !quick && !argv.includes('--no-wrk') && !argv.includes('--openrtb-only') && onPath('wrk'),
    openrtbOnly: argv.includes('--openrtb-only'),
    memoryOnly: argv.includes('--memory-only'),
    cluster: !argv.includes('--no-cluster') && !argv.includes('--openrtb-only'),
  };
}

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
