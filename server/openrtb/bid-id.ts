/**
 * Bid ids that carry what a win or billing notice needs (person, campaign, creative, price,
 * expiry), signed with HMAC-SHA256 so that a notice cannot be forged or altered. Any instance
 * holding the same key can read them: with OPENRTB_SECRET shared across a fleet, a notice may
 * reach any instance; with the per-process random key, only the process that bid.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface BidClaims {
  /** The person's id; '' when the person was not known. */
  pid: string;
  campaign: string;
  creative: string;
  imp: string;
  price: number;
  currency: string;
  /** Epoch ms after which notices are refused. */
  expiresAt: number;
}

const PART = /^[A-Za-z0-9_-]{8,2048}$/;
const SIG_BYTES = 16;

export class BidIds {
  private seq = 0;
  constructor(private readonly secret: string) {}

  private sign(payload: string): string {
    return createHmac('sha256', this.secret)
      .update(payload)
      .digest()
      .subarray(0, SIG_BYTES)
      .toString('base64url');
  }

  issue(c: BidClaims): string {
    // The sequence number makes two bids of one process for the same claims distinct.
    const body = [
      c.pid,
      c.campaign,
      c.creative,
      c.imp,
      c.price,
      c.currency,
      c.expiresAt,
      (this.seq++ & 0xffffff).toString(36),
    ];
    const payload = Buffer.from(JSON.stringify(body)).toString('base64url');
    return `${payload}.${this.sign(payload)}`;
  }

  /** `malformed`: not a bid id at all; `unknown`: not ours, altered or expired. */
  read(id: string, now: number): { claims: BidClaims; signature: string } | 'malformed' | 'unknown' {
    const dot = id.indexOf('.');
    if (dot < 0) return 'malformed';
    const payload = id.slice(0, dot);
    const sig = id.slice(dot + 1);
    if (!PART.test(payload) || !/^[A-Za-z0-9_-]{22}$/.test(sig)) return 'malformed';
    const want = Buffer.from(this.sign(payload));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return 'unknown';
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return 'unknown';
    }
    if (!Array.isArray(body) || body.length < 7) return 'unknown';
    const [pid, campaign, creative, imp, price, currency, expiresAt] = body as unknown[];
    if (
      typeof pid !== 'string' ||
      typeof campaign !== 'string' ||
      typeof creative !== 'string' ||
      typeof imp !== 'string' ||
      typeof price !== 'number' ||
      typeof currency !== 'string' ||
      typeof expiresAt !== 'number'
    ) {
      return 'unknown';
    }
    if (now > expiresAt) return 'unknown';
    return { claims: { pid, campaign, creative, imp, price, currency, expiresAt }, signature: sig };
  }
}
