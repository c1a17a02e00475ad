/**
 * Parsing and validating rule-set text on a thread of its own, with a time limit, so that a
 * large upload or activation never holds the event loop of a thread that answers health checks,
 * metrics or decisions. Measured on this project's 2-core machine (synthetic rule sets of
 * bench/synthetic.ts, all valid): 10,000 segments take 0.3 s as JSON (1.5 MB) and 2.7 s as YAML
 * (2 MB); 50,000 take 0.9 s as JSON (6.8 MB) and 17.6 s as YAML (9.2 MB). A thread blocked that
 * long misses every probe; here only the checking thread is.
 *
 * One checking thread per thread that asks, made on first use and kept (it is `unref`'d): its
 * first check compiles the schema validator (~0.2 s), later ones do not. Checks run one at a
 * time in arrival order. A check that passes `timeoutMs` ends the thread (the only way to stop
 * a parse in progress) and fails with a `too_slow` error; the checks queued behind it go to a
 * fresh thread. Short texts (under INLINE_CHARS) are checked in the caller's thread: a round trip
 * to the other thread costs more than they do. Where the compiled file of this module cannot be
 * found (the TypeScript sources run by the test runner), every text is checked inline.
 *
 * The result crosses back as JSON text in pieces (the segments and campaigns a few hundred at a
 * time), which the caller parses with a turn of its event loop between pieces and then compiles
 * (compiled rule sets hold closures and cannot cross). A structured clone is what the caller
 * would otherwise decode, all at once on its own event loop: for 30,000 segments (4 MB as JSON)
 * v8's deserialize took 220-340 ms and one JSON.parse of the whole 80-120 ms (node 20, this
 * machine, four runs each); a piece takes a few milliseconds. A rule set JSON cannot carry
 * faithfully (a non-finite number, a date from YAML) crosses by clone.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type ParseOptions, parseRuleSetText, type RuleSetFormat } from './parse.js';
import type { RuleError, RuleSet, Validated } from './types.js';

const KIND = 'mindshare-ruleset-check';
/** Texts shorter than this (characters) are checked in the calling thread. */
export const INLINE_CHARS = 64 * 1024;
/** The default time limit of one check, ms. */
export const DEFAULT_CHECK_TIMEOUT_MS = 30_000;

interface Request {
  id: number;
  text: string;
  format: RuleSetFormat | undefined;
  opts: ParseOptions;
}
/** A valid rule set as JSON: all but its segments and campaigns, then those in pieces. */
interface Pieces {
  head: string;
  segments: string[];
  campaigns: string[];
}
type Reply =
  | { id: number; result: Validated<RuleSet> }
  | { id: number; pieces: Pieces; warnings: RuleError[] | undefined };

/** Segments or campaigns per piece: a few milliseconds of JSON.parse each. */
const PIECE_ITEMS = 500;

interface Pending extends Request {
  resolve: (result: Validated<RuleSet>) => void;
  reject: (err: unknown) => void;
}

/** A thread that checks rule-set texts, one at a time. */
class CheckThread {
  private worker: Worker | null = null;
  private readonly queue: Pending[] = [];
  private running: Pending | null = null;
  private timer: NodeJS.Timeout | null = null;
  private serial = 0;

  constructor(
    private readonly file: string,
    private readonly timeoutMs: number,
  ) {}

  check(text: string, format: RuleSetFormat | undefined, opts: ParseOptions): Promise<Validated<RuleSet>> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: ++this.serial, text, format, opts, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.running !== null) return;
    const job = this.queue.shift();
    if (job === undefined) {
      // Idle: the thread must not keep the process alive.
      this.worker?.unref();
      return;
    }
    this.running = job;
    const worker = this.thread();
    worker.ref();
    this.timer = setTimeout(() => this.timedOut(job), this.timeoutMs);
    worker.postMessage({ id: job.id, text: job.text, format: job.format, opts: job.opts } satisfies Request);
  }

  private thread(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(this.file, { workerData: { kind: KIND } });
    worker.on('message', (reply: Reply) => {
      const job = this.running;
      if (job === null || reply.id !== job.id) return;
      this.finish();
      if ('pieces' in reply) {
        const { warnings } = reply;
        assemble(reply.pieces).then(
          (value) =>
            job.resolve(warnings === undefined ? { ok: true, value } : { ok: true, value, warnings }),
          job.reject,
        );
      } else job.resolve(reply.result);
    });
    worker.on('error', (err) => {
      const job = this.running;
      this.drop(worker);
      if (job !== null) {
        this.finish();
        job.reject(err);
      }
    });
    worker.on('exit', () => this.drop(worker));
    this.worker = worker;
    return worker;
  }

  private timedOut(job: Pending): void {
    if (this.running !== job) return;
    const worker = this.worker;
    this.drop(worker);
    void worker?.terminate();
    this.finish();
    job.resolve({
      ok: false,
      errors: [
        {
          code: 'too_slow',
          path: '',
          message: `checking the rule set took longer than ${Math.round(this.timeoutMs / 1000)} s (RULESET_CHECK_TIMEOUT_MS): make it smaller, or send it as JSON, which checks about ten times faster than YAML`,
        },
      ],
    });
  }

  private drop(worker: Worker | null): void {
    if (worker !== null && this.worker === worker) this.worker = null;
  }

  private finish(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.running = null;
    this.next();
  }
}

/** The compiled file of this module, when there is one to start a thread from. */
function threadFile(): string | null {
  const url = import.meta.url;
  if (!url.endsWith('.js')) return null;
  const file = fileURLToPath(url);
  return existsSync(file) ? file : null;
}

const threads = new Map<number, CheckThread>();

/**
 * Parses and validates rule-set text, off the calling thread when it is long (see above).
 * Resolves with the rule set or every error (a `too_slow` one past `timeoutMs`); rejects only
 * when the checking thread itself fails.
 */
export function checkRuleSetText(
  text: string,
  format: RuleSetFormat | undefined,
  opts: { timeoutMs?: number; warningsAt?: number } = {},
): Promise<Validated<RuleSet>> {
  const parseOpts: ParseOptions = opts.warningsAt === undefined ? {} : { warningsAt: opts.warningsAt };
  const file = threadFile();
  if (file === null || text.length < INLINE_CHARS)
    return Promise.resolve(parseRuleSetText(text, format, parseOpts));
  const timeoutMs = Math.max(1, opts.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS);
  let thread = threads.get(timeoutMs);
  if (thread === undefined) {
    thread = new CheckThread(file, timeoutMs);
    threads.set(timeoutMs, thread);
  }
  return thread.check(text, format, parseOpts);
}

// The checking thread's side.
if (!isMainThread && (workerData as { kind?: string } | null)?.kind === KIND && parentPort !== null) {
  const port = parentPort;
  port.on('message', (req: Request) => {
    const result = parseRuleSetText(req.text, req.format, req.opts);
    const pieces = result.ok ? toPieces(result.value) : null;
    port.postMessage(
      (pieces === null
        ? { id: req.id, result }
        : { id: req.id, pieces, warnings: result.ok ? result.warnings : undefined }) satisfies Reply,
    );
  });
}

/** A rule set as Pieces, or null when JSON would not carry it faithfully. */
export function toPieces(value: RuleSet): Pieces | null {
  const { segments, campaigns, ...rest } = value;
  const head = asJson(rest);
  if (head === null) return null;
  const cut = (list: readonly unknown[]): string[] | null => {
    const out: string[] = [];
    for (let i = 0; i < list.length; i += PIECE_ITEMS) {
      const piece = asJson(list.slice(i, i + PIECE_ITEMS));
      if (piece === null) return null;
      out.push(piece);
    }
    return out;
  };
  const segs = cut(segments);
  const camps = cut(campaigns);
  return segs === null || camps === null ? null : { head, segments: segs, campaigns: camps };
}

/** The rule set of `pieces`, parsed a piece per turn of the event loop. */
export async function assemble(pieces: Pieces): Promise<RuleSet> {
  const value = JSON.parse(pieces.head) as RuleSet;
  const gather = async <T>(texts: readonly string[]): Promise<T[]> => {
    const out: T[] = [];
    for (const text of texts) {
      for (const item of JSON.parse(text) as T[]) out.push(item);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return out;
  };
  value.segments = await gather(pieces.segments);
  value.campaigns = await gather(pieces.campaigns);
  return value;
}

/** `value` as JSON text, or null when JSON would change it (NaN, ±Infinity, dates, holes, bigints). */
export function asJson(value: unknown): string | null {
  let faithful = true;
  try {
    const text = JSON.stringify(value, function (this: Record<string, unknown>, key, v: unknown) {
      const raw = this[key];
      if (
        (typeof v === 'number' && !Number.isFinite(v)) ||
        (v === undefined && Array.isArray(this)) ||
        raw instanceof Date ||
        typeof v === 'function' ||
        typeof v === 'symbol'
      )
        faithful = false;
      return v;
    });
    return faithful ? text : null;
  } catch {
    return null; // a bigint, a cycle
  }
}
