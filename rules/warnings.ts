/**
 * What a valid rule set probably did not mean: parts that can never take effect. Warnings never
 * refuse a rule set; the validate and upload routes, the command line and the console show them
 * beside the errors, with the same shape (code, path, message, and line and column from text).
 *
 *   unused_segment          a segment no campaign lists and no other segment refers to
 *   unused_selling_points   selling points of a segment no campaign lists
 *   unillustrated_selling_point  a label of a segment's selling points that no creative of the
 *                           campaigns listing the segment illustrates (it can never help a creative win)
 *   flight_ended            a campaign whose flight ended before now
 *   stage_without_creative  a stage the campaign serves that none of its creatives is meant for: people
 *                           at that stage never get the campaign
 */

import { parseFlightBound } from './time.js';
import type { Condition, RuleError, RuleSet } from './types.js';
import { formatPath } from './validate.js';

/** Warnings of a valid rule set at `now` (epoch ms). */
export function ruleSetWarnings(rs: RuleSet, now: number): RuleError[] {
  const out: RuleError[] = [];
  const listed = new Set<string>();
  for (const c of rs.campaigns) for (const s of c.segments ?? []) listed.add(s);
  const referred = new Set<string>();
  for (const s of rs.segments) collectRefs(s.when, referred);

  rs.segments.forEach((s, i) => {
    if (listed.has(s.id) || referred.has(s.id)) return;
    out.push({
      code: 'unused_segment',
      path: formatPath(['segments', i]),
      message: `segment "${s.id}" is listed by no campaign and referred to by no other segment: it never takes effect`,
    });
  });

  for (const [seg, labels] of Object.entries(rs.sellingPoints ?? {})) {
    if (!listed.has(seg)) {
      out.push({
        code: 'unused_selling_points',
        path: formatPath(['sellingPoints', seg]),
        message: `the selling points of segment "${seg}" are never used: no campaign lists the segment`,
      });
      continue;
    }
    const illustrated = new Set<string>();
    for (const c of rs.campaigns) {
      if (!(c.segments ?? []).includes(seg)) continue;
      for (const cr of c.creatives) for (const l of cr.sellingPoints ?? []) illustrated.add(l);
    }
    labels.forEach((label, j) => {
      if (illustrated.has(label)) return;
      out.push({
        code: 'unillustrated_selling_point',
        path: formatPath(['sellingPoints', seg, j]),
        message: `"${label}" is a selling point of "${seg}" that no creative of its campaigns illustrates`,
      });
    });
  }

  rs.campaigns.forEach((c, i) => {
    const endText = c.flight?.end;
    if (endText !== undefined) {
      const end = parseFlightBound(endText, c.flight?.timezone ?? c.timing?.timezone ?? 'UTC', 'end');
      if (end !== null && end < now) {
        out.push({
          code: 'flight_ended',
          path: formatPath(['campaigns', i, 'flight', 'end']),
          message: `campaign "${c.id}" ended on ${new Date(end).toISOString()}: it no longer decides anything`,
        });
      }
    }
    // Creatives without stages are meant for every stage the campaign serves.
    if (c.creatives.some((cr) => cr.stages === undefined)) return;
    const served = c.stages ?? rs.funnel;
    const covered = new Set(c.creatives.flatMap((cr) => cr.stages ?? []));
    served.forEach((stage) => {
      if (covered.has(stage)) return;
      out.push({
        code: 'stage_without_creative',
        path: formatPath(['campaigns', i, c.stages === undefined ? 'creatives' : 'stages']),
        message: `campaign "${c.id}" serves stage "${stage}" but none of its creatives is meant for it: people at "${stage}" never get it`,
      });
    });
  });
  return out;
}

function collectRefs(c: Condition, into: Set<string>): void {
  if (c === null || typeof c !== 'object') return;
  const node = c as unknown as Record<string, unknown>;
  if (typeof node.segment === 'string') into.add(node.segment);
  for (const key of ['all', 'any'] as const) {
    const list = node[key];
    if (Array.isArray(list)) for (const x of list) collectRefs(x as Condition, into);
  }
  if (node.not !== undefined) collectRefs(node.not as Condition, into);
}
