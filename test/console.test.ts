/**
 * The console as a campaign manager uses it: a real Chromium against the real server process (the
 * embedded store with its demo people), signing in, editing, uploading, comparing, activating and
 * rolling back a rule set, previewing, and reading the funnel and campaign charts drawn from data
 * the test makes through the data plane and the events route. Screenshots of every page land in
 * docs/console/ when CONSOLE_SCREENSHOTS=1 (npm run docs:screenshots), else in a temporary folder.
 */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './browser.js';
import { buildOnce, root, type Started, start } from './process-kit.js';

const ROOT = 'root-secret-0123456789';
const READER = 'reader-secret-0123456789';
const EVENTS = 'events-secret-0123456789';
const DECIDE = 'decide-secret-0123456789';
const TOKENS = [
  `root:${ROOT}:admin`,
  `reader:${READER}:rules:read`,
  `tracker:${EVENTS}:events:write`,
  `exchange:${DECIDE}:decide`,
].join(',');

const DEMO = readFileSync(join(root, 'rules', 'examples', 'demo.yaml'), 'utf8');
/** The next version: the camera creative renamed, which decisions for p-1001 show. */
const V2 = DEMO.replace('name: demo', 'name: demo v2').replace(
  '- id: x90-camera-hero',
  '- id: x90-camera-hero-v2',
);
const INVALID = DEMO.replace(
  'segments: [highend-business, mobile-gamer, vivo-high-clv]',
  'segments: [highend-business, no-such-segment]',
);
const INVALID_LINE = DEMO.split('\n').findIndex((l) => l.includes('segments: [highend-business, mobile')) + 1;
const BANNER = { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] };

const shots =
  process.env.CONSOLE_SCREENSHOTS === '1'
    ? join(root, 'docs', 'console')
    : mkdtempSync(join(tmpdir(), 'mindshare-console-'));
mkdirSync(shots, { recursive: true });

let server: Started;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base = '';
/** Script errors in the page: none may happen. */
const pageErrors: string[] = [];
/** Every URL the page asked for. */
const requested: string[] = [];

async function decide(
  id: string,
): Promise<{ ruleset: number; decisions: { campaign: string | null; creative?: string }[] }> {
  const res = await fetch(`http://127.0.0.1:${server.dataPort}/v1/decide`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${DECIDE}` },
    body: JSON.stringify({ user: { id }, placements: [BANNER] }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as never;
}

/** Decisions with the given creative for p-1001, within 5 s (activations take a moment to reach every thread). */
async function decidesWith(creative: string): Promise<void> {
  const until = Date.now() + 5_000;
  let last = '';
  while (Date.now() < until) {
    last = (await decide('p-1001')).decisions[0]?.creative ?? '';
    if (last === creative) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`decisions still show ${last}, not ${creative}`);
}

async function replaceEditorText(text: string): Promise<void> {
  const editor = page.locator('.cm-content');
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

beforeAll(async () => {
  await buildOnce();
  server = await start({ TOKENS, MEASURE_FLUSH_MS: '200' });
  base = `http://127.0.0.1:${server.adminPort}`;
  // Data for the charts, made as exchanges and trackers would (the console itself never decides).
  for (let i = 1001; i <= 1040; i++) await decide(`p-${i}`);
  const events = [];
  for (let i = 1001; i <= 1020; i++) {
    events.push({ eventId: `imp-${i}`, type: 'impression', user: { id: `p-${i}` }, campaign: 'x90-launch' });
    events.push({ eventId: `clk-${i}`, type: 'click', user: { id: `p-${i}` }, campaign: 'x90-launch' });
    if (i % 3 === 0)
      events.push({ eventId: `cv-${i}`, type: 'conversion', user: { id: `p-${i}` }, campaign: 'x90-launch' });
  }
  const res = await fetch(`${base}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${EVENTS}` },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBe(200);
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => requested.push(r.url()));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  server?.child.kill('SIGTERM');
  await server?.exited;
});

describe('the console in a browser', () => {
  it('refuses a wrong token, with the API error shown', async () => {
    await page.goto(`${base}/console`);
    await page.getByLabel('API token').fill('not-a-token-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('unauthorized');
    await shot('sign-in');
    expect(await context.cookies()).toEqual([]);
  });

  it('signs in; the session is an HttpOnly, SameSite=Strict cookie, and a change needs its CSRF token', async () => {
    await page.getByLabel('API token').fill(ROOT);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Rule sets' }).waitFor();
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'mindshare_session', httpOnly: true, sameSite: 'Strict' });
    expect(cookie?.value).not.toContain(ROOT);
    // The cookie reads; a change without the CSRF header is refused.
    expect((await context.request.get(`${base}/v1/rulesets`)).status()).toBe(200);
    const forged = await context.request.post(`${base}/v1/rulesets/rollback`);
    expect(forged.status()).toBe(403);
    expect(await forged.text()).toContain('x-csrf-token');
  });

  it('shows an invalid edit’s errors in place, at their line', async () => {
    await page.getByText(/^Valid: 7 segments, 3 campaigns/).waitFor();
    // The demo is valid with warnings (its singles'-day campaign has ended): listed, not refused.
    const warnings = page.getByRole('list', { name: 'Warnings' });
    await expect.poll(() => warnings.textContent()).toContain('flight_ended');
    await replaceEditorText(INVALID);
    const errors = page.getByRole('list', { name: 'Errors in the draft' });
    await expect.poll(() => errors.textContent()).toContain(`line ${INVALID_LINE}`);
    expect(await errors.textContent()).toContain('no-such-segment');
    // The error's place: a click puts the cursor there, where the editor marks it.
    await errors.getByRole('button', { name: new RegExp(`^line ${INVALID_LINE},`) }).click();
    const marked = page.locator('.cm-lintRange-error');
    await marked.first().waitFor();
    expect(await marked.first().textContent()).toContain('no-such-segment');
    expect(await page.getByRole('button', { name: 'Upload the draft' }).isDisabled()).toBe(true);
    await shot('rulesets-invalid');
  });

  it('uploads a valid draft after a confirmation that says what changes', async () => {
    await replaceEditorText(V2);
    await page.getByText(/^Valid: 7 segments, 3 campaigns/).waitFor();
    await page.getByRole('button', { name: 'Upload the draft' }).click();
    const dialog = page.getByRole('dialog');
    await expect.poll(() => dialog.textContent()).toContain('campaign x90-launch changed: creatives');
    expect(await dialog.textContent()).toContain('creative x90-camera-hero-v2 added');
    await shot('rulesets-confirm');
    await dialog.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.getByText('Stored as version 2.').waitFor();
  });

  it('compares two versions: the summary and the text', async () => {
    await page.getByLabel('compare from version 1').check();
    await page.getByLabel('compare to version 2').check();
    await page.getByRole('button', { name: 'Compare version 1 with version 2' }).click();
    const summary = page.getByRole('list', { name: 'What changes' });
    await expect.poll(() => summary.textContent()).toContain('creative x90-camera-hero removed');
    expect(await page.locator('.text-diff .add').allTextContents()).toContain('+name: demo v2\n');
    await shot('rulesets-diff');
  });

  it('activates a version, and the data plane decides with it; rolls back, and it decides as before', async () => {
    await decidesWith('x90-camera-hero');
    await page.getByRole('button', { name: 'Activate 2' }).click();
    const dialog = page.getByRole('dialog');
    await expect.poll(() => dialog.textContent()).toContain('from version 1 to version 2');
    await dialog.getByRole('button', { name: 'Activate version 2' }).click();
    await page.getByText('Version 2 is active.').waitFor();
    await decidesWith('x90-camera-hero-v2');

    await page.getByRole('button', { name: 'Roll back to version 1' }).click();
    await expect
      .poll(() => page.getByRole('dialog').textContent())
      .toContain('creative x90-camera-hero added');
    await page.getByRole('dialog').getByRole('button', { name: 'Roll back to version 1' }).click();
    await page.getByText('Rolled back from version 2 to version 1.').waitFor();
    await decidesWith('x90-camera-hero');
    await page.getByText('Activation log').click();
    expect(await page.locator('.activations').textContent()).toContain('version 1 rolled back to by root');
    await shot('rulesets');
  });

  it('previews a stored person with the explanation, through the control plane', async () => {
    await page.getByRole('link', { name: 'Preview and what-if' }).click();
    await page.getByLabel('Person id').fill('p-1001');
    await page.getByRole('button', { name: 'Decide' }).click();
    const decisions = page.getByRole('table', { name: 'Decisions' });
    await expect.poll(() => decisions.textContent()).toContain('x90-launch');
    const explain = page.getByRole('table', { name: 'Why each campaign was chosen or dropped' });
    expect(await explain.textContent()).toMatch(/chosen.*priority 10/);
    expect(await explain.textContent()).toContain('joymall-1111');
    // Against a stored version that is not active.
    await page.getByLabel('Rule set', { exact: true }).selectOption('2');
    await page.getByRole('button', { name: 'Decide' }).click();
    await expect.poll(() => decisions.textContent()).toContain('x90-camera-hero-v2');
    await page.getByLabel('Rule set', { exact: true }).selectOption('');
    // What-if: a draft without the x90 campaign changes the banner decisions.
    await page.getByRole('button', { name: 'Start from the active version' }).click();
    await expect.poll(() => page.getByLabel(/Draft rule set/).inputValue()).toContain('x90-launch');
    const draft = await page.getByLabel(/Draft rule set/).inputValue();
    await page.getByLabel(/Draft rule set/).fill(draft.replace('priority: 10', 'priority: -10'));
    await page.getByRole('button', { name: 'Run what-if' }).click();
    await expect.poll(() => page.locator('.whatif-result').textContent()).toMatch(/decisions change/);
    await shot('preview');
  });

  it('draws the funnel from stage moves', async () => {
    await page.getByRole('link', { name: 'Funnels' }).click();
    await page.getByLabel('Brand', { exact: true }).selectOption('vivo');
    const chart = page.locator('.chart-canvas');
    await chart.locator('canvas').first().waitFor();
    expect(Number(await chart.getAttribute('data-points'))).toBe(30);
    await page.getByText('Numbers').click();
    // The chart's numbers are the route's: the clicks and conversions above moved people today.
    const api = await context.request.get(`${base}/v1/funnels/vivo?days=30`, {
      headers: { authorization: `Bearer ${ROOT}` },
    });
    const daily = ((await api.json()) as { daily: { moves: Record<string, number> }[] }).daily;
    const moved = daily.reduce((n, d) => n + Object.values(d.moves).reduce((a, b) => a + b, 0), 0);
    expect(moved).toBeGreaterThan(0);
    const cells = await page.locator('.chart details table tbody td').allTextContents();
    expect(cells.reduce((n, c) => n + Number(c), 0)).toBe(moved);
    expect(await page.locator('.bars', { hasText: 'Moved to the next stage' }).textContent()).toContain(
      'aware → appeal',
    );
    await shot('funnels');
  });

  it('draws a campaign’s delivery and lift, and counts every segment’s audience', async () => {
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByLabel('Campaign', { exact: true }).selectOption('x90-launch');
    const totals = page.getByRole('table', { name: /Totals/ });
    // 20 impressions and 20 clicks from the events; decisions from the data plane (flushed in 0.2 s).
    await expect
      .poll(() => totals.locator('td').allTextContents(), { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['20']));
    const cells = await totals.locator('td').allTextContents();
    expect(Number(cells[0])).toBeGreaterThan(0);
    await page.locator('.chart-canvas canvas').first().waitFor();
    expect(await page.getByRole('table', { name: /Outcomes per arm/ }).textContent()).toContain(
      'conversions',
    );
    await page.getByRole('button', { name: 'Count every segment' }).click();
    const bars = page.locator('.bars', { hasText: 'People per segment' });
    await expect.poll(() => bars.textContent()).toContain('highend-business');
    await shot('campaigns');
  });

  it('works from the keyboard: the skip link, the navigation', async () => {
    await page.goto(`${base}/console#/rulesets`);
    await page.reload();
    await page.getByRole('heading', { name: 'Rule sets' }).waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to the page');
    // The skip link moves the focus to the page, and stays on it.
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement?.id')).toBe('main');
    expect(new URL(page.url()).hash).toBe('#/rulesets');
    // From the top of the page again: the skip link, then the navigation.
    await page.reload();
    await page.getByRole('heading', { name: 'Rule sets' }).waitFor();
    const order: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate('document.activeElement?.textContent'));
    }
    expect(order).toEqual(['Skip to the page', 'Rule sets', 'Preview and what-if']);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Preview', exact: true }).waitFor();
  });

  it('signs out: the cookie no longer opens anything', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    expect((await context.request.get(`${base}/v1/rulesets`)).status()).toBe(401);
  });

  it('keeps an unsaved draft across a new sign-in', async () => {
    await page.getByLabel('API token').fill(ROOT);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Rule sets' }).click();
    await page.getByText(/^Valid: 7 segments/).waitFor();
    await page.locator('.cm-content').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.insertText('\n# a note not uploaded yet\n');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').fill(ROOT);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Rule sets' }).click();
    await page.getByText('Your unsaved draft is back in the editor.').waitFor();
    // The editor draws only the lines in view: go to the end, where the note is.
    await page.locator('.cm-content').click();
    await page.keyboard.press('Control+End');
    await expect.poll(() => page.locator('.cm-content').textContent()).toContain('# a note not uploaded yet');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
  });

  it('offers a reader no changes', async () => {
    await page.getByLabel('API token').fill(READER);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Rule sets' }).click();
    await page.getByText('Your token cannot change rule sets').waitFor();
    expect(await page.locator('.cm-content').count()).toBe(0);
    expect(await page.getByRole('button', { name: /Activate|Roll back/ }).count()).toBe(0);
    expect(pageErrors).toEqual([]);
    // The console talks to the control plane only: never the data plane (the hot path), nothing else.
    expect(requested.length).toBeGreaterThan(20);
    const elsewhere = requested.filter(
      (u) => !u.startsWith(`${base}/console`) && !u.startsWith(`${base}/v1/`),
    );
    expect(elsewhere).toEqual([]);
    expect(requested.filter((u) => u.includes('/v1/decide'))).toEqual([]);
  });

  it('shows a budget against its pace and limit, and the day’s shape', async () => {
    const budgeted = DEMO.replace(
      '    priority: 10\n',
      '    priority: 10\n    budget: { daily: 5000, total: 900000, unit: impressions, pacing: even }\n',
    );
    expect(budgeted).not.toBe(DEMO);
    const res = await fetch(`${base}/v1/rulesets?activate=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/yaml', authorization: `Bearer ${ROOT}` },
      body: budgeted,
    });
    expect(res.status, await res.clone().text()).toBe(201);
    // Decisions take the campaign's leases, and the control plane reports where it stands.
    for (let i = 1041; i <= 1060; i++) await decide(`p-${i}`);
    // Still signed in as the reader: budgets are rules:read.
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByLabel('Campaign', { exact: true }).selectOption('x90-launch');
    const panel = page.locator('.budget-line');
    await expect.poll(() => panel.textContent(), { timeout: 10_000 }).toContain('5,000 impressions a day');
    const text = (await panel.textContent()) ?? '';
    expect(text).toContain('900,000 impressions in all');
    expect(text).toContain('pace target by now');
    expect(text).toContain('limit today');
    expect(text).toMatch(/The day's shape the pace follows/);
    expect(pageErrors).toEqual([]);
    await shot('budget');
  });
});
