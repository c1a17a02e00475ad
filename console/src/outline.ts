/**
 * What the pages need to know of the active rule set (brands, campaigns, segments, funnel), read
 * from its source as the control plane answers it and parsed with the same YAML library the
 * server uses.
 */
import { parse } from 'yaml';
import { call } from './api';

export interface Outline {
  funnel: string[];
  segments: string[];
  campaigns: { id: string; brand: string; holdout: number; description?: string }[];
  brands: string[];
}

let cached: { at: number; outline: Promise<Outline> } | null = null;

/** The active rule set's outline (read again after 10 s, or when `fresh`). */
export function activeOutline(fresh = false): Promise<Outline> {
  if (!fresh && cached !== null && Date.now() - cached.at < 10_000) return cached.outline;
  const outline = call<string>('/v1/rulesets/active').then(outlineOf);
  cached = { at: Date.now(), outline };
  outline.catch(() => {
    cached = null;
  });
  return outline;
}

export function outlineOf(source: string): Outline {
  const doc = (parse(source) ?? {}) as {
    funnel?: string[];
    segments?: { id: string }[];
    campaigns?: { id: string; brand: string; holdout?: number; description?: string }[];
  };
  const campaigns = (doc.campaigns ?? []).map((c) => ({
    id: c.id,
    brand: c.brand,
    holdout: c.holdout ?? 0,
    ...(c.description === undefined ? {} : { description: c.description }),
  }));
  return {
    funnel: doc.funnel ?? [],
    segments: (doc.segments ?? []).map((s) => s.id),
    campaigns,
    brands: [...new Set(campaigns.map((c) => c.brand))].sort(),
  };
}
