/**
 * What changes between two rule sets, in the words of the people who write them: segments,
 * campaigns and their creatives added, removed or changed (with the fields that changed), and the
 * rule set's other parts (funnel, selling points, stage moves, scoring) that changed. Two rule sets
 * that differ only in key order, YAML style or comments have no changes.
 */
import type { Campaign, Creative, RuleSet, Segment } from './types.js';

/** One entity present on both sides whose definition changed. */
export interface ChangedEntity {
  id: string;
  /** Its top-level fields that differ, sorted (`when`, `holdout`, `creatives`, …). */
  fields: string[];
}

export interface EntityDiff<C extends ChangedEntity = ChangedEntity> {
  added: string[];
  removed: string[];
  changed: C[];
}

export interface ChangedCampaign extends ChangedEntity {
  /** For a campaign whose creatives changed: which ones. */
  creatives?: EntityDiff;
}

export interface RuleSetDiff {
  /** False when the two sets mean the same thing. */
  changed: boolean;
  segments: EntityDiff;
  campaigns: EntityDiff<ChangedCampaign>;
  /** The rule set's own fields that differ, other than segments and campaigns (`funnel`, `scoring`, …). */
  fields: string[];
}

/** The semantic difference from `before` to `after`. */
export function diffRuleSets(before: RuleSet, after: RuleSet): RuleSetDiff {
  const segments = diffById<Segment, ChangedEntity>(before.segments, after.segments, (a, b) => {
    const fields = changedFields(a, b);
    return fields.length === 0 ? null : { id: a.id, fields };
  });
  const campaigns = diffById<Campaign, ChangedCampaign>(before.campaigns, after.campaigns, (a, b) => {
    const fields = changedFields(a, b);
    if (fields.length === 0) return null;
    const change: ChangedCampaign = { id: a.id, fields };
    if (fields.includes('creatives')) {
      change.creatives = diffById<Creative, ChangedEntity>(a.creatives, b.creatives, (x, y) => {
        const f = changedFields(x, y);
        return f.length === 0 ? null : { id: x.id, fields: f };
      });
    }
    return change;
  });
  const fields = changedFields(before, after).filter((f) => f !== 'segments' && f !== 'campaigns');
  // Same campaigns, another order: the order of campaigns breaks ties between equal scores.
  if (!hasAddOrRemove(campaigns) && !same(ids(before.campaigns), ids(after.campaigns)))
    fields.push('campaigns (order)');
  const changed =
    fields.length > 0 || [segments, campaigns].some((d) => hasAddOrRemove(d) || d.changed.length > 0);
  return { changed, segments, campaigns, fields };
}

const ids = (list: readonly { id: string }[]) => list.map((e) => e.id);
const hasAddOrRemove = (d: EntityDiff<ChangedEntity>) => d.added.length + d.removed.length > 0;

function diffById<T extends { id: string }, C extends ChangedEntity>(
  before: readonly T[],
  after: readonly T[],
  compare: (a: T, b: T) => C | null,
): EntityDiff<C> {
  const old = new Map(before.map((e) => [e.id, e]));
  const now = new Map(after.map((e) => [e.id, e]));
  const added = after.filter((e) => !old.has(e.id)).map((e) => e.id);
  const removed = before.filter((e) => !now.has(e.id)).map((e) => e.id);
  const changed: C[] = [];
  for (const b of after) {
    const a = old.get(b.id);
    if (a === undefined) continue;
    const change = compare(a, b);
    if (change !== null) changed.push(change);
  }
  return { added, removed, changed };
}

/** The top-level keys of two objects whose values differ (absent on one side counts). */
function changedFields(a: object, b: object): string[] {
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  return [...keys].filter((k) => !same(ra[k], rb[k])).sort();
}

/** Deep equality of parsed YAML/JSON values (key order ignored, array order kept). */
export function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => same(x, bb[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const kb = Object.keys(rb).filter((k) => rb[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(rb, k) && same(ra[k], rb[k]));
}

/** One line per change, for the command line and logs (empty when nothing changed). */
export function describeDiff(d: RuleSetDiff): string[] {
  const lines: string[] = [];
  const entity = (kind: string, diff: EntityDiff<ChangedCampaign>) => {
    for (const id of diff.added) lines.push(`+ ${kind} ${id}`);
    for (const id of diff.removed) lines.push(`- ${kind} ${id}`);
    for (const c of diff.changed) {
      lines.push(`~ ${kind} ${c.id}: ${c.fields.join(', ')}`);
      if (c.creatives !== undefined) {
        for (const id of c.creatives.added) lines.push(`  + creative ${id}`);
        for (const id of c.creatives.removed) lines.push(`  - creative ${id}`);
        for (const x of c.creatives.changed) lines.push(`  ~ creative ${x.id}: ${x.fields.join(', ')}`);
      }
    }
  };
  entity('segment', d.segments);
  entity('campaign', d.campaigns);
  for (const f of d.fields) lines.push(`~ ${f}`);
  return lines;
}
