import { createCipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type BidClaims, BidIds } from './bid-id.js';

const SECRET = 'bid-id-test-secret-0123456789abcdef';
const NOW = Date.UTC(2026, 10, 27);
const claims: BidClaims = {
  pid: 'person-4711@example.com',
  campaign: 'spring-sale',
  creative: 'banner-a',
  imp: '1',
  price: 2.5,
  currency: 'EUR',
  expiresAt: NOW + 60_000,
  channel: 'display',
};

/** The claims in the order every form of id carries them, with `eighth` last. */
const claimsArray = (eighth: string) => [
  claims.pid,
  claims.campaign,
  claims.creative,
  claims.imp,
  claims.price,
  claims.currency,
  claims.expiresAt,
  eighth,
];

describe('bid ids', () => {
  it('carry the claims to a reader with the same secret', () => {
    const ids = new BidIds(SECRET);
    const id = ids.issue(claims);
    const read = ids.read(id, NOW);
    expect(read).toEqual({ claims, signature: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) });
    expect((new BidIds(SECRET).read(id, NOW) as { claims: BidClaims }).claims).toEqual(claims);
  });

  it('say nothing of the person or the campaign to whoever sees them', () => {
    const ids = new BidIds(SECRET);
    const id = ids.issue(claims);
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    const bytes = Buffer.from(id, 'base64url');
    for (const secret of [claims.pid, 'person-4711', claims.campaign, claims.creative, 'EUR']) {
      expect(id).not.toContain(secret);
      expect(bytes.includes(Buffer.from(secret))).toBe(false);
      expect(bytes.toString('latin1')).not.toContain(secret);
    }
    // The same claims twice: unrelated ids (a fresh IV each), so ids cannot be linked either.
    const again = ids.issue(claims);
    expect(again).not.toBe(id);
    let same = 0;
    const other = Buffer.from(again, 'base64url');
    for (let i = 0; i < Math.min(bytes.length, other.length); i++) if (bytes[i] === other[i]) same++;
    expect(same).toBeLessThan(bytes.length / 4);
  });

  it('are refused when altered anywhere, made with another secret, or expired', () => {
    const ids = new BidIds(SECRET);
    const id = ids.issue(claims);
    const raw = Buffer.from(id, 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const altered = Buffer.from(raw);
      altered[i]! ^= 0x01;
      expect(ids.read(altered.toString('base64url'), NOW), `byte ${i}`).toBe('unknown');
    }
    expect(new BidIds(`${SECRET}-other`).read(id, NOW)).toBe('unknown');
    expect(ids.read(id, claims.expiresAt + 1)).toBe('unknown');
    expect(ids.read(id.slice(0, 20), NOW)).toBe('malformed');
    expect(ids.read('not a bid id', NOW)).toBe('malformed');
    expect(ids.read('x'.repeat(100_000), NOW)).toBe('malformed');
  });

  it('still reads the AES-256-CTR and HMAC-SHA256 ids of the form before, until they expire', () => {
    // That form: a 96-bit IV, the claims encrypted with AES-256-CTR, an HMAC-SHA256 of both
    // truncated to 128 bits, with keys derived from the secret by HKDF.
    const key = (info: string) => Buffer.from(hkdfSync('sha256', SECRET, 'mindshare bid id', info, 32));
    const ctrId = (iv: Buffer) => {
      const plain = JSON.stringify(claimsArray(claims.channel));
      const cipher = createCipheriv('aes-256-ctr', key('encrypt'), Buffer.concat([iv, Buffer.alloc(4)]));
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final()]);
      const tag = createHmac('sha256', key('authenticate')).update(sealed).digest().subarray(0, 16);
      return { id: Buffer.concat([sealed, tag]).toString('base64url'), tag: tag.toString('base64url') };
    };
    const ids = new BidIds(SECRET);
    // Issued in that form (for a fleet upgraded from a release that reads no other): exactly the
    // construction above, which such a release reads.
    const issued = Buffer.from(new BidIds(SECRET, 'aes-ctr').issue(claims), 'base64url');
    expect(issued.toString('base64url')).toBe(ctrId(issued.subarray(0, 12)).id);
    expect(ids.read(issued.toString('base64url'), NOW)).toMatchObject({ claims });
    // An IV whose first byte is the current form's: the reader falls back to the form before.
    for (const iv of [randomBytes(12), Buffer.concat([Buffer.from([0x02]), randomBytes(11)])]) {
      const { id, tag } = ctrId(iv);
      expect(ids.read(id, NOW)).toEqual({ claims, signature: tag });
      expect(ids.read(id, claims.expiresAt + 1)).toBe('unknown');
      const altered = Buffer.from(id, 'base64url');
      altered[20]! ^= 0x01;
      expect(ids.read(altered.toString('base64url'), NOW)).toBe('unknown');
      expect(new BidIds(`${SECRET}-other`).read(id, NOW)).toBe('unknown');
    }
  });

  it('still reads the signed ids made before they were sealed, until they expire', () => {
    // The eighth element of that form was a nonce, not a channel.
    const body = claimsArray('1');
    const payload = Buffer.from(JSON.stringify(body)).toString('base64url');
    const sig = createHmac('sha256', SECRET).update(payload).digest().subarray(0, 16).toString('base64url');
    const ids = new BidIds(SECRET);
    expect(ids.read(`${payload}.${sig}`, NOW)).toEqual({
      claims: { ...claims, channel: '' },
      signature: sig,
    });
    expect(ids.read(`${payload}.${sig.replace(/^./, sig[0] === 'A' ? 'B' : 'A')}`, NOW)).toBe('unknown');
    expect(ids.read(`${payload}.${sig}`, claims.expiresAt + 1)).toBe('unknown');
  });
});
