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
  /** Verdicts of recent strings, by kind and string: true when personal data may be used. */
  private readonly verdicts = new LRUCache<string, boolean>({ max: 10_000 });

  constructor(policy: PrivacyPolicy) {
    this.policy = policy;
  }

  /** Null when the request may use personal data, else the first signal that forbids it. */
  reason(s: PrivacySignals): PrivacyReason | null {
    if (s.coppa) return 'coppa';
    if (s.gdpr === 1 && !this.tcfAllows(s.consent)) return 'gdpr';
    if (s.usPrivacy !== undefined && !uspAllows(s.usPrivacy)) return 'us_privacy';
    if (s.gpp !== undefined && s.gppSid.length > 0 && !this.gppAllows(s.gpp, s.gppSid)) return 'gpp';
    return null;
  }

  private tcfAllows(consent: string | undefined): boolean {
    if (consent === undefined || consent === '' || this.policy.tcfVendorId === null) return false;
    return this.remembered(`t|${consent}`, () => {
      const vendor = this.policy.tcfVendorId!;
      const tc = TCString.decode(consent);
      if (!tc.vendorConsents.has(vendor)) return false;
      return this.policy.tcfPurposes.every((p) => tc.purposeConsents.has(p));
    });
  }

  private gppAllows(gpp: string, sids: readonly number[]): boolean {
    return this.remembered(`g|${sids.join(',')}|${gpp}`, () => {
      const model = new GppModel(gpp);
      for (const sid of sids) {
        const name = SECTION_NAMES.get(sid);
        // A section said to apply that the string lacks, or that we cannot read: no basis.
        if (name === undefined || !model.hasSection(name)) return false;
        if (sid === TCF_EU) {
          if (!this.tcfAllows(model.encodeSection(name))) return false;
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
