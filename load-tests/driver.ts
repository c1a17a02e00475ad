/**
 * The load generator, run as its own process (`node dist/load-tests/driver.js '<json>'`) so that
 * it does not share the server's. Runs autocannon once and prints one JSON line: requests,
 * throughput, latency percentiles, errors.
 *
 * The request body is made per request: a decision for one person, drawn at random from the hot
 * set (people 0 .. hot-1) or from all `people`, for `placements` placements, as JSON or as
 * MessagePack; or, with `openrtb`, an OpenRTB BidRequest for one 300x250 banner whose
 * `user.buyeruid` is the person's `cookie` alias (server/demo aliases) and whose site category is
 * IAB2-1 for 3 requests in 4 (the test rule set's `shoes-banner` bids) and IAB7 otherwise (no
 * campaign: 204).
 */
import autocannon from 'autocannon';
import { Packr } from 'msgpackr';
import { demoAliases } from '../server/demo/profiles.js';

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
  /** POST /openrtb2/bid bodies instead of /v1/decide ones (`format` and `placements` unused). */
  openrtb?: boolean;
}

export interface DriverResult {
  requests: number;
  /** 2xx answers */
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Answers by HTTP status, e.g. `{ "200": 812, "204": 270 }`. */
  statuses: Record<string, number>;
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

const cookies = new Map<number, string | undefined>();
let bidRequests = 0;

/** An OpenRTB BidRequest for person `i` (see the header). */
export function bidRequestFor(i: number): string {
  let cookie = cookies.get(i);
  if (cookie === undefined && !cookies.has(i)) {
    cookie = demoAliases(i).cookie;
    cookies.set(i, cookie);
  }
  const n = bidRequests++;
  return JSON.stringify({
    id: `load-${n}`,
    tmax: 120,
    imp: [{ id: '1', banner: { w: 300, h: 250, pos: 1 } }],
    site: {
      id: 'site-1',
      domain: 'siteabcd.com',
      cat: [n % 4 === 3 ? 'IAB7' : 'IAB2-1'],
      publisher: { id: 'pub-1' },
    },
    device: { ip: '64.124.253.1', ua: 'Mozilla/5.0 (load)' },
    user: cookie === undefined ? { id: `x-${i}` } : { buyeruid: cookie },
  });
}

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
          body: cfg.openrtb
            ? bidRequestFor(Math.floor(Math.random() * cfg.people))
            : bodyFor(Math.floor(Math.random() * cfg.people), cfg.format, cfg.placements),
        }),
      },
    ],
  });
  const statuses: Record<string, number> = {};
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = v?.count ?? 0;
  const out: DriverResult = {
    requests: result.requests.total,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
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
