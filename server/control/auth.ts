/**
 * Bearer tokens of the control plane. Each token has a name (recorded as the author of changes)
 * and scopes; `admin` grants every scope. Secrets are compared in constant time: both sides are
 * hashed with SHA-256 and compared with timingSafeEqual, against every token without an early
 * exit, so neither the length nor the position of a match leaks through timing. Secrets are never
 * logged.
 */
import { createHash, createHmac, scrypt, timingSafeEqual } from 'node:crypto';
import { type ApiToken, SCOPES, type Scope } from '../scopes.js';

/** Who made a request: a token's name and scopes, or `anonymous` when the API is open. */
export interface Caller {
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
}

export const ANONYMOUS: Caller = Object.freeze({ name: 'anonymous', scopes: new Set<Scope>(SCOPES) });

interface HashedToken {
  name: string;
  digest: Buffer;
  scopes: ReadonlySet<Scope>;
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export type AuthResult = { ok: true; caller: Caller } | { ok: false; reason: 'missing' | 'invalid' };

/**
 * A console session: what the sign-in cookie proves. The cookie is `v1.<name>.<expires>.<mac>`,
 * the mac an HMAC-SHA256 of the rest keyed with the SHA-256 of the token's secret: it never
 * carries the secret, it cannot be forged or extended without it, every instance that has the
 * same TOKENS accepts it (no session store), and removing or changing the token ends it.
 */
export interface Session {
  caller: Caller;
  /** The cookie's value. */
  cookie: string;
  expiresAt: number;
  /** What a change made with this session must send in `x-csrf-token`. */
  csrf: string;
}

/** The console's sign-in cookie. */
export const SESSION_COOKIE = 'mindshare_session';

const b64url = (b: Buffer) => b.toString('base64url');

/** Checks Authorization headers against a fixed list of tokens. */
export class TokenAuth {
  private readonly tokens: readonly HashedToken[];

  constructor(tokens: readonly ApiToken[]) {
    this.tokens = tokens.map((t) => ({ name: t.name, digest: digest(t.secret), scopes: new Set(t.scopes) }));
  }

  /** True when no token is configured: every request is let in as `anonymous`. */
  get open(): boolean {
    return this.tokens.length === 0;
  }

  /** A session for the token whose secret is `secret` (a sign-in), or null for none. */
  async signIn(secret: string, now: number, ttlMs: number): Promise<Session | null> {
    const result = this.authenticate(`Bearer ${secret}`);
    if (!result.ok || this.open) return null;
    const token = result.caller as HashedToken;
    const body = `v1.${b64url(Buffer.from(token.name, 'utf8'))}.${now + ttlMs}`;
    return this.sessionOf(token, `${body}.${mac(await this.sessionKey(token), body)}`, now + ttlMs);
  }

  /** The session a cookie proves, or null (absent, forged, expired, or its token is gone). */
  async session(cookie: string | undefined, now: number): Promise<Session | null> {
    if (cookie === undefined || this.open) return null;
    const m = /^v1\.([A-Za-z0-9_-]{1,400})\.([0-9]{1,16})\.([A-Za-z0-9_-]{43})$/.exec(cookie);
    if (m === null) return null;
    const expiresAt = Number(m[2]);
    if (!(expiresAt > now)) return null;
    const name = Buffer.from(m[1]!, 'base64url').toString('utf8');
    const presented = Buffer.from(m[3]!, 'base64url');
    const body = `v1.${m[1]}.${m[2]}`;
    let found: HashedToken | null = null;
    // Every token is tried, named so or not: the time taken says nothing of which names exist.
    for (const token of this.tokens) {
      const expected = createHmac('sha256', await this.sessionKey(token))
        .update(body)
        .digest();
      if (timingSafeEqual(presented, expected) && token.name === name && found === null) found = token;
    }
    return found === null ? null : this.sessionOf(found, cookie, expiresAt);
  }

  private async sessionOf(token: HashedToken, cookie: string, expiresAt: number): Promise<Session> {
    return { caller: token, cookie, expiresAt, csrf: mac(await this.sessionKey(token), `csrf.${cookie}`) };
  }

  /**
   * The key of a token's session MACs: scrypt of the secret's digest, made once per token on first
   * use (50 ms of CPU each here, off the event loop: libuv's thread pool). A cookie carries a MAC;
   * with a key this costly to derive, a stolen cookie is no fast oracle for guessing the token's
   * secret offline, and the digest the bearer check keeps is not itself the key.
   */
  private sessionKey(token: HashedToken): Promise<Buffer> {
    let key = this.sessionKeys.get(token);
    if (key === undefined) {
      key = new Promise<Buffer>((resolve, reject) =>
        scrypt(token.digest, 'mindshare console session v1', 32, (err, k) =>
          err ? reject(err) : resolve(k),
        ),
      );
      this.sessionKeys.set(token, key);
    }
    return key;
  }
  private readonly sessionKeys = new Map<HashedToken, Promise<Buffer>>();

  authenticate(header: string | undefined): AuthResult {
    if (this.open) return { ok: true, caller: ANONYMOUS };
    const secret = bearer(header);
    if (secret === null) return { ok: false, reason: 'missing' };
    const presented = digest(secret);
    let found: HashedToken | null = null;
    for (const token of this.tokens) {
      // No early exit: every token is compared whatever the outcome.
      if (timingSafeEqual(presented, token.digest) && found === null) found = token;
    }
    return found === null ? { ok: false, reason: 'invalid' } : { ok: true, caller: found };
  }
}

function mac(key: Buffer, text: string): string {
  return b64url(createHmac('sha256', key).update(text).digest());
}

/** Whether `presented` is the session's CSRF token (compared in constant time). */
export function csrfMatches(session: Session, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented, 'utf8');
  const b = Buffer.from(session.csrf, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether a caller may use a route that needs `scope` (null: any authenticated caller). */
export function hasScope(caller: Caller, scope: Scope | null): boolean {
  return scope === null || caller.scopes.has('admin') || caller.scopes.has(scope);
}

/** The secret of an `Authorization: Bearer <secret>` header, or null. */
function bearer(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1] ?? null;
}

/**
 * The data plane's check of `POST /v1/decide`: undefined when no token is configured (open), else
 * a function from the `Authorization` header to a verdict for the `decide` scope.
 */
export function decideAuthorizer(
  tokens: readonly ApiToken[],
): ((header: string) => 'ok' | 'unauthorized' | 'forbidden') | undefined {
  const auth = new TokenAuth(tokens);
  if (auth.open) return undefined;
  return (header) => {
    const result = auth.authenticate(header === '' ? undefined : header);
    if (!result.ok) return 'unauthorized';
    return hasScope(result.caller, 'decide') ? 'ok' : 'forbidden';
  };
}
