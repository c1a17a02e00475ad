import { readdirSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compileRuleSet } from './compile.js';
import { detectFormat, MAX_TEXT_LENGTH, parseRuleSetText } from './parse.js';
import type { RuleError } from './types.js';
import {
  formatPath,
  MAX_DOCUMENT_DEPTH,
  MAX_ERRORS,
  MAX_LIST_ITEMS,
  matchesSchema,
  type PathSegment,
  parsePath,
  validateRuleSet,
} from './validate.js';

interface PatchOp {
  op: 'set' | 'delete' | 'push';
  path: string;
  value?: unknown;
}
interface ExpectedError {
  code: string;
  path: string;
  line?: number;
  column?: number;
}
interface DataCase {
  name: string;
  /** Changes to the base rule set, or else a whole rule set. */
  patch?: PatchOp[];
  ruleSet?: unknown;
  errors: ExpectedError[];
  /** Whether the JSON Schema alone accepts the rule set. */
  schema?: boolean;
}
interface TextCase {
  name: string;
  text: string;
  format?: 'yaml' | 'json';
  errors: ExpectedError[];
}

const table = JSON.parse(readFileSync(new URL('./test/invalid-cases.json', import.meta.url), 'utf8')) as {
  base: Record<string, unknown>;
  cases: DataCase[];
  texts: TextCase[];
};

function applyPatch(target: unknown, ops: readonly PatchOp[]): unknown {
  for (const op of ops) {
    const path = parsePath(op.path);
    const last = path[path.length - 1] as PathSegment;
    let parent = target as Record<PathSegment, unknown>;
    for (const seg of path.slice(0, -1)) parent = parent[seg] as Record<PathSegment, unknown>;
    if (op.op === 'set') parent[last] = structuredClone(op.value);
    else if (op.op === 'delete') delete parent[last];
    else (parent[last] as unknown[]).push(structuredClone(op.value));
  }
  return target;
}

function dataOf(c: DataCase): unknown {
  return c.ruleSet !== undefined
    ? structuredClone(c.ruleSet)
    : applyPatch(structuredClone(table.base), c.patch ?? []);
}

function sortErrors<T extends ExpectedError>(errors: readonly T[]): T[] {
  return [...errors].sort((a, b) => `${a.path} ${a.code}`.localeCompare(`${b.path} ${b.code}`));
}

function errorsOf(v: ReturnType<typeof validateRuleSet>): RuleError[] {
  return v.ok ? [] : v.errors;
}

function expectReadable(errors: readonly RuleError[]): void {
  for (const e of errors) {
    expect(e.code).toMatch(/^[a-z]+(_[a-z]+)*$/);
    expect(e.message.length).toBeGreaterThan(10);
    expect(e.message).not.toMatch(/undefined|\[object Object\]|NaN/);
  }
}

describe('validateRuleSet: table of cases', () => {
  it.each(table.cases)('$name', (c) => {
    const data = dataOf(c);
    const v = validateRuleSet(data);
    const got = errorsOf(v).map(({ code, path }) => ({ code, path }));
    expect(sortErrors(got)).toEqual(sortErrors(c.errors));
    expectReadable(errorsOf(v));
    if (c.schema !== undefined) expect(matchesSchema(data)).toBe(c.schema);
    if (v.ok) {
      expect(v.value).toBe(data);
      expect(() => compileRuleSet(v.value)).not.toThrow();
    }
  });
});

describe('parseRuleSetText: table of texts', () => {
  it.each(table.texts)('$name', (c) => {
    const v = parseRuleSetText(c.text, c.format);
    expect(v.ok).toBe(false);
    const got = errorsOf(v).map((e) => {
      const out: ExpectedError = { code: e.code, path: e.path };
      if (e.line !== undefined) out.line = e.line;
      if (e.column !== undefined) out.column = e.column;
      return out;
    });
    expect(sortErrors(got)).toEqual(sortErrors(c.errors));
    expectReadable(errorsOf(v));
  });
});

describe('error messages', () => {
  it('name the offending value and what is allowed', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'set', path: 'campaigns[0].creatives[0].stages[0]', value: 'byu' },
      { op: 'set', path: 'campaigns[0].segments[1]', value: 'gamers' },
      { op: 'set', path: 'campaigns[0].flihgt', value: {} },
      { op: 'set', path: 'segments[1].when', value: { segment: 'buyer' } },
    ]);
    const byCode = new Map(errorsOf(validateRuleSet(rs)).map((e) => [e.code, e]));
    expect(byCode.get('unknown_stage')?.message).toBe(
      'unknown stage "byu"; the funnel is aware, appeal, act, advocate',
    );
    expect(byCode.get('unknown_segment')?.message).toContain('"gamers" (did you mean "gamer"?)');
    expect(byCode.get('unknown_field')?.message).toContain('(did you mean "flight"?)');
    expect(byCode.get('segment_cycle')?.message).toContain('gamer -> buyer -> gamer');
  });

  it('say which keys a condition may hold, once per problem', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'set', path: 'segments[0].when', value: { tagg: 'circle:business' } },
    ]);
    const errors = errorsOf(validateRuleSet(rs));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'unknown_field', path: 'segments[0].when.tagg' });
    expect(errors[0]?.message).toContain('(did you mean "tag"?)');
    expect(errors[0]?.message).toContain('tag, attr, clv, stage, segment, all, any, not');
  });

  it('name every creative a spend budget cannot price or count, and what to do', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'set', path: 'campaigns[0].budget', value: { daily: 500, unit: 'spend' } },
      {
        op: 'push',
        path: 'campaigns[0].creatives',
        value: { id: 'eur', message: 'brand', bid: 2, currency: 'EUR' },
      },
      {
        op: 'push',
        path: 'campaigns[0].creatives',
        value: { id: 'gbp', message: 'brand', bid: 2, currency: 'GBP' },
      },
      { op: 'delete', path: 'campaigns[1].flight.end' },
      { op: 'set', path: 'campaigns[1].budget', value: { total: 1000, pacing: 'fast' } },
      { op: 'set', path: 'campaigns[1].creatives[0].budget', value: { total: 10, unit: 'clicks', cpm: 1 } },
    ]);
    const byPath = new Map(errorsOf(validateRuleSet(rs)).map((e) => [`${e.code} ${e.path}`, e.message]));
    expect(byPath.get('spend_without_price campaigns[0].budget.unit')).toBe(
      'a spend budget needs a price for every impression, but creatives "camera", "brand" have no cpm and no bid',
    );
    expect(byPath.get('budget_currency campaigns[0].budget.unit')).toBe(
      `a spend budget counts in the campaign's currency, USD, but creatives "eur" (EUR), "gbp" (GBP) bid in other currencies`,
    );
    expect(byPath.get('unknown_pacing campaigns[1].budget.pacing')).toBe(
      'unknown pacing "fast"; pacing values are even, asap',
    );
    expect(byPath.get('even_total_without_end campaigns[1].creatives[0].budget.total')).toBe(
      'an even total budget is spread over the flight: give the flight an end, a daily budget, or pacing: asap',
    );
    expect(byPath.get('cpm_without_spend campaigns[1].creatives[0].budget.cpm')).toBe(
      'cpm prices impressions for a spend budget; this one counts clicks',
    );
    expect(byPath.size).toBe(5);
  });

  it('say nothing more of a budget whose unit is unknown or whose price is not a number', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'set', path: 'campaigns[0].budget', value: { daily: 5.5, unit: 'dollars', cpm: 2 } },
      { op: 'set', path: 'campaigns[1].budget', value: { daily: 5, unit: 'spend', cpm: '2' } },
    ]);
    expect(errorsOf(validateRuleSet(rs)).map(({ code, path }) => ({ code, path }))).toEqual([
      { code: 'unknown_budget_unit', path: 'campaigns[0].budget.unit' },
      { code: 'wrong_type', path: 'campaigns[1].budget.cpm' },
    ]);
  });
});

describe('every problem at once', () => {
  it('reports schema and semantic problems across the whole rule set together', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'push', path: 'funnel', value: 'act' },
      { op: 'set', path: 'segments[0].when.all[1]', value: { attr: 'price_band', gte: '4000' } },
      { op: 'set', path: 'segments[1].when', value: { segment: 'buyer' } },
      { op: 'set', path: 'sellingPoints.students', value: ['eye-care'] },
      { op: 'set', path: 'campaigns[0].holdout', value: 0.9 },
      { op: 'set', path: 'campaigns[0].channels[1]', value: 'wechat' },
      { op: 'set', path: 'campaigns[0].timing.timezone', value: 'Asia/Shangai' },
      { op: 'set', path: 'campaigns[0].creatives[0].stages[0]', value: 'byu' },
      { op: 'set', path: 'campaigns[1].flight.end', value: '2026-10-01' },
      { op: 'set', path: 'campaigns[1].creatives[0].channels', value: ['email'] },
      { op: 'set', path: 'stageMoves[0].on', value: 'view' },
    ]);
    const got = errorsOf(validateRuleSet(rs)).map((e) => `${e.code} ${e.path}`);
    expect(got.sort()).toEqual(
      [
        'duplicate_id funnel[4]',
        'not_a_number segments[0].when.all[1].gte',
        'segment_cycle segments[1].when.segment',
        'unknown_segment sellingPoints.students',
        'holdout_range campaigns[0].holdout',
        'unknown_channel campaigns[0].channels[1]',
        'bad_timezone campaigns[0].timing.timezone',
        'unknown_stage campaigns[0].creatives[0].stages[0]',
        'flight_order campaigns[1].flight.end',
        'channel_not_in_campaign campaigns[1].creatives[0].channels[0]',
        'unknown_event stageMoves[0].on',
      ].sort(),
    );
  });

  it('still checks references when the schema fails elsewhere in the same campaign', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'set', path: 'campaigns[0].priority', value: 'high' },
      { op: 'set', path: 'campaigns[0].segments[0]', value: 'nobody' },
    ]);
    const got = errorsOf(validateRuleSet(rs)).map((e) => `${e.code} ${e.path}`);
    expect(got.sort()).toEqual([
      'unknown_segment campaigns[0].segments[0]',
      'wrong_type campaigns[0].priority',
    ]);
  });

  it('gives YAML errors in the order of the text, each with its line', () => {
    const text = [
      'funnel: [aware, appeal, act]', // 1
      'segments:', // 2
      '  - id: s', // 3
      '    when: { attr: age }', // 4
      'campaigns:', // 5
      '  - id: c', // 6
      '    brand: b', // 7
      '    segments: [s, t]', // 8
      '    channels: [display]', // 9
      '    holdout: 0.7', // 10
      '    creatives:', // 11
      '      - { id: k, message: brand, stages: [buy] }', // 12
    ].join('\n');
    const v = parseRuleSetText(text);
    expect(errorsOf(v).map((e) => [e.code, e.line, e.column])).toEqual([
      ['missing_operator', 4, 5],
      ['unknown_segment', 8, 19],
      ['holdout_range', 10, 5],
      ['unknown_stage', 12, 43],
    ]);
  });
});

describe('parsing', () => {
  const demoText = readFileSync(new URL('./examples/demo.yaml', import.meta.url), 'utf8');

  it('reads YAML with the core schema: date-times stay text', () => {
    const v = parseRuleSetText(demoText);
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    expect(typeof v.value.campaigns[0]?.flight?.start).toBe('string');
    expect(v.value).toEqual(parse(demoText, { schema: 'core' }));
  });

  it('reads the same rule set as JSON, detected or named', () => {
    const json = JSON.stringify(parse(demoText, { schema: 'core' }), null, 2);
    expect(detectFormat(`\n  ${json}`)).toBe('json');
    expect(detectFormat(demoText)).toBe('yaml');
    expect(parseRuleSetText(json).ok).toBe(true);
    expect(parseRuleSetText(`\ufeff${json}`, 'json').ok).toBe(true);
    // JSON is YAML too, so the YAML reader takes it as well.
    expect(parseRuleSetText(json, 'yaml').ok).toBe(true);
  });

  it('refuses __proto__ keys in YAML, pointing at them', () => {
    const text = 'funnel: [aware]\nsegments: []\ncampaigns: []\nscoring:\n  __proto__: { clv: 2 }\n';
    const errors = errorsOf(parseRuleSetText(text));
    expect(errors).toEqual([
      expect.objectContaining({ code: 'forbidden_key', path: 'scoring.__proto__', line: 5 }),
    ]);
    expect(({} as Record<string, unknown>).clv).toBeUndefined();
  });

  it('refuses text that is too long before reading it', () => {
    const v = parseRuleSetText(' '.repeat(MAX_TEXT_LENGTH + 1));
    expect(errorsOf(v).map((e) => e.code)).toEqual(['too_large']);
  });

  it('reads an empty text as an empty rule set, which is not valid', () => {
    expect(errorsOf(parseRuleSetText('')).map((e) => e.code)).toEqual(['wrong_type']);
  });

  it('refuses JSON nested deeper than any rule set, without overflowing the stack', () => {
    const text = `{"funnel": ["a"], "segments": [], "campaigns": [], "description": ${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const v = parseRuleSetText(text);
    expect(v.ok).toBe(false);
    expect(errorsOf(v)[0]?.code).toMatch(/^(json_syntax|too_deep)$/);
  });

  it.each([
    // 100,000 levels on one line made the YAML library exhaust the process's memory.
    [
      'flow collections on one line',
      (n: number) => `funnel: [a]\ndescription: ${'['.repeat(n)}${']'.repeat(n)}\n`,
    ],
    [
      'indented block mappings',
      (n: number) =>
        `funnel: [a]\ndescription:\n${Array.from({ length: n }, (_, k) => `${'  '.repeat(k + 1)}k${k}:`).join('\n')} x\n`,
    ],
    ['block sequences opened on one line', (n: number) => `${'- '.repeat(n)}x\n`],
  ])('refuses YAML nested deeper than any rule set (%s) at the place it gets too deep', (_name, make) => {
    // (Indentation grows with the square of the depth: 2,000 levels already take 4 MB.)
    for (const n of [MAX_DOCUMENT_DEPTH + 1, 1000, _name.startsWith('indented') ? 2000 : 100_000]) {
      const text = make(n);
      const errors = errorsOf(parseRuleSetText(text, 'yaml'));
      expect(errors, `${n} levels`).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        code: 'too_deep',
        path: '',
        message: 'the YAML is nested more than 100 levels deep',
      });
      expect(errors[0]?.line).toBeGreaterThanOrEqual(1);
    }
    // Nesting a rule set really has passes (quotes, comments and brackets inside them don't count).
    const fine = make(20);
    expect(errorsOf(parseRuleSetText(fine, 'yaml')).map((e) => e.code)).not.toContain('too_deep');
    const quoted = `funnel: [a]\ndescription: "${'['.repeat(500)}" # ${'{'.repeat(500)}\nname: '${'['.repeat(500)}'\n`;
    expect(errorsOf(parseRuleSetText(quoted, 'yaml')).map((e) => e.code)).not.toContain('too_deep');
  });
});

describe('data that is not plain JSON', () => {
  it('refuses data nested deeper than any rule set could be', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < MAX_DOCUMENT_DEPTH + 20; i++) deep = [deep];
    const rs = { ...structuredClone(table.base), description: deep };
    expect(errorsOf(validateRuleSet(rs)).map((e) => e.code)).toEqual(['too_deep']);
  });

  it('stops at a cyclic object instead of hanging', () => {
    const rs = structuredClone(table.base) as Record<string, unknown>;
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    rs.scoring = loop;
    expect(errorsOf(validateRuleSet(rs)).map((e) => e.code)).toEqual(['too_deep']);
  });

  it('refuses numbers that are not finite', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'set', path: 'campaigns[0].priority', value: Number.POSITIVE_INFINITY },
      { op: 'set', path: 'segments[0].when.all[1].gte', value: Number.NaN },
    ]);
    const got = errorsOf(validateRuleSet(rs)).map((e) => `${e.code} ${e.path}`);
    expect(got.sort()).toEqual([
      'not_a_number segments[0].when.all[1].gte',
      'wrong_type campaigns[0].priority',
    ]);
  });

  it('refuses a Date where a date-time is expected', () => {
    const rs = applyPatch(structuredClone(table.base), [
      { op: 'set', path: 'campaigns[0].flight.start', value: new Date('2026-11-01T00:00:00Z') },
    ]);
    expect(errorsOf(validateRuleSet(rs)).map((e) => `${e.code} ${e.path}`)).toEqual([
      'wrong_type campaigns[0].flight.start',
    ]);
  });
});

describe('conditions: the checks explain whatever the schema rejects', () => {
  const scalar = fc.oneof(
    fc.constantFrom('aware', 'act', 'advocate', 'nope', 'circle:*', 'a*b', '', 'business'),
    fc.integer({ min: -5, max: 5 }),
    fc.boolean(),
    fc.constant(null),
  );
  const key = fc.constantFrom(
    ...['tag', 'attr', 'clv', 'stage', 'segment', 'all', 'any', 'not'],
    ...['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'between', 'tags', 'foo'],
  );
  const { condition } = fc.letrec<{ condition: unknown; value: unknown }>((tie) => ({
    condition: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.dictionary(key, tie('value'), { maxKeys: 3 }),
      fc.record({ tag: fc.constantFrom('circle:business', 'circle:*', '*x') }),
      fc.record({ attr: fc.constant('age'), gte: scalar }),
      fc.record({ stage: fc.constant('vivo'), between: fc.array(scalar, { maxLength: 3 }) }),
      fc.record({ all: fc.array(tie('condition'), { maxLength: 3 }) }),
      fc.record({ not: tie('condition') }),
      scalar,
    ),
    value: fc.oneof({ depthSize: 'small' }, scalar, fc.array(scalar, { maxLength: 3 }), tie('condition')),
  }));

  it('never falls back to the generic error, and rejects all the schema rejects', () => {
    fc.assert(
      fc.property(condition, (when) => {
        const rs = applyPatch(structuredClone(table.base), [
          { op: 'set', path: 'segments[1].when', value: when },
        ]);
        const v = validateRuleSet(rs);
        if (!matchesSchema(rs)) expect(v.ok).toBe(false);
        expect(errorsOf(v).map((e) => e.code)).not.toContain('invalid');
      }),
      { numRuns: 3000 },
    );
  });
});

describe('paths', () => {
  it.each([
    [[], ''],
    [['campaigns', 2, 'creatives', 0, 'stages', 1], 'campaigns[2].creatives[0].stages[1]'],
    [['sellingPoints', 'highend-business'], 'sellingPoints.highend-business'],
    [['sellingPoints', 'a.b'], 'sellingPoints["a.b"]'],
    [['sellingPoints', 'say "hi" ]'], 'sellingPoints["say \\"hi\\" ]"]'],
    [['sellingPoints', ''], 'sellingPoints[""]'],
  ] as [PathSegment[], string][])('%j <-> %s', (segments, text) => {
    expect(formatPath(segments)).toBe(text);
    expect(parsePath(text)).toEqual(segments);
  });
});

describe('the JSON Schema', () => {
  const schemaText = readFileSync(new URL('./ruleset.schema.json', import.meta.url), 'utf8');
  const schema = JSON.parse(schemaText) as Record<string, unknown>;
  const ajv = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true });
  const examples = readdirSync(new URL('./examples/', import.meta.url)).filter((f) => /\.ya?ml$/.test(f));

  it('is a valid draft-07 schema that compiles in strict mode', () => {
    expect(ajv.validateSchema(schema)).toBe(true);
    expect(() => ajv.compile(schema)).not.toThrow();
  });

  it('describes every field of the rule-set types', () => {
    const defs = schema.definitions as Record<string, { properties?: Record<string, unknown> }>;
    const props = (name: string) => Object.keys(defs[name]?.properties ?? {}).sort();
    expect(Object.keys(schema.properties as object).sort()).toEqual(
      [
        '$schema',
        'name',
        'description',
        'funnel',
        'defaultStage',
        'defaultStages',
        'segments',
        'sellingPoints',
        'campaigns',
        'stageMoves',
        'scoring',
      ].sort(),
    );
    const ops = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'between'];
    expect(props('attrCondition')).toEqual(['attr', ...ops].sort());
    expect(props('clvCondition')).toEqual(['clv', ...ops].sort());
    expect(props('stageCondition')).toEqual(['stage', ...ops].sort());
    expect(props('combinators')).toEqual(['all', 'any', 'not']);
    expect(props('campaign')).toEqual(
      [
        'id',
        'brand',
        'description',
        'segments',
        'stages',
        'priority',
        'weight',
        'flight',
        'frequencyCap',
        'channels',
        'timing',
        'holdout',
        'attributionWindow',
        'bid',
        'currency',
        'adomain',
        'cat',
        'deals',
        'budget',
        'creatives',
      ].sort(),
    );
    expect(props('creative')).toEqual(
      [
        'id',
        'message',
        'sellingPoints',
        'stages',
        'channels',
        'formats',
        'weight',
        'bid',
        'currency',
        'adm',
        'attr',
        'video',
        'vast',
        'native',
        'budget',
      ].sort(),
    );
    expect(props('flight')).toEqual(['end', 'start', 'timezone']);
    expect(props('frequencyCap')).toEqual(['max', 'per', 'zone']);
    expect(props('timing')).toEqual(['quietHours', 'timezone']);
    expect(props('budget')).toEqual(['cpm', 'daily', 'pacing', 'total', 'unit']);
    expect(props('stageMove')).toEqual(['brands', 'from', 'on', 'to']);
    expect(props('scoring')).toEqual(['affinity', 'clv', 'clvScale', 'sellingPoints']);
  });

  it('has examples to check', () => {
    expect(examples).toEqual(
      expect.arrayContaining(['demo.yaml', 'phone-launch.yaml', 'learning-tablet.yaml', 'singles-day.yaml']),
    );
  });

  it.each(examples)('accepts examples/%s on its own and through validateRuleSet', (file) => {
    const text = readFileSync(new URL(`./examples/${file}`, import.meta.url), 'utf8');
    expect(text.startsWith('# yaml-language-server: $schema=../ruleset.schema.json\n')).toBe(true);
    const data: unknown = parse(text, { schema: 'core' });
    const check = ajv.compile(schema);
    expect(check(data), JSON.stringify(check.errors)).toBe(true);
    expect(errorsOf(validateRuleSet(data))).toEqual([]);
    expect(errorsOf(parseRuleSetText(text))).toEqual([]);
  });
});

describe('hostile sizes', () => {
  it('refuses lists beyond their limit without looking at their items', () => {
    const v = validateRuleSet({
      funnel: ['aware'],
      segments: Array(MAX_LIST_ITEMS.segments + 1).fill(1),
      campaigns: [],
    });
    expect(errorsOf(v)).toEqual([
      {
        code: 'too_many_items',
        path: 'segments',
        message: `segments has ${MAX_LIST_ITEMS.segments + 1} items; a rule set may have at most ${MAX_LIST_ITEMS.segments}`,
      },
    ]);
  });

  it('lists at most MAX_ERRORS problems, then says how many more it found', () => {
    const v = validateRuleSet({ funnel: ['aware'], segments: Array(40_000).fill(1), campaigns: [] });
    const errors = errorsOf(v);
    expect(errors).toHaveLength(MAX_ERRORS + 1);
    expect(errors[0]).toMatchObject({ code: 'wrong_type', path: 'segments[0]' });
    expect(errors[MAX_ERRORS - 1]).toMatchObject({ code: 'wrong_type', path: `segments[${MAX_ERRORS - 1}]` });
    expect(errors[MAX_ERRORS]).toMatchObject({ code: 'too_many_errors', path: '' });
    expect(errors[MAX_ERRORS]?.message).toMatch(
      /^at least \d+ more problems were found; the first 1000 are listed$/,
    );
  });

  it('reports the same problems of a list item whether the item stands alone or among many', () => {
    const bad = { id: 'x', when: { tag: 5 } };
    const alone = errorsOf(validateRuleSet({ funnel: ['aware'], segments: [bad], campaigns: [] }));
    const among = errorsOf(
      validateRuleSet({
        funnel: ['aware'],
        segments: [...Array.from({ length: 50 }, (_, i) => ({ id: `s${i}`, when: { tag: 'a' } })), bad],
        campaigns: [],
      }),
    );
    expect(among.map((e) => ({ ...e, path: e.path.replace('segments[50]', 'segments[0]') }))).toEqual(alone);
  });
});

describe('docs/rules.md', () => {
  const doc = readFileSync(new URL('../docs/rules.md', import.meta.url), 'utf8');
  const from = doc.indexOf('## Validation errors');
  const next = doc.indexOf('\n## ', from + 1);
  const section = doc.slice(from, next === -1 ? undefined : next);
  const documented = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  const exercised = new Set([
    ...table.cases.flatMap((c) => c.errors.map((e) => e.code)),
    ...table.texts.flatMap((c) => c.errors.map((e) => e.code)),
    // Exercised by the tests above rather than the tables.
    'too_large',
    'too_many_errors',
    // By test/ruleset-check.test.ts (the checking thread runs from the compiled server only).
    'too_slow',
  ]);
  // A fallback for schema rules that have no code of their own; no rule reaches it today.
  const fallbacks = ['invalid'];

  it('documents every code the tables exercise', () => {
    expect(documented.length).toBeGreaterThan(30);
    for (const code of exercised) expect(documented, code).toContain(code);
  });

  it('has every documented code exercised by a test', () => {
    for (const code of documented)
      if (!fallbacks.includes(code as string)) expect(exercised, code).toContain(code);
  });
});
