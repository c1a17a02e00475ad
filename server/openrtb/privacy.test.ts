import { describe, expect, it } from 'vitest';
import { gppString, tcString } from '../../test/openrtb/consent.js';
import {
  gppSectionIds,
  MAX_STRING,
  NO_SIGNALS,
  PrivacyGate,
  type PrivacySignals,
  tcfWithinBudget,
} from './privacy.js';

const US = 755;
const gate = new PrivacyGate({ tcfVendorId: US, tcfPurposes: [1, 3, 4] });
const signals = (s: Partial<PrivacySignals>): PrivacySignals => ({ ...NO_SIGNALS, ...s });

describe('PrivacyGate', () => {
  it('allows personal data when no signal says otherwise', () => {
    expect(gate.reason(NO_SIGNALS)).toBeNull();
    expect(gate.reason(signals({ gdpr: 0, usPrivacy: '1NNN' }))).toBeNull();
    expect(gate.reason(signals({ usPrivacy: '1---' }))).toBeNull();
  });

  it('never for a COPPA request, whatever else it says', () => {
    const consent = tcString([US], [1, 3, 4]);
    expect(gate.reason(signals({ coppa: true, gdpr: 1, consent }))).toBe('coppa');
  });

  it('under GDPR only with our vendor consent and every configured purpose', () => {
    expect(gate.reason(signals({ gdpr: 1 }))).toBe('gdpr');
    expect(gate.reason(signals({ gdpr: 1, consent: tcString([US], [1, 3, 4]) }))).toBeNull();
    expect(gate.reason(signals({ gdpr: 1, consent: tcString([US], [1, 2, 3, 4, 7]) }))).toBeNull();
    expect(gate.reason(signals({ gdpr: 1, consent: tcString([10], [1, 3, 4]) }))).toBe('gdpr');
    expect(gate.reason(signals({ gdpr: 1, consent: tcString([US], [1, 3]) }))).toBe('gdpr');
    expect(gate.reason(signals({ gdpr: 1, consent: 'not-a-consent-string' }))).toBe('gdpr');
    expect(gate.reason(signals({ gdpr: 1, consent: 'C'.repeat(MAX_STRING + 1) }))).toBe('gdpr');
    // Without a vendor id of our own, no consent can be ours.
    const noVendor = new PrivacyGate({ tcfVendorId: null, tcfPurposes: [1, 3, 4] });
    expect(noVendor.reason(signals({ gdpr: 1, consent: tcString([US], [1, 3, 4]) }))).toBe('gdpr');
    // The purposes are configurable.
    const fewer = new PrivacyGate({ tcfVendorId: US, tcfPurposes: [1] });
    expect(fewer.reason(signals({ gdpr: 1, consent: tcString([US], [1]) }))).toBeNull();
  });

  it('not after a CCPA opt-out of sale, nor with a malformed us_privacy', () => {
    expect(gate.reason(signals({ usPrivacy: '1YYN' }))).toBe('us_privacy');
    expect(gate.reason(signals({ usPrivacy: '1yyn' }))).toBe('us_privacy');
    expect(gate.reason(signals({ usPrivacy: 'yes' }))).toBe('us_privacy');
    expect(gate.reason(signals({ usPrivacy: '1YNN' }))).toBeNull();
  });

  it('reads the GPP sections that apply: US opt-outs, the GPC flag, TCF EU, USP', () => {
    const optedOut = gppString({ usnat: { SaleOptOut: 1, TargetedAdvertisingOptOut: 1 } });
    const stayed = gppString({ usnat: { SaleOptOut: 2, SharingOptOut: 2, TargetedAdvertisingOptOut: 2 } });
    const gpc = gppString({ usca: { SaleOptOut: 2, SharingOptOut: 2, Gpc: true } });
    expect(gate.reason(signals({ gpp: optedOut, gppSid: [7] }))).toBe('gpp');
    expect(gate.reason(signals({ gpp: stayed, gppSid: [7] }))).toBeNull();
    expect(gate.reason(signals({ gpp: gpc, gppSid: [8] }))).toBe('gpp');
    // Only the sections gpp_sid names apply.
    expect(gate.reason(signals({ gpp: optedOut }))).toBeNull();
    // A section said to apply that the string does not hold, an unknown one, or garbage: no.
    expect(gate.reason(signals({ gpp: stayed, gppSid: [8] }))).toBe('gpp');
    expect(gate.reason(signals({ gpp: stayed, gppSid: [99] }))).toBe('gpp');
    expect(gate.reason(signals({ gpp: 'DBABMA~not-base64!', gppSid: [7] }))).toBe('gpp');
    const eu = (vendors: number[]) =>
      gppString({
        tcfeuv2: {
          CmpId: 10,
          PurposeConsents: Array.from({ length: 24 }, (_, i) => [1, 3, 4].includes(i + 1)),
          VendorConsents: vendors,
        },
      });
    expect(gate.reason(signals({ gpp: eu([US]), gppSid: [2] }))).toBeNull();
    expect(gate.reason(signals({ gpp: eu([10]), gppSid: [2] }))).toBe('gpp');
    const usp = gppString({ uspv1: { Notice: 'Y', OptOutSale: 'Y', LspaCovered: 'N' } });
    expect(gate.reason(signals({ gpp: usp, gppSid: [6] }))).toBe('gpp');
  });

  it('says no to strings built to make the decoders explode, quickly and without dying', () => {
    // A GPP header naming ids 1 to about two billion (the library would build that array).
    const started = performance.now();
    expect(gppSectionIds('DBABrpJKRRKoM', 1)).toBeNull();
    expect(gate.reason(signals({ gpp: 'DBABrpJKRRKoM~BAAA', gppSid: [7] }))).toBe('gpp');
    // A TC string of 2,900 ranges each over every vendor id: 190 million steps in the decoder.
    const evil = craftedTcString(2900);
    expect(evil.length).toBeLessThan(MAX_STRING);
    expect(tcfWithinBudget(evil)).toBe(false);
    expect(gate.reason(signals({ gdpr: 1, consent: evil }))).toBe('gdpr');
    expect(performance.now() - started).toBeLessThan(2000);
    // Real strings are within the budget and their headers read.
    expect(tcfWithinBudget(tcString([US], [1, 3, 4]))).toBe(true);
    const two = gppString({ usnat: { SaleOptOut: 2 }, usca: { SaleOptOut: 2 } });
    expect(gppSectionIds(two.split('~')[0]!, 2)).toEqual([7, 8]);
  });

  it('without a string, GPP sections said to apply allow nothing', () => {
    expect(gate.reason(signals({ gppSid: [2, 7] }))).toBe('gpp');
  });
});

/** A TC string whose vendor consents are `entries` ranges, each over vendors 1 to 65,535. */
function craftedTcString(entries: number): string {
  const int = (v: number, n: number) => v.toString(2).padStart(n, '0');
  let bits =
    int(2, 6) +
    int(12345, 36) +
    int(1000, 36) +
    int(10, 12) +
    int(1, 12) +
    int(1, 6) +
    int(0, 12) +
    int(100, 12) +
    int(4, 6) +
    '00' +
    int(0, 12) +
    '1'.repeat(24) +
    '0'.repeat(24) +
    '0' +
    int(0, 12);
  bits += int(65535, 16) + '1' + int(entries, 12);
  for (let i = 0; i < entries; i++) bits += `1${int(1, 16)}${int(65535, 16)}`;
  bits += `${int(0, 16)}0${int(0, 12)}`;
  while (bits.length % 6 !== 0) bits += '0';
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let out = '';
  for (let i = 0; i < bits.length; i += 6) out += alphabet[Number.parseInt(bits.slice(i, i + 6), 2)];
  return out;
}
