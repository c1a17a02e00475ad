/**
 * The `mindshare` command line as a campaign manager runs it: the compiled binary
 * (`node bin/mindshare.js`, and once through `npx mindshare`) against a real server process on
 * the embedded demo store, with API tokens of different scopes. One server serves the whole file;
 * the tests run in order, since pushes, activations and roll backs change what the next one sees.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PLACEMENTS, MAX_WHAT_IF_SAMPLE } from '../server/cli/mindshare.js';
import { LIMITS } from '../server/contracts/schemas.js';
import { buildOnce, root, type Started, start } from './process-kit.js';

const BIN = join(root, 'bin', 'mindshare.js');
const DEMO = join(root, 'rules', 'examples', 'demo.yaml');

const ADMIN = 'ci-secret-0123456789abcdef';
const WRITER = 'writer-secret-0123456789';
const READER = 'reader-secret-0123456789';
const ANALYST = 'analyst-secret-012345678';
const TOKENS = [
  `ci:${ADMIN}:admin`,
  `writer:${WRITER}:rules:read+rules:write`,
  `reader:${READER}:rules:read`,
  `analyst:${ANALYST}:rules:read+profiles:read`,
].join(',');

/** The moment of the README's decide example: 24 November 2026, noon in Shanghai. */
const README_AT = '2026-11-24T12:00:00+08:00';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let server: Started;
let url: string;
let dir: string;

/**
 * Runs `node bin/mindshare.js ARGS` from the project root, with the server's URL and the admin
 * token (`env` adds to or overrides them); `command` runs another program with ARGS instead.
 */
function cli(args: string[], env: Record<string, string> = {}, command?: string): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      command ?? process.execPath,
      command === undefined ? [BIN, ...args] : args,
      {
        cwd: root,
        timeout: 20_000,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? tmpdir(),
          MINDSHARE_URL: url,
          MINDSHARE_TOKEN: ADMIN,
          ...env,
        },
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A rule-set file in the test's folder. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A port nothing listens on: one the system just handed out and took back. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const address = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

beforeAll(async () => {
  await buildOnce();
  dir = mkdtempSync(join(tmpdir(), 'mindshare-cli-'));
  server = await start({ DEMO_PEOPLE: '2000', TOKENS });
  url = `http://127.0.0.1:${server.adminPort}`;
}, 180_000);

afterAll(async () => {
  if (server !== undefined) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const demo = () => readFileSync(DEMO, 'utf8');

describe('mindshare, offline', () => {
  it('validates a good file, lists every problem of a bad one with line:column, and refuses a missing file', async () => {
    const broken = file(
      'broken.yaml',
      demo()
        .replace('segments: [highend-business,', 'segments: [highend-busines,')
        .replace('funnel: [aware, appeal, act, advocate]', 'funnel: [aware, appeal, act, advocate, appeal]'),
    );
    const [ok, bad, json, missing] = await Promise.all([
      cli(['validate', DEMO]),
      cli(['validate', broken]),
      cli(['validate', broken, '--json']),
      cli(['validate', join(dir, 'nope.yaml')]),
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(
      /demo\.yaml: valid yaml, 7 segments, 3 campaigns, sha256:[0-9a-f]{64}, \d+ warnings\n$/,
    );
    // Warnings (the demo's singles'-day campaign has ended) go to standard error and fail nothing.
    expect(ok.stderr).toMatch(
      /demo\.yaml:\d+:\d+: warning: campaigns\[2\]\.flight\.end: .* \[flight_ended\]/,
    );

    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain(`${broken}:9:`);
    expect(bad.stderr).toMatch(/broken\.yaml:9:\d+: funnel\[4\]: .* \[duplicate_id\]/);
    expect(bad.stderr).toMatch(
      /broken\.yaml:65:16: campaigns\[0\]\.segments\[0\]: unknown segment "highend-busines" \(did you mean "highend-business"\?\) \[unknown_segment\]/,
    );
    expect(bad.stderr).toContain('not valid (2 problems)');
    expect(bad.stderr).not.toMatch(/\n\s+at /);

    expect(json.code).toBe(1);
    const answer = JSON.parse(json.stdout) as { error: { code: string }; errors: Array<{ line: number }> };
    expect(answer.error.code).toBe('invalid_ruleset');
    expect(answer.errors.map((e) => e.line)).toEqual([9, 65]);

    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`error: cannot read ${join(dir, 'nope.yaml')}: no such file\n`);
  });

  it('answers 2 to usage errors, prints its help with the exit codes, and says when it is not built', async () => {
    // The launcher alone, in a folder with no dist/ beside it.
    const unbuiltBin = join(dir, 'unbuilt', 'bin');
    mkdirSync(unbuiltBin, { recursive: true });
    copyFileSync(BIN, join(unbuiltBin, 'mindshare.js'));
    const [help, none, unknown, badVersion, badPlacement, noUser, unbuilt] = await Promise.all([
      cli(['--help']),
      cli([]),
      cli(['deploy', DEMO]),
      cli(['activate', 'two']),
      cli(['preview', '--user', 'p-1', '--placement', 'feed:fax']),
      cli(['preview']),
      cli([join(unbuiltBin, 'mindshare.js'), '--help'], {}, process.execPath),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit status:');
    expect(help.stdout).toContain('3  authentication or authorization refused (401, 403)');
    expect(help.stdout).toContain('ID[:CHANNELS[:FORMATS]]');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: mindshare');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("error: unknown command 'deploy'");
    expect(badVersion.code).toBe(2);
    expect(badVersion.stderr).toContain('expected a whole number');
    expect(badPlacement.code).toBe(2);
    expect(badPlacement.stderr).toContain('unknown channel "fax"');
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toContain("required option '--user <id>' not specified");
    expect(unbuilt.code).toBe(2);
    expect(unbuilt.stderr).toContain('npm run build');
  });

  it('runs as `npx mindshare` from the checkout (the package’s own bin)', async () => {
    // --offline: the package's own bin is linked from the checkout; nothing is fetched.
    const r = await cli(['--offline', 'mindshare', '--help'], {}, 'npx');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: mindshare');
  });

  it('checks the request limits the server has', () => {
    expect(MAX_PLACEMENTS).toBe(LIMITS.placements);
    expect(MAX_WHAT_IF_SAMPLE).toBe(LIMITS.whatIfSample);
  });
});

describe('mindshare against a server', () => {
  it('previews a demo person as the README shows, with --explain, and needs profiles:read for it', async () => {
    const [plain, explained, json, readerOnly] = await Promise.all([
      cli(['preview', '--user', 'p-1001', '--at', README_AT], { MINDSHARE_TOKEN: ANALYST }),
      cli([
        'preview',
        '--user',
        'p-1001',
        '--at',
        README_AT,
        '--explain',
        '--placement',
        'home-banner:display:banner-300x250',
      ]),
      cli(['--json', 'preview', '--user', 'p-1001', '--at', README_AT]),
      cli(['preview', '--user', 'p-1001'], { MINDSHARE_TOKEN: READER }),
    ]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('p-1001 at 2026-11-24T04:00:00.000Z, rule set version 1');
    expect(plain.stdout).toMatch(
      /home-banner {2}x90-launch +x90-camera-hero +display +2026-11-24T04:00:00\.000Z \(now\)/,
    );
    expect(plain.stdout).toMatch(
      /daily-push +brightpad-back-to-school +brightpad-eye-care +app_push +2026-11-24T12:00:00\.000Z/,
    );
    expect(explained.code).toBe(0);
    expect(explained.stdout).toContain('segments matched: highend-business');
    expect(explained.stdout).toMatch(/x90-launch +chosen +home-banner +score /);
    expect(explained.stdout).toMatch(/joymall-1111 +dropped +no_segment/);
    expect(json.code).toBe(0);
    const answer = JSON.parse(json.stdout) as { decisions: Array<{ campaign: string | null }> };
    expect(answer.decisions.map((d) => d.campaign)).toEqual(['x90-launch', 'brightpad-back-to-school']);
    expect(readerOnly.code).toBe(3);
    expect(readerOnly.stderr).toContain('error: forbidden: Previewing a stored person');
  });

  it('answers 3 to a wrong or missing token, 4 when the server is unreachable, silent or failing', async () => {
    const port = await closedPort();
    // A server that takes connections and never answers, and one that answers 503 as the API does.
    const silent = createServer(() => {});
    const failing = createHttpServer((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"store_unavailable","message":"The profile store does not answer"}}');
    });
    // And a proxy that redirects: following it would turn a POST into a GET of another route.
    const moved = createHttpServer((_req, res) => {
      res.writeHead(302, { location: 'http://127.0.0.1:1/v1/rulesets' });
      res.end();
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => moved.listen(0, '127.0.0.1', r));
    const portOf = (s: { address(): unknown }) => (s.address() as { port: number }).port;
    const [wrong, none, scope, unreachable, timedOut, unavailable, redirected] = await Promise.all([
      cli(['versions'], { MINDSHARE_TOKEN: 'not-a-token-0123456789' }),
      cli(['versions'], { MINDSHARE_TOKEN: '' }),
      cli(['push', DEMO, '--token', READER]),
      cli(['versions', '--url', `http://127.0.0.1:${port}`]),
      cli(['versions', '--url', `http://127.0.0.1:${portOf(silent)}`, '--timeout', '300']),
      cli(['versions', '--url', `http://127.0.0.1:${portOf(failing)}`]),
      cli(['push', DEMO, '--url', `http://127.0.0.1:${portOf(moved)}`]),
    ]);
    silent.close();
    failing.close();
    moved.close();
    expect(redirected.code).toBe(1);
    expect(redirected.stderr).toContain('answered 302, a redirect to http://127.0.0.1:1/v1/rulesets');
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toBe('error: unauthorized: The bearer token is not valid\n');
    expect(none.code).toBe(3);
    expect(none.stderr).toContain('hint: pass --token or set MINDSHARE_TOKEN');
    expect(scope.code).toBe(3);
    expect(scope.stderr).toContain('error: forbidden: ');
    expect(scope.stderr).toContain('rules:write');
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toBe(
      `error: cannot reach the control plane at http://127.0.0.1:${port} (ECONNREFUSED)\n`,
    );
    expect(timedOut.code).toBe(4);
    expect(timedOut.stderr).toMatch(/^error: no answer from http:\/\/127\.0\.0\.1:\d+ within 300 ms\n$/);
    expect(unavailable.code).toBe(4);
    expect(unavailable.stderr).toBe('error: store_unavailable: The profile store does not answer\n');
  });

  it('diffs, pushes, lists, activates and rolls back', async () => {
    const draft = file('draft.yaml', demo().replace('holdout: 0.05', 'holdout: 0.08'));
    const restyled = file('restyled.yaml', `# the same rule set, with a comment\n${demo()}`);
    const broken = file(
      'broken.yaml',
      demo().replace('segments: [highend-business,', 'segments: [highend-busines,'),
    );

    const [same, comments, changed, json, exitCode] = await Promise.all([
      cli(['diff', DEMO, '--exit-code']),
      cli(['diff', restyled, '--exit-code']),
      cli(['diff', draft, '--text', '--token', READER]),
      cli(['diff', draft, '--json']),
      cli(['diff', draft, '--exit-code']),
    ]);
    expect(same.code).toBe(0);
    expect(same.stdout).toBe(`${DEMO} against version 1 (active):\nno changes\n`);
    expect(comments.code).toBe(0);
    expect(comments.stdout).toContain('no changes (the texts differ only in comments, key order or style)');
    expect(changed.code).toBe(0);
    expect(changed.stdout).toContain('~ campaign x90-launch: holdout\n');
    expect(changed.stdout).toContain('-    holdout: 0.05\n+    holdout: 0.08\n');
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { changed: boolean }).changed).toBe(true);
    expect(exitCode.code).toBe(1);
    expect(exitCode.stdout).toContain('~ campaign x90-launch: holdout');

    const refused = await cli(['push', broken], { MINDSHARE_TOKEN: WRITER });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('error: invalid_ruleset: The rule set is not valid (1 problem)\n');
    expect(refused.stderr).toContain(
      `${broken}:65:16: campaigns[0].segments[0]: unknown segment "highend-busines"`,
    );

    const pushed = await cli(['push', draft], { MINDSHARE_TOKEN: WRITER });
    expect(pushed.code).toBe(0);
    expect(pushed.stdout).toMatch(/^stored .*draft\.yaml as version 2 \(sha256:[0-9a-f]{64}\), not active/);
    // The server's warnings, placed in the file.
    expect(pushed.stderr).toMatch(/draft\.yaml:\d+:\d+: warning: .* \[unillustrated_selling_point\]/);
    const activated = await cli(['push', draft, '--activate'], { MINDSHARE_TOKEN: WRITER });
    expect(activated.code).toBe(0);
    expect(activated.stdout).toMatch(/as version 3 \(sha256:[0-9a-f]{64}\), active since 20\d\d-/);

    const [listed, listedJson, against] = await Promise.all([
      cli(['versions'], { MINDSHARE_TOKEN: READER }),
      cli(['versions', '--json']),
      cli(['diff', DEMO, '--against', '1', '--exit-code']),
    ]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(
      /^VERSION +ACTIVE +CREATED BY +CREATED AT +CHECKSUM +BYTES\n3 +\* +writer /,
    );
    expect(listed.stdout).toMatch(/\n1 +startup /);
    expect(listed.stdout).toContain('rollback would activate version 1');
    expect(listed.stdout).toMatch(/recent activations:\n {2}\S+ +version 3 +by writer/);
    expect((JSON.parse(listedJson.stdout) as { active: number }).active).toBe(3);
    expect(against.code).toBe(0);
    expect(against.stdout).toContain('against version 1:\nno changes');

    const two = await cli(['activate', '2']);
    expect(two.code).toBe(0);
    expect(two.stdout).toMatch(/^version 2 active since 20\d\d-/);
    const missing = await cli(['activate', '99']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error: ruleset_not_found: There is no rule set version 99 (at version)\n');

    const back1 = await cli(['rollback']);
    expect(back1.code).toBe(0);
    expect(back1.stdout).toMatch(/^rolled back from version 2 to version 3, active since /);
    const back2 = await cli(['rollback']);
    expect(back2.code).toBe(0);
    expect(back2.stdout).toMatch(/^rolled back from version 3 to version 1, active since /);
    const back3 = await cli(['rollback']);
    expect(back3.code).toBe(1);
    expect(back3.stderr).toMatch(/^error: nothing_to_roll_back: /);
  });

  it('says what a draft would change for a sample of stored people', async () => {
    const draft = file('priority.yaml', demo().replace('priority: 10', 'priority: 1'));
    const [summary, json, invalid] = await Promise.all([
      cli(['what-if', draft, '--sample', '300', '--at', README_AT], { MINDSHARE_TOKEN: ANALYST }),
      cli(['what-if', draft, '--sample', '100', '--placement', 'home-banner', '--json']),
      cli(['what-if', file('bad.yaml', 'funnel: [aware]\nsegments: 3\n'), '--sample', '10']),
    ]);
    expect(summary.code).toBe(0);
    expect(summary.stdout).toMatch(/against active version 1: 300 people sampled of 2000\n/);
    expect(summary.stdout).toContain(
      'placements: home-banner:display:banner-300x250 daily-push:app_push,sms,email\n',
    );
    expect(summary.stdout).toMatch(/600 decisions, [1-9]\d* changed \(\d+\.\d%\)/);
    expect(summary.stdout).toMatch(/fill: \d+\.\d% before, \d+\.\d% after/);
    expect(summary.stdout).toMatch(/CAMPAIGN +BEFORE +AFTER +GAINED +LOST\n/);
    expect(summary.stdout).toMatch(/x90-launch +\d+ +\d+ +\+\d+ +-[1-9]/);
    expect(summary.stdout).toMatch(/most frequent changes:\n {2}(home-banner|daily-push): \S+ -> /);
    expect(summary.stdout).toContain('e.g. p-');
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { decisions: number }).decisions).toBe(100);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('error: invalid_ruleset: ');
    expect(invalid.stderr).toMatch(/bad\.yaml:2:\d+: segments: /);
  });
});
