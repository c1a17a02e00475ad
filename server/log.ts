/**
 * Structured logs (pino): one JSON object a line with `level` (a name), `time` (ISO 8601),
 * `service`, `version`, `pid`, `hostname` and `msg`, plus the fields of the call. A control-plane
 * request is logged as one line carrying its `requestId`, with what went wrong when it failed;
 * a failed decision's line carries the decision's request id. (The id is passed along, not kept in
 * an AsyncLocalStorage: that would put a hook on every promise of the process, the data plane's
 * included.)
 *
 * The decision hot path does not log, except a sampled share of decisions when
 * LOG_DECISIONS_SAMPLE is above 0, and errors.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { MiddlewareHandler } from 'hono';
import { type DestinationStream, type Logger, pino } from 'pino';
import { type LogLevel, projectRoot } from './project.js';

export type { Logger } from 'pino';
export { LOG_LEVELS, type LogLevel } from './project.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The id of the request (from `x-request-id` when sane, else generated). */
    requestId?: string;
  }
}

let version: string | undefined;
function serviceVersion(): string {
  if (version === undefined) {
    try {
      version = (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string })
        .version;
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go. Default: standard output. */
  destination?: DestinationStream;
  /** Fields added to every line, besides service, version, pid and hostname. */
  base?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options = {
    level: opts.level ?? 'info',
    base: {
      service: 'mindshare',
      version: serviceVersion(),
      pid: process.pid,
      hostname: hostname(),
      ...opts.base,
    },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return opts.destination === undefined ? pino(options) : pino(options, opts.destination);
}

/** A destination that hands every line (without its newline) to a function. */
export function lineDestination(write: (line: string) => void): DestinationStream {
  return {
    write(chunk: string) {
      write(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk);
    },
  };
}

/** Lines of the plain-text log calls that report a problem. */
const PROBLEM = /\b(?:fail(?:s|ed|ure)?|errors?|unavailable|could not|cannot|not activated|stopped)\b/i;

/**
 * The `log: (line) => void` option used across the server, writing through the logger: at the
 * given level, or (`auto`, the default) at warn for lines that report a problem, else info.
 */
export function lineLogger(
  logger: Logger,
  level: 'auto' | 'info' | 'warn' | 'error' = 'auto',
): (line: string) => void {
  if (level !== 'auto') return (line) => logger[level](line);
  return (line) => {
    if (PROBLEM.test(line)) logger.warn(line);
    else logger.info(line);
  };
}

const SANE_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** The request id to use: the client's `x-request-id` when it is sane, else a new one. */
export function requestIdOf(header: string | null | undefined): string {
  return header !== undefined && header !== null && SANE_ID.test(header) ? header : randomUUID();
}

/**
 * Hono middleware: takes or makes the request id, echoes it in `x-request-id` and keeps it on the
 * context (`c.get('requestId')`) for the request's log line.
 */
export function requestIds(): MiddlewareHandler {
  return async (c, next) => {
    const requestId = requestIdOf(c.req.header('x-request-id'));
    c.set('requestId', requestId);
    await next();
    c.header('x-request-id', requestId);
  };
}
