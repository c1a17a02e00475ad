/**
 * Properties of the compiled evaluator and of decide(), over random rule sets and people.
 *
 * The key property: the indexed evaluator (segments filed under guard keys, closures over typed
 * arrays) matches exactly the segments a plain tree-walking interpreter (rules/test/reference.ts)
 * matches, for every rule set and every person, odd ones included. The rest check that every
 * answer of decide() is one the rules allow, that it is deterministic and that it never throws.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileRuleSet, compileRuleSetInSlices } from './compile.js';
import { decide } from './decide.js';
import {
  affinity,
  creativeChannels,
  fittingCreatives,
  isKnownZone,
  localHour,
  localMinute,
  personZone,
  quietWindow,
  referenceChecks,
  referenceMatch,
  sellingPointScore,
  surelyDeliverable,
} from './test/reference.js';
import type {
  Campaign,
  Channel,
  Condition,
  Creative,
  DecisionRequest,
  FilledDecision,
  FrequencyCounters,
  Placement,
  Profile,
  RuleSet,
  Scalar,
  Segment,
} from './types.js';
import { CHANNELS, MESSAGE_TYPES, PUSH_CHANNELS } from './types.js';
import { validateRuleSet } from './validate.js';

/** Fixed so that runs repeat; set PROPERTY_SEED to explore other inputs. */
const SEED = Number(process.env.PROPERTY_SEED ?? 20261111);
const RUNS = 1000;

// ---- vocabulary: small, so that people match often ------------------------------------------

const TAGS = [
  'circle:business',
  'circle:gamer',
  'circle:parent',
  'group:g1',
  'group:g2',
  'scene:commute',
  'status:churned',
  'a',
  'ab',
  'abc',
];
const PREFIXES = ['circle:*', 'group:*', 'a*', 'ab*', 'abc*', 'abcd*', 'circle:bus*', 'scene:commute*', '*'];
const ATTRS = ['price_band', 'age', 'city', 'vip', 'toString'];
const BRANDS = ['vivo', 'apple', 'joymall', 'constructor'];
const LADDERS: readonly string[][] = [
  ['aware', 'appeal', 'act', 'advocate'],
  ['awareness', 'interest', 'purchase', 'loyalty'],
  ['seen'],
  ['target', 'penetration', 'value'],
];
const LABELS = ['camera', 'chip', 'screen', 'price', 'eye-care'];
const FORMATS = ['banner', 'square', 'video-16x9'];
/** Zones without daylight saving (flights without an offset are read in these). */
const FIXED_ZONES = ['UTC', 'Asia/Shanghai', 'Asia/Kolkata', 'Asia/Kathmandu'];
const ZONES = [...FIXED_ZONES, 'America/New_York', 'Australia/Adelaide', 'Europe/London'];

const DAY = 86_400_000;
/** Around the end of daylight saving in New York (2026-11-01T06:00Z), so send times cross it. */
const BASE = Date.UTC(2026, 10, 1, 4, 30);

const numberValue = fc.oneof(
  fc.constantFrom(0, 1, 18, 30, 31, 4000, 5000, -1, 2.5),
  fc.integer({ min: -10, max: 6000 }),
);
const stringValue = fc.constantFrom('shanghai', 'beijing', '5000', '', 'x');
const scalarValue: fc.Arbitrary<Scalar> = fc.oneof(numberValue, stringValue, fc.boolean());

// ---- conditions --------------------------------------------------------------------------------

const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'between'] as const;

/**
 * One to three comparison operators with their operands. Valid rule sets have a non-empty `in`
 * and a `between` whose low end comes first (`order`); lenient ones may have neither.
 */
function compareOps<T>(
  value: fc.Arbitrary<T>,
  ordered: fc.Arbitrary<T>,
  order: (a: T, b: T) => number,
  lenient: boolean,
): fc.Arbitrary<Record<string, unknown>> {
  const operand: Record<(typeof OPERATORS)[number], fc.Arbitrary<unknown>> = {
    eq: value,
    ne: value,
    gt: ordered,
    gte: ordered,
    lt: ordered,
    lte: ordered,
    in: fc.array(value, { minLength: lenient ? 0 : 1, maxLength: 10 }),
    between: fc.tuple(ordered, ordered).map((b) => (lenient ? b : b.sort(order))),
  };
  return fc
    .subarray([...OPERATORS], { minLength: 1, maxLength: 3 })
    .chain((ops) => fc.tuple(...ops.map((op) => operand[op].map((v) => [op, v] as const))))
    .map((pairs) => Object.fromEntries(pairs));
}

/** A marker for a reference to another segment; resolved once all segments exist. */
interface RefMarker {
  ref: number;
}

function leaf(funnel: readonly string[], lenient: boolean): fc.Arbitrary<Condition | RefMarker> {
  const stageName = fc.constantFrom(...funnel);
  const byNumber = (a: number, b: number) => a - b;
  const byLadder = (a: string, b: string) => funnel.indexOf(a) - funnel.indexOf(b);
  // Ordered comparisons of an attribute take numbers; lenient rule sets sometimes give strings.
  const orderedAttr: fc.Arbitrary<Scalar> = lenient
    ? fc.oneof({ weight: 5, arbitrary: numberValue }, stringValue)
    : numberValue;
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...TAGS).map((tag) => ({ tag })) },
    { weight: 2, arbitrary: fc.constantFrom(...PREFIXES).map((tag) => ({ tag })) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...ATTRS),
          compareOps(scalarValue, orderedAttr, (a, b) => byNumber(a as number, b as number), lenient),
        )
        .map(([attr, ops]) => ({ attr, ...ops }) as Condition),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...BRANDS), compareOps(numberValue, numberValue, byNumber, lenient))
        .map(([clv, ops]) => ({ clv, ...ops }) as Condition),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...BRANDS), compareOps(stageName, stageName, byLadder, lenient))
        .map(([stage, ops]) => ({ stage, ...ops }) as Condition),
    },
    { weight: 2, arbitrary: fc.nat({ max: 9 }).map((ref) => ({ ref })) },
  );
}

function condition(funnel: readonly string[], lenient: boolean): fc.Arbitrary<Condition | RefMarker> {
  const leaves = leaf(funnel, lenient);
  const memo: fc.Memo<Condition | RefMarker> = fc.memo((n) => {
    if (n <= 1) return leaves;
    const inner = memo(n - 1);
    const combinators = fc
      .record(
        { all: fc.array(inner, { maxLength: 3 }), any: fc.array(inner, { maxLength: 3 }), not: inner },
        { requiredKeys: [] },
      )
      .filter((o) => lenient || Object.keys(o).length > 0)
      .map((o) => o as Condition);
    return fc.oneof({ weight: 2, arbitrary: leaves }, { weight: 3, arbitrary: combinators });
  });
  return memo(4);
}

/** Replaces reference markers: segment `i` may refer to the segments before it in `order`. */
function resolveRefs(c: Condition | RefMarker, allowed: readonly string[]): Condition {
  if ('ref' in c) {
    const id = allowed.length === 0 ? undefined : allowed[c.ref % allowed.length];
    return id === undefined ? { tag: 'a' } : { segment: id };
  }
  const o = { ...(c as Record<string, unknown>) };
  if (Array.isArray(o.all)) o.all = o.all.map((x: Condition | RefMarker) => resolveRefs(x, allowed));
  if (Array.isArray(o.any)) o.any = o.any.map((x: Condition | RefMarker) => resolveRefs(x, allowed));
  if (o.not !== undefined) o.not = resolveRefs(o.not as Condition | RefMarker, allowed);
  return o as Condition;
}

// ---- campaigns -------------------------------------------------------------------------------

function isoAt(t: number, zoneStyle: number): { text: string; timezone?: string } {
  const pad = (n: number) => String(n).padStart(2, '0');
  const wall = (ms: number) => {
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  };
  switch (zoneStyle % 4) {
    case 0:
      return { text: `${wall(t)}Z` };
    case 1:
      return { text: `${wall(t + 8 * 3_600_000)}+08:00` };
    case 2:
      return { text: `${wall(t - 5.5 * 3_600_000)}-05:30` };
    default:
      // No offset: wall-clock time in Asia/Shanghai (always +08:00).
      return { text: wall(t + 8 * 3_600_000), timezone: 'Asia/Shanghai' };
  }
}

const flight = fc
  .record({
    start: fc.option(fc.integer({ min: -10 * 1440, max: 4 * 1440 }), { nil: undefined }),
    length: fc.option(fc.integer({ min: 1, max: 15 * 1440 }), { nil: undefined }),
    style: fc.nat({ max: 3 }),
  })
  .map(({ start, length, style }) => {
    const f: NonNullable<Campaign['flight']> = {};
    const s = BASE + (start ?? -2 * 1440) * 60_000;
    if (start !== undefined) {
      const a = isoAt(s, style);
      f.start = a.text;
      if (a.timezone !== undefined) f.timezone = a.timezone;
    }
    if (length !== undefined) {
      const b = isoAt(s + length * 60_000, style);
      f.end = b.text;
      if (b.timezone !== undefined) f.timezone = b.timezone;
    }
    return f;
  });

const clock = fc
  .tuple(fc.nat({ max: 23 }), fc.constantFrom(0, 15, 30, 45))
  .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
const quietHours = fc
  .tuple(clock, clock)
  .filter(([a, b]) => a !== b)
  .map(([a, b]) => `${a}-${b}`);

function creative(funnel: readonly string[], id: string): fc.Arbitrary<Creative> {
  return fc
    .record(
      {
        message: fc.constantFrom(...MESSAGE_TYPES),
        sellingPoints: fc.subarray(LABELS),
        stages: fc.subarray([...funnel], { minLength: 1 }),
        channels: fc.subarray([...CHANNELS], { minLength: 1 }),
        formats: fc.subarray(FORMATS),
        weight: fc.constantFrom(0.5, 1, 3),
      },
      { requiredKeys: ['message'] },
    )
    .map((c) => ({ id, ...c }));
}

function campaign(
  funnel: readonly string[],
  segmentIds: readonly string[],
  id: string,
  lenient: boolean,
): fc.Arbitrary<Campaign> {
  return fc
    .record(
      {
        brand: fc.constantFrom(...BRANDS),
        // Now and then a campaign for everyone (no segments) or for every channel.
        segments: fc.option(
          fc.shuffledSubarray([...segmentIds], {
            minLength: 1,
            maxLength: Math.min(3, segmentIds.length),
          }),
          { nil: undefined, freq: 6 },
        ),
        channels: fc.option(fc.subarray([...CHANNELS], { minLength: 1 }), { nil: undefined, freq: 6 }),
        creatives: fc
          .integer({ min: 1, max: 3 })
          .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => creative(funnel, `${id}-k${i}`)))),
        stages: fc.option(fc.subarray([...funnel], { minLength: 1 }), { nil: undefined }),
        priority: fc.option(fc.nat({ max: 2 }), { nil: undefined }),
        weight: fc.option(fc.constantFrom(0.5, 1, 2), { nil: undefined }),
        flight: fc.option(flight, { nil: undefined }),
        frequencyCap: fc.option(
          fc.array(
            fc
              .record({
                max: fc.integer({ min: 1, max: 3 }),
                per: fc.constantFrom('30m', '1h', '12h', '1d', '7d', 'day', 'week'),
                zone: fc.constantFrom<'campaign' | 'person' | undefined>(undefined, 'campaign', 'person'),
              })
              .map(({ max, per, zone }) =>
                // A zone belongs to a calendar cap only.
                zone === undefined || (per !== 'day' && per !== 'week') ? { max, per } : { max, per, zone },
              ),
            { minLength: 1, maxLength: 2 },
          ),
          { nil: undefined },
        ),
        timing: fc.option(
          fc.record({ timezone: fc.constantFrom(...ZONES), quietHours: quietHours }, { requiredKeys: [] }),
          { nil: undefined },
        ),
        holdout: fc.option(fc.constantFrom(0, 0.1, 0.5), { nil: undefined }),
      },
      { requiredKeys: ['brand', 'segments', 'channels', 'creatives'] }, // present, possibly undefined
    )
    .map((c) => {
      const out: Campaign = { id, ...c, creatives: [...c.creatives] };
      for (const k of Object.keys(out) as (keyof Campaign)[]) if (out[k] === undefined) delete out[k];
      if (!lenient) {
        // A creative names only stages and channels its campaign serves.
        out.creatives = out.creatives.map((cr) => {
          const fixed: Creative = { ...cr };
          if (fixed.stages !== undefined && out.stages !== undefined) {
            fixed.stages = fixed.stages.filter((st) => out.stages!.includes(st));
            if (fixed.stages.length === 0) delete fixed.stages;
          }
          if (fixed.channels !== undefined) {
            fixed.channels = fixed.channels.filter(
              (ch) => out.channels === undefined || out.channels.includes(ch),
            );
            if (fixed.channels.length === 0) delete fixed.channels;
          }
          return fixed;
        });
      }
      return out;
    });
}

// ---- rule sets -------------------------------------------------------------------------------

/**
 * Random rule sets: valid ones, or lenient ones that also hold what validation rejects but the
 * compiler still has to give a meaning (empty `in`, strings in ordered comparisons, backwards
 * `between`, creatives naming stages or channels their campaign does not serve).
 */
function ruleSets(lenient: boolean): fc.Arbitrary<RuleSet> {
  return fc
    .record({
      funnel: fc.constantFrom(...LADDERS),
      defaultAt: fc.option(fc.nat({ max: 3 }), { nil: undefined }),
    })
    .chain(({ funnel, defaultAt }) =>
      fc.integer({ min: 1, max: 10 }).chain((n) => {
        const ids = Array.from({ length: n }, (_, i) => `s${i}`);
        return fc
          .record({
            conditions: fc.array(condition(funnel, lenient), { minLength: n, maxLength: n }),
            /** evaluation order of the segments: a segment refers only to those before it here */
            order: fc.shuffledSubarray(ids, { minLength: n, maxLength: n }),
            reverse: fc.boolean(),
            sellingPoints: fc.dictionary(
              fc.constantFrom(...ids),
              fc.shuffledSubarray(LABELS, { maxLength: 4 }),
            ),
            campaigns: fc
              .integer({ min: 1, max: 6 })
              .chain((m) =>
                fc.tuple(
                  ...Array.from({ length: m }, (_, i) =>
                    campaign(funnel, [...ids, 'wide'], `c${i}`, lenient),
                  ),
                ),
              ),
            scoring: fc.option(
              fc.record(
                {
                  clv: fc.constantFrom(0, 1, 2),
                  clvScale: fc.constantFrom(100, 1000),
                  sellingPoints: fc.constantFrom(0, 1, 3),
                  affinity: fc.constantFrom(0, 1, 2),
                },
                { requiredKeys: [] },
              ),
              { nil: undefined },
            ),
          })
          .map(({ conditions, order, reverse, sellingPoints, campaigns, scoring }) => {
            const segments: Segment[] = order.map((id, rank) => ({
              id,
              when: resolveRefs(conditions[rank]!, order.slice(0, rank)),
            }));
            // Rule-set order differs from the reference order half the time: forward references.
            if (reverse) segments.reverse();
            // A crowd most people are in, so that campaigns get to the later checks often.
            segments.push({ id: 'wide', when: { any: [{ tag: '*' }, { not: { tag: 'status:churned' } }] } });
            const rs: RuleSet = { funnel: [...funnel], segments, sellingPoints, campaigns: [...campaigns] };
            if (defaultAt !== undefined && funnel[defaultAt] !== undefined)
              rs.defaultStage = funnel[defaultAt];
            // Now and then a brand with a default stage of its own (the last of the ladder); `constructor`,
            // a brand of the generator, is never a key (keys named so are refused).
            if (reverse && campaigns.length > 1)
              rs.defaultStages = { [BRANDS[campaigns.length % 3]!]: funnel.at(-1)! };
            if (scoring !== undefined) rs.scoring = scoring;
            return rs;
          });
      }),
    );
}
const ruleSetArb = ruleSets(false);
const lenientRuleSetArb = ruleSets(true);

// ---- people ----------------------------------------------------------------------------------

/** Values that have no business in a profile but may arrive there. */
const oddValue = fc.constantFrom<unknown>(null, [1], { nested: 1 }, Number.NaN, undefined, '');

const profileArb: fc.Arbitrary<Profile> = fc
  .record(
    {
      id: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom<unknown>(7, null)),
      tags: fc.oneof(
        {
          weight: 8,
          arbitrary: fc.array(
            fc.oneof(
              { weight: 6, arbitrary: fc.constantFrom(...TAGS, 'abcd', 'circle:', 'x', '') },
              oddValue,
            ),
            { maxLength: 8 },
          ),
        },
        { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, null, 'circle:business', 42) },
      ),
      stages: fc.oneof(
        fc.dictionary(
          fc.constantFrom(...BRANDS),
          fc.oneof(fc.constantFrom(...LADDERS.flat(), 'lurking', ''), oddValue, fc.constant(3)),
        ),
        oddValue,
      ),
      clv: fc.oneof(
        fc.dictionary(
          fc.constantFrom(...BRANDS),
          fc.oneof(numberValue, fc.double({ noNaN: true }), oddValue, stringValue),
        ),
        oddValue,
      ),
      attrs: fc.oneof(
        {
          weight: 5,
          arbitrary: fc.dictionary(fc.constantFrom(...ATTRS, 'income'), fc.oneof(scalarValue, oddValue)),
        },
        { weight: 1, arbitrary: oddValue },
      ),
      channels: fc.oneof(
        fc.dictionary(
          fc.constantFrom<string>(...CHANNELS),
          fc.oneof(fc.double({ min: 0, max: 1.5, noNaN: true }), fc.constantFrom<unknown>(-1, 'high', null)),
        ),
        oddValue,
      ),
      activeHours: fc.oneof(fc.array(fc.integer({ min: -2, max: 25 }), { maxLength: 6 }), oddValue),
      timezone: fc.oneof(fc.constantFrom<unknown>(...ZONES, 'Mars/Olympus', ''), oddValue),
    },
    { requiredKeys: ['id', 'tags'] },
  )
  .map((p) => p as unknown as Profile);

const contextArb = fc.option(
  fc.array(fc.constantFrom<unknown>(...TAGS, 'scene:park', 'zz', 5, null)).map((a) => a as string[]),
  { nil: undefined },
);

const placementsArb: fc.Arbitrary<Placement[]> = fc
  .array(
    fc.record(
      { channels: fc.subarray([...CHANNELS], { minLength: 1 }), formats: fc.subarray(FORMATS) },
      { requiredKeys: [] },
    ),
    { minLength: 1, maxLength: 3 },
  )
  .map((ps) => ps.map((p, i) => ({ id: `p${i}`, ...p })));

const nowArb = fc.integer({ min: BASE - 3 * DAY, max: BASE + 3 * DAY });

/** Impression times per campaign, as ages relative to now. */
const countersArb = fc.dictionary(
  fc.constantFrom('c0', 'c1', 'c2', 'c3', 'c4', 'c5'),
  fc.array(fc.oneof(fc.integer({ min: 0, max: 9 * DAY }), fc.constantFrom<unknown>('x', null)), {
    maxLength: 5,
  }),
);
function countersAt(ages: Record<string, unknown[]>, now: number): FrequencyCounters {
  const out: Record<string, unknown[]> = {};
  for (const [k, v] of Object.entries(ages)) out[k] = v.map((a) => (typeof a === 'number' ? now - a : a));
  return out as unknown as FrequencyCounters;
}

const scenarioArb = fc.record({
  ruleSet: ruleSetArb,
  profile: profileArb,
  contextTags: contextArb,
  placements: placementsArb,
  now: nowArb,
  ages: countersArb,
});

function requestOf(
  placements: Placement[],
  contextTags: string[] | undefined,
  explain = false,
): DecisionRequest {
  const r: DecisionRequest = { placements };
  if (contextTags !== undefined) r.contextTags = contextTags;
  if (explain) r.explain = true;
  return r;
}

const params = { seed: SEED, numRuns: RUNS };

// ---- the generator ---------------------------------------------------------------------------------

describe('the rule-set generator', () => {
  it('makes rule sets that pass validation', () => {
    fc.assert(
      fc.property(ruleSetArb, (rs) => {
        const v = validateRuleSet(rs);
        expect(v.ok ? [] : v.errors).toEqual([]);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

// ---- (a) the indexed evaluator agrees with the interpreter -------------------------------------

describe('matchSegments agrees with the reference interpreter', () => {
  it('for random rule sets and people', () => {
    fc.assert(
      fc.property(
        ruleSetArb,
        fc.array(profileArb, { minLength: 1, maxLength: 4 }),
        contextArb,
        (rs, people, ctx) => {
          const compiled = compileRuleSet(rs);
          // Several people in a row through one compiled set: scratch state must not leak.
          for (const p of people) expect(compiled.matchSegments(p, ctx)).toEqual(referenceMatch(rs, p, ctx));
          // And again, now with the prepared-profile cache warm.
          for (const p of people) expect(compiled.matchSegments(p, ctx)).toEqual(referenceMatch(rs, p, ctx));
          expect(compiled.matchSegments(people[0]!)).toEqual(referenceMatch(rs, people[0]!));
        },
      ),
      { ...params, numRuns: 1500 },
    );
  });

  it('compiled in slices, as a deciding thread compiles an activation', async () => {
    await fc.assert(
      fc.asyncProperty(
        ruleSetArb,
        fc.array(profileArb, { minLength: 1, maxLength: 4 }),
        contextArb,
        async (rs, people, ctx) => {
          const compiled = await compileRuleSetInSlices(rs, 0);
          for (const p of people) expect(compiled.matchSegments(p, ctx)).toEqual(referenceMatch(rs, p, ctx));
        },
      ),
      { ...params, numRuns: 300 },
    );
  });

  it('for rule sets validation would reject, too', () => {
    fc.assert(
      fc.property(
        lenientRuleSetArb,
        fc.array(profileArb, { minLength: 1, maxLength: 3 }),
        contextArb,
        (rs, people, ctx) => {
          const compiled = compileRuleSet(rs);
          for (const p of people) expect(compiled.matchSegments(p, ctx)).toEqual(referenceMatch(rs, p, ctx));
        },
      ),
      { ...params, numRuns: 500 },
    );
  });

  it('also when the evaluation counter wraps around', () => {
    fc.assert(
      fc.property(
        ruleSetArb,
        fc.array(profileArb, { minLength: 1, maxLength: 3 }),
        contextArb,
        (rs, people, ctx) => {
          const compiled = compileRuleSet(rs);
          for (const p of people) compiled.matchSegments(p, ctx);
          // The evaluation state stamps keys and segments with a counter that restarts near 2^30.
          const state = (compiled.evaluator as unknown as { state: { epoch: number } }).state;
          state.epoch = 0x3fffffff - 2;
          for (let round = 0; round < 3; round++)
            for (const p of people)
              expect(compiled.matchSegments(p, ctx)).toEqual(referenceMatch(rs, p, ctx));
        },
      ),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('matches something often enough for the property to mean something', () => {
    let some = 0;
    let total = 0;
    fc.assert(
      fc.property(ruleSetArb, profileArb, (rs, p) => {
        total += rs.segments.length;
        some += referenceMatch(rs, p).length;
      }),
      { seed: SEED, numRuns: 300 },
    );
    expect(some / total).toBeGreaterThan(0.1);
    expect(some / total).toBeLessThan(0.9);
  });
});

// ---- (b) determinism -----------------------------------------------------------------------------

describe('decide() is deterministic', () => {
  it('same inputs, same answer, across calls and compilations', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        profileArb,
        ({ ruleSet, profile, contextTags, placements, now, ages }, other) => {
          const counters = countersAt(ages, now);
          const request = requestOf(placements, contextTags);
          const a = compileRuleSet(ruleSet);
          const b = compileRuleSet(structuredClone(ruleSet));
          const first = decide(a, profile, counters, request, now);
          decide(a, other, {}, requestOf(placements, undefined), now);
          expect(decide(a, profile, counters, request, now)).toEqual(first);
          expect(decide(b, { ...profile }, counters, request, now)).toEqual(first);
          // explain adds the explanation and changes nothing else
          const explained = decide(a, profile, counters, requestOf(placements, contextTags, true), now);
          expect(explained.decisions).toEqual(first.decisions);
        },
      ),
      params,
    );
  });
});

// ---- (c), (d) shape and legality ---------------------------------------------------------------

function checkDecisions(
  rs: RuleSet,
  profile: Profile,
  counters: FrequencyCounters,
  placements: Placement[],
  contextTags: string[] | undefined,
  now: number,
): void {
  const result = decide(compileRuleSet(rs), profile, counters, requestOf(placements, contextTags, true), now);
  const checks = new Map(
    referenceChecks(rs, profile, counters, now, contextTags).map((c) => [c.campaign.id, c]),
  );

  // (c) one answer per placement, in request order; a campaign fills at most one placement
  expect(result.decisions.map((d) => d.placement)).toEqual(placements.map((p) => p.id));
  const used = new Set<string>();
  // Ghosts: campaigns held out for this person, each once, set aside for the whole request.
  const held = new Set<string>();
  for (const g of result.ghosts ?? []) {
    expect(held.has(g.campaign)).toBe(false);
    held.add(g.campaign);
    const c = rs.campaigns.find((x) => x.id === g.campaign)!;
    expect(c.holdout ?? 0).toBeGreaterThan(0);
    expect(checks.get(c.id)!.failure).toBeNull();
    expect(c.creatives.map((x) => x.id)).toContain(g.creative);
    expect(placements.map((p) => p.id)).toContain(g.placement);
  }

  result.decisions.forEach((d, i) => {
    const placement = placements[i]!;
    // Campaigns that surely could fill this placement: it may not go empty, nor to a lower priority.
    const sure = rs.campaigns.filter((c) => {
      const k = checks.get(c.id)!;
      return (
        k.failure === null && !used.has(c.id) && !held.has(c.id) && surelyDeliverable(c, k.stage, placement)
      );
    });
    if (d.campaign === null) {
      expect(sure.map((c) => c.id)).toEqual([]);
      return;
    }
    const f = d as FilledDecision;
    expect(used.has(f.campaign)).toBe(false);
    expect(held.has(f.campaign)).toBe(false);
    used.add(f.campaign);
    const c = rs.campaigns.find((x) => x.id === f.campaign)!;
    const k = checks.get(c.id)!;
    for (const s of sure) expect(c.priority ?? 0).toBeGreaterThanOrEqual(s.priority ?? 0);

    // (d) the person is in the segment, at a stage the campaign serves, inside the flight, under caps
    expect(k.failure).toBeNull();
    expect(f.segment).toBe(k.segment);
    expect(f.stage).toBe(k.stage);
    expect(f.brand).toBe(c.brand);
    const sendAt = Date.parse(f.sendAt);
    expect(sendAt).toBeGreaterThanOrEqual(now);
    expect(sendAt).toBeLessThanOrEqual(k.flightEnd);
    expect(c.channels ?? CHANNELS).toContain(f.channel);
    if (placement.channels !== undefined) expect(placement.channels).toContain(f.channel);

    {
      const fit = fittingCreatives(c, k.stage, placement);
      const cr = fit.find((x) => x.id === f.creative);
      expect(cr, `creative ${f.creative} fits stage, channels and formats`).toBeDefined();
      if (cr === undefined) return;
      const allowed = creativeChannels(c, cr, placement);
      expect(allowed).toContain(f.channel);
      expect(f.message).toBe(cr.message);
      // best selling-point match among the creatives that fit
      const labels = rs.sellingPoints?.[f.segment] ?? [];
      const best = Math.max(...fit.map((x) => sellingPointScore(labels, x)));
      expect(sellingPointScore(labels, cr)).toBe(best);
      expect(f.sellingPoints).toEqual(labels.filter((l) => (cr.sellingPoints ?? []).includes(l)));
      // the channel: no real-time channel allowed is preferred over it
      const a = affinity(profile, f.channel);
      for (const r of allowed) {
        if (PUSH_CHANNELS.includes(r) || r === f.channel) continue;
        const b = affinity(profile, r);
        expect(a > b || (a === b && CHANNELS.indexOf(f.channel) < CHANNELS.indexOf(r))).toBe(true);
      }
    }

    // right time
    if (PUSH_CHANNELS.includes(f.channel as Channel)) {
      const zone = personZone(profile, c);
      expect(isKnownZone(zone)).toBe(true);
      const hours: unknown = profile.activeHours;
      const valid = Array.isArray(hours)
        ? hours.filter((h) => typeof h === 'number' && Number.isInteger(h) && h >= 0 && h < 24)
        : [];
      if (valid.length > 0) expect(valid).toContain(localHour(sendAt, zone));
      const q = quietWindow(c.timing?.quietHours);
      if (q !== null) {
        const m = localMinute(sendAt, c.timing?.timezone ?? 'UTC');
        const quiet = q.start < q.end ? m >= q.start && m < q.end : m >= q.start || m < q.end;
        expect(quiet, `sendAt ${f.sendAt} minute ${m} in quiet hours ${c.timing?.quietHours}`).toBe(false);
      }
    } else {
      expect(sendAt).toBe(now);
    }
  });

  // explain: the first failing check of every campaign, and the chosen ones
  const explain = result.explain!;
  expect(explain.segments).toEqual(referenceMatch(rs, profile, contextTags));
  for (const e of explain.campaigns) {
    const k = checks.get(e.campaign)!;
    if (k.failure !== null) {
      expect(e.status).toBe('dropped');
      expect(e.reason).toBe(k.failure);
    }
    const d = result.decisions.find((x) => x.campaign === e.campaign) as FilledDecision | undefined;
    if (held.has(e.campaign)) expect(e).toMatchObject({ status: 'dropped', reason: 'holdout' });
    else if (d === undefined) expect(e.status).toBe('dropped');
    else expect(e.status).toBe('chosen');
  }
}

describe('every decision is legal', () => {
  it('answers each placement once, in order, with what the rules allow', () => {
    fc.assert(
      fc.property(scenarioArb, ({ ruleSet, profile, contextTags, placements, now, ages }) => {
        checkDecisions(ruleSet, profile, countersAt(ages, now), placements, contextTags, now);
      }),
      params,
    );
  });

  it('fills placements often enough for the property to mean something', () => {
    let filled = 0;
    let total = 0;
    fc.assert(
      fc.property(scenarioArb, ({ ruleSet, profile, contextTags, placements, now, ages }) => {
        const r = decide(
          compileRuleSet(ruleSet),
          profile,
          countersAt(ages, now),
          requestOf(placements, contextTags),
          now,
        );
        total += r.decisions.length;
        filled += r.decisions.filter((d) => d.campaign !== null).length;
      }),
      { seed: SEED, numRuns: 300 },
    );
    expect(filled / total).toBeGreaterThan(0.05);
  });
});

// ---- (e) odd people never make decide() throw ---------------------------------------------------

const strangeProfile = fc
  .record({
    id: fc.constantFrom<unknown>(undefined, 12, {}, 'ok'),
    tags: fc.constantFrom<unknown>(undefined, null, 'circle:business', { 0: 'a' }, [null, 3, 'a', ['a']]),
    stages: fc.constantFrom<unknown>(undefined, null, 'vivo', [], { vivo: 1 }, { vivo: { x: 1 } }),
    clv: fc.constantFrom<unknown>(
      undefined,
      null,
      5,
      ['x'],
      { vivo: '1000' },
      { vivo: Number.POSITIVE_INFINITY },
    ),
    attrs: fc.constantFrom<unknown>(undefined, null, 'age', [30], { age: [30] }, { age: Number.NaN }),
    channels: fc.constantFrom<unknown>(undefined, null, 'email', { email: '1' }, { sms: Number.NaN }),
    activeHours: fc.constantFrom<unknown>(undefined, null, 'all', [25, -1, 1.5], [Number.NaN], {}),
    timezone: fc.constantFrom<unknown>(undefined, null, 5, 'Nowhere/None', 'Asia/Shanghai'),
  })
  .map((p) => p as unknown as Profile);

describe('odd people', () => {
  it('never make decide() throw, and still get legal answers', () => {
    fc.assert(
      fc.property(scenarioArb, strangeProfile, ({ ruleSet, contextTags, placements, now, ages }, profile) => {
        const counters = countersAt(ages, now);
        const compiled = compileRuleSet(ruleSet);
        expect(() =>
          decide(compiled, profile, counters, requestOf(placements, contextTags, true), now),
        ).not.toThrow();
        expect(compiled.matchSegments(profile, contextTags)).toEqual(
          referenceMatch(ruleSet, profile, contextTags),
        );
        checkDecisions(ruleSet, profile, counters, placements, contextTags, now);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('odd counters are ignored, not errors', () => {
    fc.assert(
      fc.property(scenarioArb, ({ ruleSet, profile, placements, now }) => {
        const compiled = compileRuleSet(ruleSet);
        const counters = {
          c0: null,
          c1: 'x',
          c2: { length: 3 },
          c3: [now, 'y', null],
        } as unknown as FrequencyCounters;
        expect(() =>
          decide(compiled, profile, counters, requestOf(placements, undefined, true), now),
        ).not.toThrow();
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});
