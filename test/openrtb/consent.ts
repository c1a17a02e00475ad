/**
 * Real TCF v2 and GPP consent strings for tests, encoded by the IAB's own libraries: a TC string
 * needs a Global Vendor List to encode, so a small one naming the vendors a test uses is built
 * here (the real list is fetched by CMPs; the bidder only decodes).
 */
import { GppModel } from '@iabgpp/cmpapi';
import { GVL, TCModel, TCString } from '@iabtechlabtcf/core';

const PURPOSES = Object.fromEntries(
  Array.from({ length: 11 }, (_, i) => [
    i + 1,
    { id: i + 1, name: `p${i + 1}`, description: '', illustrations: [] },
  ]),
);

function vendorList(vendors: readonly number[]): GVL {
  const entry = (id: number) => ({
    id,
    name: `vendor ${id}`,
    purposes: [1, 3, 4],
    legIntPurposes: [],
    flexiblePurposes: [],
    specialPurposes: [],
    features: [],
    specialFeatures: [],
  });
  return new GVL({
    gvlSpecificationVersion: 3,
    vendorListVersion: 100,
    tcfPolicyVersion: 5,
    lastUpdated: '2026-01-01T00:00:00Z',
    purposes: PURPOSES,
    specialPurposes: {},
    features: {},
    specialFeatures: {},
    dataCategories: {},
    vendors: Object.fromEntries(vendors.map((v) => [v, entry(v)])),
    stacks: {},
    // biome-ignore lint/suspicious/noExplicitAny: the constructor's type wants every optional map
  } as any);
}

/** A TC string giving consent to `purposes` and to the vendors `consented` (of `vendors`). */
export function tcString(
  consented: readonly number[],
  purposes: readonly number[],
  vendors = [10, 755],
): string {
  const model = new TCModel(vendorList(vendors));
  model.cmpId = 10;
  model.cmpVersion = 1;
  model.purposeConsents.set([...purposes]);
  model.vendorConsents.set([...consented]);
  return TCString.encode(model);
}

/** A GPP string with the given fields per section (`{ usnat: { SaleOptOut: 1 } }`). */
export function gppString(sections: Record<string, Record<string, unknown>>): string {
  const model = new GppModel();
  for (const [section, fields] of Object.entries(sections)) {
    for (const [field, value] of Object.entries(fields)) model.setFieldValue(section, field, value);
  }
  return model.encode();
}
