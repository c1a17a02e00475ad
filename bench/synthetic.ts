/**
 * A deterministic synthetic workload for the rule-evaluation benchmark: a rule set of N brand
 * strategy crowds over a vocabulary of about 5,000 tags, 200 campaigns over those crowds, and
 * people with about 30 tags each plus attributes, stages and CLVs. The same crowds are also
 * written for json-logic-js and json-rules-engine, condition for condition, so that the three
 * evaluators answer the same question.
 *
 * Crowds look like what brands build: a tag AND (another tag OR an attribute comparison), some
 * with a CLV or stage clause instead, some starting from a tag prefix, a fifth excluding people
 * with `not`. Tag popularity is skewed (a few tags are common, most are rare), for people and,
 * more mildly, for the tags crowds start from. Thresholds are at least 1, so that json-logic's
 * `null >= 0` (true) never meets a missing value.
 */
import type { RulesLogic } from 'json-logic-js';
import type { NestedCondition, RuleProperties, TopLevelCondition } from 'json-rules-engine';
import type {
  Campaign,
  Channel,
  Condition,
  Creative,
  FrequencyCounters,
  Profile,
  RuleSet,
} from '../rules/types.js';

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same workload. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FUNNEL = ['aware', 'appeal', 'act', 'advocate'];
export const BRANDS = Array.from({ length: 40 }, (_, i) => `brand${i}`);
const LABELS = ['camera', 'chip', 'screen', 'battery', 'price', 'design', 'eye-care', 'content', 'service'];

/** Tag families and their sizes; about 5,000 tags in all. */
const FAMILIES: readonly [string, number][] = [
  ['age:', 8],
  ['gender:', 2],
  ['city-tier:', 5],
  ['group:g', 10],
  ['circle:c', 200],
  ['scene:s', 60],
  ['category:k', 600],
  ['brand-fan:b', 400],
  ['interest:i', 2000],
  ['geo:city', 1200],
  ['flag:f', 515],
];

export interface Vocabulary {
  readonly tags: readonly string[];
  /** Cumulative popularity weights, for drawing tags by popularity. */
  readonly cumulative: Float64Array;
  /** Tag families that prefixes are drawn from, with the prefix of each. */
  readonly prefixes: readonly string[];
}

export function vocabulary(): Vocabulary {
  const tags: string[] = [];
  for (const [family, n] of FAMILIES) for (let i = 0; i < n; i++) tags.push(`${family}${i}`);
  // Shuffle deterministically so that popularity does not follow families.
  const rnd = prng(7);
  for (let i = tags.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [tags[i], tags[j]] = [tags[j]!, tags[i]!];
  }
  const cumulative = new Float64Array(tags.length);
  let sum = 0;
  for (let r = 0; r < tags.length; r++) {
    sum += 1 / (r + 20) ** 0.9; // Zipf-like
    cumulative[r] = sum;
  }
  for (let r = 0; r < tags.length; r++) cumulative[r]! /= sum;
  // Prefixes a crowd may start from: a family with a leading digit (`category:k3*`).
  const prefixes: string[] = [];
  for (const family of ['circle:c', 'category:k', 'scene:s', 'brand-fan:b'])
    for (let d = 1; d <= 9; d++) prefixes.push(`${family}${d}${d}`);
  return { tags, cumulative, prefixes };
}

function byPopularity(v: Vocabulary, rnd: () => number): string {
  const x = rnd();
  let lo = 0;
  let hi = v.cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (v.cumulative[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return v.tags[lo]!;
}

function pick<T>(list: readonly T[], rnd: () => number): T {
  return list[Math.floor(rnd() * list.length)]!;
}

// ---- crowds --------------------------------------------------------------------------------------

/** One crowd in a neutral form, rendered for each evaluator. */
export type Clause =
  | { kind: 'tag'; tag: string }
  | { kind: 'prefix'; prefix: string }
  | { kind: 'attr'; name: string; gte: number }
  | { kind: 'clv'; brand: string; gte: number }
  | { kind: 'stage'; brand: string; gte: string }
  | { kind: 'all'; of: Clause[] }
  | { kind: 'any'; of: Clause[] }
  | { kind: 'not'; of: Clause };

export function crowds(n: number, seed = 42): Clause[] {
  const v = vocabulary();
  const rnd = prng(seed);
  const out: Clause[] = [];
  // Crowds start from a tag drawn half by popularity, half uniformly.
  const first = () => (rnd() < 0.5 ? byPopularity(v, rnd) : pick(v.tags, rnd));
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const head: Clause =
      r < 0.1 ? { kind: 'prefix', prefix: pick(v.prefixes, rnd) } : { kind: 'tag', tag: first() };
    let second: Clause;
    const s = rnd();
    if (s < 0.6)
      second = {
        kind: 'any',
        of: [
          { kind: 'tag', tag: byPopularity(v, rnd) },
          {
            kind: 'attr',
            name: pick(['price_band', 'recency_days', 'frequency'], rnd),
            gte: 1 + Math.floor(rnd() * 5000),
          },
        ],
      };
    else if (s < 0.75) second = { kind: 'clv', brand: pick(BRANDS, rnd), gte: 1 + Math.floor(rnd() * 3000) };
    else if (s < 0.9) second = { kind: 'stage', brand: pick(BRANDS, rnd), gte: pick(['appeal', 'act'], rnd) };
    else
      second = {
        kind: 'any',
        of: [
          { kind: 'tag', tag: byPopularity(v, rnd) },
          { kind: 'tag', tag: first() },
        ],
      };
    const all: Clause = { kind: 'all', of: [head, second] };
    if (rnd() < 0.2) {
      const excluded: Clause =
        rnd() < 0.5 ? { kind: 'tag', tag: 'flag:f0' } : { kind: 'tag', tag: byPopularity(v, rnd) };
      out.push({ kind: 'all', of: [all, { kind: 'not', of: excluded }] });
    } else out.push(all);
  }
  return out;
}

/** A crowd in the rule-set language. */
export function toCondition(c: Clause): Condition {
  switch (c.kind) {
    case 'tag':
      return { tag: c.tag };
    case 'prefix':
      return { tag: `${c.prefix}*` };
    case 'attr':
      return { attr: c.name, gte: c.gte };
    case 'clv':
      return { clv: c.brand, gte: c.gte };
    case 'stage':
      return { stage: c.brand, gte: c.gte };
    case 'all':
      return { all: c.of.map(toCondition) };
    case 'any':
      return { any: c.of.map(toCondition) };
    case 'not':
      return { not: toCondition(c.of) };
  }
}

/** Stages at or after `stage` on the ladder (a person with no stage is at the first one). */
function atOrAfter(stage: string): string[] {
  return FUNNEL.slice(FUNNEL.indexOf(stage));
}

/**
 * A crowd for json-logic-js. The data is `{tags, attrs, clv, stages}` with every brand's stage
 * filled in (the default stage where none is recorded), as json-logic has no notion of a default.
 */
export function toJsonLogic(c: Clause): RulesLogic {
  switch (c.kind) {
    case 'tag':
      return { in: [c.tag, { var: 'tags' }] };
    case 'prefix':
      return {
        some: [{ var: 'tags' }, { '==': [{ substr: [{ var: '' }, 0, c.prefix.length] }, c.prefix] }],
      } as RulesLogic;
    case 'attr':
      return { '>=': [{ var: `attrs.${c.name}` }, c.gte] };
    case 'clv':
      return { '>=': [{ var: `clv.${c.brand}` }, c.gte] };
    case 'stage':
      return { in: [{ var: `stages.${c.brand}` }, atOrAfter(c.gte)] };
    case 'all':
      return { and: c.of.map(toJsonLogic) };
    case 'any':
      return { or: c.of.map(toJsonLogic) };
    case 'not':
      return { '!': toJsonLogic(c.of) };
  }
}

/**
 * A crowd for json-rules-engine. Facts are flat: `tags`, `attr:<name>`, `clv:<brand>`,
 * `stage:<brand>` (the default stage where none is recorded); a `startsWithAny` operator does
 * the tag prefix.
 */
function toRulesEngine(c: Clause): NestedCondition {
  switch (c.kind) {
    case 'tag':
      return { fact: 'tags', operator: 'contains', value: c.tag };
    case 'prefix':
      return { fact: 'tags', operator: 'startsWithAny', value: c.prefix };
    case 'attr':
      return { fact: `attr:${c.name}`, operator: 'greaterThanInclusive', value: c.gte };
    case 'clv':
      return { fact: `clv:${c.brand}`, operator: 'greaterThanInclusive', value: c.gte };
    case 'stage':
      return { fact: `stage:${c.brand}`, operator: 'in', value: atOrAfter(c.gte) };
    case 'all':
      return { all: c.of.map(toRulesEngine) };
    case 'any':
      return { any: c.of.map(toRulesEngine) };
    case 'not':
      return { not: toRulesEngine(c.of) };
  }
}

export function toRulesEngineRule(c: Clause, id: string): RuleProperties {
  const conditions = toRulesEngine(c);
  const top: TopLevelCondition = 'all' in conditions ? conditions : { all: [conditions] };
  return { name: id, conditions: top, event: { type: id } };
}

// ---- rule set ----------------------------------------------------------------------------------

/** Every flight covers this instant, the `now` of the benchmark. */
export const NOW = Date.parse('2026-11-20T04:00:00Z');

export function ruleSet(segmentCount: number, campaignCount = 200, seed = 42): RuleSet {
  const cs = crowds(segmentCount, seed);
  const rnd = prng(seed + 1);
  const segments = cs.map((c, i) => ({ id: `seg-${i}`, when: toCondition(c) }));
  const sellingPoints: Record<string, string[]> = {};
  for (let i = 0; i < segmentCount; i += 3) {
    sellingPoints[`seg-${i}`] = LABELS.filter(() => rnd() < 0.3);
  }
  const channelsAll: Channel[] = ['display', 'video', 'native', 'app_push', 'sms', 'email'];
  const campaigns: Campaign[] = [];
  for (let ci = 0; ci < campaignCount; ci++) {
    const brand = pick(BRANDS, rnd);
    const segs = Array.from(
      { length: 1 + Math.floor(rnd() * 3) },
      () => `seg-${Math.floor(rnd() * segmentCount)}`,
    );
    const channels: Channel[] = ['display', ...channelsAll.slice(1).filter(() => rnd() < 0.4)];
    const creatives: Creative[] = Array.from({ length: 2 + Math.floor(rnd() * 3) }, (_, k) => {
      const cr: Creative = {
        id: `cmp-${ci}-cr-${k}`,
        message: pick(['brand', 'selling-point', 'promotion', 'loyalty'] as const, rnd),
        sellingPoints: LABELS.filter(() => rnd() < 0.25),
      };
      if (rnd() < 0.5) cr.stages = FUNNEL.filter(() => rnd() < 0.6);
      if (rnd() < 0.3) cr.formats = [pick(['banner-300x250', 'banner-728x90', 'native-feed'], rnd)];
      return cr;
    });
    const c: Campaign = {
      id: `cmp-${ci}`,
      brand,
      segments: [...new Set(segs)],
      priority: Math.floor(rnd() * 3),
      flight: { start: '2026-11-01T00:00:00+08:00', end: '2026-12-31T23:59:59+08:00' },
      frequencyCap: [
        { max: 3, per: '1d' },
        { max: 10, per: '7d' },
      ],
      channels,
      timing: { timezone: 'Asia/Shanghai', quietHours: '22:00-08:00' },
      creatives,
    };
    if (rnd() < 0.7) c.stages = FUNNEL.filter(() => rnd() < 0.7);
    if (rnd() < 0.3) c.holdout = 0.05;
    campaigns.push(c);
  }
  return { name: `synthetic-${segmentCount}`, funnel: FUNNEL, segments, sellingPoints, campaigns };
}

// ---- people ------------------------------------------------------------------------------------

export function profiles(count: number, seed = 1234): Profile[] {
  const v = vocabulary();
  const rnd = prng(seed);
  const out: Profile[] = [];
  for (let i = 0; i < count; i++) {
    const tags = new Set<string>();
    while (tags.size < 30) tags.add(byPopularity(v, rnd));
    const stages: Record<string, string> = {};
    const clv: Record<string, number> = {};
    for (let b = 0; b < 8; b++) {
      const brand = pick(BRANDS, rnd);
      stages[brand] = pick(FUNNEL, rnd);
      if (rnd() < 0.7) clv[brand] = Math.floor(rnd() * 5000);
    }
    out.push({
      id: `person-${seed}-${i}`,
      tags: [...tags],
      stages,
      clv,
      attrs: {
        price_band: Math.floor(rnd() * 8000),
        recency_days: Math.floor(rnd() * 365),
        frequency: Math.floor(rnd() * 30),
        city: pick(['shanghai', 'beijing', 'shenzhen', 'chengdu'], rnd),
      },
      channels: { display: rnd(), app_push: rnd(), email: rnd() * 0.5, sms: rnd() * 0.3 },
      activeHours: [8, 9, 12, 13, 19, 20, 21],
      timezone: 'Asia/Shanghai',
      updatedAt: NOW - 86_400_000,
    });
  }
  return out;
}

/** A few recent impressions for some campaigns, as the store would return them. */
export function counters(p: number, campaignCount = 200, seed = 99): FrequencyCounters {
  const rnd = prng(seed + p);
  const out: Record<string, number[]> = {};
  for (let k = 0; k < 4; k++) {
    out[`cmp-${Math.floor(rnd() * campaignCount)}`] = [NOW - Math.floor(rnd() * 3 * 86_400_000)];
  }
  return out;
}

/** A person's data for json-logic-js: every brand's stage is filled in. */
export function jsonLogicData(p: Profile): Record<string, unknown> {
  const stages: Record<string, string> = {};
  for (const b of BRANDS) stages[b] = p.stages?.[b] ?? FUNNEL[0]!;
  return { tags: p.tags, attrs: p.attrs ?? {}, clv: p.clv ?? {}, stages };
}

/** A person's facts for json-rules-engine. */
export function rulesEngineFacts(p: Profile): Record<string, unknown> {
  const facts: Record<string, unknown> = { tags: p.tags };
  for (const [k, val] of Object.entries(p.attrs ?? {})) facts[`attr:${k}`] = val;
  for (const [k, val] of Object.entries(p.clv ?? {})) facts[`clv:${k}`] = val;
  for (const b of BRANDS) facts[`stage:${b}`] = p.stages?.[b] ?? FUNNEL[0]!;
  return facts;
}
