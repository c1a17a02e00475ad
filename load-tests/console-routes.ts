/**
 * How fast the control plane answers the routes the console calls: `npm run measure:console --
 * --admin http://127.0.0.1:8081 --data http://127.0.0.1:8080 --token <admin token> [--repeat 21]`.
 *
 * Against a running server (for the figures in docs/console.md: a Redis seeded with
 * `DEMO_PEOPLE=1000000 npm run seed`, then `npm start` on it). It first makes what the charts
 * read: 2,000 decisions through the data plane and 1,000 click and conversion events, and uploads a
 * second version of the demo rule set (not activated) for the diff; then it calls each route
 * `--repeat` times in sequence and prints the median, p95 and maximum time to the whole answer.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../server/project.js';

const { values } = parseArgs({
  options: {
    admin: { type: 'string', default: 'http://127.0.0.1:8081' },
    data: { type: 'string', default: 'http://127.0.0.1:8080' },
    token: { type: 'string' },
    repeat: { type: 'string', default: '21' },
  },
});
if (values.token === undefined) throw new Error('--token: a token with the admin scope');
const admin = values.admin;
const data = values.data;
const repeat = Math.max(3, Number(values.repeat));
const auth = { authorization: `Bearer ${values.token}` };
const json = { ...auth, 'content-type': 'application/json' };
const yaml = { ...auth, 'content-type': 'application/yaml' };

const demo = readFileSync(join(projectRoot(), 'rules', 'examples', 'demo.yaml'), 'utf8');
const v2 = demo
  .replace('name: demo', 'name: demo v2')
  .replace('- id: x90-camera-hero', '- id: x90-camera-hero-v2');
const banner = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

for (let i = 0; i < 2000; i += 50) {
  await Promise.all(
    Array.from({ length: 50 }, (_, j) =>
      fetch(`${data}/v1/decide`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ user: { id: `p-${i + j}` }, placements: [banner] }),
      }).then((r) => r.arrayBuffer()),
    ),
  );
}
const events = Array.from({ length: 1000 }, (_, i) => ({
  eventId: `console-measure-${Date.now()}-${i}`,
  type: i % 2 === 1 ? 'click' : 'conversion',
  user: { id: `p-${i}` },
  campaign: 'x90-launch',
}));
const posted = await fetch(`${admin}/v1/events`, {
  method: 'POST',
  headers: json,
  body: JSON.stringify({ events }),
});
if (!posted.ok) throw new Error(`events: ${posted.status} ${await posted.text()}`);
const up = await fetch(`${admin}/v1/rulesets`, { method: 'POST', headers: yaml, body: v2 });
if (!up.ok) throw new Error(`upload: ${up.status} ${await up.text()}`);
const { version } = (await up.json()) as { version: number };
// The decisions' delivery counts are written every MEASURE_FLUSH_MS (1 s by default).
await new Promise((r) => setTimeout(r, 1500));

const from = new Date(Date.now() - 29 * 86_400_000).toISOString().slice(0, 10);
const preview = JSON.stringify({
  user: { id: 'p-1001' },
  placements: [banner, { id: 'push', channels: ['app_push'] }],
});
const routes: [string, string, string, string?, Record<string, string>?][] = [
  ['GET /console', 'GET', '/console'],
  ['GET /v1/rulesets', 'GET', '/v1/rulesets'],
  ['GET /v1/rulesets/active', 'GET', '/v1/rulesets/active'],
  ['GET /v1/rulesets/diff (two versions of the demo)', 'GET', `/v1/rulesets/diff?from=1&to=${version}`],
  ['POST /v1/rulesets/diff (a draft against the active one)', 'POST', '/v1/rulesets/diff', v2, yaml],
  ['POST /v1/rulesets/validate', 'POST', '/v1/rulesets/validate', v2, yaml],
  ['POST /v1/preview (a stored person, two placements)', 'POST', '/v1/preview', preview, json],
  ['GET /v1/funnels/vivo?days=30', 'GET', '/v1/funnels/vivo?days=30'],
  [
    'GET /v1/campaigns/x90-launch/delivery (30 days)',
    'GET',
    `/v1/campaigns/x90-launch/delivery?from=${from}`,
  ],
  ['GET /v1/campaigns/x90-launch/lift', 'GET', '/v1/campaigns/x90-launch/lift'],
];
const at = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
console.log('| Route | Status | Median ms | p95 ms | Max ms |');
console.log('| --- | --- | --- | --- | --- |');
for (const [name, method, path, body, headers] of routes) {
  const times: number[] = [];
  let status = 0;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    const res = await fetch(admin + path, {
      method,
      headers: headers ?? auth,
      ...(body === undefined ? {} : { body }),
    });
    await res.arrayBuffer();
    status = res.status;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const f = (n: number) => n.toFixed(1);
  console.log(`| ${name} | ${status} | ${f(at(times, 0.5))} | ${f(at(times, 0.95))} | ${f(times.at(-1)!)} |`);
}
