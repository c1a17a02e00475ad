/**
 * The load generator, run as its own process (`node dist/load-tests/driver.js '<json>'`) so that
 * it does not share the server's. Runs autocannon once and prints one JSON line: requests,
 * throughput, latency percentiles, errors.
 *
 * The request body is made per request: a decision for one person, drawn at random from the hot
 * set (people 0 .. hot-1) or from all `people`, for `placements` placements, as JSON or as
 * MessagePack.
 */
import autocannon from 'autocannon';
import { Packr } from 'msgpackr';

export interface DriverConfig {
  url: string;
  connections: number;
  durationS: number;
  /** Fixed offered rate (requests/s over all connections); absent: as fast as answered. */
  rate?: number;
  format: 'json' | 'msgpack';
  placements: number;
  /** People drawn from: p-0 .. p-(people-1). */
  people: number;
}

export interface DriverResult {
  requests: number;
  /** 2xx answers */
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
  rps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
}

const PLACEMENTS = [
  { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] },
  { id: 'daily-push', channels: ['app_push', 'sms', 'email'] },
  { id: 'feed-native', channels: ['native', 'display'], formats: ['native-feed'] },
];

/** A decision request body for person `i`. */
export function bodyFor(i: number, format: DriverConfig['format'], placements: number): string | Buffer {
  const value = { user: { id: `p-${i}` }, placements: PLACEMENTS.slice(0, placements) };
  return format === 'json' ? JSON.stringify(value) : packr.pack(value);
}

const packr = new Packr({ useRecords: false });

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as DriverConfig;
  const contentType = cfg.format === 'json' ? 'application/json' : 'application/msgpack';
  const result = await autocannon({
    url: cfg.url,
    connections: cfg.connections,
    duration: cfg.durationS,
    ...(cfg.rate === undefined ? {} : { overallRate: cfg.rate }),
    timeout: 5,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': contentType },
        setupRequest: (req) => ({
          ...req,
          body: bodyFor(Math.floor(Math.random() * cfg.people), cfg.format, cfg.placements),
        }),
      },
    ],
  });
  const out: DriverResult = {
    requests: result.requests.total,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationS: result.duration,
    rps: result.requests.total / result.duration,
    latencyMs: {
      mean: result.latency.mean,
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      p999: result.latency.p99_9,
      max: result.latency.max,
    },
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

if (process.argv[1]?.endsWith('driver.js')) await main();
