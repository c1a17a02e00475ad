/**
 * The operations assets under ops/ (Grafana dashboard, Prometheus rules and their unit tests)
 * stay consistent with the metrics the server exports: every PromQL expression names only known
 * series with known labels, so a renamed metric or a typo fails here rather than in a silent
 * panel or an alert that never fires. promtool itself (check and test) runs in .ci/run.
 *
 * The Dockerfile is checked too: docker cannot run here, so its instructions are read, and the
 * shell commands it gives (the health check, the pruning of native binaries) are run for real.
 */
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../server/config.js';

const OPS = new URL('../ops/', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, OPS), 'utf8');

type Kind = 'counter' | 'gauge' | 'histogram';
/** Per label: the values it may take, or null when any value is fine. */
type Labels = Record<string, readonly string[] | null>;

const LISTENER = ['data', 'control'];

/** The metrics the server exports (server/metrics.ts), with their labels. */
const METRICS: Record<string, { kind: Kind; labels: Labels }> = {
  mindshare_decision_duration_seconds: {
    kind: 'histogram',
    labels: {
      route: ['/v1/decide', '/openrtb2/bid'],
      outcome: ['filled', 'no_fill', 'degraded', 'error', 'bid', 'no_bid'],
    },
  },
  mindshare_http_requests_total: {
    kind: 'counter',
    labels: { listener: LISTENER, route: null, status: null },
  },
  mindshare_http_errors_total: { kind: 'counter', labels: { listener: LISTENER, route: null, code: null } },
  mindshare_decisions_degraded_total: { kind: 'counter', labels: { reason: ['timeout', 'store_error'] } },
  mindshare_redis_command_duration_seconds: { kind: 'histogram', labels: { operation: null } },
  mindshare_redis_errors_total: { kind: 'counter', labels: { operation: null } },
  mindshare_redis_up: { kind: 'gauge', labels: {} },
  mindshare_store_resets_total: { kind: 'counter', labels: {} },
  mindshare_store_lost_values_total: {
    kind: 'counter',
    labels: { reason: ['lost', 'corrupt', 'lost_count'] },
  },
  mindshare_cache_hits_total: { kind: 'counter', labels: { cache: ['people', 'aliases'] } },
  mindshare_cache_misses_total: { kind: 'counter', labels: { cache: ['people', 'aliases'] } },
  mindshare_ruleset_version: { kind: 'gauge', labels: {} },
  mindshare_ruleset_compile_seconds: { kind: 'gauge', labels: {} },
  mindshare_ruleset_activations_total: { kind: 'counter', labels: { result: ['ok', 'failed'] } },
  mindshare_ruleset_in_step: { kind: 'gauge', labels: {} },
  mindshare_ruleset_restores_total: { kind: 'counter', labels: {} },
  mindshare_events_total: { kind: 'counter', labels: { type: null, outcome: null } },
  mindshare_profile_imports_total: { kind: 'counter', labels: { result: null } },
  mindshare_placements_total: {
    kind: 'counter',
    labels: { outcome: ['filled', 'no_fill'], campaign: null },
  },
  mindshare_ghost_exposures_total: { kind: 'counter', labels: { campaign: null } },
  mindshare_campaign_in_flight: { kind: 'gauge', labels: { campaign: null } },
  mindshare_campaign_holdout_ratio: { kind: 'gauge', labels: { campaign: null } },
  mindshare_campaign_lift_people: {
    kind: 'gauge',
    labels: {
      campaign: null,
      arm: ['treatment', 'control'],
      outcome: ['exposed', 'conversions', 'purchases'],
    },
  },
  mindshare_measure_writes_total: { kind: 'counter', labels: { kind: ['counts', 'exposures'] } },
  mindshare_budget_spent: {
    kind: 'gauge',
    labels: { campaign: null, creative: null, period: ['today', 'all'] },
  },
  mindshare_budget_limit: {
    kind: 'gauge',
    labels: { campaign: null, creative: null, period: ['today', 'all'] },
  },
  mindshare_budget_pace_target: { kind: 'gauge', labels: { campaign: null, creative: null } },
  mindshare_budget_pace_ratio: { kind: 'gauge', labels: { campaign: null, creative: null } },
  mindshare_budget_lease_failures_total: { kind: 'counter', labels: {} },
  mindshare_measure_dropped_total: { kind: 'counter', labels: { kind: ['counts', 'exposures'] } },
  mindshare_draining: { kind: 'gauge', labels: {} },
  mindshare_event_loop_delay_seconds: { kind: 'gauge', labels: { thread: null } },
  mindshare_workers: { kind: 'gauge', labels: {} },
  mindshare_worker_decisions_total: { kind: 'counter', labels: { worker: null } },
  mindshare_openrtb_bids_total: { kind: 'counter', labels: {} },
  mindshare_openrtb_no_bids_total: {
    kind: 'counter',
    labels: {
      reason: ['no_fill', 'format', 'floor', 'currency', 'deal', 'blocked', 'holdout', 'timeout', 'invalid'],
    },
  },
  mindshare_openrtb_context_only_total: {
    kind: 'counter',
    labels: { reason: ['coppa', 'gdpr', 'us_privacy', 'gpp'], answer: ['bid', 'no_bid'] },
  },
  mindshare_openrtb_tmax_used_ratio: { kind: 'histogram', labels: {} },
  mindshare_openrtb_rates_age_seconds: { kind: 'gauge', labels: {} },
  mindshare_openrtb_notices_total: {
    kind: 'counter',
    labels: { type: ['win', 'bill'], outcome: ['counted', 'duplicate', 'unknown', 'invalid'] },
  },
  mindshare_openrtb_notice_price_total: {
    kind: 'counter',
    labels: { type: ['win', 'bill'], currency: null },
  },
};

/** prom-client's default metrics, and Prometheus's own `up`. */
const DEFAULT_SERIES = [
  'up',
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_virtual_memory_bytes',
  'process_heap_bytes',
  'process_open_fds',
  'process_max_fds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_requests',
  'nodejs_active_requests_total',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_heap_space_size_total_bytes',
  'nodejs_heap_space_size_used_bytes',
  'nodejs_heap_space_size_available_bytes',
  'nodejs_version_info',
  'nodejs_gc_duration_seconds_bucket',
  'nodejs_gc_duration_seconds_sum',
  'nodejs_gc_duration_seconds_count',
];

/** The data source uid of every panel: the dashboard's data source variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
const DATASOURCE_UID = '${datasource}';

/**
 * Labels every scraped series carries, and target labels a scrape configuration may attach (the
 * rules' unit tests use env and region to check that the rules keep them).
 */
const TARGET_LABELS = ['job', 'instance', 'env', 'region'];

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const ruleFile = (name: string): Rule[] =>
  (parse(read(`prometheus/${name}`)) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap(
    (g) => g.rules,
  );
const recordingRules = ruleFile('recording.yml');
const alertRules = ruleFile('alerts.yml');
const RECORDED = new Set(recordingRules.map((r) => r.record ?? ''));

/** Every series name an expression may select, with the labels it may be filtered by. */
function seriesLabels(name: string): Labels | undefined {
  if (RECORDED.has(name) || DEFAULT_SERIES.includes(name)) return {};
  const direct = METRICS[name];
  if (direct && direct.kind !== 'histogram') return direct.labels;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m ? METRICS[m[1] ?? ''] : undefined;
  if (!m || !base || base.kind !== 'histogram') return undefined;
  return m[2] === 'bucket' ? { ...base.labels, le: null } : base.labels;
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'inf',
  'nan',
  'atan2',
]);

interface Problem {
  where: string;
  problem: string;
}

/**
 * The series names and label matchers of a PromQL expression, found lexically: strings are masked
 * first, then label matchers, ranges and grouping clauses are set aside, and what remains as a bare
 * identifier not called like a function is a series name.
 */
function checkExpr(expr: string, where: string): Problem[] {
  const problems: Problem[] = [];
  const strings: string[] = [];
  const masked = expr.replace(/"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|`([^`]*)`/g, (_, a, b, c) => {
    strings.push(a ?? b ?? c ?? '');
    return `"#${strings.length - 1}"`;
  });
  const str = (ref: string | undefined) => strings[Number(ref)] ?? '';

  // Labels an expression makes itself (label_replace's target, count_values's label).
  const made = new Set<string>();
  for (const m of masked.matchAll(
    /label_replace\s*\(.*?"#(\d+)"\s*,\s*"#\d+"\s*,\s*"#\d+"\s*,\s*"#\d+"\s*\)/g,
  )) {
    made.add(str(m[1]));
  }
  for (const m of masked.matchAll(/count_values\s*(?:(?:by|without)\s*\([^)]*\)\s*)?\(\s*"#(\d+)"/g)) {
    made.add(str(m[1]));
  }

  const allLabels = new Set([
    ...TARGET_LABELS,
    'le',
    ...made,
    ...Object.values(METRICS).flatMap((m) => Object.keys(m.labels)),
  ]);

  // Selectors with a name: check each matcher's label, and its value when the values are known.
  for (const m of masked.matchAll(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g)) {
    const name = m[1];
    const labels = name ? seriesLabels(name) : undefined;
    for (const matcher of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"#(\d+)"/g)) {
      const [, label = '', op, ref] = matcher;
      // prom-client's own labels (heap space, GC kind, version) are not checked.
      if (!name || !labels || DEFAULT_SERIES.includes(name) || TARGET_LABELS.includes(label)) continue;
      if (!(label in labels)) {
        problems.push({ where, problem: `${name} has no label ${label}` });
        continue;
      }
      const values = labels[label];
      const value = str(ref);
      if (op === '=' && values && !value.includes('$') && !values.includes(value)) {
        problems.push({
          where,
          problem: `${name}{${label}="${value}"}: ${label} is one of ${values.join(', ')}`,
        });
      }
    }
  }

  // Grouping labels must exist somewhere.
  for (const m of masked.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const label of (m[1] ?? '').split(',').map((l) => l.trim())) {
      if (label && !allLabels.has(label)) problems.push({ where, problem: `no metric has a label ${label}` });
    }
  }

  // Series names.
  const bare = masked
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/"#\d+"/g, ' ');
  for (const m of bare.matchAll(/(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)) {
    const name = m[1] ?? '';
    if (KEYWORDS.has(name.toLowerCase())) continue;
    if (seriesLabels(name) === undefined) problems.push({ where, problem: `unknown series ${name}` });
  }
  return problems;
}

// --- the dashboard -------------------------------------------------------------------------

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  multi?: boolean;
  includeAll?: boolean;
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  annotations: { list: { name: string; expr?: string; titleFormat?: string; textFormat?: string }[] };
}

const dashboardText = read('grafana/mindshare.json');
const dashboard = JSON.parse(dashboardText) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** Every PromQL expression of the dashboard, with where it is. */
function dashboardExprs(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels) {
    for (const t of p.targets ?? []) {
      if (t.expr) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
    }
  }
  for (const a of dashboard.annotations.list) {
    if (a.expr) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  }
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const inner = q ? /^label_values\((.*),\s*\w+\)$/.exec(q)?.[1] : undefined;
    if (inner) out.push({ where: `variable ${v.name}`, expr: inner });
  }
  return out;
}

describe('the Grafana dashboard', () => {
  it('is a dashboard of a recent schema with the datasource, job and instance variables', () => {
    expect(dashboard.uid).toBe('mindshare');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(vars.job).toMatchObject({ type: 'query' });
    expect(vars.instance).toMatchObject({ type: 'query', multi: true, includeAll: true });
  });

  it('has unique panel ids and panels that do not overlap on the 24-column grid', () => {
    const ids = allPanels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = allPanels.map((p) => ({ title: p.title, ...p.gridPos }));
    for (const b of boxes) {
      expect(b.x, b.title).toBeGreaterThanOrEqual(0);
      expect(b.x + b.w, b.title).toBeLessThanOrEqual(24);
      expect(b.w * b.h, b.title).toBeGreaterThan(0);
    }
    const overlaps: string[] = [];
    boxes.forEach((a, i) => {
      for (const b of boxes.slice(i + 1)) {
        if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
          overlaps.push(`${a.title} / ${b.title}`);
        }
      }
    });
    expect(overlaps).toEqual([]);
  });

  it('queries the chosen Prometheus data source in every panel', () => {
    for (const p of allPanels.filter((p) => p.type !== 'row')) {
      expect(p.datasource?.uid, p.title).toBe(DATASOURCE_UID);
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.expr, p.title).toBeTruthy();
        expect(t.datasource?.uid, p.title).toBe(DATASOURCE_UID);
      }
    }
  });

  it('names only exported series and labels in its queries', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(20);
    expect(exprs.flatMap(({ expr, where }) => checkExpr(expr, where))).toEqual([]);
  });

  it('filters every panel query by the job and instance variables', () => {
    for (const { expr, where } of dashboardExprs()) {
      if (where.startsWith('variable') || expr.includes('mindshare:')) continue;
      expect(expr, where).toContain('job="$job"');
      expect(expr, where).toContain('instance=~"$instance"');
    }
  });

  it('draws the event-loop delay of every thread, and the worst thread of each instance', () => {
    const panel = allPanels.find((p) => /event-loop/i.test(p.title));
    const exprs = (panel?.targets ?? []).map((t) => t.expr ?? '');
    expect(exprs.length, panel?.title).toBeGreaterThan(0);
    for (const e of exprs) expect(e).toContain('mindshare_event_loop_delay_seconds{');
    expect(exprs.some((e) => /^max without \(thread\) \(/.test(e))).toBe(true);
    // prom-client's lag is the main thread's only: the data plane's workers would not show.
    expect(dashboardText).not.toContain('nodejs_eventloop_lag');
  });

  it('marks a rule-set change with the version now served, not with a count of changes', () => {
    const changes = dashboard.annotations.list.find((a) => a.name === 'Rule-set changes');
    // Grafana fills an annotation's text from labels only: the version has to be one.
    expect(changes?.expr).toMatch(/^count_values without \(\) \("version", mindshare_ruleset_version\{/);
    expect(changes?.titleFormat).toContain('rule set v{{version}}');
    expect(`${changes?.titleFormat} ${changes?.textFormat}`).not.toContain('{{value}}');
  });

  it('covers every metric the server exports', () => {
    const text = dashboardExprs()
      .map((e) => e.expr)
      .join('\n');
    const missing = Object.keys(METRICS).filter((name) => !text.includes(name));
    expect(missing).toEqual([]);
  });
});

// --- the rules -------------------------------------------------------------------------------

describe('the Prometheus rules', () => {
  it('name only exported or recorded series and known labels', () => {
    const problems = [...recordingRules, ...alertRules].flatMap((r) =>
      checkExpr(r.expr, r.record ?? r.alert ?? '?'),
    );
    expect(problems).toEqual([]);
  });

  it('give every alert a for, a severity, a summary and a description', () => {
    expect(alertRules.length).toBeGreaterThanOrEqual(8);
    for (const r of alertRules) {
      expect(r.alert, r.expr).toMatch(/^Mindshare[A-Z]\w+$/);
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(['critical', 'warning'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toContain('Runbook: ops/README.md');
    }
    const names = alertRules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
  });

  it('aggregate without (…) the labels they remove, so that target labels reach every alert', () => {
    for (const r of [...recordingRules, ...alertRules]) {
      expect(r.expr, r.record ?? r.alert).not.toMatch(/\bby\s*\(/);
      for (const m of r.expr.matchAll(/\bwithout\s*\(([^)]*)\)/g)) {
        const removed = (m[1] ?? '').split(',').map((l) => l.trim());
        // job and the attached labels are kept everywhere; instance only by the job: rules.
        for (const kept of ['job', 'env', 'region']) expect(removed, r.record ?? r.alert).not.toContain(kept);
        if (r.record?.startsWith('instance:')) expect(removed, r.record).not.toContain('instance');
      }
    }
  });

  it('alert on the worst thread of an instance, workers included', () => {
    const lag = alertRules.find((r) => r.alert === 'MindshareEventLoopLagHigh');
    expect(lag?.expr).toMatch(/^max without \(thread\) \(.*mindshare_event_loop_delay_seconds\{/);
    for (const r of [...recordingRules, ...alertRules]) expect(r.expr).not.toContain('nodejs_eventloop_lag');
  });

  it('document every alert in ops/README.md', () => {
    const readme = read('README.md');
    for (const r of alertRules) expect(readme, r.alert).toContain(`### ${r.alert}`);
  });

  it('unit-test every alert firing, on series the server exports', () => {
    const tests = parse(read('prometheus/alerts.test.yml')) as {
      rule_files: string[];
      tests: {
        input_series: { series: string }[];
        alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[];
      }[];
    };
    expect(tests.rule_files).toEqual(['recording.yml', 'alerts.yml']);
    const fired = new Set(
      tests.tests.flatMap((t) =>
        (t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname),
      ),
    );
    expect(alertRules.map((r) => r.alert).filter((a) => !fired.has(a ?? ''))).toEqual([]);
    const problems = tests.tests.flatMap((t) => t.input_series.flatMap((s) => checkExpr(s.series, s.series)));
    expect(problems).toEqual([]);
  });

  it('are loaded by the example Prometheus configuration', () => {
    const config = parse(read('prometheus/prometheus.yml')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
    };
    expect(config.rule_files).toEqual(['recording.yml', 'alerts.yml']);
    for (const f of config.rule_files) expect(existsSync(new URL(`prometheus/${f}`, OPS)), f).toBe(true);
    const job = config.scrape_configs.find((s) => s.job_name.startsWith('mindshare'));
    expect(job?.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job?.static_configs[0]?.targets).toContain('localhost:8081');
  });
});

// --- the checker itself ------------------------------------------------------------------------

describe('the expression check', () => {
  it('catches a misspelt metric, an unknown label and a label value out of range', () => {
    expect(checkExpr('rate(mindshare_decision_duration_second_bucket[5m])', 'x')).toEqual([
      { where: 'x', problem: 'unknown series mindshare_decision_duration_second_bucket' },
    ]);
    expect(checkExpr('mindshare_decision_duration_seconds > 1', 'x')).toHaveLength(1);
    expect(checkExpr('sum(rate(mindshare_placements_total{outcome="nofill"}[5m]))', 'x')).toHaveLength(1);
    expect(checkExpr('sum(rate(mindshare_cache_hits_total{kind="people"}[5m]))', 'x')).toHaveLength(1);
    expect(checkExpr('sum by (operaton) (rate(mindshare_redis_errors_total[5m]))', 'x')).toHaveLength(1);
  });

  it('accepts functions, grouping, numbers, offsets and Grafana variables', () => {
    const expr =
      'histogram_quantile(0.99, sum by (job, le) (rate(mindshare_decision_duration_seconds_bucket{job="$job", route="/v1/decide"}[$__rate_interval]))) * 1e3' +
      ' > on () group_left () mindshare:decision_latency_p99_budget:seconds' +
      ' or sum without (instance) (rate(up[5m] offset 1d)) and count(count_values("v", mindshare_ruleset_version))';
    expect(checkExpr(expr, 'x')).toEqual([]);
  });
});

// --- PromQL syntax, when promtool is installed (CI installs it) ----------------------------------

const promtool = spawnSync('promtool', ['--version']).status === 0;

describe.skipIf(!promtool)('PromQL syntax (promtool)', () => {
  it('parses every dashboard query with Grafana variables filled in', () => {
    const rules = dashboardExprs().map(({ expr }, i) => ({
      record: `dashboard:expr_${i}`,
      expr: expr.replaceAll('$__rate_interval', '1m'),
    }));
    const dir = mkdtempSync(join(tmpdir(), 'mindshare-ops-'));
    try {
      const file = join(dir, 'dashboard.rules.json');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      expect(run.stdout + run.stderr, 'promtool check rules').toContain(
        `SUCCESS: ${rules.length} rules found`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('marks a rule-set change with the version each instance now serves', () => {
    const expr = dashboard.annotations.list
      .find((a) => a.name === 'Rule-set changes')
      ?.expr?.replaceAll('$job', 'mindshare')
      .replaceAll('$instance', '.*');
    // b moves from version 7 to 8 at minute 3; a stays on 7. Evaluated as a recording rule.
    const rules = { groups: [{ name: 'annotation', rules: [{ record: 'annotation:ruleset', expr }] }] };
    const tests = {
      rule_files: ['annotation.rules.json'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: 'mindshare_ruleset_version{job="mindshare",instance="a:8081"}', values: '7x10' },
            { series: 'mindshare_ruleset_version{job="mindshare",instance="b:8081"}', values: '7 7 7 8x8' },
          ],
          promql_expr_test: [
            { expr: 'annotation:ruleset', eval_time: '2m', exp_samples: [] },
            {
              expr: 'annotation:ruleset',
              eval_time: '4m',
              exp_samples: [
                { labels: 'annotation:ruleset{job="mindshare",instance="b:8081",version="8"}', value: 1 },
              ],
            },
            { expr: 'annotation:ruleset', eval_time: '8m', exp_samples: [] },
          ],
        },
      ],
    };
    const dir = mkdtempSync(join(tmpdir(), 'mindshare-ops-'));
    try {
      writeFileSync(join(dir, 'annotation.rules.json'), JSON.stringify(rules));
      writeFileSync(join(dir, 'annotation.test.json'), JSON.stringify(tests));
      const run = spawnSync('promtool', ['test', 'rules', join(dir, 'annotation.test.json')], {
        encoding: 'utf8',
      });
      expect(run.stdout + run.stderr, 'promtool test rules').toContain('SUCCESS');
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// --- the Dockerfile --------------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}
/** The Dockerfile's instructions by stage (continuation lines joined, comments left out). */
function dockerStages(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  let line = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    line += raw.replace(/\\$/, '');
    if (raw.endsWith('\\')) continue;
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    line = '';
    if (m === null) continue;
    const op = (m[1] ?? '').toUpperCase();
    if (op === 'FROM') stages.push([]);
    stages.at(-1)?.push({ op, args: (m[2] ?? '').trim() });
  }
  return stages;
}

const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
const runtime = dockerStages(dockerfile).at(-1) ?? [];
const UWS = 'node_modules/@based/uws';
/** docker stop's default wait between SIGTERM and SIGKILL, ms. */
const DOCKER_STOP_TIMEOUT_MS = 10_000;
/** The Node ABI (process.versions.modules) of each Node major an image may be based on. */
const NODE_ABI: Record<string, string> = { '20': '115', '22': '127' };

/** The health check's command (exec form), as docker runs it. */
function healthCheck(): string[] {
  const hc = runtime.find((i) => i.op === 'HEALTHCHECK');
  const cmd = /\bCMD\s+(\[.*\])$/.exec(hc?.args ?? '')?.[1];
  expect(cmd, 'HEALTHCHECK ... CMD ["…"] (exec form)').toBeDefined();
  return JSON.parse(cmd ?? '[]') as string[];
}

/** Runs the health check against ADMIN_PORT=port: its exit code. */
function runHealthCheck(port: number): Promise<number> {
  const [file = '', ...args] = healthCheck();
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: { PATH: process.env.PATH ?? '', ADMIN_PORT: String(port) }, timeout: 5000 },
      (err) => resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1),
    );
  });
}

/** An HTTP server on a free port that answers every request with `status`; its requests' paths. */
async function answering(status: number): Promise<{ server: Server; port: number; paths: string[] }> {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, paths };
}
const closeServer = (server: Server) => new Promise((resolve) => server.close(resolve));

describe('the Dockerfile', () => {
  it('gives the build stage every folder `npm run build` reads (the TypeScript and the console)', () => {
    const build = dockerStages(dockerfile)[0] ?? [];
    const copied = build.filter((i) => i.op === 'COPY').map((i) => i.args.split(/\s+/)[0]);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const scripts = [...pkg.scripts.build!.matchAll(/\bnode (\w+)\//g)].map((m) => m[1]);
    expect(scripts).toContain('console');
    for (const dir of ['rules', 'server', ...scripts]) expect(copied).toContain(dir);
    const index = (op: string, arg: string) => build.findIndex((i) => i.op === op && i.args.includes(arg));
    expect(index('COPY', 'console')).toBeLessThan(index('RUN', 'npm run build'));
  });

  it('checks health without starting a Node process every interval', () => {
    const hc = runtime.find((i) => i.op === 'HEALTHCHECK');
    expect(hc?.args).toMatch(/--interval=\d+s/);
    expect(hc?.args).not.toMatch(/\bnode\b/);
    expect(healthCheck()[0]).toBe('bash');
  });

  it('answers healthy to a 200 on /healthz of ADMIN_PORT, unhealthy to a 503 or a closed port', async () => {
    const ok = await answering(200);
    const down = await answering(503);
    try {
      expect(await runHealthCheck(ok.port)).toBe(0);
      expect(ok.paths).toEqual(['/healthz']);
      expect(await runHealthCheck(down.port)).not.toBe(0);
      expect(down.paths).toEqual(['/healthz']);
    } finally {
      await closeServer(ok.server);
      await closeServer(down.server);
    }
    // Nothing listens there any more.
    expect(await runHealthCheck(ok.port)).not.toBe(0);
  });

  it("keeps only the uWS binary of the image's platform and Node ABI, in the layer that installs it", () => {
    const install = runtime.filter((i) => i.op === 'RUN' && i.args.includes('npm ci'));
    expect(install).toHaveLength(1);
    const run = install[0]?.args ?? '';
    // Run that RUN for real on a copy of the package's file names, with npm doing nothing.
    const dir = mkdtempSync(join(tmpdir(), 'mindshare-docker-'));
    try {
      const real = new URL(`../${UWS}/`, import.meta.url);
      const names: string[] = [];
      mkdirSync(join(dir, UWS), { recursive: true });
      for (const f of readdirSync(real)) {
        writeFileSync(join(dir, UWS, f), '');
        if (f.endsWith('.node')) names.push(f);
      }
      expect(names.length).toBeGreaterThan(3);
      mkdirSync(join(dir, 'bin'));
      writeFileSync(join(dir, 'bin', 'npm'), '#!/bin/sh\nexit 0\n');
      chmodSync(join(dir, 'bin', 'npm'), 0o755);
      const sh = spawnSync('/bin/sh', ['-c', run], {
        cwd: dir,
        encoding: 'utf8',
        env: { PATH: `${join(dir, 'bin')}:${dirname(process.execPath)}:/usr/bin:/bin` },
      });
      expect(sh.status, sh.stderr).toBe(0);
      const kept = names.filter((n) => existsSync(join(dir, UWS, n)));
      const mine = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
      expect(kept).toEqual([mine]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The one kept is the one the package loads, and the image's Node has one on Linux.
    const loader = readFileSync(new URL(`../${UWS}/uws.js`, import.meta.url), 'utf8');
    expect(loader).toContain(
      "require('./uws_' + process.platform + '_' + process.arch + '_' + process.versions.modules + '.node')",
    );
    const major = /^node:(\d+)/.exec(runtime[0]?.args ?? '')?.[1] ?? '';
    expect(NODE_ABI[major], `the ABI of Node ${major}`).toBeDefined();
    for (const arch of ['x64', 'arm64']) {
      expect(
        existsSync(new URL(`../${UWS}/uws_linux_${arch}_${NODE_ABI[major]}.node`, import.meta.url)),
      ).toBe(true);
    }
  });

  it("drains within docker stop's 10 s before SIGKILL", () => {
    const env: Record<string, string> = {};
    for (const i of runtime.filter((i) => i.op === 'ENV')) {
      for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g))
        env[m[1] ?? ''] = (m[2] ?? '').replace(/^"|"$/g, '');
    }
    expect(env.DRAIN_TIMEOUT_MS).toBeDefined();
    const config = loadConfig(env);
    // A second for what follows the drain: closing the stores, exiting.
    expect(config.drainDelayMs + config.drainTimeoutMs + 1000).toBeLessThanOrEqual(DOCKER_STOP_TIMEOUT_MS);
    expect(runtime.find((i) => i.op === 'STOPSIGNAL')?.args ?? 'SIGTERM').toBe('SIGTERM');
  });
});
