/**
 * Bearer tokens of the control plane. Each token has a name (recorded as the author of changes)
 * and scopes; `admin` grants every scope. Secrets are compared in constant time: both sides are
 * hashed with SHA-256 and compared with timingSafeEqual, against every token without an early
 * exit, so neither the length nor the position of a match leaks through timing. Secrets are never
 * logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
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
