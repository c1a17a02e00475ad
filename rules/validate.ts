/**
 * Validation of rule sets, in two layers that report every problem at once:
 *  1. the published JSON Schema (rules/ruleset.schema.json): shapes, types, allowed fields and
 *     values; its errors are translated into codes and messages a campaign manager can act on;
 *  2. checks the schema cannot express: ids and references (segments, stages), cycles between
 *     segments, time zones, date-times and flight order, durations, quiet hours, channels and
 *     stages of creatives against their campaign, and the fine print of conditions.
 *
 * Conditions are explained by the checks of layer 2 rather than by the schema, whose errors for
 * a union of shapes are a flood of alternatives; the schema still has the last word, so nothing
 * the schema rejects is ever accepted. Pure: no I/O.
 */
import { Ajv, type ErrorObject } from 'ajv';
import schema from './ruleset.schema.json' with { type: 'json' };
import {
  isTimeZone,
  MAX_ATTRIBUTION_MS,
  MIN_ATTRIBUTION_MS,
  parseDuration,
  parseFlightBound,
  parseQuietHours,
} from './time.js';
import type { RuleError, RuleSet, Validated } from './types.js';
import { BUDGET_UNITS, CHANNELS, FORBIDDEN_KEYS } from './types.js';

/** Conditions may nest at most this deep (`when` itself is depth 1). */
export const MAX_CONDITION_DEPTH = 32;
/** Any rule set nests far less deep than this; deeper data is refused before anything else. */
export const MAX_DOCUMENT_DEPTH = 100;
/** Keys that could reach an object's prototype; refused anywhere in a rule set. */

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
const schemaCheck = ajv.compile(schema);
/** The same schema stopping at the first error: whether a document is valid, in linear time. */
const quickCheck = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true }).compile(schema);

/**
 * The lists of a rule set whose items are checked one by one. ajv's validator, asked for every
 * error, joins the errors of each list item to the list's (Array.concat per failing item), which
 * takes time in the square of the errors: 40,000 invalid segments took 6 s, 80,000 took 16 s.
 * Checked one item at a time against the item's own definition, the work is linear.
 */
const ITEM_LISTS = [
  ['segments', 'segment'],
  ['campaigns', 'campaign'],
  ['stageMoves', 'stageMove'],
] as const;
const itemChecks = ITEM_LISTS.map(([list, definition]) => {
  const check = ajv.getSchema(`${schema.$id}#/definitions/${definition}`);
  if (check === undefined) throw new Error(`the rule-set schema has no definition ${definition}`);
  return [list, check] as const;
});
/** Items of each list beyond which a rule set is refused (`too_many`). */
export const MAX_LIST_ITEMS: Readonly<Record<(typeof ITEM_LISTS)[number][0], number>> = {
  segments: 100_000,
  campaigns: 10_000,
  stageMoves: 1_000,
};
/** Errors reported at most; a rule set with more gets this many and a `too_many_errors` entry. */
export const MAX_ERRORS = 1_000;

/** The JSON Schema of rule sets, as published in rules/ruleset.schema.json. */
export const ruleSetSchema: Readonly<Record<string, unknown>> = schema;

/** Whether data satisfies the JSON Schema alone (no semantic checks). */
export function matchesSchema(data: unknown): boolean {
  return quickCheck(data) === true;
}

// ---- paths -------------------------------------------------------------------------------------

export type PathSegment = string | number;

const PLAIN_KEY = /^[^.[\]"'\s]+$/;

/** `campaigns[2].creatives[0].stages[1]`: dots for keys, brackets for indices; `""` for the root. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** The inverse of formatPath. */
export function parsePath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  let i = 0;
  while (i < path.length) {
    const ch = path[i];
    if (ch === '.') {
      i++;
    } else if (ch === '[') {
      if (path[i + 1] === '"') {
        // A JSON string up to the closing quote that is followed by `]`.
        let j = i + 2;
        while (j < path.length && !(path[j] === '"' && path[j - 1] !== '\\' && path[j + 1] === ']')) j++;
        out.push(JSON.parse(path.slice(i + 1, j + 1)) as string);
        i = j + 2;
      } else {
        const j = path.indexOf(']', i);
        const end = j < 0 ? path.length : j;
        out.push(Number(path.slice(i + 1, end)));
        i = end + 1;
      }
    } else {
      let j = i;
      while (j < path.length && path[j] !== '.' && path[j] !== '[') j++;
      out.push(path.slice(i, j));
      i = j;
    }
  }
  return out;
}

// ---- small helpers -----------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function own(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function isText(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

/** A value as a message names it. */
function show(v: unknown): string {
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (isObject(v)) return 'a mapping';
  return typeof v;
}

function list(names: readonly string[], max = 12): string {
  return names.length <= max
    ? names.join(', ')
    : `${names.slice(0, max).join(', ')}, ... (${names.length} in all)`;
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** ` (did you mean "x"?)` for a near miss among the candidates, else the empty string. */
function didYouMean(word: string, candidates: Iterable<string>): string {
  let best = '';
  let bestD = Number.POSITIVE_INFINITY;
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= limit ? ` (did you mean ${quote(best)}?)` : '';
}

/** Collects errors, at most one per code and path. */
class Report {
  readonly errors: RuleError[] = [];
  private readonly seen = new Set<string>();
  private dropped = 0;

  add(code: string, path: readonly PathSegment[], message: string): void {
    const p = formatPath(path);
    const key = `${code}\u0000${p}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.errors.length >= MAX_ERRORS) {
      this.dropped++;
      return;
    }
    this.errors.push({ code, path: p, message });
  }

  /** Whether more errors would only be dropped. */
  get full(): boolean {
    return this.errors.length >= MAX_ERRORS;
  }

  /** Problems found but not looked at in detail (the list was full). */
  more(n: number): void {
    this.dropped += n;
  }

  /** The errors, with a last entry saying how many more were found when the list is full. */
  finish(): RuleError[] {
    if (this.dropped > 0)
      this.errors.push({
        code: 'too_many_errors',
        path: '',
        message: `at least ${this.dropped} more problems were found; the first ${MAX_ERRORS} are listed`,
      });
    return this.errors;
  }
}

// ---- entry point ---------------------------------------------------------------------------------

/**
 * Validates a parsed rule set (YAML or JSON already turned into plain data). On success the
 * value is the input itself, typed. Every problem is reported, each with a code, a path and a
 * message; see docs/rules.md for the codes.
 */
export function validateRuleSet(data: unknown): Validated<RuleSet> {
  const r = new Report();
  if (!isObject(data)) {
    r.add(
      'wrong_type',
      [],
      `a rule set must be a mapping with funnel, segments and campaigns, not ${show(data)}`,
    );
    return { ok: false, errors: r.errors };
  }
  if (!scanKeys(data, r)) return { ok: false, errors: r.finish() };
  if (!listSizes(data, r)) return { ok: false, errors: r.finish() };
  const conditionSchemaErrors = schemaErrors(data, r);
  semanticChecks(data, r, conditionSchemaErrors);
  return r.errors.length === 0
    ? { ok: true, value: data as unknown as RuleSet }
    : { ok: false, errors: r.finish() };
}

/** Refuses lists longer than MAX_LIST_ITEMS before anything looks at their items. */
function listSizes(data: Obj, r: Report): boolean {
  let ok = true;
  for (const [list] of ITEM_LISTS) {
    const items = own(data, list);
    const max = MAX_LIST_ITEMS[list];
    if (Array.isArray(items) && items.length > max) {
      r.add(
        'too_many_items',
        [list],
        `${list} has ${items.length} items; a rule set may have at most ${max}`,
      );
      ok = false;
    }
  }
  return ok;
}

/**
 * Refuses prototype-reaching keys anywhere, and data nested deeper than any rule set could be
 * (which also stops at cyclic JavaScript objects). False when the rest must not run.
 */
function scanKeys(root: Obj, r: Report): boolean {
  const stack: { v: unknown; path: PathSegment[] }[] = [{ v: root, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (path.length > MAX_DOCUMENT_DEPTH) {
      r.add(
        'too_deep',
        path.slice(0, MAX_DOCUMENT_DEPTH),
        `the rule set is nested more than ${MAX_DOCUMENT_DEPTH} levels deep`,
      );
      return false;
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: [...path, i] });
    } else if (isObject(v)) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i]!;
        if (FORBIDDEN_KEYS.has(k)) {
          r.add('forbidden_key', [...path, k], `the key ${quote(k)} is not allowed anywhere in a rule set`);
          continue;
        }
        stack.push({ v: v[k], path: [...path, k] });
      }
    }
  }
  return true;
}

// ---- layer 1: the JSON Schema ------------------------------------------------------------------

interface ConditionSchemaError {
  path: PathSegment[];
  message: string;
}

/** Maps schema errors into the report; returns those inside conditions, per segment index. */
function schemaErrors(data: Obj, r: Report): Map<number, ConditionSchemaError> {
  const inConditions = new Map<number, ConditionSchemaError>();
  if (quickCheck(data)) return inConditions;
  // The document without its lists' items, then each item on its own (see ITEM_LISTS).
  const errors: ErrorObject[] = [];
  const skeleton: Obj = { ...data };
  for (const [list] of ITEM_LISTS) if (Array.isArray(own(data, list))) skeleton[list] = [];
  if (!schemaCheck(skeleton)) errors.push(...(schemaCheck.errors ?? []));
  for (const [list, check] of itemChecks) {
    const items = own(data, list);
    if (!Array.isArray(items)) continue;
    for (let i = 0; i < items.length && errors.length < 4 * MAX_ERRORS; i++) {
      if (check(items[i])) continue;
      for (const e of check.errors ?? [])
        errors.push({ ...e, instancePath: `/${list}/${i}${e.instancePath}` });
    }
  }
  for (const [i, e] of errors.entries()) {
    if (r.full) {
      r.more(errors.length - i);
      break;
    }
    const path = pointerToPath(data, e.instancePath);
    if (path[0] === 'segments' && typeof path[1] === 'number' && path[2] === 'when') {
      if (!inConditions.has(path[1]))
        inConditions.set(path[1], { path, message: e.message ?? 'is not valid' });
      continue;
    }
    mapSchemaError(e, path, data, r);
  }
  return inConditions;
}

function pointerToPath(data: unknown, pointer: string): PathSegment[] {
  const out: PathSegment[] = [];
  if (pointer === '') return out;
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      const i = Number(key);
      out.push(i);
      cur = cur[i];
    } else {
      out.push(key);
      cur = isObject(cur) ? own(cur, key) : undefined;
    }
  }
  return out;
}

/** `holdout`, `channels[1]`, `frequencyCap[0].per` -> the field a message speaks of. */
function fieldName(path: readonly PathSegment[]): string {
  let i = path.length - 1;
  while (i > 0 && typeof path[i] === 'number') i--;
  return formatPath(path.slice(Math.max(i, 0))) || 'the rule set';
}

/** The last key of a path that is not an index. */
function lastKey(path: readonly PathSegment[]): string {
  for (let i = path.length - 1; i >= 0; i--) {
    const s = path[i];
    if (typeof s === 'string') return s;
  }
  return '';
}

function whatIs(path: readonly PathSegment[]): string {
  const n = path.length;
  if (n === 0) return 'a rule set';
  const last = path[n - 1];
  const key = typeof last === 'number' ? path[n - 2] : last;
  switch (key) {
    case 'segments':
      return n === 2 ? 'a segment' : 'an item';
    case 'campaigns':
      return 'a campaign';
    case 'creatives':
      return 'a creative';
    case 'frequencyCap':
      return 'a frequency cap';
    case 'budget':
      return 'a budget';
    case 'stageMoves':
      return 'a stage move';
    case 'flight':
      return 'a flight';
    case 'timing':
      return 'timing';
    case 'scoring':
      return 'scoring';
    default:
      return 'this mapping';
  }
}

const TYPE_WORDS: Record<string, string> = {
  string: 'text',
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
};

function typeWords(t: unknown): string {
  const types = Array.isArray(t) ? t : [t];
  return types.map((x) => TYPE_WORDS[String(x)] ?? String(x)).join(' or ');
}

function getAt(data: unknown, path: readonly PathSegment[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (Array.isArray(cur) && typeof seg === 'number') cur = cur[seg];
    else if (isObject(cur) && typeof seg === 'string') cur = own(cur, seg);
    else return undefined;
  }
  return cur;
}

const ENUM_CODES: Record<string, [code: string, what: string, plural?: string]> = {
  channels: ['unknown_channel', 'channel'],
  message: ['unknown_message', 'message type'],
  on: ['unknown_event', 'event'],
  unit: ['unknown_budget_unit', 'budget unit'],
  pacing: ['unknown_pacing', 'pacing', 'pacing values'],
};

const PATTERN_CODES: Record<string, [code: string, hint: string]> = {
  per: ['bad_duration', 'is not a duration; use a number and a unit (30m, 12h, 1d, 7d, 2w), or day or week'],
  attributionWindow: ['bad_duration', 'is not a duration; use a number and a unit: 12h, 1d, 7d, 2w'],
  quietHours: ['bad_quiet_hours', 'is not quiet hours; use HH:MM-HH:MM, such as 22:00-08:00'],
  start: [
    'bad_datetime',
    'is not a date-time; use 2026-11-01T00:00:00+08:00, 2026-11-01T00:00:00 or 2026-11-01',
  ],
  end: [
    'bad_datetime',
    'is not a date-time; use 2026-11-01T00:00:00+08:00, 2026-11-01T00:00:00 or 2026-11-01',
  ],
  currency: ['bad_currency', 'is not a currency; use an ISO 4217 code in capitals: USD, EUR, CNY'],
  cat: ['bad_iab_category', 'is not an IAB category; use IAB2 or IAB2-1'],
};

function mapSchemaError(e: ErrorObject, path: PathSegment[], data: Obj, r: Report): void {
  const params = e.params as Record<string, unknown>;
  const value = getAt(data, path);
  const field = fieldName(path);
  const key = lastKey(path);
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String(params.additionalProperty);
      if (FORBIDDEN_KEYS.has(extra)) return; // reported as forbidden_key
      const props =
        (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {};
      const allowed = Object.keys(props).filter((k) => k !== '$schema');
      r.add(
        'unknown_field',
        [...path, extra],
        `unknown field ${quote(extra)}${didYouMean(extra, allowed)}; ${whatIs(path)} takes ${list(allowed, 20)}`,
      );
      return;
    }
    case 'required': {
      const missing = String(params.missingProperty);
      r.add('missing_field', [...path, missing], `${whatIs(path)} needs ${quote(missing)}`);
      return;
    }
    case 'type':
      r.add('wrong_type', path, `${field} must be ${typeWords(params.type)}, not ${show(value)}`);
      return;
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const [code, what, named] = ENUM_CODES[key] ?? ['invalid', 'value'];
      const plural = named ?? (what.endsWith('s') ? what : `${what}s`);
      const v = typeof value === 'string' ? value : '';
      r.add(
        code,
        path,
        `unknown ${what} ${show(value)}${didYouMean(v, allowed)}; ${plural} are ${allowed.join(', ')}`,
      );
      return;
    }
    case 'minItems':
      if (key === 'creatives' && path.length === 3) {
        const id = getAt(data, [...path.slice(0, 2), 'id']);
        r.add('empty_creatives', path, `campaign ${isText(id) ? `${quote(id)} ` : ''}has no creatives`);
      } else {
        r.add('empty_list', path, `${field} must not be empty`);
      }
      return;
    case 'maxItems':
      r.add(
        'too_many_items',
        path,
        `${field} has ${Array.isArray(value) ? value.length : '?'} items; at most ${params.limit}`,
      );
      return;
    case 'minLength':
      r.add('empty_value', path, `${field} must not be empty`);
      return;
    case 'pattern': {
      const p = PATTERN_CODES[key];
      if (p !== undefined) r.add(p[0], path, `${field} ${show(value)} ${p[1]}`);
      else r.add('invalid', path, `${field} ${show(value)} is not well formed`);
      return;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      if (key === 'holdout') r.add('holdout_range', path, `holdout ${show(value)} is outside 0 to 0.5`);
      else if (key === 'max' && path.includes('frequencyCap'))
        r.add('bad_cap_max', path, `a frequency cap allows at least 1 impression, not ${show(value)}`);
      else if (key === 'weight')
        r.add('bad_weight', path, `${field} must be greater than 0, not ${show(value)}`);
      else if (key === 'bid') r.add('bad_bid', path, `a bid must be greater than 0, not ${show(value)}`);
      else if (path.includes('budget'))
        r.add('bad_budget', path, `${field} must be greater than 0, not ${show(value)}`);
      else if (path.includes('attr'))
        r.add('bad_creative_attr', path, `an IAB creative attribute is 1 to 17, not ${show(value)}`);
      else
        r.add(
          'out_of_range',
          path,
          `${field} must be ${params.comparison} ${params.limit}, not ${show(value)}`,
        );
      return;
    default:
      r.add('invalid', path, `${field} ${e.message ?? 'is not valid'}`);
  }
}

// ---- layer 2: what the schema cannot say -------------------------------------------------------

interface Context {
  readonly r: Report;
  readonly funnel: readonly string[];
  readonly stageIndex: ReadonlyMap<string, number>;
  readonly segmentIds: ReadonlyMap<string, number>;
  /** false when `segments` is not a list: references cannot be checked */
  readonly segmentsKnown: boolean;
  /** segment references, per referring segment index */
  readonly refs: { to: number; path: PathSegment[] }[][];
}

function semanticChecks(d: Obj, r: Report, conditionSchemaErrors: Map<number, ConditionSchemaError>): void {
  // Funnel.
  const funnelRaw = own(d, 'funnel');
  const funnel: string[] = [];
  const stageIndex = new Map<string, number>();
  if (Array.isArray(funnelRaw)) {
    funnelRaw.forEach((s, i) => {
      if (!isText(s)) return;
      if (stageIndex.has(s)) {
        r.add('duplicate_id', ['funnel', i], `stage ${quote(s)} appears twice in the funnel`);
        return;
      }
      stageIndex.set(s, funnel.length);
      funnel.push(s);
    });
  }

  // Segment ids first: references may point forward.
  const segmentsRaw = own(d, 'segments');
  const segments = Array.isArray(segmentsRaw) ? segmentsRaw : [];
  const segmentIds = new Map<string, number>();
  segments.forEach((seg, i) => {
    const id = isObject(seg) ? own(seg, 'id') : undefined;
    if (!isText(id)) return;
    const first = segmentIds.get(id);
    if (first !== undefined) {
      r.add(
        'duplicate_id',
        ['segments', i, 'id'],
        `segment id ${quote(id)} is used twice (first at segments[${first}])`,
      );
    } else segmentIds.set(id, i);
  });

  const x: Context = {
    r,
    funnel,
    stageIndex,
    segmentIds,
    segmentsKnown: Array.isArray(segmentsRaw),
    refs: segments.map(() => []),
  };

  const defaultStage = own(d, 'defaultStage');
  if (isText(defaultStage)) checkStageName(x, defaultStage, ['defaultStage']);
  const defaultStages = own(d, 'defaultStages');
  if (isObject(defaultStages)) {
    for (const brand of Object.keys(defaultStages)) {
      const stage = own(defaultStages, brand);
      if (isText(stage)) checkStageName(x, stage, ['defaultStages', brand]);
    }
  }

  segments.forEach((seg, i) => {
    if (!isObject(seg) || !Object.hasOwn(seg, 'when')) return;
    const before = r.errors.length;
    checkCondition(x, own(seg, 'when'), ['segments', i, 'when'], 1, i);
    const fromSchema = conditionSchemaErrors.get(i);
    // The schema has the last word: a condition it rejects is never let through.
    if (fromSchema !== undefined && r.errors.length === before) {
      r.add('invalid', fromSchema.path, `${fieldName(fromSchema.path)} ${fromSchema.message}`);
    }
  });
  checkCycles(x, segments);

  const sellingPoints = own(d, 'sellingPoints');
  if (isObject(sellingPoints)) {
    for (const key of Object.keys(sellingPoints)) {
      if (FORBIDDEN_KEYS.has(key) || segmentIds.has(key) || !x.segmentsKnown) continue;
      r.add('unknown_segment', ['sellingPoints', key], `selling points for ${unknownSegment(x, key)}`);
    }
  }

  const campaignsRaw = own(d, 'campaigns');
  const campaigns = Array.isArray(campaignsRaw) ? campaignsRaw : [];
  const campaignIds = new Map<string, number>();
  campaigns.forEach((c, i) => {
    if (!isObject(c)) return;
    const id = own(c, 'id');
    if (isText(id)) {
      const first = campaignIds.get(id);
      if (first !== undefined) {
        r.add(
          'duplicate_id',
          ['campaigns', i, 'id'],
          `campaign id ${quote(id)} is used twice (first at campaigns[${first}])`,
        );
      } else campaignIds.set(id, i);
    }
    checkCampaign(x, c, ['campaigns', i]);
  });

  const moves = own(d, 'stageMoves');
  if (Array.isArray(moves)) {
    moves.forEach((m, i) => {
      if (!isObject(m)) return;
      const from = own(m, 'from');
      if (Array.isArray(from))
        from.forEach((s, j) => {
          if (isText(s)) checkStageName(x, s, ['stageMoves', i, 'from', j]);
        });
      const to = own(m, 'to');
      if (isText(to)) checkStageName(x, to, ['stageMoves', i, 'to']);
    });
  }
}

function funnelText(x: Context): string {
  return x.funnel.length === 0 ? 'the funnel is empty' : `the funnel is ${x.funnel.join(', ')}`;
}

/** Reports a stage name that is not on the ladder; true when it is. */
function checkStageName(x: Context, stage: string, path: PathSegment[]): boolean {
  // Without a usable funnel every stage would be unknown; the funnel's own error says enough.
  if (x.stageIndex.has(stage) || x.funnel.length === 0) return true;
  x.r.add(
    'unknown_stage',
    path,
    `unknown stage ${quote(stage)}${didYouMean(stage, x.funnel)}; ${funnelText(x)}`,
  );
  return false;
}

function unknownSegment(x: Context, id: string): string {
  const near = didYouMean(id, x.segmentIds.keys());
  const known = [...x.segmentIds.keys()];
  const tail =
    near !== '' ? near : known.length === 0 ? '; there are no segments' : `; segments are ${list(known)}`;
  return `unknown segment ${quote(id)}${tail}`;
}

function checkCampaign(x: Context, c: Obj, path: PathSegment[]): void {
  const r = x.r;
  const segs = own(c, 'segments');
  if (Array.isArray(segs)) {
    segs.forEach((s, j) => {
      if (isText(s) && x.segmentsKnown && !x.segmentIds.has(s))
        r.add('unknown_segment', [...path, 'segments', j], unknownSegment(x, s));
    });
  }

  const stagesRaw = own(c, 'stages');
  const stages = Array.isArray(stagesRaw) ? stagesRaw.filter(isText) : null;
  if (Array.isArray(stagesRaw)) {
    stagesRaw.forEach((s, j) => {
      if (isText(s)) checkStageName(x, s, [...path, 'stages', j]);
    });
  }

  const channelsRaw = own(c, 'channels');
  const channels = Array.isArray(channelsRaw)
    ? channelsRaw.filter(
        (ch): ch is string => typeof ch === 'string' && (CHANNELS as readonly string[]).includes(ch),
      )
    : null;

  // Time: zones, quiet hours, flight.
  const timing = own(c, 'timing');
  let zone = 'UTC';
  let zoneOk = true;
  if (isObject(timing)) {
    const tz = own(timing, 'timezone');
    if (isText(tz)) {
      zone = tz;
      zoneOk = checkZone(x, tz, [...path, 'timing', 'timezone']);
    }
    const quiet = own(timing, 'quietHours');
    if (typeof quiet === 'string' && parseQuietHours(quiet) === null) {
      r.add(
        'bad_quiet_hours',
        [...path, 'timing', 'quietHours'],
        `quietHours ${quote(quiet)} is not quiet hours; use HH:MM-HH:MM with different start and end, such as 22:00-08:00`,
      );
    }
  }
  const flight = own(c, 'flight');
  if (isObject(flight)) checkFlight(x, flight, [...path, 'flight'], zone, zoneOk);

  const caps = own(c, 'frequencyCap');
  if (Array.isArray(caps)) {
    caps.forEach((cap, k) => {
      const per = isObject(cap) ? own(cap, 'per') : undefined;
      const calendar = per === 'day' || per === 'week';
      if (typeof per === 'string' && !calendar && parseDuration(per) === null) {
        r.add(
          'bad_duration',
          [...path, 'frequencyCap', k, 'per'],
          `per ${quote(per)} is not a duration; use a number above zero and a unit (30m, 12h, 1d, 7d, 2w), or day or week for a calendar one`,
        );
      }
      if (isObject(cap) && own(cap, 'zone') !== undefined && typeof per === 'string' && !calendar) {
        r.add(
          'zone_without_calendar',
          [...path, 'frequencyCap', k, 'zone'],
          `zone applies to a calendar cap (per: day or week); per ${quote(per)} is a rolling window, the same in every zone`,
        );
      }
    });
  }

  const window = own(c, 'attributionWindow');
  if (typeof window === 'string') {
    const ms = parseDuration(window);
    // Not a duration at all: the schema's pattern reports it (bad_duration).
    if (ms !== null && (ms < MIN_ATTRIBUTION_MS || ms > MAX_ATTRIBUTION_MS)) {
      r.add(
        'attribution_window_range',
        [...path, 'attributionWindow'],
        `attributionWindow ${quote(window)} is outside 1h to 90d`,
      );
    }
  }

  const creatives = own(c, 'creatives');
  checkBids(x, c, creatives, path);
  checkBudgets(x, c, creatives, path);
  if (!Array.isArray(creatives)) return;
  const ids = new Map<string, number>();
  creatives.forEach((cr, j) => {
    if (!isObject(cr)) return;
    const at = [...path, 'creatives', j];
    const id = own(cr, 'id');
    if (isText(id)) {
      const first = ids.get(id);
      if (first !== undefined) {
        r.add(
          'duplicate_id',
          [...at, 'id'],
          `creative id ${quote(id)} is used twice in this campaign (first at creatives[${first}])`,
        );
      } else ids.set(id, j);
    }
    const crStages = own(cr, 'stages');
    if (Array.isArray(crStages)) {
      crStages.forEach((s, k) => {
        if (!isText(s) || !checkStageName(x, s, [...at, 'stages', k])) return;
        if (stages !== null && !stages.includes(s)) {
          r.add(
            'stage_not_in_campaign',
            [...at, 'stages', k],
            `stage ${quote(s)} is not among the stages the campaign serves (${stages.join(', ')})`,
          );
        }
      });
    }
    const crChannels = own(cr, 'channels');
    if (Array.isArray(crChannels) && channels !== null) {
      crChannels.forEach((ch, k) => {
        if (typeof ch !== 'string' || !(CHANNELS as readonly string[]).includes(ch) || channels.includes(ch))
          return;
        r.add(
          'channel_not_in_campaign',
          [...at, 'channels', k],
          `channel ${quote(ch)} is not among the campaign's channels (${channels.join(', ')})`,
        );
      });
    }
  });
}

/**
 * OpenRTB: a currency says what a bid is in, and one where no bid applies is a mistake; a creative
 * that bids on video or native needs what renders there.
 */
function checkBids(x: Context, c: Obj, creatives: unknown, path: PathSegment[]): void {
  const campaignBid = typeof own(c, 'bid') === 'number';
  const list = Array.isArray(creatives) ? creatives.filter(isObject) : [];
  const anyBid = campaignBid || list.some((cr) => typeof own(cr, 'bid') === 'number');
  if (typeof own(c, 'currency') === 'string' && !anyBid) {
    x.r.add(
      'currency_without_bid',
      [...path, 'currency'],
      'currency is set but neither the campaign nor any of its creatives has a bid',
    );
  }
  if (!Array.isArray(creatives)) return;
  const campaignChannels = own(c, 'channels');
  creatives.forEach((cr, j) => {
    if (!isObject(cr)) return;
    // A creative that bids on video or native must render there: a VAST, a native response.
    if (campaignBid || typeof own(cr, 'bid') === 'number') {
      // No channels named: every channel (the campaign's, else all of them).
      const channels = own(cr, 'channels') ?? campaignChannels ?? CHANNELS;
      const on = (ch: string) => Array.isArray(channels) && channels.includes(ch);
      const id = own(cr, 'id');
      const name = isText(id) ? `creative ${quote(id)}` : 'this creative';
      if (on('video') && own(cr, 'video') === undefined) {
        x.r.add(
          'cannot_render',
          [...path, 'creatives', j, 'video'],
          `${name} bids on video but has no video: {url, mime, duration} for its VAST (or restrict its channels)`,
        );
      }
      if (on('native') && own(cr, 'native') === undefined) {
        x.r.add(
          'cannot_render',
          [...path, 'creatives', j, 'native'],
          `${name} bids on native but has no native: {title, clickUrl, ...} to answer the assets with (or restrict its channels)`,
        );
      }
    }
    if (campaignBid) return;
    if (typeof own(cr, 'currency') === 'string' && typeof own(cr, 'bid') !== 'number') {
      x.r.add(
        'currency_without_bid',
        [...path, 'creatives', j, 'currency'],
        'currency is set but neither the creative nor its campaign has a bid',
      );
    }
  });
}

/**
 * Budgets: an amount to count; whole impressions and clicks; a price for every impression a spend
 * budget counts, in the campaign's currency; an even total needs the flight's end to spread over.
 */
function checkBudgets(x: Context, c: Obj, creatives: unknown, path: PathSegment[]): void {
  const items = Array.isArray(creatives) ? creatives : [];
  const campaignBudget = own(c, 'budget');
  const campaignCpm = isObject(campaignBudget) ? own(campaignBudget, 'cpm') : undefined;
  const campaignCurrency = own(c, 'currency') ?? 'USD';
  const campaignBid = own(c, 'bid');
  const flight = own(c, 'flight');
  const hasEnd = isObject(flight) && own(flight, 'end') !== undefined;
  const check = (b: unknown, at: PathSegment[], only: number | null) => {
    if (!isObject(b)) return;
    const daily = own(b, 'daily');
    const total = own(b, 'total');
    const unit = own(b, 'unit') ?? 'impressions';
    if (daily === undefined && total === undefined)
      x.r.add('budget_without_amount', at, 'a budget needs daily, total or both');
    // An unknown unit is the schema's to report (unknown_budget_unit); nothing else is said of it.
    if (!(BUDGET_UNITS as readonly unknown[]).includes(unit)) return;
    for (const [key, n] of [
      ['daily', daily],
      ['total', total],
    ] as const) {
      if (
        (unit === 'impressions' || unit === 'clicks') &&
        typeof n === 'number' &&
        n > 0 &&
        !Number.isInteger(n)
      )
        x.r.add('budget_not_whole', [...at, key], `${key} counts ${unit}: a whole number, not ${show(n)}`);
    }
    if (own(b, 'cpm') !== undefined && unit !== 'spend')
      x.r.add(
        'cpm_without_spend',
        [...at, 'cpm'],
        `cpm prices impressions for a spend budget; this one counts ${String(unit)}`,
      );
    if ((own(b, 'pacing') ?? 'even') === 'even' && total !== undefined && daily === undefined && !hasEnd) {
      x.r.add(
        'even_total_without_end',
        [...at, 'total'],
        'an even total budget is spread over the flight: give the flight an end, a daily budget, or pacing: asap',
      );
    }
    if (unit !== 'spend') return;
    // Every creative the budget counts needs a price for the impressions /v1/decide delivers, in
    // the campaign's currency. Every creative that falls short is named, each problem once.
    const unpriced: string[] = [];
    const foreign: [name: string, currency: string][] = [];
    for (const [j, one] of items.entries()) {
      if ((only !== null && j !== only) || !isObject(one)) continue;
      const crBudget = own(one, 'budget');
      const ownBid = own(one, 'bid');
      const price =
        (isObject(crBudget) ? own(crBudget, 'cpm') : undefined) ?? campaignCpm ?? ownBid ?? campaignBid;
      const id = own(one, 'id');
      const name = isText(id) ? quote(id) : `creatives[${j}]`;
      // A price that is there but not a number is the schema's to report (wrong_type).
      if (price === undefined) unpriced.push(name);
      // A creative's currency is that of every bid it makes, its own or the campaign's.
      const currency = own(one, 'currency');
      const bids = typeof ownBid === 'number' || typeof campaignBid === 'number';
      if (typeof currency === 'string' && currency !== campaignCurrency && bids)
        foreign.push([name, currency]);
    }
    if (unpriced.length > 0)
      x.r.add(
        'spend_without_price',
        [...at, 'unit'],
        `a spend budget needs a price for every impression, but ${creativesNamed(unpriced)} ${unpriced.length === 1 ? 'has' : 'have'} no cpm and no bid`,
      );
    if (foreign.length > 0)
      x.r.add(
        'budget_currency',
        [...at, 'unit'],
        `a spend budget counts in the campaign's currency, ${String(campaignCurrency)}, but ${
          foreign.length === 1
            ? `creative ${foreign[0]![0]} bids in ${foreign[0]![1]}`
            : `creatives ${list(foreign.map(([n, cur]) => `${n} (${cur})`))} bid in other currencies`
        }`,
      );
  };
  check(campaignBudget, [...path, 'budget'], null);
  items.forEach((cr, j) => {
    if (isObject(cr)) check(own(cr, 'budget'), [...path, 'creatives', j, 'budget'], j);
  });
}

/** `creative "a"`, `creatives "a", "b"`: names already quoted. */
function creativesNamed(names: readonly string[]): string {
  return `${names.length === 1 ? 'creative' : 'creatives'} ${list(names)}`;
}

function checkZone(x: Context, tz: string, path: PathSegment[]): boolean {
  if (isTimeZone(tz)) return true;
  x.r.add(
    'bad_timezone',
    path,
    `unknown time zone ${quote(tz)}; use an IANA name such as Asia/Shanghai or UTC`,
  );
  return false;
}

const HAS_OFFSET = /(Z|[+-]\d{2}:?\d{2})$/;

function checkFlight(
  x: Context,
  flight: Obj,
  path: PathSegment[],
  campaignZone: string,
  campaignZoneOk: boolean,
): void {
  let zone = campaignZone;
  let zoneOk = campaignZoneOk;
  const tz = own(flight, 'timezone');
  if (isText(tz)) {
    zone = tz;
    zoneOk = checkZone(x, tz, [...path, 'timezone']);
  }
  const read = (key: 'start' | 'end'): number | null => {
    const v = own(flight, key);
    if (typeof v !== 'string') return null;
    const offset = HAS_OFFSET.test(v.trim());
    // Without a usable zone, a date-time without an offset is only checked for its form.
    const t = parseFlightBound(v, zoneOk || offset ? zone : 'UTC', key);
    if (t === null) {
      x.r.add(
        'bad_datetime',
        [...path, key],
        `${key} ${quote(v)} is not a valid date-time; use 2026-11-01T00:00:00+08:00, 2026-11-01T00:00:00 or 2026-11-01`,
      );
      return null;
    }
    return zoneOk || offset ? t : null;
  };
  const start = read('start');
  const end = read('end');
  if (start !== null && end !== null && end <= start) {
    x.r.add(
      'flight_order',
      [...path, 'end'],
      `the flight ends (${String(own(flight, 'end'))}) ${end === start ? 'when' : 'before'} it starts (${String(own(flight, 'start'))})`,
    );
  }
}

// ---- conditions --------------------------------------------------------------------------------

const LEAF_KEYS = ['tag', 'attr', 'clv', 'stage', 'segment'] as const;
type LeafKind = (typeof LEAF_KEYS)[number];
const COMBINATOR_KEYS = ['all', 'any', 'not'];
const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'between'];
const ORDERED = ['gt', 'gte', 'lt', 'lte'];
const CONDITION_KEYS = [...LEAF_KEYS, ...COMBINATOR_KEYS];

function isLeafKey(k: string): k is LeafKind {
  return (LEAF_KEYS as readonly string[]).includes(k);
}

function checkCondition(x: Context, c: unknown, path: PathSegment[], depth: number, segment: number): void {
  const r = x.r;
  if (depth > MAX_CONDITION_DEPTH) {
    r.add('too_deep', path, `conditions are nested more than ${MAX_CONDITION_DEPTH} deep`);
    return;
  }
  if (!isObject(c)) {
    r.add(
      'wrong_type',
      path,
      `a condition must be a mapping such as {tag: "circle:business"}, not ${show(c)}`,
    );
    return;
  }
  const keys = Object.keys(c).filter((k) => !FORBIDDEN_KEYS.has(k));
  if (keys.length === 0) {
    r.add(
      'bad_condition',
      path,
      `empty condition; use one of ${CONDITION_KEYS.join(', ')} (to match everyone, write all: [])`,
    );
    return;
  }
  const leaves = keys.filter(isLeafKey);
  const combinators = keys.filter((k) => COMBINATOR_KEYS.includes(k));
  if (leaves.length > 1) {
    r.add(
      'multiple_leaf_keys',
      path,
      `a condition holds one of tag, attr, clv, stage, segment, but this one has ${leaves.join(' and ')}; give each its own condition under all: [...]`,
    );
    return;
  }
  const kind = leaves[0];
  if (kind !== undefined) {
    if (combinators.length > 0) {
      r.add(
        'mixed_condition',
        path,
        `a ${kind} condition cannot also hold ${combinators.join(', ')}; put both under all: [...]`,
      );
    }
    checkLeaf(x, kind, c, keys, path, segment);
    return;
  }
  for (const k of keys) {
    if (combinators.includes(k)) continue;
    if (OPERATORS.includes(k)) {
      r.add(
        'bad_condition',
        [...path, k],
        `operator ${quote(k)} needs something to compare: attr, clv or stage`,
      );
    } else {
      r.add(
        'unknown_field',
        [...path, k],
        `unknown condition ${quote(k)}${didYouMean(k, CONDITION_KEYS)}; a condition is one of ${CONDITION_KEYS.join(', ')}`,
      );
    }
  }
  for (const k of ['all', 'any'] as const) {
    if (!Object.hasOwn(c, k)) continue;
    const items = c[k];
    if (!Array.isArray(items)) {
      r.add('wrong_type', [...path, k], `${k} must be a list of conditions, not ${show(items)}`);
      continue;
    }
    items.forEach((item, i) => {
      checkCondition(x, item, [...path, k, i], depth + 1, segment);
    });
  }
  if (Object.hasOwn(c, 'not')) checkCondition(x, c.not, [...path, 'not'], depth + 1, segment);
}

function checkLeaf(
  x: Context,
  kind: LeafKind,
  c: Obj,
  keys: string[],
  path: PathSegment[],
  segment: number,
): void {
  const r = x.r;
  const subject = c[kind];
  if (typeof subject !== 'string') {
    r.add('wrong_type', [...path, kind], `${kind} must be text, not ${show(subject)}`);
  } else if (subject === '') {
    r.add('empty_value', [...path, kind], `${kind} must not be empty`);
  } else if (kind === 'tag') {
    const star = subject.indexOf('*');
    if (star >= 0 && star !== subject.length - 1) {
      r.add(
        'bad_tag_pattern',
        [...path, kind],
        `tag pattern ${quote(subject)} has a * before its end; only a trailing * matches a prefix (circle:*)`,
      );
    }
  } else if (kind === 'segment') {
    const target = x.segmentIds.get(subject);
    if (target === undefined) r.add('unknown_segment', [...path, kind], unknownSegment(x, subject));
    else x.refs[segment]?.push({ to: target, path: [...path, kind] });
  }

  const takesOperators = kind === 'attr' || kind === 'clv' || kind === 'stage';
  let operators = 0;
  let unknown = 0;
  for (const k of keys) {
    if (k === kind || COMBINATOR_KEYS.includes(k)) continue;
    if (takesOperators && OPERATORS.includes(k)) {
      operators++;
      checkOperand(x, kind, k, c[k], [...path, k]);
      continue;
    }
    unknown++;
    if (!takesOperators) {
      if (OPERATORS.includes(k)) {
        r.add(
          'unknown_operator',
          [...path, k],
          `a ${kind} condition takes no operators, but has ${quote(k)}`,
        );
      } else {
        r.add(
          'unknown_field',
          [...path, k],
          `unknown field ${quote(k)}; a ${kind} condition holds only ${kind}`,
        );
      }
    } else {
      r.add(
        'unknown_operator',
        [...path, k],
        `unknown operator ${quote(k)}${didYouMean(k, OPERATORS)}; ${kind} conditions take ${OPERATORS.join(', ')}`,
      );
    }
  }
  if (takesOperators && operators === 0 && unknown === 0) {
    r.add(
      'missing_operator',
      path,
      `the ${kind} condition${typeof subject === 'string' ? ` on ${quote(subject)}` : ''} compares nothing; add one of ${OPERATORS.join(', ')}`,
    );
  }
}

function checkOperand(
  x: Context,
  kind: 'attr' | 'clv' | 'stage',
  op: string,
  v: unknown,
  path: PathSegment[],
): void {
  const r = x.r;
  if (op === 'between') {
    if (!Array.isArray(v) || v.length !== 2) {
      r.add(
        'bad_between',
        path,
        `between needs two values [low, high], not ${Array.isArray(v) ? `${v.length} value${v.length === 1 ? '' : 's'}` : show(v)}`,
      );
      return;
    }
    const ok0 = checkSingle(x, kind, 'between', v[0], [...path, 0]);
    const ok1 = checkSingle(x, kind, 'between', v[1], [...path, 1]);
    if (!ok0 || !ok1) return;
    const lo = kind === 'stage' ? (x.stageIndex.get(v[0] as string) ?? 0) : (v[0] as number);
    const hi = kind === 'stage' ? (x.stageIndex.get(v[1] as string) ?? 0) : (v[1] as number);
    if (lo > hi) {
      r.add(
        'bad_between',
        path,
        kind === 'stage'
          ? `between [${v[0]}, ${v[1]}] runs backwards along the funnel; ${funnelText(x)}`
          : `between [${v[0]}, ${v[1]}] has its low end above its high end`,
      );
    }
    return;
  }
  if (op === 'in') {
    if (!Array.isArray(v)) {
      r.add('wrong_type', path, `in must be a list of values, not ${show(v)}`);
      return;
    }
    if (v.length === 0) {
      r.add('empty_in', path, 'in needs at least one value; an empty list never matches');
      return;
    }
    v.forEach((item, i) => {
      checkSingle(x, kind, 'in', item, [...path, i]);
    });
    return;
  }
  checkSingle(x, kind, op, v, path);
}

/** One operand of one operator; true when it is usable. */
function checkSingle(
  x: Context,
  kind: 'attr' | 'clv' | 'stage',
  op: string,
  v: unknown,
  path: PathSegment[],
): boolean {
  const r = x.r;
  if (kind === 'stage') {
    if (!isText(v)) {
      r.add('wrong_type', path, `${op} of a stage condition must be a stage name, not ${show(v)}`);
      return false;
    }
    return checkStageName(x, v, path);
  }
  const numeric = kind === 'clv' || ORDERED.includes(op) || op === 'between';
  if (numeric) {
    if (isNumber(v)) return true;
    const why = kind === 'clv' ? 'a CLV is compared with numbers' : `${op} compares numbers`;
    r.add('not_a_number', path, `${why}, but ${show(v)} is not a number`);
    return false;
  }
  if (isNumber(v) || typeof v === 'string' || typeof v === 'boolean') return true;
  r.add('wrong_type', path, `${op} must be text, a number or true/false, not ${show(v)}`);
  return false;
}

/** Reports every distinct cycle of segment references, naming it. */
function checkCycles(x: Context, segments: unknown[]): void {
  const n = segments.length;
  const ids = segments.map((s) => {
    const id = isObject(s) ? own(s, 'id') : undefined;
    return typeof id === 'string' ? id : '?';
  });
  const WHITE = 0;
  const GREY = 1;
  const BLACK = 2;
  const colour = new Uint8Array(n);
  const reported = new Set<string>();
  for (let root = 0; root < n; root++) {
    if (colour[root] !== WHITE) continue;
    // Iterative depth-first search: the stack holds [node, next edge index].
    const stack: [number, number][] = [[root, 0]];
    colour[root] = GREY;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const [node, edge] = top;
      const edges = x.refs[node] ?? [];
      if (edge >= edges.length) {
        colour[node] = BLACK;
        stack.pop();
        continue;
      }
      top[1] = edge + 1;
      const to = edges[edge]!.to;
      if (colour[to] === WHITE) {
        colour[to] = GREY;
        stack.push([to, 0]);
      } else if (colour[to] === GREY) {
        const from = stack.findIndex(([s]) => s === to);
        const cycle = stack.slice(from).map(([s]) => s);
        const key = [...cycle].sort((a, b) => a - b).join(',');
        if (reported.has(key)) continue;
        reported.add(key);
        // Name the cycle from its first segment in rule-set order, at the reference leaving it.
        const lowest = cycle.indexOf(Math.min(...cycle));
        const ordered = [...cycle.slice(lowest), ...cycle.slice(0, lowest)];
        const first = ordered[0]!;
        const next = ordered[1] ?? first;
        const ref = (x.refs[first] ?? []).find((e) => e.to === next);
        const names = [...ordered, first].map((s) => ids[s]).join(' -> ');
        x.r.add(
          'segment_cycle',
          ref?.path ?? ['segments', first],
          ordered.length === 1
            ? `segment ${quote(ids[first] ?? '?')} refers to itself`
            : `segments refer to each other in a cycle: ${names}`,
        );
      }
    }
  }
}
