/**
 * Bid ids that carry what a win or billing notice needs (person, campaign, creative, price,
 * expiry), sealed so that an exchange, a publisher or anyone who sees a bid, its nurl or its burl
 * learns nothing from them (not even the person's id) and cannot forge or alter one: the claims are
 * encrypted and authenticated with XChaCha20-Poly1305 (libsodium's IETF construction, through
 * sodium-native) under a fresh random 192-bit nonce, with a key derived from the secret by HKDF.
 * Any instance holding the same secret can read them: with OPENRTB_SECRET shared across a fleet, a
 * notice may reach any instance; with the per-process random key, only the process that bid.
 *
 * Why this AEAD: its 192-bit nonces may be drawn at random for as many ids as a fleet will ever
 * issue (AES-GCM's 96-bit random nonces are good for 2^32 messages per key, NIST SP 800-38D, which
 * a fleet bidding 10,000 times a second reaches within a week), and libsodium does it in one call
 * on buffers we keep, where Node's crypto (OpenSSL 3) builds a cipher and an HMAC context per id.
 * Measured on this project's 2-core machine (`npm run bench:openrtb`, medians of three runs):
 * issuing an id costs 5.6 µs, against 20.8 µs for the AES-256-CTR and HMAC-SHA256 form before
 * through node:crypto (3.7x), and a whole bid in process fell from 86 to 60 µs. An id is 18
 * characters longer (a one-byte form mark, the longer nonce): 162 for the load run's bids.
 *
 * Ids of the two earlier forms are still read until they expire, so that a rolling upgrade of a
 * fleet loses no notice of a bid the previous release made: AES-256-CTR then HMAC-SHA256 (keys
 * derived by HKDF, a random 96-bit IV), and before that the readable `payload.signature` (HMAC with
 * the secret itself). The other way round, a release that reads only the AES-256-CTR form would
 * refuse the notices of upgraded instances: OPENRTB_BID_IDS=aes-ctr issues that form meanwhile.
 */
import { createCipheriv, createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto';
import sodium from 'sodium-native';
import type { BidIdForm } from '../config.js';

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

/** The first byte of an id of the current form (authenticated with it). */
const FORM = 0x02;
const NONCE_BYTES = 24;
const AEAD_TAG_BYTES = 16;
/** The form before: a 96-bit IV, the ciphertext, an HMAC truncated to 128 bits. */
const CTR_IV_BYTES = 12;
const CTR_TAG_BYTES = 16;
/** The longest id read: claims are a few ids of at most a few hundred characters. */
const MAX_ID = 4096;
const SEALED = /^[A-Za-z0-9_-]+$/;
const LEGACY_PART = /^[A-Za-z0-9_-]{8,2048}$/;
/** Random nonces drawn this many at a time (one call to the system's generator per 256 bids). */
const NONCE_POOL = 256;
/** Claims up to this many bytes are written into a buffer kept for it; longer ones get their own. */
const SCRATCH_BYTES = 2048;

export class BidIds {
  private readonly aeadKey: Buffer;
  private readonly ctrKey: Buffer;
  private readonly macKey: Buffer;
  private readonly legacyKey: string;
  private readonly nonces = Buffer.alloc(NONCE_BYTES * NONCE_POOL);
  private nonceAt = NONCE_POOL;
  private readonly scratch = Buffer.alloc(SCRATCH_BYTES);
  private readonly form = Buffer.from([FORM]);

  private readonly issues: BidIdForm;

  /**
   * `issues`: the form of the ids issued; `aes-ctr` while a fleet is upgraded from a release that
   * reads no other (every form is read either way).
   */
  constructor(secret: string, issues: BidIdForm = 'xchacha20') {
    this.issues = issues;
    const derive = (info: string) => Buffer.from(hkdfSync('sha256', secret, 'mindshare bid id', info, 32));
    this.aeadKey = derive('xchacha20-poly1305');
    this.ctrKey = derive('encrypt');
    this.macKey = derive('authenticate');
    this.legacyKey = secret;
  }

  private nextNonce(): Buffer {
    if (this.nonceAt === NONCE_POOL) {
      randomFillSync(this.nonces);
      this.nonceAt = 0;
    }
    const at = this.nonceAt++ * NONCE_BYTES;
    return this.nonces.subarray(at, at + NONCE_BYTES);
  }

  issue(c: BidClaims): string {
    if (this.issues === 'aes-ctr') return this.issueCtr(c);
    const json = JSON.stringify([
      c.pid,
      c.campaign,
      c.creative,
      c.imp,
      c.price,
      c.currency,
      c.expiresAt,
      c.channel,
    ]);
    // Three bytes per UTF-16 unit is the most UTF-8 can take: a longer text may not fit.
    const plain =
      json.length * 3 <= SCRATCH_BYTES
        ? this.scratch.subarray(0, this.scratch.write(json, 0, 'utf8'))
        : Buffer.from(json, 'utf8');
    const out = Buffer.allocUnsafe(1 + NONCE_BYTES + plain.length + AEAD_TAG_BYTES);
    out[0] = FORM;
    const nonce = this.nextNonce();
    nonce.copy(out, 1);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      out.subarray(1 + NONCE_BYTES),
      plain,
      this.form,
      null,
      nonce,
      this.aeadKey,
    );
    return out.toString('base64url');
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
    if (raw[0] === FORM && raw.length >= 1 + NONCE_BYTES + AEAD_TAG_BYTES + 2) {
      const plain = Buffer.allocUnsafe(raw.length - 1 - NONCE_BYTES - AEAD_TAG_BYTES);
      let opened = true;
      try {
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
          plain,
          null,
          raw.subarray(1 + NONCE_BYTES),
          this.form,
          raw.subarray(1, 1 + NONCE_BYTES),
          this.aeadKey,
        );
      } catch {
        // Not of this form, or altered: an id of the form before may start with the same byte.
        opened = false;
      }
      if (opened)
        return claimsOf(
          plain.toString('utf8'),
          now,
          raw.subarray(raw.length - AEAD_TAG_BYTES).toString('base64url'),
        );
    }
    return this.readCtr(raw, now);
  }

  /** An id of the form before (see OPENRTB_BID_IDS). */
  private issueCtr(c: BidClaims): string {
    const plain = Buffer.from(
      JSON.stringify([c.pid, c.campaign, c.creative, c.imp, c.price, c.currency, c.expiresAt, c.channel]),
    );
    const iv = this.nextNonce().subarray(0, CTR_IV_BYTES);
    const cipher = createCipheriv('aes-256-ctr', this.ctrKey, counterBlock(iv));
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final()]);
    const tag = createHmac('sha256', this.macKey).update(sealed).digest().subarray(0, CTR_TAG_BYTES);
    return Buffer.concat([sealed, tag]).toString('base64url');
  }

  /** An id of the form before: AES-256-CTR, then HMAC-SHA256 over the IV and the ciphertext. */
  private readCtr(
    raw: Buffer,
    now: number,
  ): { claims: BidClaims; signature: string } | 'malformed' | 'unknown' {
    if (raw.length < CTR_IV_BYTES + CTR_TAG_BYTES + 2) return 'malformed';
    const sealed = raw.subarray(0, raw.length - CTR_TAG_BYTES);
    const got = raw.subarray(raw.length - CTR_TAG_BYTES);
    const want = createHmac('sha256', this.macKey).update(sealed).digest().subarray(0, CTR_TAG_BYTES);
    if (!timingSafeEqual(want, got)) return 'unknown';
    const decipher = createCipheriv(
      'aes-256-ctr',
      this.ctrKey,
      counterBlock(sealed.subarray(0, CTR_IV_BYTES)),
    );
    const plain = Buffer.concat([decipher.update(sealed.subarray(CTR_IV_BYTES)), decipher.final()]);
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
    const want = createHmac('sha256', this.legacyKey).update(payload).digest().subarray(0, CTR_TAG_BYTES);
    if (!timingSafeEqual(want, Buffer.from(sig, 'base64url'))) return 'unknown';
    return claimsOf(Buffer.from(payload, 'base64url').toString('utf8'), now, sig);
  }
}

/** CTR's 128-bit counter block: the IV, then a 32-bit block counter from 0. */
function counterBlock(iv: Buffer): Buffer {
  const block = Buffer.alloc(16);
  iv.copy(block, 0, 0, CTR_IV_BYTES);
  return block;
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
