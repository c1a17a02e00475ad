import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, type OpenRtbConfig } from '../config.js';
import { DecisionService } from '../decision/service.js';
import { projectRoot } from '../project.js';
import { loadRuleSetFile } from '../ruleset-file.js';
import { EmbeddedStore } from '../store/embedded.js';
import { type BidAnswer, Bidder } from './bidder.js';
import { parseBidRequest } from './request.js';

const NOW = Date.parse('2026-11-24T04:00:00.000Z');
const at = (...parts: string[]) => join(projectRoot(), 'test', 'openrtb', ...parts);

/** The bidder's configuration as the server makes it, with a notice URL and a secret. */
const CONFIG: OpenRtbConfig = loadConfig({
  OPENRTB_NOTICE_URL: 'https://bidder.example.com',
  OPENRTB_SECRET: 'bidder-test-secret-0123456789abcdef',
}).openrtb;

/** Every answer of a bidder over the rule set to the requests that parse. */
async function answers(ruleset: string, requests: Buffer[], config: Partial<OpenRtbConfig> = {}) {
  const store = new EmbeddedStore({ now: () => NOW });
  const service = new DecisionService(store, loadRuleSetFile(ruleset, 1, NOW), {
    deadlineMs: 1_000,
    now: () => NOW,
  });
  const bidder = new Bidder({ service, store, config: { ...CONFIG, ...config }, clock: () => NOW });
  const out: BidAnswer[] = [];
  for (const body of requests) {
    let req: ReturnType<typeof parseBidRequest>;
    try {
      req = parseBidRequest(body);
    } catch {
      continue;
    }
    out.push(await bidder.bid(req, performance.now()));
  }
  return out;
}

const corpus = readFileSync(at('corpus', 'requests.ndjson'), 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => Buffer.from(line));
const examples = ['breq.banner.json', 'breq.video.json', 'breq.native.json'].map((f) => readFileSync(at(f)));

describe('Bidder: the answer as text', () => {
  it('is the text JSON.stringify gives for the answer, for every bid of the corpus and the examples', async () => {
    const all = [
      ...(await answers(at('corpus', 'ruleset.yaml'), corpus)),
      ...(await answers(at('ruleset.yaml'), examples)),
    ];
    const bids = all.flatMap((a) => (a.status === 200 ? [a] : []));
    for (const a of bids) expect(a.text).toBe(JSON.stringify(a.body));
    // Every kind of bid was written: each medium, several bids in one answer, a deal, lists.
    const each = bids.flatMap((a) => a.body.seatbid.flatMap((s) => s.bid));
    expect(bids.length).toBeGreaterThanOrEqual(100);
    for (const mtype of [1, 2, 4]) expect(each.some((b) => b.mtype === mtype)).toBe(true);
    expect(bids.some((a) => a.body.seatbid[0]!.bid.length > 1)).toBe(true);
    expect(each.some((b) => b.dealid !== undefined)).toBe(true);
    expect(each.some((b) => b.adomain !== undefined && b.cat !== undefined)).toBe(true);
    expect(each.some((b) => b.w === undefined)).toBe(true);
  });

  it('escapes what the notice URL, the seat and the request hold', async () => {
    const odd = examples.map((b) => {
      const req = JSON.parse(b.toString()) as { id: string; imp: Array<{ id: string }> };
      req.id = 'say "hi"\\\n\u2028é';
      for (const imp of req.imp) imp.id = `"${imp.id}"\t`;
      return Buffer.from(JSON.stringify(req));
    });
    const bids = (
      await answers(at('ruleset.yaml'), odd, {
        noticeUrl: 'https://bidder.example.com/a\\b"c',
        seat: 'seat "one"',
      })
    ).flatMap((a) => (a.status === 200 ? [a] : []));
    expect(bids.length).toBeGreaterThanOrEqual(2);
    for (const a of bids) {
      expect(a.text).toBe(JSON.stringify(a.body));
      expect(JSON.parse(a.text)).toEqual(a.body);
    }
  });
});
