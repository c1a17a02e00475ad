/**
 * A lean Redis connection for the decision path. Every decision that misses the cache makes one
 * script call; through ioredis that call costs the server more CPU than the whole rule
 * evaluation (a Command object, an auto-pipeline, a promise chain and a socket write per call,
 * and new garbage for each). This connection does only what that path needs:
 *
 * - Commands are serialized into one string (or a list of parts when an argument is a Buffer)
 *   and written once per turn of the event loop (`setImmediate`): every request that the HTTP
 *   server read in one poll phase shares one socket write.
 * - Replies are parsed straight from what the socket read (RESP2); bulk strings come back as
 *   Buffers that view it (no copy per reply), simple strings as strings, integers as numbers, nil
 *   as null, nested arrays as arrays, errors inside arrays as ReplyError values. An error reply
 *   rejects its command. Without TLS the socket reads into one buffer kept for the connection
 *   (`onread`), and what it read is copied out once per read: a small slice of Node's buffer pool,
 *   where a stream's read allocates 64 KiB and shrinks it to what came.
 * - `evalsha` sends EVALSHA and, when Redis does not know the script (NOSCRIPT, after a restart or
 *   SCRIPT FLUSH), sends the same call as EVAL; the caller sees one answer.
 *
 * Failure behaviour, as the store's main connection: commands issued before the first connection
 * attempt settles wait for it; afterwards, while disconnected, commands fail at once (nothing is
 * queued offline); commands in flight when the connection drops are rejected, never resent; the
 * connection comes back by itself with a capped, jittered backoff. A command without a reply
 * after `commandTimeoutMs` means the connection is stuck: it is closed (rejecting what is in
 * flight) and opened again.
 */
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** An error reply from Redis (`-ERR …`, `-NOSCRIPT …`). */
export class ReplyError extends Error {
  /** The first word of the reply: `ERR`, `NOSCRIPT`, `WRONGTYPE`, … */
  readonly code: string;
  constructor(message: string) {
    super(message);
    const space = message.indexOf(' ');
    this.code = space < 0 ? message : message.slice(0, space);
  }
}

/** The connection is down (or closed); the command was not answered. */
export class ConnectionDownError extends Error {
  readonly code = 'redis_unavailable';
}

export type Reply = null | number | string | Buffer | ReplyError | Reply[];
export type Arg = string | number | Buffer;

/** A Lua script with its SHA-1, ready for EVALSHA. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

export function luaScript(source: string): LuaScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

export interface RespConnectionOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` */
  url: string;
  /**
   * Where to connect, asked before every connection attempt (a Sentinel's current master, say);
   * the URL's host and port when absent. The URL still gives credentials, TLS and database.
   */
  address?: () => Promise<{ host: string; port: number }>;
  /**
   * An error reply asking for the command elsewhere (`MOVED`, `ASK`: Redis Cluster). Returns true
   * when it has taken the command over (sent it on), false to reject the command with the reply.
   */
  onRedirect?: (reply: ReplyError, command: Command) => boolean;
  /** Longest wait for a TCP (and TLS) connection, ms. Default 2000. */
  connectTimeoutMs?: number;
  /** A command without a reply after this long closes the connection, ms. Default 3000. */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts, ms. Default 1000. */
  maxRetryDelayMs?: number;
  /**
   * Scripts loaded (SCRIPT LOAD) on every connection, behind the handshake: the first EVALSHA
   * after a start, a reconnection or a Redis restart then finds its script instead of paying a
   * NOSCRIPT round trip and the script's compilation inside someone's decision deadline. A
   * refused load (an ACL without SCRIPT) is ignored: EVALSHA still falls back to EVAL.
   */
  preload?: readonly LuaScript[];
  /** Connection state changes and errors. */
  onError?: (err: Error) => void;
  onReady?: () => void;
  onClose?: () => void;
}

export type RespStatus = 'connecting' | 'ready' | 'reconnecting' | 'closed';

/** A command as sent, with what it answers to (what a redirect needs to send it again). */
export interface Command {
  resolve: (value: Reply) => void;
  reject: (err: Error) => void;
  /** EVALSHA of this script (EVAL on NOSCRIPT) with `keys` and `args`; null: `args` is the command. */
  readonly script: LuaScript | null;
  readonly keys: readonly Arg[] | null;
  readonly args: readonly Arg[];
  /** Times it was sent elsewhere already. */
  redirects: number;
}

interface Pending extends Command {
  /** performance.now() when queued */
  at: number;
  /** Sent as EVAL (after NOSCRIPT): not sent again as EVAL. */
  asEval: boolean;
  /** Handshake replies (AUTH, SELECT, ASKING) are checked, not delivered. */
  internal: boolean;
  /** An internal reply whose error is not fatal to the connection (a script preload). */
  soft?: boolean;
}

/** Not enough bytes yet for a whole reply. */
const INCOMPLETE = Symbol('incomplete');
type Parsed = Reply | typeof INCOMPLETE;

const CR = 13;
/** What a plain socket reads at most at once: Node's own read size for streams. */
const READ_BUFFER_BYTES = 64 * 1024;

export class RespConnection {
  private readonly host: string;
  private readonly port: number;
  private readonly tls: boolean;
  /** AUTH and SELECT from the URL, in RESP ('' when none): written first on every connection. */
  private readonly handshakeText: string;
  /** How many commands handshakeText holds, the last `preloadCount` of them script loads. */
  private readonly handshakeCount: number;
  private readonly preloadCount: number;
  private readonly connectTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly opts: RespConnectionOptions;

  private socket: Socket | null = null;
  private state: RespStatus = 'connecting';
  private everSettled = false;
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly watchdog: NodeJS.Timeout;

  /** Commands written (or about to be) and not answered yet, oldest first, from `head`. */
  private queue: Pending[] = [];
  private head = 0;
  /** What the next flush writes: a string being built, and parts before it. */
  private text = '';
  private parts: Array<string | Buffer> = [];
  private flushScheduled = false;
  /** Bytes of a reply that has not arrived whole yet. */
  private rest: Buffer | null = null;
  private at = 0;
  /** What a plain socket reads into (`onread`), made at the first connection. */
  private readBuffer: Buffer | null = null;
  /** Set when the reply stream cannot be trusted; cleared by a new connection. */
  private broken = false;

  constructor(opts: RespConnectionOptions) {
    this.opts = opts;
    const url = new URL(opts.url);
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
      throw new Error(`unsupported Redis URL scheme ${url.protocol}`);
    this.tls = url.protocol === 'rediss:';
    this.host = url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
    this.port = url.port === '' ? 6379 : Number(url.port);
    const handshake: string[][] = [];
    const password = decodeURIComponent(url.password);
    const username = decodeURIComponent(url.username);
    if (password !== '') handshake.push(username === '' ? ['AUTH', password] : ['AUTH', username, password]);
    const db = url.pathname.replace(/^\//, '');
    if (db !== '' && db !== '0') {
      if (!/^\d+$/.test(db)) throw new Error(`Redis URL database ${JSON.stringify(db)} is not a number`);
      handshake.push(['SELECT', db]);
    }
    const preload = opts.preload ?? [];
    for (const script of preload) handshake.push(['SCRIPT', 'LOAD', script.source]);
    this.handshakeText = handshake.map((cmd) => `*${cmd.length}\r\n${cmd.map(bulk).join('')}`).join('');
    this.handshakeCount = handshake.length;
    this.preloadCount = preload.length;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 3000;
    this.maxRetryDelayMs = Math.max(10, opts.maxRetryDelayMs ?? 1000);
    this.watchdog = setInterval(
      () => this.checkStuck(),
      Math.max(10, Math.min(250, this.commandTimeoutMs / 4)),
    );
    this.watchdog.unref();
    this.open();
  }

  get status(): RespStatus {
    return this.state;
  }

  /** Sends one command; resolves with its reply, rejects with its error reply or when it is lost. */
  call(args: readonly Arg[]): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (!this.accepting(reject)) return;
      this.write(args);
      this.queue.push(pending(resolve, reject, null, null, args));
    });
  }

  /** GET of one key. */
  get(key: string): Promise<Reply> {
    return this.call(['GET', key]);
  }

  /** EVALSHA of a script (EVAL when Redis does not have it). */
  evalsha(script: LuaScript, keys: readonly Arg[], args: readonly Arg[]): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (!this.accepting(reject)) return;
      this.writeScript('EVALSHA', script.sha, keys, args);
      this.queue.push(pending(resolve, reject, script, keys, args));
    });
  }

  /**
   * Sends a command that another connection was asked to send (a redirect), preceded by ASKING
   * when `asking`; its reply goes to the command's own callbacks.
   */
  send(command: Command, asking: boolean): void {
    if (!this.accepting(command.reject)) return;
    if (asking) {
      this.write(['ASKING']);
      this.queue.push({ ...HANDSHAKE, at: performance.now() });
    }
    if (command.script === null) this.write(command.args);
    else this.writeScript('EVALSHA', command.script.sha, command.keys ?? [], command.args);
    this.queue.push({ ...command, at: performance.now(), asEval: false, internal: false });
  }

  /** Drops the connection (rejecting what is in flight) and connects again, asking `address` anew. */
  reconnect(): void {
    if (this.state === 'closed') return;
    this.socket?.destroy(new Error('reconnecting on request'));
  }

  /** Closes for good: commands in flight are rejected. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.watchdog);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    this.failAll(new ConnectionDownError('the Redis connection is closed'));
    socket?.destroy();
  }

  // ---- writing ------------------------------------------------------------------------------------

  private accepting(reject: (err: Error) => void): boolean {
    if (this.state === 'ready') return true;
    // Before the first attempt has settled, commands wait for it (written once connected).
    if (this.state === 'connecting' && !this.everSettled) return true;
    reject(
      new ConnectionDownError(
        this.state === 'closed' ? 'the Redis connection is closed' : `Redis is not connected, ${this.state}`,
      ),
    );
    return false;
  }

  private write(args: readonly Arg[]): void {
    let s = `*${args.length}\r\n`;
    for (const a of args) s = this.appendArg(s, a);
    this.text += s;
    this.scheduleFlush();
  }

  private writeScript(verb: string, body: string, keys: readonly Arg[], args: readonly Arg[]): void {
    let s = `*${3 + keys.length + args.length}\r\n$${verb.length}\r\n${verb}\r\n`;
    s = this.appendArg(s, body);
    s = this.appendArg(s, keys.length);
    for (const k of keys) s = this.appendArg(s, k);
    for (const a of args) s = this.appendArg(s, a);
    this.text += s;
    this.scheduleFlush();
  }

  /** `s` with one bulk-string argument appended (a Buffer argument ends the current text part). */
  private appendArg(s: string, a: Arg): string {
    if (typeof a === 'string') return s + bulk(a);
    if (typeof a === 'number') {
      const t = String(a);
      return `${s}$${t.length}\r\n${t}\r\n`;
    }
    this.parts.push(`${this.text}${s}$${a.length}\r\n`, a);
    this.text = '';
    return '\r\n';
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (socket === null || this.state === 'connecting') return; // written on connect
    this.writeOut(socket);
  }

  private writeOut(socket: Socket): void {
    if (this.parts.length === 0) {
      if (this.text !== '') socket.write(this.text);
    } else {
      socket.cork();
      for (const p of this.parts) socket.write(p);
      if (this.text !== '') socket.write(this.text);
      socket.uncork();
      this.parts = [];
    }
    this.text = '';
  }

  // ---- the connection -----------------------------------------------------------------------------

  private open(): void {
    if (this.opts.address === undefined) {
      this.connectTo(this.host, this.port);
      return;
    }
    this.opts.address().then(
      ({ host, port }) => {
        if (this.state !== 'closed') this.connectTo(host, port);
      },
      (err: unknown) => {
        if (this.state === 'closed') return;
        this.opts.onError?.(err instanceof Error ? err : new Error(String(err)));
        this.everSettled = true;
        this.failAll(new ConnectionDownError('no Redis address to connect to'));
        this.state = 'reconnecting';
        this.retryLater();
      },
    );
  }

  private connectTo(host: string, port: number): void {
    // Without TLS, reads go into the connection's own buffer; what was read is copied out before
    // the next read (replies view the copy, and may be used after this callback returns).
    const socket = this.tls
      ? tlsConnect({ host, port, servername: host })
      : netConnect({
          host,
          port,
          onread: {
            buffer: (this.readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES)),
            callback: (n: number, buf: Buffer) => {
              if (this.socket === socket) this.onData(Buffer.copyBytesFrom(buf, 0, n));
              return true;
            },
          },
        });
    this.socket = socket;
    this.broken = false;
    this.rest = null;
    socket.setNoDelay(true);
    const timer = setTimeout(
      () => socket.destroy(new Error(`connect timeout after ${this.connectTimeoutMs} ms`)),
      this.connectTimeoutMs,
    );
    socket.once(this.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      if (this.socket !== socket) return;
      this.attempts = 0;
      // The handshake goes first, ahead of commands that waited for the first connection.
      const waiting = this.queue.splice(this.head);
      this.queue = [];
      this.head = 0;
      const now = performance.now();
      for (let i = 0; i < this.handshakeCount; i++)
        this.queue.push({ ...HANDSHAKE, at: now, soft: i >= this.handshakeCount - this.preloadCount });
      for (const p of waiting) this.queue.push(p);
      if (this.parts.length > 0) this.parts.unshift(this.handshakeText);
      else this.text = this.handshakeText + this.text;
      this.state = 'ready';
      this.everSettled = true;
      this.writeOut(socket);
      this.opts.onReady?.();
    });
    if (this.tls) {
      socket.on('data', (chunk: Buffer) => {
        if (this.socket === socket) this.onData(chunk);
      });
    }
    socket.on('error', (err: Error) => {
      if (this.socket === socket) this.opts.onError?.(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.rest = null;
      this.text = '';
      this.parts = [];
      this.everSettled = true;
      this.failAll(new ConnectionDownError('the Redis connection was lost'));
      if (this.state === 'closed') return;
      this.state = 'reconnecting';
      this.opts.onClose?.();
      this.retryLater();
    });
  }

  /** The next connection attempt, after a capped, jittered backoff. */
  private retryLater(): void {
    this.attempts++;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = null;
        if (this.state !== 'closed') this.open();
      },
      retryDelay(this.attempts, this.maxRetryDelayMs),
    );
    this.retryTimer.unref();
  }

  private failAll(err: Error): void {
    const queue = this.queue;
    const head = this.head;
    this.queue = [];
    this.head = 0;
    for (let i = head; i < queue.length; i++) queue[i]!.reject(err);
  }

  /** Closes the connection when the oldest command has waited longer than the command timeout. */
  private checkStuck(): void {
    const oldest = this.queue[this.head];
    if (oldest === undefined || this.socket === null || this.state !== 'ready') return;
    if (performance.now() - oldest.at > this.commandTimeoutMs)
      this.socket.destroy(new Error(`no reply within ${this.commandTimeoutMs} ms`));
  }

  // ---- reading ------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    const buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = null;
    let pos = 0;
    while (pos < buf.length && !this.broken) {
      this.at = pos;
      let reply: Parsed;
      try {
        reply = this.parse(buf);
      } catch (err) {
        this.breakOff(err instanceof Error ? err.message : String(err));
        return;
      }
      if (reply === INCOMPLETE) break;
      pos = this.at;
      this.deliver(reply);
    }
    if (!this.broken && pos < buf.length) this.rest = buf.subarray(pos);
  }

  /** The stream is out of step: nothing more is read from this socket, which is closed. */
  private breakOff(why: string): void {
    this.broken = true;
    this.rest = null;
    this.socket?.destroy(new Error(why));
  }

  private deliver(reply: Reply): void {
    const p = this.queue[this.head];
    if (p === undefined) {
      this.breakOff('Redis sent a reply with no command waiting');
      return;
    }
    this.queue[this.head] = undefined as unknown as Pending;
    this.head++;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (p.internal) {
      if (reply instanceof ReplyError && p.soft !== true)
        this.breakOff(`Redis refused the connection setup: ${reply.message}`);
      return;
    }
    if (reply instanceof ReplyError) {
      if (reply.code === 'NOSCRIPT' && p.script !== null && !p.asEval) {
        // Resent as EVAL; its reply comes after those already in flight.
        const retry: Pending = { ...p, asEval: true, at: performance.now() };
        this.writeScript('EVAL', p.script.source, p.keys ?? [], p.args);
        this.queue.push(retry);
        return;
      }
      if ((reply.code === 'MOVED' || reply.code === 'ASK') && this.opts.onRedirect?.(reply, p)) return;
      p.reject(reply);
      return;
    }
    p.resolve(reply);
  }

  /** One reply from `this.at` on, advancing `this.at` past it; INCOMPLETE when it is not all here. */
  private parse(buf: Buffer): Parsed {
    const start = this.at;
    if (start >= buf.length) return INCOMPLETE;
    const type = buf[start]!;
    const eol = buf.indexOf(CR, start + 1);
    if (eol < 0 || eol + 1 >= buf.length) return INCOMPLETE;
    const lineEnd = eol + 2;
    switch (type) {
      case 36: {
        // $ bulk string
        const len = readInt(buf, start + 1, eol);
        if (len < 0) {
          this.at = lineEnd;
          return null;
        }
        const end = lineEnd + len;
        if (end + 2 > buf.length) return INCOMPLETE;
        this.at = end + 2;
        return buf.subarray(lineEnd, end);
      }
      case 42: {
        // * array
        const n = readInt(buf, start + 1, eol);
        this.at = lineEnd;
        if (n < 0) return null;
        const out: Reply[] = new Array(n);
        for (let i = 0; i < n; i++) {
          const item = this.parse(buf);
          if (item === INCOMPLETE) return INCOMPLETE;
          out[i] = item;
        }
        return out;
      }
      case 58: // : integer
        this.at = lineEnd;
        return readInt(buf, start + 1, eol);
      case 43: // + simple string
        this.at = lineEnd;
        return buf.toString('utf8', start + 1, eol);
      case 45: // - error
        this.at = lineEnd;
        return new ReplyError(buf.toString('utf8', start + 1, eol));
      default:
        throw new Error(`unexpected RESP type byte ${type}`);
    }
  }
}

/** The decimal integer in buf[from, to). */
function readInt(buf: Buffer, from: number, to: number): number {
  let i = from;
  let neg = false;
  if (buf[i] === 45) {
    neg = true;
    i++;
  }
  let n = 0;
  for (; i < to; i++) n = n * 10 + (buf[i]! - 48);
  return neg ? -n : n;
}

/** A string as a RESP bulk string. */
function bulk(a: string): string {
  return `$${Buffer.byteLength(a, 'utf8')}\r\n${a}\r\n`;
}

/** A command waiting for its reply (`script` and the rest for EVALSHA: resent as EVAL on NOSCRIPT). */
function pending(
  resolve: (value: Reply) => void,
  reject: (err: Error) => void,
  script: LuaScript | null,
  keys: readonly Arg[] | null,
  args: readonly Arg[],
): Pending {
  return {
    resolve,
    reject,
    at: performance.now(),
    script,
    keys,
    args,
    redirects: 0,
    asEval: false,
    internal: false,
  };
}

/** A handshake command's place in the queue (with the time it was sent): its reply is checked, not delivered. */
const HANDSHAKE: Pending = {
  resolve: () => {},
  reject: () => {},
  at: 0,
  script: null,
  keys: null,
  args: [],
  redirects: 0,
  asEval: false,
  internal: true,
};

/**
 * The pause before reconnection attempt `attempts` (1, 2, …): 50 ms doubling up to `maxMs`, less
 * up to a fifth at random, so that many clients do not knock at the same moment. The Redis
 * store's ioredis connections use it too.
 */
export function retryDelay(attempts: number, maxMs: number): number {
  const base = Math.min(maxMs, 50 * 2 ** Math.min(Math.max(attempts, 1) - 1, 10));
  return Math.round(base * (0.8 + 0.2 * Math.random()));
}
