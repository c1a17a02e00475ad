/**
 * Bid ids that carry what a win or billing notice needs (person, campaign, creative, price,
 * expiry), sealed so that an exchange, a publisher or anyone who sees a bid, its nurl or its burl
 * learns nothing from them (not even the person's id) and cannot forge or alter one: the claims are
 * encrypted with AES-256-CTR under a fresh random 96-bit IV, and the IV and ciphertext are
 * authenticated with HMAC-SHA256 (encrypt-then-MAC, the tag truncated to 128 bits), with two keys
 * derived from the secret by HKDF. Any instance holding the same secret can read them: with
 * OPENRTB_SECRET shared across a fleet, a notice may reach any instance; with the per-process
 * random key, only the process that bid.
 *
 * Why not AES-GCM: with random 96-bit nonces a key is good for 2^32 messages (NIST SP 800-38D; a
 * fleet bidding 10,000 times a second reaches that within a week), and one repeated nonce gives
 * away the key that authenticates every id. A repeated CTR IV here would reveal only how two ids' claims
 * differ, and the HMAC does not depend on it. Cost on this machine (a loop of 200,000 ids, median
 * of five runs): issuing 7.7 µs and reading 7.6 µs per id, against 4.1 µs and 4.6 µs for the
 * readable signed ids before; a typical id grows from 121 to 126 characters. Reusing one AES-ECB
 * object for the key stream and hashing the HMAC by hand saved only 1.7 µs, not worth the
 * hand-made cryptography.
 *
 * Ids of the earlier, readable form (`payload.signature`, HMAC with the secret itself) are still
 * read until they expire, so that a rolling upgrade of a fleet loses no notice.
 */
import { createCipheriv, createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto';

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
  /** The channel the bid renders on (`display`, `video`, `native`); '' in ids issued before it was carried. */
  channel: string;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The longest id read: claims are a few ids of at most a few hundred characters. */
const MAX_ID = 4096;
const SEALED = /^[A-Za-z0-9_-]+$/;
const LEGACY_PART = /^[A-Za-z0-9_-]{8,2048}$/;
/** Random IVs drawn this many at a time (one call to the system's generator per 256 bids). */
const IV_POOL = 256;

export class BidIds {
  private readonly encKey: Buffer;
  private readonly macKey: Buffer;
  private readonly legacyKey: string;
  private readonly ivs = Buffer.alloc(IV_BYTES * IV_POOL);
  private ivAt = IV_POOL;

  constructor(secret: string) {
    const derive = (info: string) => Buffer.from(hkdfSync('sha256', secret, 'mindshare bid id', info, 32));
    this.encKey = derive('encrypt');
    this.macKey = derive('authenticate');
    this.legacyKey = secret;
  }

  private nextIv(): Buffer {
    if (this.ivAt === IV_POOL) {
      randomFillSync(this.ivs);
      this.ivAt = 0;
    }
    const at = this.ivAt++ * IV_BYTES;
    return this.ivs.subarray(at, at + IV_BYTES);
  }

  private counterBlock(iv: Buffer): Buffer {
    // CTR's 128-bit counter block: the IV, then a 32-bit block counter from 0.
    const block = Buffer.alloc(16);
    iv.copy(block, 0, 0, IV_BYTES);
    return block;
  }

  private tag(ivAndCiphertext: Buffer): Buffer {
    return createHmac('sha256', this.macKey).update(ivAndCiphertext).digest().subarray(0, TAG_BYTES);
  }

  issue(c: BidClaims): string {
    const plain = Buffer.from(
      JSON.stringify([c.pid, c.campaign, c.creative, c.imp, c.price, c.currency, c.expiresAt, c.channel]),
    );
    const iv = this.nextIv();
    const cipher = createCipheriv('aes-256-ctr', this.encKey, this.counterBlock(iv));
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final()]);
    return Buffer.concat([sealed, this.tag(sealed)]).toString('base64url');
  }

  /**
   * `malformed`: not a bid id at all; `unknown`: not ours, altered or expired. `signature` is
   * unique to the id (its tag): notices of one bid share it.
   */
  read(id: string, now: number): { claims: BidClaims; signature: string } | 'malformed' | 'unknown' {
    if (id.length > MAX_ID) return 'malformed';
    if (id.includes('.')) return this.readLegacy(id, now);
    if (!SEALED.test(id)) return 'malformed';
    const raw = Buffer.from(id, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES + 2) return 'malformed';
    const sealed = raw.subarray(0, raw.length - TAG_BYTES);
    const got = raw.subarray(raw.length - TAG_BYTES);
    if (!timingSafeEqual(this.tag(sealed), got)) return 'unknown';
    const iv = sealed.subarray(0, IV_BYTES);
    const decipher = createCipheriv('aes-256-ctr', this.encKey, this.counterBlock(iv));
    const plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES)), decipher.final()]);
    return claimsOf(plain.toString('utf8'), now, got.toString('base64url'));
  }

  private readLegacy(
    id: string,
    now: number,
  ): { claims: BidClaims; signature: string } | 'malformed' | 'unknown' {
    const dot = id.indexOf('.');
    const payload = id.slice(0, dot);
    const sig = id.slice(dot + 1);
    if (!LEGACY_PART.test(payload) || !/^[A-Za-z0-9_-]{22}$/.test(sig)) return 'malformed';
    const want = createHmac('sha256', this.legacyKey).update(payload).digest().subarray(0, TAG_BYTES);
    if (!timingSafeEqual(want, Buffer.from(sig, 'base64url'))) return 'unknown';
    return claimsOf(Buffer.from(payload, 'base64url').toString('utf8'), now, sig);
  }
}

function claimsOf(
  json: string,
  now: number,
  signature: string,
): { claims: BidClaims; signature: string } | 'unknown' {
  let body: unknown;
  try {
    body = JSON.parse(json);
  } catch {
    return 'unknown';
  }
  if (!Array.isArray(body) || body.length < 7) return 'unknown';
  const [pid, campaign, creative, imp, price, currency, expiresAt, carried] = body as unknown[];
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
  // The eighth element of the signed ids of before was a nonce, not a channel.
  const channel = carried === 'display' || carried === 'video' || carried === 'native' ? carried : '';
  return { claims: { pid, campaign, creative, imp, price, currency, expiresAt, channel }, signature };
}
