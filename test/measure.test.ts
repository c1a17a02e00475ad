/**
 * The campaign loop on a running server, over the embedded store and a real redis-server:
 * decisions on the data plane reach the campaign's delivery rows and lift arms (sent in batches
 * off the decision path), events and OpenRTB notices add what they name, and the control plane
 * answers it all.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { postJson } from './http.js';
import { type Over, serverOver, type TestServer } from './server-kit.js';

const PEOPLE = 200;
// biome-ignore lint/suspicious/noTemplateCurlyInString: the OpenRTB macro as the exchange sees it
const MACRO = '${AUCTION_PRICE}';
const buyer = (i: number) => ({
  id: `m-${i}`,
  tags: ['circle:business'],
  attrs: { price_band: 6000 },
  stages: { vivo: 'appeal' },
  channels: { display: 1 },
});

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
type Json = any;

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, what: string): Promise<T> {
  const end = Date.now() + 10_000;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function describeLoop(over: Exclude<Over, 'cluster'>): void {
  describe(`campaign loop over ${over}`, () => {
    let kit: TestServer;
    beforeAll(async () => {
      kit = await serverOver(
        over,
        // What is checked is what gets counted, not how fast: on a loaded machine a 10 ms deadline
        // would answer some decisions on context alone (another campaign, or none).
        { MEASURE_FLUSH_MS: '100', OPENRTB_NOTICE_URL: 'http://127.0.0.1:1', DECISION_DEADLINE_MS: '2000' },
        {
          seed: (store) => store.putProfiles(Array.from({ length: PEOPLE }, (_, i) => buyer(i))),
        },
      );
    }, 60_000);
    afterAll(async () => kit?.close(1000, 0));

    const admin = async (path: string): Promise<Json> => {
      const r = await fetch(`${kit.adminUrl}${path}`);
      return {
        status: r.status,
        body: r.headers.get('content-type')?.includes('json') ? await r.json() : await r.text(),
      };
    };

    it('counts decisions, ghosts and the arms of the people decided, and attributes their conversions', async () => {
      const held: string[] = [];
      const shown: string[] = [];
      for (let i = 0; i < PEOPLE; i++) {
        const r = await postJson(`${kit.dataUrl}/v1/decide`, {
          user: { id: `m-${i}` },
          placements: [{ id: 'home-banner', channels: ['display'] }],
        });
        expect(r.status).toBe(200);
        if (r.body.decisions[0].campaign === 'x90-launch') shown.push(`m-${i}`);
        else held.push(`m-${i}`);
      }
      // The demo's hold-out is 5%: some of 200 people are held out, most are not.
      expect(held.length).toBeGreaterThan(0);
      expect(shown.length).toBeGreaterThan(150);
      const lift = await until(
        () => admin('/v1/campaigns/x90-launch/lift'),
        (r) => r.body.arms?.treatment.people + r.body.arms?.control.people === PEOPLE,
        'the exposures of every person decided',
      );
      expect(lift.body.arms.treatment.people).toBe(shown.length);
      expect(lift.body.arms.control.people).toBe(held.length);

      const events = [...shown.slice(0, 20), ...held.slice(0, 1)].map((pid) => ({
        eventId: `conv-${pid}`,
        type: 'conversion',
        user: { id: pid },
        brand: 'vivo',
      }));
      const posted = await postJson(`${kit.adminUrl}/v1/events`, events);
      expect(posted.status).toBe(200);
      const after = await admin('/v1/campaigns/x90-launch/lift');
      expect(after.body.arms.treatment.conversions).toBe(20);
      expect(after.body.arms.control.conversions).toBe(1);
      expect(after.body.conversions.treatment).toMatchObject({ people: shown.length, converted: 20 });
      expect(after.body.conversions.interval.method).toContain('Newcombe');

      const delivery = await until(
        () => admin('/v1/campaigns/x90-launch/delivery'),
        (r) => r.body.totals?.decisions === shown.length && r.body.totals?.ghosts === held.length,
        'the decisions and ghosts counted',
      );
      expect(delivery.body.timezone).toBe('Asia/Shanghai');
    });
  });
}

describe('OpenRTB notices in delivery (redis)', () => {
  let kit: TestServer;
  beforeAll(async () => {
    kit = await serverOver('redis', {
      RULESET_FILE: new URL('./openrtb/ruleset.yaml', import.meta.url).pathname,
      OPENRTB_NOTICE_URL: 'http://127.0.0.1:1',
      OPENRTB_TCF_VENDOR_ID: '755',
      DECISION_DEADLINE_MS: '50',
    });
  }, 60_000);
  afterAll(async () => kit?.close(1000, 0));

  it('counts a won bid once as an impression, and its billed price as spend', async () => {
    const request = JSON.parse(readFileSync(new URL('./openrtb/breq.banner.json', import.meta.url), 'utf8'));
    const r = await postJson(`${kit.dataUrl}/openrtb2/bid`, request);
    expect(r.status).toBe(200);
    const bid = r.body.seatbid[0].bid[0];
    // A notice answers 204 whether it counted or was a duplicate.
    const notice = (u: string) =>
      fetch(`${kit.dataUrl}${u.replace(/^https?:\/\/[^/]+/, '').replace(MACRO, '1.2')}`);
    expect((await notice(bid.nurl)).status).toBe(204);
    expect((await notice(bid.burl)).status).toBe(204);
    expect((await notice(bid.burl)).status).toBe(204); // sent again: counted once
    const res = await fetch(`${kit.adminUrl}/v1/campaigns/${encodeURIComponent(bid.cid)}/delivery`);
    const body: Json = await res.json();
    expect(body.rows).toEqual([
      expect.objectContaining({
        creative: bid.crid,
        channel: 'display',
        impressions: 1,
        spend: { USD: 0.0012 },
      }),
      ...(body.rows.length > 1 ? [expect.anything()] : []),
    ]);
    expect(body.totals).toMatchObject({ impressions: 1, spend: { USD: 0.0012 } });
  });
});

describe('OpenRTB notices in a spend budget (redis)', () => {
  let kit: TestServer;
  beforeAll(async () => {
    // The OpenRTB rule set with a spend budget on every campaign (the campaign's own currency).
    const rules = parseYaml(readFileSync(new URL('./openrtb/ruleset.yaml', import.meta.url), 'utf8'));
    for (const c of rules.campaigns) c.budget = { daily: 100, unit: 'spend', pacing: 'asap' };
    const file = join(mkdtempSync(join(tmpdir(), 'ortb-budget-')), 'rules.json');
    writeFileSync(file, JSON.stringify(rules));
    kit = await serverOver('redis', {
      RULESET_FILE: file,
      OPENRTB_NOTICE_URL: 'http://127.0.0.1:1',
      OPENRTB_TCF_VENDOR_ID: '755',
      DECISION_DEADLINE_MS: '50',
      BUDGET_LEASE_MS: '100',
    });
  }, 60_000);
  afterAll(async () => kit?.close(1000, 0));

  it('counts the price once per bid, from the first notice that names it, in the budget', async () => {
    const request = JSON.parse(readFileSync(new URL('./openrtb/breq.banner.json', import.meta.url), 'utf8'));
    // The first lease arrives within one renewal of the start.
    const r = await until(
      () => postJson(`${kit.dataUrl}/openrtb2/bid`, request),
      (x) => x.status === 200,
      'a bid once the budget is leased',
    );
    const bid = r.body.seatbid[0].bid[0];
    const notice = (u: string) =>
      fetch(`${kit.dataUrl}${u.replace(/^https?:\/\/[^/]+/, '').replace(MACRO, '1.2')}`);
    expect((await notice(bid.nurl)).status).toBe(204);
    expect((await notice(bid.burl)).status).toBe(204);
    expect((await notice(bid.burl)).status).toBe(204);
    const budget = await until(
      async () =>
        (
          await fetch(`${kit.adminUrl}/v1/campaigns/${encodeURIComponent(bid.cid)}/budget`)
        ).json() as Promise<Json>,
      (b) => b.lines?.[0]?.today.spent > 0,
      'the price in the budget',
    );
    // 1.2 per thousand, once (the win named it; the bill and its repeat did not count again).
    expect(budget.lines[0]).toMatchObject({ unit: 'spend', today: { spent: 0.0012 } });
  });
});

describeLoop('embedded');
describeLoop('redis');
