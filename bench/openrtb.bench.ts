/**
 * A bid in process against a decision, each as the data plane makes it from the body's bytes to
 * the answer's text: the load run's BidRequest (load-tests/driver.ts, a person named by a cookie
 * alias) parsed, bid on with the OpenRTB test rule set and its answer serialized, next to the load
 * run's decision by id with the demo rule set, both on a cache miss over an EmbeddedStore of people
 * with aliases. No HTTP, no Redis: this is the part of `npm run load`'s "openrtb uniform / decide
 * uniform" ratio that the bidder's own code adds, and its parts (the request's parsing, the
 * sealed bid id, the answer's text). Writes bench/results/openrtb-<date>.json and
 * openrtb-latest.json. Run with `npm run bench:openrtb`.
 */
import { join } from 'node:path';
import { bidRequestFor, bodyFor } from '../load-tests/driver.js';
import { median } from '../load-tests/measure.js';
import { DEMO_RULESET, loadConfig, type OpenRtbConfig } from '../server/config.js';
import { parseDecideBody } from '../server/decision/request.js';
import { DecisionService } from '../server/decision/service.js';
import { demoAliases, demoProfile } from '../server/demo/profiles.js';
import { BidIds } from '../server/openrtb/bid-id.js';
import { type BidAnswer, Bidder } from '../server/openrtb/bidder.js';
import { parseBidRequest } from '../server/openrtb/request.js';
import { projectRoot } from '../server/project.js';
import { loadRuleSetFile } from '../server/ruleset-file.js';
import { EmbeddedStore } from '../server/store/embedded.js';
import { bench, HEAD, printRatios, type Row, time, writeResults } from './report.js';

/** 24 November 2026, noon in Shanghai: the demo campaigns are in flight. */
const NOW = Date.parse('2026-11-24T04:00:00.000Z');
const PEOPLE = 2_000;
const POOL = 1_024;
const ROUNDS = 21;
const BLOCK = 2_000;

/** The bidder's configuration as the server makes it, with a notice URL and a secret. */
const CONFIG: OpenRtbConfig = loadConfig({
  OPENRTB_NOTICE_URL: 'https://bidder.example.com',
  OPENRTB_SECRET: 'bench-secret-0123456789abcdef',
}).openrtb;

async function main(): Promise<void> {
  const store = new EmbeddedStore({ now: () => NOW });
  for (let i = 0; i < PEOPLE; i++) {
    await store.putProfile(demoProfile(i));
    await store.linkAliases(`p-${i}`, demoAliases(i));
  }
  const demo = new DecisionService(store, loadRuleSetFile(DEMO_RULESET, 1, NOW), {
    deadlineMs: 50,
    now: () => NOW,
  });
  const ortbRules = loadRuleSetFile(join(projectRoot(), 'test', 'openrtb', 'ruleset.yaml'), 1, NOW);
  const ortb = new DecisionService(store, ortbRules, { deadlineMs: 50, now: () => NOW });
  const bidder = new Bidder({ service: ortb, store, config: CONFIG, clock: () => NOW });

  const people = Array.from({ length: POOL }, (_, k) => (k * 7919) % PEOPLE);
  const decideBodies = people.map((i) => Buffer.from(bodyFor(i, 'json', 1)));
  const bidBodies = people.map((i) => Buffer.from(bidRequestFor(i)));

  const decideOnce = async (k: number) => {
    const outcome = await demo.decide(parseDecideBody(decideBodies[k & (POOL - 1)]!, 'json'));
    return JSON.stringify(outcome.output);
  };
  const bidOnce = async (k: number) => {
    const answer: BidAnswer = await bidder.bid(
      parseBidRequest(bidBodies[k & (POOL - 1)]!),
      performance.now(),
    );
    return answer.status === 200 ? answer.text : '';
  };
  let bids = 0;
  let filled = 0;
  for (let k = 0; k < POOL; k++) {
    if ((await bidOnce(k)) !== '') bids++;
    if (JSON.parse(await decideOnce(k)).decisions[0]?.campaign != null) filled++;
  }
  const sample = await bidOnce(people.findIndex((_, k) => k >= 0));
  const ids = new BidIds(CONFIG.secret);
  const claims = {
    pid: 'p-1234',
    campaign: 'shoes-banner',
    creative: 'shoes-300x250',
    imp: '1',
    price: 1.5,
    currency: 'USD',
    expiresAt: NOW + 3_600_000,
    channel: 'display',
  };
  const oneId = ids.issue(claims);

  console.log(
    `${PEOPLE} people with aliases in an EmbeddedStore, ${POOL} rotating, cache misses; the load run's bodies: ${bids}/${POOL} bid requests bid, ${filled}/${POOL} decisions filled\n`,
  );
  console.log(HEAD);
  const rows: Row[] = [];
  let k = 0;
  rows.push(await bench('decide by id (parse, decide, answer text)', () => decideOnce(k++)));
  rows.push(await bench('bid by cookie alias (parse, bid, answer text)', () => bidOnce(k++)));
  rows.push(
    await bench('  parse and check the BidRequest', () => parseBidRequest(bidBodies[k++ & (POOL - 1)]!)),
  );
  rows.push(await bench('  issue a sealed bid id', () => ids.issue(claims)));
  rows.push(await bench('  read a sealed bid id', () => ids.read(oneId, NOW)));
  const ctrIds = new BidIds(CONFIG.secret, 'aes-ctr');
  rows.push(await bench('  issue a bid id of the AES-CTR form', () => ctrIds.issue(claims)));
  // The ratio from rounds that alternate the two (a block of each per round), so that whatever
  // else the machine does falls on both alike: the median of the rounds' ratios.
  const rounds: Array<{ decideNs: number; bidNs: number }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const block = async (once: (k: number) => Promise<string>) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < BLOCK; i++) await once(k++);
      return Number(process.hrtime.bigint() - t0) / BLOCK;
    };
    rounds.push({ decideNs: await block(decideOnce), bidNs: await block(bidOnce) });
  }
  const alternated = {
    decideNs: median(rounds.map((x) => x.decideNs))!,
    bidNs: median(rounds.map((x) => x.bidNs))!,
    ratio: median(rounds.map((x) => x.bidNs / x.decideNs))!,
  };
  console.log(
    `\n${ROUNDS} alternating rounds of ${BLOCK} each: decide ${time(alternated.decideNs)}, bid ${time(alternated.bidNs)} (medians)`,
  );
  const ratios = {
    'bid / decide (alternating rounds, median of the rounds)': alternated.ratio,
    'bid / decide (mitata medians)': rows[1]!.medianNs / rows[0]!.medianNs,
    'bid id: AES-CTR form / XChaCha20 form': rows[5]!.medianNs / rows[3]!.medianNs,
  };
  printRatios(ratios, 58);
  writeResults('openrtb', {
    workload: {
      people: PEOPLE,
      pool: POOL,
      ruleSets: ['rules/examples/demo.yaml', 'test/openrtb/ruleset.yaml'],
      bids,
      filled,
      answerBytes: sample.length,
    },
    results: rows,
    alternated: { rounds: ROUNDS, block: BLOCK, ...alternated },
    ratios,
  });
}

await main();
