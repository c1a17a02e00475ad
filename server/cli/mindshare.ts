/**
 * `mindshare`: the command line for campaign managers who keep rule sets in git. `validate`
 * checks a file offline with the server's own parser; the other commands talk to the control
 * plane (ADMIN_PORT): diff a file against the active set, push and activate versions, roll back,
 * list versions, preview a person's decision and size a draft's effect with what-if.
 *
 *   mindshare validate rules/campaigns.yaml
 *   mindshare diff rules/campaigns.yaml --exit-code
 *   mindshare push rules/campaigns.yaml --activate
 *
 * bin/mindshare.js runs the compiled file; docs/cli.md describes every command. `main()` takes
 * its arguments, environment and output as parameters so that it can run inside a test.
 *
 * Exit status: 0 success; 1 refused or invalid (validation errors, a 4xx answer other than
 * 401/403, `diff --exit-code` with changes); 2 usage error; 3 authentication or authorization
 * (401, 403); 4 the server could not be reached, timed out or answered 5xx.
 */
import { readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { describeDiff, type RuleSetDiff } from '../../rules/diff.js';
import type { RuleSetFormat } from '../../rules/parse.js';
import {
  type CampaignExplanation,
  CHANNELS,
  type Channel,
  type Ghost,
  type Placement,
  type PlacementDecision,
  type RuleError,
} from '../../rules/types.js';
import { projectRoot } from '../project.js';

export const EXIT = { ok: 0, refused: 1, usage: 2, auth: 3, unreachable: 4 } as const;

export const DEFAULT_URL = 'http://127.0.0.1:8081';
const DEFAULT_TIMEOUT_MS = 30_000;
/**
 * The request limits of server/contracts/schemas.ts (LIMITS.placements, LIMITS.whatIfSample),
 * checked here to answer a usage error early; the server checks them again. Not imported from
 * there: the schemas module builds every contract at load time, which would slow every command
 * by a fifth of a second (the test of this command line checks that the numbers agree).
 */
export const MAX_PLACEMENTS = 16;
export const MAX_WHAT_IF_SAMPLE = 10_000;

/** The placements previewed and compared when no --placement is given: the README's decide example. */
export const DEFAULT_PLACEMENTS: readonly Placement[] = [
  { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] },
  { id: 'daily-push', channels: ['app_push', 'sms', 'email'] },
];

export interface CliIo {
  /** Standard output; every call is one or more whole lines, without the last newline. */
  out: (text: string) => void;
  /** Standard error, likewise. */
  err: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

/** An expected failure: its message (already printed when null) and the exit status. */
class CliFailure extends Error {
  constructor(
    readonly exitCode: number,
    message: string | null,
  ) {
    super(message ?? '');
  }
}

const PLACEMENT_HELP = `
Placement SPEC (--placement, repeatable):
  ID[:CHANNELS[:FORMATS]]  channels and formats comma-separated, an empty part means any:
  home-banner:display:banner-300x250   daily-push:app_push,sms,email   feed::native-feed
  A SPEC starting with { is a placement as JSON: {"id":"feed","formats":["native-feed"]}
  Default: ${DEFAULT_PLACEMENTS.map(specOf).join(' ')}`;

const EPILOGUE = `${PLACEMENT_HELP}

Environment:
  MINDSHARE_URL    the control plane (default ${DEFAULT_URL}); --url wins
  MINDSHARE_TOKEN  the API token, sent as Authorization: Bearer; --token wins

Exit status:
  0  success
  1  refused or invalid: rule-set errors, a 4xx answer other than 401/403,
     diff --exit-code with changes
  2  usage error (unknown command or option, bad argument)
  3  authentication or authorization refused (401, 403)
  4  the server could not be reached, did not answer in time, or answered 5xx

Every command is described in docs/cli.md.`;

// ---- arguments -----------------------------------------------------------------------------------

function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1 || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? 'expected a whole number, 1 or more'
          : `expected a whole number from 1 to ${max}`,
      );
    }
    return n;
  };
}
const version = positiveInt(Number.MAX_SAFE_INTEGER);

function versionOrActive(value: string): number | 'active' {
  return value === 'active' ? 'active' : version(value);
}

/** An instant with its zone (`2026-11-24T12:00:00+08:00`, `…Z`), as ISO 8601 in UTC. */
function instant(value: string): string {
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2})$/i.test(value) || Number.isNaN(ms)) {
    throw new InvalidArgumentError(
      'expected an ISO 8601 date and time with its zone, e.g. 2026-11-24T12:00:00+08:00',
    );
  }
  return new Date(ms).toISOString();
}

function specOf(p: Placement): string {
  const channels = p.channels?.join(',') ?? '';
  const formats = p.formats?.join(',') ?? '';
  return formats !== '' ? `${p.id}:${channels}:${formats}` : channels !== '' ? `${p.id}:${channels}` : p.id;
}

/** `ID[:CHANNELS[:FORMATS]]`, or a placement as JSON. */
export function parsePlacement(spec: string): Placement {
  if (spec.trimStart().startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(spec);
    } catch (e) {
      throw new InvalidArgumentError(`not valid JSON (${(e as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || typeof (value as { id?: unknown }).id !== 'string') {
      throw new InvalidArgumentError('a placement as JSON is an object with an "id"');
    }
    // The server checks the rest of it like any request.
    return value as Placement;
  }
  const parts = spec.split(':');
  if (parts.length > 3) throw new InvalidArgumentError('expected ID[:CHANNELS[:FORMATS]]');
  const [id = '', channels = '', formats = ''] = parts;
  if (id === '') throw new InvalidArgumentError('the placement id is empty');
  const list = (s: string) => s.split(',').filter((x) => x !== '');
  const placement: Placement = { id };
  const ch = list(channels);
  for (const c of ch) {
    if (!(CHANNELS as readonly string[]).includes(c)) {
      throw new InvalidArgumentError(`unknown channel "${c}" (channels: ${CHANNELS.join(', ')})`);
    }
  }
  if (ch.length > 0) placement.channels = ch as Channel[];
  const fm = list(formats);
  if (fm.length > 0) placement.formats = fm;
  return placement;
}

function collectPlacement(spec: string, previous: Placement[] | undefined): Placement[] {
  const all = [...(previous ?? []), parsePlacement(spec)];
  if (all.length > MAX_PLACEMENTS) {
    throw new InvalidArgumentError(`at most ${MAX_PLACEMENTS} placements`);
  }
  return all;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

// ---- files ---------------------------------------------------------------------------------------

interface RuleSetSource {
  name: string;
  text: string;
  format: RuleSetFormat;
}

/** A rule-set file (`-`: standard input); the format from its extension, else from its text. */
async function readRuleSet(file: string): Promise<RuleSetSource> {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EISDIR'
          ? 'it is a directory'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.message;
    throw new CliFailure(EXIT.refused, `error: cannot read ${file}: ${why}`);
  }
  const ext = extname(file).toLowerCase();
  const format =
    ext === '.json'
      ? 'json'
      : ext === '.yaml' || ext === '.yml'
        ? 'yaml'
        : (await import('../../rules/parse.js')).detectFormat(text);
  return { name: file === '-' ? '(stdin)' : file, text, format };
}

/**
 * `FILE:line:column: path: message [code]`, line and column when the error has them; a warning
 * says so after the place (`FILE:line:column: warning: …`).
 */
export function formatRuleError(
  file: string,
  e: Pick<RuleError, 'path' | 'message' | 'code' | 'line' | 'column'>,
  kind: 'error' | 'warning' = 'error',
) {
  const where = e.line === undefined ? '' : e.column === undefined ? `:${e.line}` : `:${e.line}:${e.column}`;
  const label = kind === 'warning' ? ' warning:' : '';
  return `${file}${where}:${label} ${e.path === '' ? '(rule set)' : e.path}: ${e.message} [${e.code}]`;
}

// ---- the API ---------------------------------------------------------------------------------------

interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  timeout?: number;
}

interface ApiError {
  error?: { code?: string; message?: string; path?: string };
  errors?: RuleError[];
}

class Api {
  readonly base: URL;
  readonly json: boolean;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(
    opts: GlobalOptions,
    private readonly io: CliIo,
  ) {
    const url = opts.url ?? nonEmpty(io.env.MINDSHARE_URL) ?? DEFAULT_URL;
    let base: URL;
    try {
      base = new URL(url);
    } catch {
      throw new CliFailure(EXIT.usage, `error: --url ${JSON.stringify(url)} is not a URL`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new CliFailure(EXIT.usage, `error: --url ${JSON.stringify(url)} is not an http or https URL`);
    }
    this.base = base;
    // An empty --token means no token, whatever MINDSHARE_TOKEN says.
    this.token = opts.token !== undefined ? nonEmpty(opts.token) : nonEmpty(io.env.MINDSHARE_TOKEN);
    this.timeoutMs = opts.timeout ?? DEFAULT_TIMEOUT_MS;
    this.json = opts.json === true;
    this.fetch = io.fetch ?? fetch;
  }

  /**
   * Sends a request and answers the parsed JSON of a 2xx answer; any other answer, or none,
   * is printed and thrown as a CliFailure with its exit status. With --json the answer's body
   * is printed to standard output as it came, whatever its status.
   */
  async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: { type: string; text: string },
    file?: string,
  ): Promise<T> {
    const url = new URL(path, this.base.href.endsWith('/') ? this.base : `${this.base.href}/`);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = body.type;
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: body.text }),
        // A redirect would turn a POST into a GET of another route: named as an error instead.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (e) {
      throw new CliFailure(EXIT.unreachable, `error: ${unreachable(e, this.base.origin, this.timeoutMs)}`);
    }
    if (res.status >= 300 && res.status < 400) {
      throw new CliFailure(
        EXIT.refused,
        `error: ${this.base.origin} answered ${res.status}, a redirect to ${res.headers.get('location') ?? '(nowhere)'}: give the control plane's own URL (--url or MINDSHARE_URL)`,
      );
    }
    if (this.json && text !== '') this.io.out(text.endsWith('\n') ? text.slice(0, -1) : text);
    if (res.ok) {
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new CliFailure(
          EXIT.unreachable,
          `error: ${method} ${url.pathname} answered ${res.status} with a body that is not JSON`,
        );
      }
    }
    this.io.err(this.describeError(method, url, res.status, text, file));
    throw new CliFailure(
      res.status === 401 || res.status === 403
        ? EXIT.auth
        : res.status >= 500
          ? EXIT.unreachable
          : EXIT.refused,
      null,
    );
  }

  private describeError(
    method: string,
    url: URL,
    status: number,
    text: string,
    file: string | undefined,
  ): string {
    let body: ApiError | null = null;
    try {
      body = JSON.parse(text) as ApiError;
    } catch {
      // Not the API's error body (a proxy's page, say): the status says what there is to say.
    }
    const e = body?.error;
    if (e === undefined || typeof e.code !== 'string') {
      const first = text.split('\n', 1)[0]?.slice(0, 200) ?? '';
      return `error: ${method} ${url.href} answered ${status} without an API error${first === '' ? ' (is --url the control plane?)' : `: ${first}`}`;
    }
    const lines = [`error: ${e.code}: ${e.message ?? ''}${e.path === undefined ? '' : ` (at ${e.path})`}`];
    if (e.code === 'invalid_ruleset' && Array.isArray(body?.errors)) {
      for (const r of body.errors) lines.push(formatRuleError(file ?? '(draft)', r));
    }
    if (status === 401 && this.token === undefined) {
      lines.push('hint: pass --token or set MINDSHARE_TOKEN');
    }
    if (e.code === 'not_found') {
      lines.push(`hint: is ${this.base.origin} the control plane (ADMIN_PORT, 8081 by default)?`);
    }
    return lines.join('\n');
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/** Why a request got no answer, in one line. */
function unreachable(e: unknown, origin: string, timeoutMs: number): string {
  const err = e as Error & { cause?: unknown };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') {
    return `no answer from ${origin} within ${timeoutMs} ms`;
  }
  let cause = err.cause as (Error & { code?: string; errors?: Array<Error & { code?: string }> }) | undefined;
  if (cause?.errors?.[0] !== undefined) cause = cause.errors[0];
  // fetch refuses some ports outright (6000, 6665-6669 and the like): say so rather than "bad port".
  const detail =
    cause?.message === 'bad port'
      ? 'fetch refuses to connect to this port; use another one'
      : (cause?.code ?? cause?.message ?? err.message);
  return `cannot reach the control plane at ${origin} (${detail})`;
}

function ruleSetBody(src: RuleSetSource): { type: string; text: string } {
  return { type: src.format === 'json' ? 'application/json' : 'application/yaml', text: src.text };
}

function jsonBody(value: unknown): { type: string; text: string } {
  return { type: 'application/json', text: JSON.stringify(value) };
}

// ---- output --------------------------------------------------------------------------------------

/** Left-aligned columns, two spaces apart; trailing blanks trimmed. */
export function table(rows: ReadonlyArray<ReadonlyArray<string>>): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;
const shortChecksum = (c: string) => (c.startsWith('sha256:') ? c.slice(0, 19) : c.slice(0, 12));
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---- answers -------------------------------------------------------------------------------------

interface Side {
  version: number | null;
  checksum: string;
}
interface DiffAnswer extends RuleSetDiff {
  from: Side;
  to: Side;
  text: string | null;
}
interface UploadAnswer {
  version: number;
  checksum: string;
  active: boolean;
  activatedAt?: string;
  warnings?: RuleError[];
}
interface ActivateAnswer {
  version: number;
  activatedAt: string;
}
interface RollbackAnswer {
  version: number;
  from: number;
  activatedAt: string;
}
interface VersionsAnswer {
  active: number | null;
  serving: number;
  versions: Array<{
    version: number;
    checksum: string;
    format: string;
    createdBy: string;
    createdAt: string;
    bytes: number;
    activatedAt?: string;
    activatedBy?: string;
    active: boolean;
  }>;
  activations?: Array<{ version: number; by: string; at: string; rollback: boolean }>;
  rollbackTo?: number | null;
}
interface PreviewAnswer {
  ruleset: number | 'draft';
  user: string | null;
  known?: boolean;
  at?: string;
  decisions: PlacementDecision[];
  ghosts?: Ghost[];
  explain?: { segments?: string[]; campaigns?: CampaignExplanation[] };
}
type Choice = { campaign: string; creative: string } | null;
interface WhatIfAnswer {
  active: number;
  exact?: boolean;
  partial?: boolean;
  sample: { people?: number; draws?: number; population?: number; populationOf?: string };
  decisions: number;
  changed: number;
  fill: { before?: number; after?: number };
  campaigns: Array<{ campaign: string; before: number; after: number; gained: number; lost: number }>;
  changes: Array<{ placement: string; from: Choice; to: Choice; decisions: number; examples?: string[] }>;
  elapsedMs?: number;
}

// ---- commands ------------------------------------------------------------------------------------

/**
 * The parser loads lazily: it compiles the rule-set JSON Schema when loaded, which only this
 * command needs (the server parses what the others send).
 */
async function validate(file: string, opts: GlobalOptions, io: CliIo): Promise<number> {
  const src = await readRuleSet(file);
  const { parseRuleSetText } = await import('../../rules/parse.js');
  const { checksumOf } = await import('../ruleset-file.js');
  const parsed = parseRuleSetText(src.text, src.format, { warningsAt: Date.now() });
  if (!parsed.ok) {
    if (opts.json === true) {
      io.out(
        JSON.stringify({
          error: {
            code: 'invalid_ruleset',
            message: `The rule set is not valid (${plural(parsed.errors.length, 'problem')})`,
          },
          errors: parsed.errors,
        }),
      );
    }
    for (const e of parsed.errors) io.err(formatRuleError(src.name, e));
    io.err(`${src.name}: not valid (${plural(parsed.errors.length, 'problem')})`);
    return EXIT.refused;
  }
  const rs = parsed.value;
  const warnings = parsed.warnings ?? [];
  const checksum = checksumOf(src.text);
  if (opts.json === true) {
    io.out(
      JSON.stringify({
        valid: true,
        checksum,
        funnel: rs.funnel,
        segments: rs.segments.length,
        campaigns: rs.campaigns.length,
        warnings,
      }),
    );
  } else {
    printWarnings(src.name, warnings, io);
    io.out(
      `${src.name}: valid ${src.format}, ${plural(rs.segments.length, 'segment')}, ${plural(rs.campaigns.length, 'campaign')}, ${checksum}${warnings.length === 0 ? '' : `, ${plural(warnings.length, 'warning')}`}`,
    );
  }
  return EXIT.ok;
}

async function diff(
  file: string,
  opts: { against?: number | 'active'; text?: boolean; exitCode?: boolean },
  api: Api,
  io: CliIo,
): Promise<number> {
  const src = await readRuleSet(file);
  const query = opts.against === undefined ? '' : `?against=${opts.against}`;
  const d = await api.call<DiffAnswer>('POST', `v1/rulesets/diff${query}`, ruleSetBody(src), src.name);
  if (!api.json) {
    const active = opts.against === undefined || opts.against === 'active';
    io.out(`${src.name} against version ${d.from.version}${active ? ' (active)' : ''}:`);
    const lines = describeDiff(d);
    if (lines.length > 0) io.out(lines.join('\n'));
    else if (d.from.checksum !== d.to.checksum) {
      io.out('no changes (the texts differ only in comments, key order or style)');
    } else io.out('no changes');
    if (opts.text === true) {
      if (d.text === null) io.out('(the text diff took too long to compute and was left out)');
      else if (d.from.checksum !== d.to.checksum) io.out(d.text.replace(/\n$/, ''));
    }
  }
  return opts.exitCode === true && d.changed ? EXIT.refused : EXIT.ok;
}

/** Warnings on standard error, `FILE:line:column: warning: path: message [code]`; they never fail a command. */
function printWarnings(file: string, warnings: readonly RuleError[], io: CliIo): void {
  for (const w of warnings) io.err(formatRuleError(file, w, 'warning'));
}

async function push(file: string, opts: { activate?: boolean }, api: Api, io: CliIo): Promise<number> {
  const src = await readRuleSet(file);
  const query = opts.activate === true ? '?activate=true' : '';
  const a = await api.call<UploadAnswer>('POST', `v1/rulesets${query}`, ruleSetBody(src), src.name);
  if (!api.json) {
    printWarnings(src.name, a.warnings ?? [], io);
    io.out(
      a.active
        ? `stored ${src.name} as version ${a.version} (${a.checksum}), active since ${a.activatedAt ?? 'now'}`
        : `stored ${src.name} as version ${a.version} (${a.checksum}), not active (mindshare activate ${a.version})`,
    );
  }
  return EXIT.ok;
}

async function activate(n: number, api: Api, io: CliIo): Promise<number> {
  const a = await api.call<ActivateAnswer>('POST', `v1/rulesets/${n}/activate`);
  if (!api.json) io.out(`version ${a.version} active since ${a.activatedAt}`);
  return EXIT.ok;
}

async function rollback(api: Api, io: CliIo): Promise<number> {
  const a = await api.call<RollbackAnswer>('POST', 'v1/rulesets/rollback');
  if (!api.json)
    io.out(`rolled back from version ${a.from} to version ${a.version}, active since ${a.activatedAt}`);
  return EXIT.ok;
}

async function versions(opts: { limit: number }, api: Api, io: CliIo): Promise<number> {
  const a = await api.call<VersionsAnswer>('GET', 'v1/rulesets');
  if (api.json) return EXIT.ok;
  const rows = [['VERSION', 'ACTIVE', 'CREATED BY', 'CREATED AT', 'CHECKSUM', 'BYTES']];
  for (const v of a.versions.slice(0, opts.limit)) {
    rows.push([
      String(v.version),
      v.active ? '*' : '',
      v.createdBy,
      v.createdAt,
      shortChecksum(v.checksum),
      String(v.bytes),
    ]);
  }
  io.out(table(rows));
  if (a.versions.length > opts.limit) io.out(`(${a.versions.length - opts.limit} older versions not shown)`);
  if (a.active === null) io.out('no version is active in the store');
  if (a.serving !== a.active) io.out(`this instance still decides with version ${a.serving}`);
  if (a.rollbackTo !== undefined) {
    io.out(
      a.rollbackTo === null
        ? 'rollback: nothing to go back to'
        : `rollback would activate version ${a.rollbackTo}`,
    );
  }
  const log = a.activations ?? [];
  if (log.length > 0) {
    io.out('recent activations:');
    io.out(
      table(
        log
          .slice(0, 5)
          .map((x) => ['', x.at, `version ${x.version}`, `by ${x.by}`, x.rollback ? '(roll back)' : '']),
      ),
    );
  }
  return EXIT.ok;
}

interface PreviewOptions {
  user: string;
  placement?: Placement[];
  at?: string;
  explain?: boolean;
  context?: string[];
  /** A stored version, or a draft's file name. */
  ruleset?: number | string;
}

async function preview(opts: PreviewOptions, api: Api, io: CliIo): Promise<number> {
  let ruleset: string | number | undefined;
  let draftName: string | undefined;
  if (typeof opts.ruleset === 'number') ruleset = opts.ruleset;
  else if (opts.ruleset !== undefined) {
    const src = await readRuleSet(opts.ruleset);
    ruleset = src.text;
    draftName = src.name;
  }
  const request = {
    user: { id: opts.user },
    placements: opts.placement ?? DEFAULT_PLACEMENTS,
    ...(opts.context === undefined ? {} : { context: { tags: opts.context } }),
    ...(ruleset === undefined ? {} : { ruleset }),
    ...(opts.at === undefined ? {} : { at: opts.at }),
  };
  const a = await api.call<PreviewAnswer>('POST', 'v1/preview', jsonBody(request), draftName);
  if (api.json) return EXIT.ok;
  const against =
    a.ruleset === 'draft' ? `draft ${draftName ?? ''}`.trimEnd() : `rule set version ${a.ruleset}`;
  io.out(
    `${a.user ?? opts.user}${a.known === false ? ' (no stored profile: decided on context alone)' : ''} at ${a.at ?? 'now'}, ${against}`,
  );
  const rows = [['PLACEMENT', 'CAMPAIGN', 'CREATIVE', 'CHANNEL', 'SEND AT']];
  for (const d of a.decisions) {
    if (d.campaign === null) rows.push([d.placement, '(no fill)', '', '', '']);
    else {
      rows.push([
        d.placement,
        d.campaign,
        d.creative,
        d.channel,
        d.sendAt === a.at ? `${d.sendAt} (now)` : d.sendAt,
      ]);
    }
  }
  io.out(table(rows));
  for (const g of a.ghosts ?? []) {
    io.out(`held out of ${g.campaign} on ${g.placement} (would have shown ${g.creative} on ${g.channel})`);
  }
  if (opts.explain === true) {
    io.out('');
    for (const d of a.decisions) {
      if (d.campaign === null) continue;
      io.out(
        `${d.placement}: brand ${d.brand}, segment ${d.segment}, stage ${d.stage}, message ${d.message}${d.sellingPoints.length === 0 ? '' : `, selling points ${d.sellingPoints.join(', ')}`}`,
      );
    }
    const segments = a.explain?.segments ?? [];
    io.out(`segments matched: ${segments.length === 0 ? '(none)' : segments.join(', ')}`);
    const campaigns = a.explain?.campaigns ?? [];
    if (campaigns.length > 0) {
      const rows2 = [['CAMPAIGN', 'STATUS', 'PLACEMENT', 'WHY']];
      for (const c of campaigns) {
        const why = [
          c.reason,
          c.detail,
          c.rank === undefined
            ? undefined
            : `score ${round(c.rank.score)} (priority ${c.rank.priority}, clv ${round(c.rank.clv)}, selling points ${round(c.rank.sellingPoints)}, affinity ${round(c.rank.affinity)})`,
        ]
          .filter((x) => x !== undefined && x !== '')
          .join(': ');
        rows2.push([c.campaign, c.status, c.placement ?? '', why]);
      }
      io.out(table(rows2));
    }
  }
  return EXIT.ok;
}

const round = (x: number) => String(Math.round(x * 1000) / 1000);

async function whatIf(
  file: string,
  opts: { sample?: number; placement?: Placement[]; at?: string; context?: string[] },
  api: Api,
  io: CliIo,
): Promise<number> {
  const src = await readRuleSet(file);
  const placements = opts.placement ?? DEFAULT_PLACEMENTS;
  const request = {
    ruleset: src.text,
    placements,
    ...(opts.context === undefined ? {} : { context: { tags: opts.context } }),
    ...(opts.sample === undefined ? {} : { sample: opts.sample }),
    ...(opts.at === undefined ? {} : { at: opts.at }),
  };
  const a = await api.call<WhatIfAnswer>('POST', 'v1/rulesets/what-if', jsonBody(request), src.name);
  if (api.json) return EXIT.ok;
  const s = a.sample;
  const of =
    a.exact === true
      ? `every stored person (${s.people ?? 0})`
      : `${s.people ?? 0} people sampled of ${s.populationOf === 'people' ? '' : 'about '}${s.population ?? '?'}${a.partial === true ? ' (stopped early: ask for a smaller --sample)' : ''}`;
  io.out(`${src.name} against active version ${a.active}: ${of}`);
  io.out(`placements: ${placements.map(specOf).join(' ')}`);
  io.out(
    `${plural(a.decisions, 'decision')}, ${a.changed} changed${a.decisions === 0 ? '' : ` (${percent(a.changed / a.decisions)})`}`,
  );
  io.out(`fill: ${percent(a.fill.before ?? 0)} before, ${percent(a.fill.after ?? 0)} after`);
  if (a.campaigns.length > 0) {
    const rows = [['CAMPAIGN', 'BEFORE', 'AFTER', 'GAINED', 'LOST']];
    for (const c of a.campaigns) {
      rows.push([c.campaign, String(c.before), String(c.after), `+${c.gained}`, `-${c.lost}`]);
    }
    io.out(table(rows));
  }
  if (a.changes.length > 0) {
    io.out('most frequent changes:');
    const choice = (c: Choice) => (c === null ? '(no fill)' : `${c.campaign}/${c.creative}`);
    for (const ch of a.changes.slice(0, 10)) {
      const eg =
        ch.examples === undefined || ch.examples.length === 0 ? '' : `; e.g. ${ch.examples.join(', ')}`;
      io.out(
        `  ${ch.placement}: ${choice(ch.from)} -> ${choice(ch.to)} (${plural(ch.decisions, 'decision')}${eg})`,
      );
    }
  }
  return EXIT.ok;
}

// ---- the program ---------------------------------------------------------------------------------

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Runs the command line `argv` (the arguments after the program's name); answers the exit status. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let status: number = EXIT.ok;
  const program = new Command('mindshare');
  const act =
    <A extends unknown[]>(fn: (...args: A) => number | Promise<number>) =>
    async (...args: A) => {
      status = await fn(...args);
    };
  const api = (cmd: Command) => new Api(cmd.optsWithGlobals<GlobalOptions>(), io);
  const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

  program
    .description('Validate, diff, push, activate and roll back Mindshare rule sets; preview decisions.')
    .version(packageVersion(), '-V, --version')
    .option('--url <url>', `control plane URL (default: $MINDSHARE_URL, else ${DEFAULT_URL})`)
    .option('--token <secret>', 'API token (default: $MINDSHARE_TOKEN)')
    .option('--json', "print the server's JSON answer as it is, for scripts")
    .option(
      '--timeout <ms>',
      `give up on a request after this long (default: ${DEFAULT_TIMEOUT_MS})`,
      positiveInt(3_600_000),
    )
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
    })
    .showHelpAfterError('(mindshare --help lists the commands and options)')
    .addHelpText('after', EPILOGUE);

  program
    .command('validate')
    .description('check a rule-set file offline, with the server’s own parser (exit 1 when invalid)')
    .argument('<file>', 'rule set, .yaml/.yml or .json (else detected); - reads standard input')
    .action(act((file: string, _o: unknown, cmd: Command) => validate(file, globals(cmd), io)));

  program
    .command('diff')
    .description('what the file would change against the active rule set (or version N)')
    .argument('<file>', 'rule set')
    .option('--against <N>', 'a stored version instead of the active one', versionOrActive)
    .option('--text', 'print the unified text diff too')
    .option('--exit-code', 'exit 1 when there are changes, 0 when none')
    .action(
      act(
        (
          file: string,
          o: { against?: number | 'active'; text?: boolean; exitCode?: boolean },
          cmd: Command,
        ) => diff(file, o, api(cmd), io),
      ),
    );

  program
    .command('push')
    .description('upload the file as a new version (validated by the server; 422 stores nothing)')
    .argument('<file>', 'rule set')
    .option('--activate', 'make the new version active on every instance')
    .action(act((file: string, o: { activate?: boolean }, cmd: Command) => push(file, o, api(cmd), io)));

  program
    .command('activate')
    .description('make stored version N active on every instance')
    .argument('<N>', 'version', version)
    .action(act((n: number, _o: unknown, cmd: Command) => activate(n, api(cmd), io)));

  program
    .command('rollback')
    .description('go back to the version active before the current one (again: further back)')
    .action(act((_o: unknown, cmd: Command) => rollback(api(cmd), io)));

  program
    .command('versions')
    .description('stored versions, newest first, and the latest activations')
    .option('--limit <n>', 'versions listed', positiveInt(100_000), 20)
    .action(act((o: { limit: number }, cmd: Command) => versions(o, api(cmd), io)));

  program
    .command('preview')
    .description('what a stored person gets now (or --at), and why (token: rules:read and profiles:read)')
    .requiredOption('--user <id>', 'the person id')
    .option('--placement <spec>', 'a placement, repeatable (SPEC below)', collectPlacement)
    .option('--at <iso>', 'decide at this moment (with its zone), not now', instant)
    .option('--context <tag>', 'a context tag true for this request, repeatable', collect)
    .option(
      '--ruleset <file|N>',
      'a draft file or a stored version instead of the active one',
      (v: string) => (/^[0-9]+$/.test(v) ? version(v) : v),
    )
    .option('--explain', 'print the matched segments and why each campaign was chosen or dropped')
    .addHelpText('after', PLACEMENT_HELP)
    .action(act((o: PreviewOptions, cmd: Command) => preview(o, api(cmd), io)));

  program
    .command('what-if')
    .description('decide a sample of stored people with the draft and with the active set, side by side')
    .argument('<file>', 'the draft rule set')
    .option(
      '--sample <n>',
      `people to draw, 1 to ${MAX_WHAT_IF_SAMPLE} (server default 1000)`,
      positiveInt(MAX_WHAT_IF_SAMPLE),
    )
    .option('--placement <spec>', 'a placement, repeatable (SPEC below)', collectPlacement)
    .option('--at <iso>', 'decide at this moment (with its zone), not now', instant)
    .option('--context <tag>', 'a context tag, repeatable', collect)
    .addHelpText('after', PLACEMENT_HELP)
    .action(
      act(
        (
          file: string,
          o: { sample?: number; placement?: Placement[]; at?: string; context?: string[] },
          cmd: Command,
        ) => whatIf(file, o, api(cmd), io),
      ),
    );

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version exit 0; everything else commander refuses is a usage error.
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (e instanceof CliFailure) {
      if (e.message !== '') io.err(e.message);
      return e.exitCode;
    }
    io.err(`error: ${(e as Error).message ?? String(e)}`);
    return EXIT.refused;
  }
  return status;
}

/** Runs main() on this process's arguments and streams, and sets the exit status. */
export async function runFromProcess(): Promise<void> {
  // Output piped into a program that stops reading early (`| head`) is not an error.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
  const code = await main(process.argv.slice(2), {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    env: process.env,
  });
  process.exitCode = code;
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) await runFromProcess();
