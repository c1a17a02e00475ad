#!/usr/bin/env node
/**
 * Re-makes requests.ndjson (and sources.txt) from a git directory of prebid/prebid-server (a clone or a bare copy):
 * the BidRequests that Prebid Server's adapters send to bidders, as their test fixtures expect
 * them (`adapters/<name>/<name>test/{exemplary,supplemental}/*.json`, `httpCalls[].expectedRequest.body`).
 *
 *   node test/openrtb/corpus/extract.mjs <git-dir> [per-adapter cap, default 2]
 *
 * Only bodies that are BidRequests (an object with `id` and `imp`) are kept; duplicates are
 * dropped; an adapter gives at most `cap` of them, different media mixes first. Not run by tests.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const gitDir = process.argv[2];
const cap = Number(process.argv[3] ?? 2);
if (gitDir === undefined || !Number.isInteger(cap) || cap < 1) {
  console.error('usage: node test/openrtb/corpus/extract.mjs <git-dir> [per-adapter cap]');
  process.exit(2);
}
const git = (...args) =>
  execFileSync('git', ['--git-dir', gitDir, ...args], { maxBuffer: 1 << 30 }).toString('utf8');

const commit = git('rev-parse', 'HEAD').trim();
const FIXTURE = /^adapters\/([^/]+)\/[^/]+test\/(exemplary|supplemental)\/[^/]+\.json$/;
/** Bodies larger than this are left out, to keep the corpus small. */
const MAX_BODY = 16_384;

/** Code-unit order: the same on every machine, whatever its locale. */
const order = (x, y) => (x < y ? -1 : x > y ? 1 : 0);

const paths = git('ls-tree', '-r', '--name-only', 'HEAD')
  .split('\n')
  .filter((p) => FIXTURE.test(p))
  .sort((a, b) => {
    // Exemplary fixtures first within an adapter, then by path.
    const [, na, ka] = FIXTURE.exec(a);
    const [, nb, kb] = FIXTURE.exec(b);
    return order(na, nb) || order(ka, kb) || order(a, b);
  });

/** Reads every blob in one `git cat-file --batch`. */
function readAll(files) {
  const out = execFileSync('git', ['--git-dir', gitDir, 'cat-file', '--batch'], {
    input: files.map((p) => `HEAD:${p}\n`).join(''),
    maxBuffer: 1 << 30,
  });
  const texts = new Map();
  let at = 0;
  for (const p of files) {
    const nl = out.indexOf(10, at);
    const header = out.subarray(at, nl).toString('utf8');
    const size = Number(header.split(' ')[2]);
    at = nl + 1;
    if (header.endsWith('missing')) continue;
    texts.set(p, out.subarray(at, at + size).toString('utf8'));
    at += size + 1;
  }
  return texts;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const mediaMix = (req) =>
  Array.isArray(req.imp)
    ? [
        ...new Set(
          req.imp.flatMap((imp) =>
            isObject(imp) ? ['banner', 'video', 'audio', 'native'].filter((m) => m in imp) : [],
          ),
        ),
      ]
        .sort()
        .join('+')
    : '';

const texts = readAll(paths);
/** adapter -> candidate bodies, in path order */
const byAdapter = new Map();
for (const p of paths) {
  const adapter = FIXTURE.exec(p)[1];
  let fixture;
  try {
    fixture = JSON.parse(texts.get(p) ?? '');
  } catch {
    continue;
  }
  const calls = Array.isArray(fixture?.httpCalls) ? fixture.httpCalls : [];
  for (const call of calls) {
    const body = call?.expectedRequest?.body;
    if (!isObject(body) || !('id' in body) || !('imp' in body)) continue;
    const line = JSON.stringify(body);
    if (line.length > MAX_BODY) continue;
    const list = byAdapter.get(adapter) ?? [];
    list.push({ line, path: p });
    byAdapter.set(adapter, list);
  }
}

const seen = new Set();
const lines = [];
for (const [, list] of [...byAdapter].sort(([a], [b]) => order(a, b))) {
  const fresh = list.filter((c, i) => !seen.has(c.line) && list.findIndex((d) => d.line === c.line) === i);
  const picked = [];
  const mixes = new Set();
  // First one body of each media mix, then the rest in order, up to the cap.
  for (const c of fresh) {
    if (picked.length >= cap) break;
    const mix = mediaMix(JSON.parse(c.line));
    if (mixes.has(mix)) continue;
    mixes.add(mix);
    picked.push(c);
  }
  for (const c of fresh) {
    if (picked.length >= cap) break;
    if (!picked.includes(c)) picked.push(c);
  }
  for (const c of picked) {
    seen.add(c.line);
    lines.push(c);
  }
}

writeFileSync(new URL('./requests.ndjson', import.meta.url), lines.map((c) => `${c.line}\n`).join(''));
// sources.txt: the commit, then the fixture of each line of requests.ndjson, in order.
writeFileSync(
  new URL('./sources.txt', import.meta.url),
  `# prebid/prebid-server ${commit}\n${lines.map((c) => `${c.path}\n`).join('')}`,
);
const bytes = lines.reduce((n, c) => n + Buffer.byteLength(c.line) + 1, 0);
console.log(
  `${lines.length} requests from ${byAdapter.size} adapters of prebid/prebid-server ${commit} (${bytes} bytes)`,
);
