/**
 * Rule-set text (YAML or JSON) to a validated rule set. Syntax errors carry a 1-based line and
 * column; so do validation errors, pointing at the key or item their path names, so that an
 * editor can jump to the problem. Pure: the caller reads the file.
 */
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { RuleError, RuleSet, Validated } from './types.js';
import { formatPath, MAX_DOCUMENT_DEPTH, type PathSegment, parsePath, validateRuleSet } from './validate.js';
import { ruleSetWarnings } from './warnings.js';

/** Text longer than this (in UTF-16 code units) is refused before parsing. */
export const MAX_TEXT_LENGTH = 32 * 1024 * 1024;
/** YAML aliases allowed when building the data; far more means an alias bomb. */
export const MAX_ALIAS_COUNT = 1000;

export type RuleSetFormat = 'yaml' | 'json';

/** JSON when the first character that is not white space is `{`, else YAML. */
export function detectFormat(text: string): RuleSetFormat {
  const m = /\S/.exec(stripBom(text));
  return m?.[0] === '{' ? 'json' : 'yaml';
}

/** Parses rule-set text and validates it; every problem is reported at once. */
export interface ParseOptions {
  /** Also find the warnings of a valid rule set (rules/warnings.ts) as of this moment, epoch ms. */
  warningsAt?: number;
}

export function parseRuleSetText(
  text: string,
  format?: RuleSetFormat,
  opts: ParseOptions = {},
): Validated<RuleSet> {
  if (text.length > MAX_TEXT_LENGTH) {
    return fail([
      {
        code: 'too_large',
        path: '',
        message: `the rule set is ${text.length} characters long; at most ${MAX_TEXT_LENGTH} are accepted`,
      },
    ]);
  }
  const body = stripBom(text);
  return (format ?? detectFormat(body)) === 'json' ? parseJson(body, opts) : parseYaml(body, opts);
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function fail(errors: RuleError[]): Validated<RuleSet> {
  return { ok: false, errors };
}

/** Errors with a position first in the order of the text, then the others in their order. */
function byPosition(errors: RuleError[]): RuleError[] {
  return errors
    .map((e, i) => ({ e, i }))
    .sort((a, b) => {
      const la = a.e.line ?? Number.POSITIVE_INFINITY;
      const lb = b.e.line ?? Number.POSITIVE_INFINITY;
      if (la !== lb) return la - lb;
      const ca = a.e.column ?? 0;
      const cb = b.e.column ?? 0;
      return ca !== cb ? ca - cb : a.i - b.i;
    })
    .map((x) => x.e);
}

/** Attaches line and column to each error, from a path to a text offset. */
function locate(errors: readonly RuleError[], offsetOf: (path: string) => number | undefined, text: string) {
  const lines = new LineIndex(text);
  return byPosition(
    errors.map((e) => {
      // The note that more problems were left out stays last, without a position.
      if (e.code === 'too_many_errors') return e;
      // A missing field has no position of its own: point at the nearest thing that exists.
      const segs = parsePath(e.path);
      for (let n = segs.length; n >= 0; n--) {
        const at = offsetOf(formatPath(segs.slice(0, n)));
        if (at !== undefined) return { ...e, ...lines.position(at) };
      }
      return e;
    }),
  );
}

class LineIndex {
  private readonly starts: number[] = [0];
  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }
  /** 1-based line and column of an offset. */
  position(offset: number): { line: number; column: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo]! + 1 };
  }
}

// ---- YAML --------------------------------------------------------------------------------------

/** The valid result, with its warnings (placed in the text) when asked for. */
function valid(
  value: RuleSet,
  opts: ParseOptions,
  offsetOf: () => (path: string) => number | undefined,
  text: string,
): Validated<RuleSet> {
  if (opts.warningsAt === undefined) return { ok: true, value };
  const warnings = ruleSetWarnings(value, opts.warningsAt);
  return { ok: true, value, warnings: warnings.length === 0 ? [] : locate(warnings, offsetOf(), text) };
}

function parseYaml(text: string, opts: ParseOptions): Validated<RuleSet> {
  // The YAML library recurses per level of nesting and runs regular expressions over whole flow
  // collections: 1,000 levels overflow its stack, 100,000 on one line exhaust the process's
  // memory compiling a regular expression (measured). Deeper than a rule set can be: refused first.
  const deep = yamlTooDeep(text);
  if (deep !== null) {
    const lines = new LineIndex(text);
    return fail([
      {
        code: 'too_deep',
        path: '',
        message: `the YAML is nested more than ${MAX_DOCUMENT_DEPTH} levels deep`,
        ...lines.position(deep),
      },
    ]);
  }
  const lineCounter = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { schema: 'core', uniqueKeys: true, prettyErrors: false, lineCounter });
  } catch (e) {
    return fail([
      { code: 'yaml_syntax', path: '', message: `the YAML cannot be read: ${(e as Error).message}` },
    ]);
  }
  if (doc.errors.length > 0) {
    return fail(
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        const duplicate = e.code === 'DUPLICATE_KEY';
        const key = text.slice(e.pos[0], e.pos[1]).trim();
        return {
          code: duplicate ? 'duplicate_key' : 'yaml_syntax',
          path: '',
          message: duplicate
            ? `the key ${key === '' ? '' : `${JSON.stringify(key)} `}appears twice in the same mapping`
            : e.message,
          line,
          column: col,
        };
      }),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const aliases = e instanceof ReferenceError && /alias/i.test(e.message);
    return fail([
      {
        code: aliases ? 'yaml_aliases' : 'yaml_syntax',
        path: '',
        message: aliases
          ? `the YAML expands its aliases (*name) too many times; at most ${MAX_ALIAS_COUNT} are allowed`
          : `the YAML cannot be read: ${(e as Error).message}`,
      },
    ]);
  }
  const v = validateRuleSet(data);
  if (v.ok) return valid(v.value, opts, () => (path) => yamlOffset(doc, parsePath(path)), text);
  return fail(locate(v.errors, (path) => yamlOffset(doc, parsePath(path)), text));
}

/**
 * Where YAML text nests deeper than MAX_DOCUMENT_DEPTH (an offset), or null: flow collections
 * (`[`, `{` outside quoted scalars and comments) and block nesting (indentation, and `- ` items
 * opened on one line) counted together, a little more than the data's depth but never less.
 */
export function yamlTooDeep(text: string): number | null {
  let flow = 0;
  let quote = 0; // the quote character of a quoted scalar being read, 0 outside one
  let lineStart = 0;
  let block = 0;
  let atLineHead = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      lineStart = i + 1;
      atLineHead = true;
      block = 0;
      if (quote === 0) continue;
    }
    if (quote !== 0) {
      if (c === quote) {
        if (quote === 39 && text.charCodeAt(i + 1) === 39)
          i++; // '' inside '…'
        else quote = 0;
      } else if (c === 92 && quote === 34) i++; // \x inside "…"
      continue;
    }
    if (atLineHead) {
      // Indentation and `- ` items at the head of a line open block levels.
      if (c === 32) {
        if ((i - lineStart) % 2 === 1) block++;
        if (flow + block > MAX_DOCUMENT_DEPTH) return i;
        continue;
      }
      if (c === 45 && (text.charCodeAt(i + 1) === 32 || text.charCodeAt(i + 1) === 10)) {
        block++;
        if (flow + block > MAX_DOCUMENT_DEPTH) return i;
        continue;
      }
      atLineHead = false;
    }
    if (c === 35 && (i === lineStart || text.charCodeAt(i - 1) === 32)) {
      // A comment: skip to the end of the line.
      while (i + 1 < text.length && text.charCodeAt(i + 1) !== 10) i++;
    } else if (c === 91 || c === 123) {
      flow++;
      if (flow + block > MAX_DOCUMENT_DEPTH) return i;
    } else if ((c === 93 || c === 125) && flow > 0) {
      flow--;
    } else if (c === 34 || c === 39) {
      // A quote opens a quoted scalar only where a scalar can begin.
      const before = i === lineStart ? 32 : text.charCodeAt(i - 1);
      if (before === 32 || before === 91 || before === 123 || before === 44 || before === 58 || before === 9)
        quote = c;
    }
  }
  return null;
}

/** Offset of the node a path names: the key of a mapping entry, or the item of a list. */
function yamlOffset(doc: Document, path: readonly PathSegment[]): number | undefined {
  const resolve = (node: unknown): unknown => (isAlias(node) ? node.resolve(doc) : node);
  let node = resolve(doc.contents);
  let at = rangeStart(node);
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) return undefined;
      at = rangeStart(pair.key) ?? rangeStart(pair.value);
      node = resolve(pair.value);
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (item === undefined) return undefined;
      at = rangeStart(item);
      node = resolve(item);
    } else {
      return undefined;
    }
  }
  return at;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] } | null | undefined)?.range;
  return range?.[0];
}

// ---- JSON --------------------------------------------------------------------------------------

function parseJson(text: string, opts: ParseOptions): Validated<RuleSet> {
  const lines = new LineIndex(text);
  const scan = scanJson(text, false);
  if (scan.syntax !== null) {
    return fail([
      { code: 'json_syntax', path: '', message: scan.syntax.message, ...lines.position(scan.syntax.offset) },
    ]);
  }
  if (scan.duplicates.length > 0) {
    return fail(
      scan.duplicates.map((d) => ({
        code: 'duplicate_key',
        path: d.path,
        message: `the key ${JSON.stringify(d.key)} appears twice in the same object`,
        ...lines.position(d.offset),
      })),
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    // The scanner found nothing, so this is a limit of the runtime (such as nesting).
    return fail([{ code: 'json_syntax', path: '', message: (e as Error).message }]);
  }
  const v = validateRuleSet(data);
  if (v.ok) {
    return valid(
      v.value,
      opts,
      () => {
        const offsets = scanJson(text, true).offsets;
        return (path) => offsets.get(path);
      },
      text,
    );
  }
  const offsets = scanJson(text, true).offsets;
  return fail(locate(v.errors, (path) => offsets.get(path), text));
}

interface JsonScan {
  syntax: { offset: number; message: string } | null;
  duplicates: { path: string; key: string; offset: number }[];
  /** path -> offset of the member's key or the array item */
  offsets: Map<string, number>;
}

class JsonSyntaxError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const MAX_JSON_DEPTH = 1000;

/**
 * A strict JSON reader that only finds things: the first syntax error with its offset, keys
 * given twice in one object, and (when asked) the offset of every value by path.
 */
function scanJson(text: string, withOffsets: boolean): JsonScan {
  const out: JsonScan = { syntax: null, duplicates: [], offsets: new Map() };
  let i = 0;
  const fail = (message: string): never => {
    throw new JsonSyntaxError(i, message);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const str = (): string => {
    const start = i;
    i++;
    for (;;) {
      if (i >= text.length) fail('a string is not closed');
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return JSON.parse(text.slice(start, i)) as string;
      }
      if (c < 32) fail('a string holds a control character; write it as an escape such as \\n');
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('a \\u escape needs four hex digits');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail(`unknown escape \\${e ?? ''}`);
      } else i++;
    }
  };
  const value = (path: PathSegment[], depth: number): void => {
    if (depth > MAX_JSON_DEPTH) fail(`the JSON is nested more than ${MAX_JSON_DEPTH} levels deep`);
    ws();
    const c = text[i];
    if (c === undefined) fail('the text ends where a value was expected');
    else if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      const seen = new Set<string>();
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key in double quotes');
        const keyAt = i;
        const key = str();
        const at = [...path, key];
        if (seen.has(key)) out.duplicates.push({ path: formatPath(at), key, offset: keyAt });
        seen.add(key);
        if (withOffsets) out.offsets.set(formatPath(at), keyAt);
        ws();
        if (text[i] !== ':') fail("expected ':' after a key");
        i++;
        value(at, depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (let n = 0; ; n++) {
        ws();
        const at = [...path, n];
        if (withOffsets) out.offsets.set(formatPath(at), i);
        value(at, depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail("expected ',' or ']'");
      }
    } else if (c === '"') {
      str();
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      JSON_NUMBER.lastIndex = i;
      if (!JSON_NUMBER.test(text)) fail('a number is not well formed');
      i = JSON_NUMBER.lastIndex;
    } else {
      for (const word of ['true', 'false', 'null']) {
        if (text.startsWith(word, i)) {
          i += word.length;
          return;
        }
      }
      fail(`unexpected character ${JSON.stringify(c)}`);
    }
  };
  try {
    if (withOffsets) out.offsets.set('', 0);
    value([], 0);
    ws();
    if (i < text.length) fail('unexpected text after the end of the rule set');
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    out.syntax = { offset: e.offset, message: e.message };
  }
  return out;
}
