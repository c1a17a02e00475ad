/**
 * Metrics: the exposition parses as Prometheus text, and the series move with real traffic on
 * real listeners (the embedded store, and a redis-server started for the test and then killed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIZ_ID, seedContractPeople } from '../test/decide.contract.js';
import { postJson } from '../test/http.js';
import { serverOver, type TestServer } from '../test/server-kit.js';
import type { RunningServer } from './app.js';
import type { DecisionOutcome } from './decision/service.js';
import { DECISION_BUCKETS, instrumentStore, Metrics, unansweredWorker } from './metrics.js';
import type { BidAnswer } from './openrtb/bidder.js';

// ---- a small parser of the text exposition format (0.0.4) ----------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Parses the exposition strictly: throws on any line that is not a comment or a valid sample. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  expect(lines.at(-1), 'the exposition ends with a newline').toBe('');
  for (const [n, line] of lines.entries()) {
    if (line === '') continue;
    const where = `line ${n + 1}: ${line}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (m === null) throw new Error(`bad comment, ${where}`);
      expect(m[2], where).toMatch(NAME);
      if (m[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped'], where).toContain(m[3]);
        expect(types.has(m[2]!), `one TYPE per metric, ${where}`).toBe(false);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
    const name = line.slice(0, i);
    expect(name, where).toMatch(NAME);
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const eq = line.indexOf('=', i);
        const key = line.slice(i, eq);
        expect(key, where).toMatch(LABEL);
        if (line[eq + 1] !== '"') throw new Error(`label value not quoted, ${where}`);
        let j = eq + 2;
        let value = '';
        for (; line[j] !== '"'; j++) {
          if (j >= line.length) throw new Error(`unterminated label value, ${where}`);
          if (line[j] === '\\') {
            j++;
            const esc = line[j];
            if (esc === 'n') value += '\n';
            else if (esc === '\\' || esc === '"') value += esc;
            else throw new Error(`bad escape, ${where}`);
          } else value += line[j];
        }
        expect(key in labels, `label ${key} twice, ${where}`).toBe(false);
        labels[key] = value;
        i = j + 1;
        if (line[i] === ',') i++;
        else if (line[i] !== '}') throw new Error(`expected , or }, ${where}`);
      }
      i++;
    }
    const rest = line.slice(i).trim().split(' ');
    expect(rest.length === 1 || rest.length === 2, where).toBe(true);
    const raw = rest[0]!;
    // As Prometheus reads values (Go's ParseFloat): NaN and Inf in any case (prom-client writes `Nan`).
    const special = /^([+-]?)(inf|infinity|nan)$/i.exec(raw);
    const value =
      special === null
        ? Number(raw)
        : special[2]!.toLowerCase() === 'nan'
          ? Number.NaN
          : special[1] === '-'
            ? -Infinity
            : Infinity;
    if (raw === '' || (Number.isNaN(value) && special === null)) throw new Error(`bad value, ${where}`);
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const declared = types.get(name) ?? types.get(base);
    expect(declared, `a TYPE before the sample, ${where}`).toBeDefined();
    if (declared === 'histogram' && name.endsWith('_bucket')) expect(labels.le, where).toBeDefined();
    samples.push({ name, labels, value });
  }
  return { types, samples };
}

/** The value of the one sample with this name and (at least) these labels; 0 when absent. */
function value(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = e.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  expect(found.length, `${name} ${JSON.stringify(labels)} matches at most one series`).toBeLessThanOrEqual(1);
  return found[0]?.value ?? 0;
}

function series(e: Exposition, name: string): Sample[] {
  return e.samples.filter((s) => s.name === name);
}

async function scrape(port: number): Promise<{ text: string; e: Exposition; type: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, e: parseExposition(text), type: res.headers.get('content-type') };
}

const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

// ---- units ------------------------------------------------------------------------------------------

describe('Metrics', () => {
  it('exposes histograms with cumulative buckets, a sum and a count', async () => {
    const m = new Metrics({ processMetrics: false });
    const outcome: DecisionOutcome = {
      output: { ruleset: 1, user: 'x', decisions: [{ placement: 'a', campaign: null }] },
      degradedBy: null,
    };
    m.decision(outcome, 200, 0.03, null); // 30 µs
    m.decision(outcome, 200, 0.6, null); // 600 µs
    m.decision(outcome, 200, 1000, null); // 1 s: above every bucket
    const e = parseExposition(await m.exposition());
    expect(e.types.get('mindshare_decision_duration_seconds')).toBe('histogram');
    const buckets = series(e, 'mindshare_decision_duration_seconds_bucket').filter(
      (s) => s.labels.outcome === 'no_fill',
    );
    expect(buckets.map((b) => b.labels.le)).toEqual([...DECISION_BUCKETS.map(String), '+Inf']);
    expect(buckets.every((b) => b.labels.route === '/v1/decide')).toBe(true);
    const at = (le: string) => buckets.find((b) => b.labels.le === le)?.value;
    expect([at('0.00005'), at('0.0005'), at('0.00075'), at('0.25'), at('+Inf')]).toEqual([1, 1, 2, 2, 3]);
    expect(value(e, 'mindshare_decision_duration_seconds_count', { outcome: 'no_fill' })).toBe(3);
    expect(value(e, 'mindshare_decision_duration_seconds_sum', { outcome: 'no_fill' })).toBeCloseTo(1.00063);
    expect(value(e, 'mindshare_placements_total', { outcome: 'no_fill', campaign: '' })).toBe(3);
    // Counters keep counting across scrapes (the accumulated part is folded in once).
    m.decision(outcome, 200, 0.03, null);
    const again = parseExposition(await m.exposition());
    expect(value(again, 'mindshare_placements_total', { outcome: 'no_fill' })).toBe(4);
    expect(value(again, 'mindshare_http_requests_total', { listener: 'data', status: '200' })).toBe(4);
  });

  it('exports ghosts, campaigns in flight, hold-out shares, lift counts and what was written', async () => {
    const m = new Metrics({ processMetrics: false });
    const outcome: DecisionOutcome = {
      output: { ruleset: 1, user: 'x', decisions: [{ placement: 'a', campaign: null }] },
      degradedBy: null,
      ghosts: [{ placement: 'a', campaign: 'promo', creative: 'c', channel: 'display' }],
    };
    m.decision(outcome, 200, 0.1, null);
    m.setSources({
      campaigns: () => [
        { id: 'promo', inFlight: true, holdout: 0.1 },
        { id: 'later', inFlight: false, holdout: 0 },
      ],
      lift: () => [
        {
          id: 'promo',
          counts: {
            treatment: { people: 90, conversions: 9, purchases: 2 },
            control: { people: 10, conversions: 0, purchases: 0 },
          },
        },
      ],
      measure: () => ({ countsWritten: 5, exposuresWritten: 3, countsDropped: 1, exposuresDropped: 2 }),
    });
    const e = parseExposition(await m.exposition());
    expect(value(e, 'mindshare_ghost_exposures_total', { campaign: 'promo' })).toBe(1);
    expect(value(e, 'mindshare_placements_total', { outcome: 'no_fill' })).toBe(1);
    expect(value(e, 'mindshare_campaign_in_flight', { campaign: 'promo' })).toBe(1);
    expect(value(e, 'mindshare_campaign_in_flight', { campaign: 'later' })).toBe(0);
    expect(value(e, 'mindshare_campaign_holdout_ratio', { campaign: 'promo' })).toBe(0.1);
    expect(
      value(e, 'mindshare_campaign_lift_people', {
        campaign: 'promo',
        arm: 'treatment',
        outcome: 'conversions',
      }),
    ).toBe(9);
    expect(
      value(e, 'mindshare_campaign_lift_people', { campaign: 'promo', arm: 'control', outcome: 'exposed' }),
    ).toBe(10);
    expect(value(e, 'mindshare_measure_writes_total', { kind: 'exposures' })).toBe(3);
    expect(value(e, 'mindshare_measure_dropped_total', { kind: 'exposures' })).toBe(2);
  });

  it('counts error answers by code and keeps aborted requests out of the latency histogram', async () => {
    const m = new Metrics({ processMetrics: false });
    expect(m.decision(null, 400, 0.1, 'bad_json')).toBe('error');
    m.decision(null, 499, 5, null);
    m.dataAnswer('unmatched', 404, 'not_found');
    const e = parseExposition(await m.exposition());
    expect(
      value(e, 'mindshare_decision_duration_seconds_count', { route: '/v1/decide', outcome: 'error' }),
    ).toBe(0);
    expect(value(e, 'mindshare_http_errors_total', { listener: 'data', code: 'bad_json' })).toBe(1);
    expect(value(e, 'mindshare_http_requests_total', { status: '499' })).toBe(1);
    expect(value(e, 'mindshare_http_requests_total', { route: 'unmatched', status: '404' })).toBe(1);
    expect(value(e, 'mindshare_http_errors_total', { route: 'unmatched', code: 'not_found' })).toBe(1);
  });

  it('counts bid requests by status on the bid route, and shows none before the first', async () => {
    const m = new Metrics({ processMetrics: false });
    const before = parseExposition(await m.exposition());
    expect(
      series(before, 'mindshare_http_requests_total').filter((s) => s.labels.route === '/openrtb2/bid'),
    ).toEqual([]);
    const bid: BidAnswer = {
      status: 200,
      body: { id: 'r', seatbid: [{ seat: 's', bid: [] }], cur: 'USD' },
      text: '',
      privacy: null,
    };
    m.bidRequest(bid, 200, null, 0.2);
    m.bidRequest(bid, 200, null, 0.2);
    m.bidRequest({ status: 204, reason: 'no_fill', privacy: null }, 204, null, 0.2);
    m.bidRequest(null, 400, 'bad_json', 0.1);
    const e = parseExposition(await m.exposition());
    const on = (status: string) => ({ listener: 'data', route: '/openrtb2/bid', status });
    expect(value(e, 'mindshare_http_requests_total', on('200'))).toBe(2);
    expect(value(e, 'mindshare_http_requests_total', on('204'))).toBe(1);
    expect(value(e, 'mindshare_http_requests_total', on('400'))).toBe(1);
    expect(value(e, 'mindshare_http_errors_total', { route: '/openrtb2/bid', code: 'bad_json' })).toBe(1);
  });

  it('times 5xx error answers only: a client mistake (4xx) says nothing of the decision latency', async () => {
    const m = new Metrics({ processMetrics: false, worker: 1 });
    const served: DecisionOutcome = {
      output: { ruleset: 1, user: 'x', decisions: [{ placement: 'a', campaign: null }] },
      degradedBy: null,
    };
    for (let i = 0; i < 8; i++) m.decision(served, 200, 2, null);
    // Refused at once: bad JSON, a body too large.
    m.decision(null, 400, 0.01, 'bad_json');
    m.decision(null, 413, 0.01, 'body_too_large');
    // Failed on our side, slowly.
    m.decision(null, 500, 40, 'internal');
    m.decision(null, 503, 30, 'store_unavailable');
    const e = parseExposition(await m.exposition());
    const count = 'mindshare_decision_duration_seconds_count';
    expect(value(e, count, { route: '/v1/decide', outcome: 'error' })).toBe(2);
    expect(
      value(e, 'mindshare_decision_duration_seconds_sum', { route: '/v1/decide', outcome: 'error' }),
    ).toBeCloseTo(0.07);
    expect(
      value(e, 'mindshare_decision_duration_seconds_bucket', {
        route: '/v1/decide',
        outcome: 'error',
        le: '0.025',
      }),
    ).toBe(0);
    // The 4xx answers are still requests and errors, and answers of this worker.
    expect(value(e, 'mindshare_http_requests_total', { route: '/v1/decide', status: '400' })).toBe(1);
    expect(value(e, 'mindshare_http_requests_total', { route: '/v1/decide', status: '413' })).toBe(1);
    expect(value(e, 'mindshare_http_errors_total', { route: '/v1/decide', code: 'bad_json' })).toBe(1);
    expect(value(e, 'mindshare_http_errors_total', { route: '/v1/decide', code: 'body_too_large' })).toBe(1);
    expect(value(e, 'mindshare_worker_decisions_total', { worker: '1' })).toBe(12);
    // The error share of timed decisions is 2 of 10, not 4 of 12.
    expect(value(e, count, { outcome: 'no_fill' })).toBe(8);
  });

  it('reports the event-loop delay of every thread under its own label, a blocked loop included', async () => {
    const delay = 'mindshare_event_loop_delay_seconds';
    const main = new Metrics({ processMetrics: false });
    const worker = new Metrics({ processMetrics: false, worker: 2 });
    main.setPeers(async () => [await worker.metricsJSON()]);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await sleep(50); // a few ordinary ticks (the monitor's first interval is not counted)
    // Both instances live in this thread, so both monitors see it blocked for 150 ms; the main
    // thread's instance is then scraped alone, which starts its window again, while the worker's
    // still holds the block: the merged scrape must keep the two apart.
    const until = performance.now() + 150;
    while (performance.now() < until) {
      // a decision that does not yield
    }
    await sleep(30);
    await main.metricsJSON();
    await sleep(100);
    const e = parseExposition(await main.exposition());
    expect(e.types.get(delay)).toBe('gauge');
    expect(series(e, delay).map((s) => s.labels)).toEqual([{ thread: 'main' }, { thread: 'worker-2' }]);
    expect(value(e, delay, { thread: 'worker-2' })).toBeGreaterThan(0.12);
    expect(value(e, delay, { thread: 'worker-2' })).toBeLessThan(1);
    expect(value(e, delay, { thread: 'main' })).toBeLessThan(0.1);
    // Each scrape starts a new window: the block is reported once.
    await sleep(100);
    const next = parseExposition(await main.exposition());
    expect(value(next, delay, { thread: 'worker-2' })).toBeLessThan(0.1);
  });

  it('reports a worker that does not answer the scrape as late by at least the time waited', async () => {
    const main = new Metrics({ processMetrics: false });
    const worker = new Metrics({ processMetrics: false, worker: 1 });
    main.setPeers(async () => [await worker.metricsJSON(), unansweredWorker(3, 1000)]);
    const e = parseExposition(await main.exposition());
    const threads = series(e, 'mindshare_event_loop_delay_seconds').map((s) => s.labels.thread);
    expect(threads).toEqual(['main', 'worker-1', 'worker-3']);
    expect(value(e, 'mindshare_event_loop_delay_seconds', { thread: 'worker-3' })).toBe(1);
  });

  it('times the store methods it wraps, and counts their failures', async () => {
    const m = new Metrics({ processMetrics: false });
    const store = {
      calls: 0,
      async loadPerson(pid: string) {
        this.calls++;
        return pid;
      },
      async ping(): Promise<void> {
        throw new Error('down');
      },
      resolveAlias(): Promise<string> {
        throw new Error('thrown before a promise');
      },
    };
    instrumentStore(store, m);
    expect(await store.loadPerson('p-1')).toBe('p-1');
    expect(store.calls).toBe(1);
    await expect(store.ping()).rejects.toThrow('down');
    expect(() => store.resolveAlias()).toThrow('thrown before');
    const e = parseExposition(await m.exposition());
    expect(value(e, 'mindshare_redis_command_duration_seconds_count', { operation: 'load_person' })).toBe(1);
    expect(value(e, 'mindshare_redis_errors_total', { operation: 'ping' })).toBe(1);
    expect(value(e, 'mindshare_redis_errors_total', { operation: 'resolve_alias' })).toBe(1);
  });
});

// ---- a server on the embedded store -------------------------------------------------------------

describe('GET /metrics on the embedded store', () => {
  let kit: TestServer;
  let server: RunningServer;
  let admin: string;
  let decide: string;
  beforeAll(async () => {
    kit = await serverOver('embedded', { DEMO_PEOPLE: '20' }, { seed: seedContractPeople });
    server = kit.server;
    admin = kit.adminUrl;
    decide = `${kit.dataUrl}/v1/decide`;
  });
  afterAll(() => kit?.close());

  it('is Prometheus text with the instance and process metrics, without a token', async () => {
    const { e, type } = await scrape(server.adminPort);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const [name, kind] of [
      ['mindshare_decision_duration_seconds', 'histogram'],
      ['mindshare_http_requests_total', 'counter'],
      ['mindshare_http_errors_total', 'counter'],
      ['mindshare_decisions_degraded_total', 'counter'],
      ['mindshare_cache_hits_total', 'counter'],
      ['mindshare_cache_misses_total', 'counter'],
      ['mindshare_ruleset_version', 'gauge'],
      ['mindshare_ruleset_compile_seconds', 'gauge'],
      ['mindshare_ruleset_activations_total', 'counter'],
      ['mindshare_events_total', 'counter'],
      ['mindshare_profile_imports_total', 'counter'],
      ['mindshare_placements_total', 'counter'],
      ['mindshare_draining', 'gauge'],
      ['process_cpu_seconds_total', 'counter'],
      ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
      ['mindshare_event_loop_delay_seconds', 'gauge'],
    ] as const) {
      expect(e.types.get(name), name).toBe(kind);
    }
    // One thread serves everything here.
    expect(series(e, 'mindshare_event_loop_delay_seconds').map((s) => s.labels)).toEqual([
      { thread: 'main' },
    ]);
    expect(value(e, 'mindshare_ruleset_version')).toBe(server.service.ruleSet.version);
    expect(value(e, 'mindshare_ruleset_compile_seconds')).toBeGreaterThan(0);
    expect(value(e, 'mindshare_draining')).toBe(0);
    expect(value(e, 'mindshare_decisions_degraded_total', { reason: 'timeout' })).toBe(0);
    // No Redis behind this instance: no Redis series.
    expect(e.types.has('mindshare_redis_up')).toBe(false);
  });

  it('counts every decision by outcome, with its placements and status', async () => {
    const before = (await scrape(server.adminPort)).e;
    const N = 25;
    for (let i = 0; i < N; i++) {
      const r = await postJson(decide, { user: { id: BIZ_ID }, placements: [BANNER] });
      expect(r.body.decisions[0].campaign).toBe('x90-launch');
    }
    const nobody = await postJson(decide, { user: { id: 'p-nobody-at-all' }, placements: [BANNER] });
    expect(nobody.body.decisions[0].campaign).toBeNull();
    expect((await postJson(decide, '{"user":')).status).toBe(400);
    const after = (await scrape(server.adminPort)).e;
    const grew = (name: string, labels: Record<string, string>) =>
      value(after, name, labels) - value(before, name, labels);

    const count = 'mindshare_decision_duration_seconds_count';
    expect(grew(count, { route: '/v1/decide', outcome: 'filled' })).toBe(N);
    expect(grew(count, { outcome: 'no_fill' })).toBe(1);
    // The 400 is counted as a request and an error, but not timed as a decision.
    expect(grew(count, { route: '/v1/decide', outcome: 'error' })).toBe(0);
    expect(grew('mindshare_decision_duration_seconds_bucket', { outcome: 'filled', le: '+Inf' })).toBe(N);
    expect(grew('mindshare_decision_duration_seconds_sum', { outcome: 'filled' })).toBeGreaterThan(0);
    expect(grew('mindshare_placements_total', { outcome: 'filled', campaign: 'x90-launch' })).toBe(N);
    expect(grew('mindshare_placements_total', { outcome: 'no_fill', campaign: '' })).toBe(1);
    expect(
      grew('mindshare_http_requests_total', { listener: 'data', route: '/v1/decide', status: '200' }),
    ).toBe(N + 1);
    expect(
      grew('mindshare_http_errors_total', { listener: 'data', route: '/v1/decide', code: 'bad_json' }),
    ).toBe(1);
    // Cached from the second load on (CACHE_ADMIT_AFTER 2): the first two are store reads.
    expect(grew('mindshare_cache_hits_total', { cache: 'people' })).toBeGreaterThanOrEqual(N - 2);
    expect(value(after, 'mindshare_cache_not_admitted_total', { cache: 'people' })).toBeGreaterThan(0);
    expect(value(after, 'mindshare_cache_misses_total', { cache: 'people' })).toBeGreaterThan(0);
    // Look-ups hit: the cache does not stand aside, and no miss skipped it.
    expect(value(after, 'mindshare_cache_aside', {})).toBe(0);
    expect(value(after, 'mindshare_cache_bypassed_total', { cache: 'people' })).toBe(0);
    expect(value(after, 'mindshare_cache_bypassed_total', { cache: 'aliases' })).toBe(0);
  });

  it('labels requests by route pattern, never by the ids in the URL', async () => {
    const id = 'p-metrics-secret-person';
    const put = await fetch(`${admin}/v1/profiles/${id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tags: ['circle:business'] }),
    });
    expect(put.status).toBe(201);
    expect((await fetch(`${admin}/v1/profiles/${id}`)).status).toBe(200);
    expect((await fetch(`${admin}/v1/profiles/p-metrics-nobody`)).status).toBe(404);
    expect((await fetch(`${admin}/v1/rulesets/1`)).status).toBe(200);
    expect((await fetch(`${admin}/no/such/${id}`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.dataPort}/nothing/${id}`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.dataPort}/openrtb2/win`, { method: 'POST' })).status).toBe(
      405,
    );
    await postJson(decide, { user: { id }, placements: [BANNER] });
    await postJson(decide, { user: { ids: { cookie: `ck-${id}` } }, placements: [BANNER] });

    const { text, e } = await scrape(server.adminPort);
    const control = (route: string, status: string) =>
      value(e, 'mindshare_http_requests_total', { listener: 'control', route, status });
    expect(control('/v1/profiles/:id', '201')).toBe(1);
    expect(control('/v1/profiles/:id', '200')).toBe(1);
    expect(control('/v1/profiles/:id', '404')).toBe(1);
    expect(control('/v1/rulesets/:version', '200')).toBe(1);
    expect(control('unmatched', '404')).toBe(1);
    expect(
      value(e, 'mindshare_http_errors_total', {
        listener: 'control',
        route: '/v1/profiles/:id',
        code: 'profile_not_found',
      }),
    ).toBe(1);
    expect(value(e, 'mindshare_http_requests_total', { listener: 'data', route: 'unmatched' })).toBe(1);
    expect(
      value(e, 'mindshare_http_errors_total', {
        listener: 'data',
        route: '/openrtb2/win',
        code: 'method_not_allowed',
      }),
    ).toBe(1);
    // No person id anywhere, in any label.
    for (const pid of [id, 'p-metrics-nobody', 'p-nobody-at-all', BIZ_ID]) expect(text).not.toContain(pid);
    for (const s of e.samples) {
      for (const v of Object.values(s.labels)) expect(v).not.toMatch(/^(p-|t-)/);
    }
  });

  it('counts events by type and outcome', async () => {
    const before = (await scrape(server.adminPort)).e;
    const r = await fetch(`${admin}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { eventId: 'm-1', type: 'impression', user: { id: BIZ_ID }, campaign: 'x90-launch' },
        { eventId: 'm-1', type: 'impression', user: { id: BIZ_ID }, campaign: 'x90-launch' },
        { eventId: 'm-2', type: 'click', user: { id: BIZ_ID }, campaign: 'x90-launch' },
        { eventId: 'm-3', type: 'impression', user: { id: BIZ_ID }, campaign: 'no-such-campaign' },
        { eventId: 'm-4', type: 'purchase', user: { ids: { cookie: 'ck-nobody' } }, brand: 'vivo' },
      ]),
    });
    expect(r.status).toBe(200);
    const after = (await scrape(server.adminPort)).e;
    const grew = (type: string, outcome: string) =>
      value(after, 'mindshare_events_total', { type, outcome }) -
      value(before, 'mindshare_events_total', { type, outcome });
    expect(grew('impression', 'applied')).toBe(1);
    expect(grew('impression', 'duplicate')).toBe(1);
    expect(grew('click', 'applied')).toBe(1);
    expect(grew('impression', 'unknown_campaign')).toBe(1);
    expect(grew('purchase', 'unknown_person')).toBe(1);
    expect(
      value(after, 'mindshare_http_requests_total', {
        listener: 'control',
        route: '/v1/events',
        status: '200',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('counts imported and failed lines, and rule-set activations', async () => {
    const r = await fetch(`${admin}/v1/profiles/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: '{"id": "i-1"}\n{"id": "i-2"}\nnot json\n',
    });
    expect(r.status).toBe(200);
    const rs = await fetch(`${admin}/v1/rulesets/1/activate`, { method: 'POST' });
    expect(rs.status).toBe(200);
    const { e } = await scrape(server.adminPort);
    expect(value(e, 'mindshare_profile_imports_total', { result: 'imported' })).toBe(2);
    expect(value(e, 'mindshare_profile_imports_total', { result: 'failed' })).toBe(1);
    expect(value(e, 'mindshare_ruleset_activations_total', { result: 'ok' })).toBe(
      server.sync.stats().activations,
    );
    expect(value(e, 'mindshare_ruleset_activations_total', { result: 'failed' })).toBe(0);
  });
});

// ---- a server on Redis, then without it --------------------------------------------------------------

describe('GET /metrics on Redis', () => {
  let kit: TestServer<'redis'>;
  let server: RunningServer;
  beforeAll(async () => {
    kit = await serverOver(
      'redis',
      { DECISION_DEADLINE_MS: '20', CACHE_TTL_MS: '50' },
      { seed: seedContractPeople },
    );
    server = kit.server;
  });
  afterAll(() => kit?.close());

  it('times store operations, and reports degraded decisions and the connection when Redis dies', async () => {
    const url = `${kit.dataUrl}/v1/decide`;
    const body = { user: { id: BIZ_ID }, placements: [BANNER], context: { tags: ['circle:mobile-gamer'] } };
    expect((await postJson(url, body)).body.degraded).toBeUndefined();
    let { e } = await scrape(server.adminPort);
    expect(value(e, 'mindshare_redis_up')).toBe(1);
    expect(
      value(e, 'mindshare_redis_command_duration_seconds_count', { operation: 'load_person' }),
    ).toBeGreaterThanOrEqual(1);
    expect(value(e, 'mindshare_redis_command_duration_seconds_count', { operation: 'put_profiles' })).toBe(1);
    const degradedBefore =
      value(e, 'mindshare_decisions_degraded_total', { reason: 'store_error' }) +
      value(e, 'mindshare_decisions_degraded_total', { reason: 'timeout' });

    await kit.redis.kill();
    await new Promise((r) => setTimeout(r, 100)); // cached entries expire
    const r = await postJson(url, body);
    expect(r.status).toBe(200);
    expect(r.body.degraded).toBe(true);

    ({ e } = await scrape(server.adminPort));
    expect(value(e, 'mindshare_redis_up')).toBe(0);
    const degradedAfter =
      value(e, 'mindshare_decisions_degraded_total', { reason: 'store_error' }) +
      value(e, 'mindshare_decisions_degraded_total', { reason: 'timeout' });
    expect(degradedAfter - degradedBefore).toBe(1);
    expect(value(e, 'mindshare_decision_duration_seconds_count', { outcome: 'degraded' })).toBe(1);
    expect(value(e, 'mindshare_redis_errors_total', { operation: 'load_person' })).toBeGreaterThanOrEqual(1);
    expect((await scrape(server.adminPort)).text).not.toContain(BIZ_ID);
  });
});
