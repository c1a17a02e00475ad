/**
 * Bulk profile loading from NDJSON: one profile a line, optionally with its `aliases`. Reads any
 * async iterable of chunks (an HTTP body, a file, stdin) with bounded memory: at most two batches
 * of profiles (one being written, one being read; each bounded by count and by bytes) and one
 * line of text are held at a time. Each line is checked on its own; valid lines are written even when
 * others fail, and every failure is reported with its 1-based line number.
 *
 * Used by POST /v1/profiles/import and by `npm run import` (server/cli/import.ts).
 */
import type { Profile } from '../../rules/types.js';
import { checker } from '../contracts/check.js';
import { importLineSchema } from '../contracts/schemas.js';
import type { ErrorCode } from '../errors.js';
import type { AliasLink, ProfileStore } from '../store/types.js';
import { unknownStage } from './stages.js';

export interface ImportError {
  line: number;
  code: ErrorCode | 'line_too_long';
  message: string;
  path?: string;
}

export interface ImportResult {
  /** Lines read, blank ones included. */
  lines: number;
  imported: number;
  failed: number;
  errors: ImportError[];
  /** Errors beyond the ones listed. */
  moreErrors?: number;
}

export interface ImportOptions {
  /** Profiles per putProfiles call. Default 500. */
  batchSize?: number;
  /** A batch is also written once its lines add up to this many bytes. Default 8 MiB. */
  batchBytes?: number;
  /** Errors listed in the result; the rest are only counted. Default 1000. */
  maxErrors?: number;
  /** A longer line is refused (and skipped). Default 1 MiB. */
  maxLineBytes?: number;
  /** Stops with a TooLarge error past this many bytes. Default unlimited. */
  maxBytes?: number;
  /** Time for profiles without `updatedAt`. */
  now?: () => number;
  /** The funnel's stages: a line naming another stage fails (absent: any stage is taken). */
  funnel?: () => readonly string[];
  /** After each batch is written (progress, cache invalidation). */
  onBatch?: (written: readonly Profile[], progress: Readonly<ImportResult>) => void | Promise<void>;
}

/** The store failed: lines before `line` were handled (see `progress`); nothing after. */
export class ImportAborted extends Error {
  constructor(
    readonly progress: ImportResult,
    readonly line: number,
    readonly reason: unknown,
  ) {
    super(`the import stopped at line ${line}: ${(reason as Error)?.message ?? String(reason)}`);
  }
}

/** The input stalled (ImportStalled) after what `progress` says was read and written. */
export class ImportTimedOut extends Error {
  constructor(
    readonly progress: ImportResult,
    readonly idleMs: number,
  ) {
    super(`the input stopped arriving for ${Math.round(idleMs / 1000)} s`);
  }
}

/** The input passed `maxBytes`. */
export class ImportTooLarge extends Error {
  constructor(
    readonly progress: ImportResult,
    readonly limit: number,
  ) {
    super(`the input is larger than ${limit} bytes`);
  }
}

type Line = { profile: Profile; aliases: Record<string, string> | undefined };

const checkLine = checker(importLineSchema);
const utf8 = new TextDecoder('utf-8', { fatal: true });
const NL = 10;

export async function importProfiles(
  source: AsyncIterable<Uint8Array | string>,
  store: Pick<ProfileStore, 'putProfiles' | 'linkManyAliases'>,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const batchSize = Math.max(1, opts.batchSize ?? 500);
  // Bounded by bytes as well as by count: 500 lines of the largest profiles would be 500 MiB.
  const maxBatchBytes = Math.max(1, opts.batchBytes ?? 8 * 1024 * 1024);
  const maxErrors = opts.maxErrors ?? 1000;
  const maxLine = opts.maxLineBytes ?? 1024 * 1024;
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  const now = opts.now ?? Date.now;
  const result: ImportResult = { lines: 0, imported: 0, failed: 0, errors: [] };
  let batch: Line[] = [];
  let batchBytes = 0;
  let batchFirstLine = 1;

  const fail = (e: ImportError) => {
    result.failed++;
    if (result.errors.length < maxErrors) result.errors.push(e);
    else result.moreErrors = (result.moreErrors ?? 0) + 1;
  };

  // One batch is written while the next is read and checked: at most two batches are held.
  let writing: Promise<void> | null = null;
  const write = async (lines: Line[], firstLine: number) => {
    const profiles = lines.map((l) => l.profile);
    const links: AliasLink[] = [];
    for (const l of lines) if (l.aliases !== undefined) links.push([l.profile.id, l.aliases]);
    try {
      await store.putProfiles(profiles);
      if (links.length > 0) await store.linkManyAliases(links);
    } catch (e) {
      throw new ImportAborted(snapshot(result), firstLine, e);
    }
    result.imported += profiles.length;
    await opts.onBatch?.(profiles, result);
  };
  const flush = async () => {
    if (writing !== null) {
      const previous = writing;
      writing = null;
      await previous;
    }
    if (batch.length === 0) return;
    const lines = batch;
    batch = [];
    batchBytes = 0;
    const started = write(lines, batchFirstLine);
    // Settled by the next flush (or the last one); a failure surfaces there.
    started.catch(() => {});
    writing = started;
  };
  const finish = async () => {
    await flush();
    await flush();
  };

  const handle = async (bytes: Uint8Array, lineNo: number) => {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      fail({ line: lineNo, code: 'bad_request', message: 'the line is not valid UTF-8' });
      return;
    }
    if (text.trim() === '') return;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      fail({ line: lineNo, code: 'bad_json', message: `not valid JSON: ${(e as Error).message}` });
      return;
    }
    const r = checkLine(data);
    if (!r.ok) {
      fail({ line: lineNo, code: r.problem.code, message: r.problem.message, path: r.problem.path });
      return;
    }
    const offLadder = opts.funnel === undefined ? null : unknownStage(r.value.stages, opts.funnel());
    if (offLadder !== null) {
      fail({ line: lineNo, code: offLadder.code, message: offLadder.message, path: offLadder.path! });
      return;
    }
    const { aliases, ...rest } = r.value;
    const profile: Profile = { ...rest, tags: rest.tags ?? [] };
    if (profile.updatedAt === undefined) profile.updatedAt = now();
    if (batch.length === 0) batchFirstLine = lineNo;
    batch.push({ profile, aliases });
    batchBytes += bytes.byteLength;
    if (batch.length >= batchSize || batchBytes >= maxBatchBytes) await flush();
  };

  // The current line: its parts so far, or null once it is too long (skipped to its end).
  let parts: Uint8Array[] | null = [];
  let partBytes = 0;
  let total = 0;
  const endLine = async () => {
    result.lines++;
    const lineNo = result.lines;
    if (parts === null) {
      fail({ line: lineNo, code: 'line_too_long', message: `the line is longer than ${maxLine} bytes` });
    } else {
      const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, partBytes);
      await handle(bytes, lineNo);
    }
    parts = [];
    partBytes = 0;
  };
  const append = (piece: Uint8Array) => {
    if (parts === null || piece.byteLength === 0) return;
    partBytes += piece.byteLength;
    if (partBytes > maxLine) {
      parts = null;
      return;
    }
    // Copy: the chunk's buffer may be reused by whoever produced it.
    parts.push(Uint8Array.prototype.slice.call(piece));
  };

  try {
    for await (const chunk of source) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      total += buf.byteLength;
      if (total > maxBytes) {
        await finish();
        throw new ImportTooLarge(snapshot(result), maxBytes);
      }
      let from = 0;
      for (;;) {
        const nl = buf.indexOf(NL, from);
        if (nl === -1) break;
        append(buf.subarray(from, nl));
        await endLine();
        from = nl + 1;
      }
      append(buf.subarray(from));
    }
  } catch (e) {
    if (!(e instanceof ImportStalled)) throw e;
    // The whole lines read so far are written; the line being read is not.
    await finish();
    throw new ImportTimedOut(snapshot(result), e.idleMs);
  }
  if (parts === null || partBytes > 0) await endLine();
  await finish();
  return result;
}

function snapshot(r: ImportResult): ImportResult {
  return { ...r, errors: r.errors.slice() };
}

/** The input stopped arriving: nothing for `idleMs`. */
export class ImportStalled extends Error {
  constructor(readonly idleMs: number) {
    super(`nothing arrived for ${Math.round(idleMs / 1000)} s`);
  }
}

/**
 * Chunks of a web ReadableStream, as an async iterable (released when the loop ends); a stream
 * silent for `idleMs` ends it with ImportStalled, so that a client trickling nothing cannot hold
 * the connection for ever (an import that keeps sending may take as long as it needs).
 */
export async function* chunksOf(
  stream: ReadableStream<Uint8Array>,
  idleMs = Number.POSITIVE_INFINITY,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const silent =
        idleMs === Number.POSITIVE_INFINITY
          ? null
          : new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new ImportStalled(idleMs)), idleMs);
            });
      try {
        const { done, value } = await (silent === null
          ? reader.read()
          : Promise.race([reader.read(), silent]));
        if (done) return;
        yield value;
      } finally {
        clearTimeout(timer);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
