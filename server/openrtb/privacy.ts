/**
 * Whether a bid request lets the bidder use personal data: the stored person (found through the
 * request's ids), their tags and funnel stages, frequency caps, third-party segments
 * (`user.data`). Decided from the request's privacy signals before anything personal is read;
 * without a lawful basis the request is decided on its context alone.
 *
 * | signal | where (2.6; 2.5) | personal data only when |
 * | --- | --- | --- |
 * | COPPA | `regs.coppa` | it is not 1 |
 * | GDPR | `regs.gdpr`; `regs.ext.gdpr` | it is not 1, or the TCF v2 string (`user.consent`; `user.ext.consent`) decodes and gives our vendor id consent and every configured purpose consent |
 * | CCPA | `regs.us_privacy`; `regs.ext.us_privacy` | the string is not an opt-out of sale (`1?Y?`); a malformed one counts as an opt-out |
 * | GPP | `regs.gpp` + `regs.gpp_sid`; `regs.ext.gpp`, `regs.ext.gpp_sid` | every applicable section (`gpp_sid`) allows it: TCF EU v2 as GDPR above, US sections without an opt-out of sale, sharing or targeted advertising and without the GPC flag; a section we cannot read, or a string that does not decode, does not allow it |
 *
 * The TCF and GPP strings are decoded by the IAB's own libraries (@iabtechlabtcf/core,
 * @iabgpp/cmpapi). Decoding a string costs tens of microseconds and the same strings come back
 * with the same people, so the verdicts of recent strings are kept (a bounded map).
 */
import { GppModel, Sections as GppSections } from '@iabgpp/cmpapi';
import { TCString } from '@iabtechlabtcf/core';
import { LRUCache } from 'lru-cache';

/** Why a request may not use personal data. */
export const PRIVACY_REASONS = ['coppa', 'gdpr', 'us_privacy', 'gpp'] as const;
export type PrivacyReason = (typeof PRIVACY_REASONS)[number];

/** The privacy signals of a bid request, from their 2.6 or 2.5 (`ext`) places. */
export interface PrivacySignals {
  coppa: boolean;
  /** `regs.gdpr`: 1 applies, 0 does not; undefined when the exchange did not say. */
  gdpr: number | undefined;
  /** The TCF v2 consent string. */
  consent: string | undefined;
  usPrivacy: string | undefined;
  gpp: string | undefined;
  gppSid: number[];
}

export const NO_SIGNALS: PrivacySignals = Object.freeze({
  coppa: false,
  gdpr: undefined,
  consent: undefined,
  usPrivacy: undefined,
  gpp: undefined,
  gppSid: [],
}) as PrivacySignals;

export interface PrivacyPolicy {
  /** Our vendor id in the IAB Global Vendor List; null: no GDPR consent can be ours. */
  tcfVendorId: number | null;
  /** TCF purposes that need the person's consent (OPENRTB_TCF_PURPOSES). */
  tcfPurposes: readonly number[];
}

/** US sections' fields that, set to 1, opt the person out of what targeting does. */
const US_OPT_OUTS = ['SaleOptOut', 'SharingOptOut', 'TargetedAdvertisingOptOut'] as const;
/** Consent strings longer than this are refused unread (a TC string naming every vendor is ~2 KiB). */
export const MAX_STRING = 16_384;
const TCF_EU = 2;
const USP_V1 = 6;
const SECTION_NAMES: ReadonlyMap<number, string> = GppSections.SECTION_ID_NAME_MAP;

export class PrivacyGate {
  private readonly policy: PrivacyPolicy;
  /**
   * Verdicts of recent strings, by kind and string: true when personal data may be used. Bounded
   * by count and by the length of the strings kept (hostile strings are long and all different).
   */
  private readonly verdicts = new LRUCache<string, boolean>({
    max: 10_000,
    maxSize: 4 * 1024 * 1024,
    sizeCalculation: (_, key) => key.length + 16,
  });

  constructor(policy: PrivacyPolicy) {
    this.policy = policy;
  }

  /** Null when the request may use personal data, else the first signal that forbids it. */
  reason(s: PrivacySignals): PrivacyReason | null {
    if (s.coppa) return 'coppa';
    if (s.gdpr === 1 && !this.tcfAllows(s.consent)) return 'gdpr';
    if (s.usPrivacy !== undefined && !uspAllows(s.usPrivacy)) return 'us_privacy';
    // Sections said to apply with no string to read them from allow nothing either.
    if (s.gppSid.length > 0 && (s.gpp === undefined || !this.gppAllows(s.gpp, s.gppSid))) return 'gpp';
    return null;
  }

  private tcfAllows(consent: string | undefined): boolean {
    if (consent === undefined || consent === '' || this.policy.tcfVendorId === null) return false;
    return this.remembered(`t|${consent}`, () => {
      const vendor = this.policy.tcfVendorId!;
      // The library walks every vendor of every range: a crafted string of 16 KiB can ask for
      // 200 million steps. Such a string is refused before it is decoded.
      if (!tcfWithinBudget(consent)) return false;
      const tc = TCString.decode(consent);
      if (!tc.vendorConsents.has(vendor)) return false;
      return this.policy.tcfPurposes.every((p) => tc.purposeConsents.has(p));
    });
  }

  private gppAllows(gpp: string, sids: readonly number[]): boolean {
    return this.remembered(`g|${sids.join(',')}|${gpp}`, () => {
      // The library expands the header's id ranges into arrays before anything else (a range of
      // two billion ids aborts the process): the header is read here first, within bounds, and
      // must name exactly one id per section the string carries.
      const parts = gpp.split('~');
      const ids = gppSectionIds(parts[0] ?? '', parts.length - 1);
      if (ids === null) return false;
      const model = new GppModel(gpp);
      for (const sid of sids) {
        const name = SECTION_NAMES.get(sid);
        const at = ids.indexOf(sid);
        // A section said to apply that the string lacks, or that we cannot read: no basis.
        if (name === undefined || at < 0) return false;
        if (sid === TCF_EU) {
          // The section is a TC string: read it as one, with the same bounds.
          if (!this.tcfAllows(parts[at + 1])) return false;
        } else if (sid === USP_V1) {
          if (model.getFieldValue(name, 'OptOutSale') === 'Y') return false;
        } else if (name.startsWith('us')) {
          for (const field of US_OPT_OUTS) {
            // 1: opted out; 2: did not; 0: does not apply.
            if (model.hasField(name, field) && model.getFieldValue(name, field) === 1) return false;
          }
          if (model.hasField(name, 'Gpc') && model.getFieldValue(name, 'Gpc') === true) return false;
        } else return false;
      }
      return true;
    });
  }

  /**
   * A verdict from the cache, else decided. A string that does not decode allows nothing, and so
   * does one longer than MAX_STRING (real ones are far shorter), which is neither decoded nor kept.
   */
  private remembered(key: string, decide: () => boolean): boolean {
    if (key.length > MAX_STRING) return false;
    const known = this.verdicts.get(key);
    if (known !== undefined) return known;
    let verdict: boolean;
    try {
      verdict = decide();
    } catch {
      verdict = false;
    }
    this.verdicts.set(key, verdict);
    return verdict;
  }
}

/**
 * The CCPA string (`1YNN`: version, notice given, opted out of sale, LSPA): an opt-out is `Y` in
 * the third place; `1---` says the law does not apply. Anything else malformed allows nothing.
 */
function uspAllows(s: string): boolean {
  if (!/^1[YN-][YN-][YN-]$/i.test(s)) return false;
  return s[2]!.toUpperCase() !== 'Y';
}

// ---- bounded reading of the strings' headers ----------------------------------------------------

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The bits of a base64url text, as a string of 0 and 1; null for another character. */
function bitsOf(text: string): string | null {
  let bits = '';
  for (let i = 0; i < text.length; i++) {
    const n = BASE64URL.indexOf(text[i]!);
    if (n < 0) return null;
    bits += n.toString(2).padStart(6, '0');
  }
  return bits;
}

/** The Fibonacci-coded integer at `at` (ended by "11") and where the next field starts. */
function fibonacciAt(bits: string, at: number): [value: number, next: number] | null {
  const end = bits.indexOf('11', at);
  if (end < 0 || end - at > 40) return null;
  let value = 0;
  let a = 1;
  let b = 2;
  for (let i = at; i <= end; i++) {
    if (bits[i] === '1') value += a;
    [a, b] = [b, a + b];
  }
  return [value, end + 2];
}

/**
 * The section ids a GPP header names, in order (type 3, version, then Fibonacci-coded ranges);
 * null when it does not read, or names other than `sections` ids (one per section carried).
 */
export function gppSectionIds(header: string, sections: number): number[] | null {
  const bits = bitsOf(header);
  if (bits === null || bits.length < 24 || Number.parseInt(bits.slice(0, 6), 2) !== 3) return null;
  const groups = Number.parseInt(bits.slice(12, 24), 2);
  const ids: number[] = [];
  let at = 24;
  let offset = 0;
  for (let g = 0; g < groups; g++) {
    const isRange = bits[at] === '1';
    const first = fibonacciAt(bits, at + 1);
    if (first === null) return null;
    const start = first[0] + offset;
    at = first[1];
    let end = start;
    if (isRange) {
      const last = fibonacciAt(bits, at);
      if (last === null) return null;
      end = last[0] + start;
      at = last[1];
    }
    offset = end;
    if (end - start + 1 + ids.length > sections) return null;
    for (let id = start; id <= end; id++) ids.push(id);
  }
  return ids.length === sections ? ids : null;
}

/** TCF v2 core segment: bits before the vendor consent section. */
const TCF_CORE_FIXED_BITS = 213;
/** Vendors a TC string may make the decoder walk (ranges of ranges), at most: a few full lists. */
const TCF_RANGE_BUDGET = 262_144;

/**
 * Whether the work of decoding a TC string's core segment stays within TCF_RANGE_BUDGET vendor
 * steps: the vendor consent and legitimate-interest sections (bit fields or ranges) and the
 * publisher restrictions' ranges. Structural errors are left to the decoder.
 */
export function tcfWithinBudget(consent: string): boolean {
  const bits = bitsOf(consent.split('.')[0] ?? '');
  if (bits === null) return true;
  let at = TCF_CORE_FIXED_BITS;
  let work = 0;
  const int = (n: number): number | null => {
    if (at + n > bits.length) return null;
    const v = Number.parseInt(bits.slice(at, at + n), 2);
    at += n;
    return v;
  };
  /** Range entries: `entries` of (IsARange, start, [end]); adds their spans to the work. */
  const ranges = (entries: number): boolean => {
    for (let e = 0; e < entries; e++) {
      const isRange = int(1);
      const start = int(16);
      if (isRange === null || start === null) return true;
      const end = isRange === 1 ? int(16) : start;
      if (end === null) return true;
      work += Math.max(1, end - start + 1);
      if (work > TCF_RANGE_BUDGET) return false;
    }
    return true;
  };
  for (let section = 0; section < 2; section++) {
    const max = int(16);
    const isRange = int(1);
    if (max === null || isRange === null) return true;
    if (isRange === 0) {
      at += max;
      work += max;
    } else {
      const entries = int(12);
      if (entries === null) return true;
      if (!ranges(entries)) return false;
    }
  }
  const restrictions = int(12);
  for (let r = 0; restrictions !== null && r < restrictions; r++) {
    if (int(8) === null) return true;
    const entries = int(12);
    if (entries === null) return true;
    if (!ranges(entries)) return false;
  }
  return work <= TCF_RANGE_BUDGET;
}
