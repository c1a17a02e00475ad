/**
 * POST /v1/audience: how many stored people a segment holds, before a campaign is launched on it.
 * A segment of the active rule set by id, a draft condition (checked as a segment of the active
 * rule set, so it may refer to its segments), or every segment of the active rule set at once.
 *
 * Counted on a uniform sample of stored people (SampleStore): every person when the store is
 * small (exact), else `sample` people drawn at random, with a 95% Wilson interval scaled to the
 * store. The work runs on the control plane's thread in slices (it yields between them), so
 * decisions on the same thread are answered meanwhile; the store reads are batched.
 */
import { compileRuleSetInSlices } from '../../rules/compile.js';
import { parseRuleSetText } from '../../rules/parse.js';
import type { Condition, RuleSet } from '../../rules/types.js';
import type { AudienceBody } from '../contracts/schemas.js';
import type { ActiveRuleSet } from '../decision/service.js';
import { ClientError, RuleSetInvalid } from '../errors.js';
import { wilson } from '../measure/lift.js';
import type { PeopleSample } from '../store/types.js';
import type { ControlContext, Register } from './context.js';
import { parseOrThrow } from './rulesets.js';

/** The id the draft condition gets as a segment; never a valid id in an uploaded rule set. */
const DRAFT_ID = '\u0000draft';
/** People evaluated between yields to the event loop. */
const SLICE = 500;

export const AUDIENCE_DEFAULTS = { sample: 10_000, timeoutMs: 2_000 } as const;

export interface Estimate {
  people: number;
  low: number;
  high: number;
}

/** How many of the store's people a count of draws stands for, with its 95% interval. */
export function estimate(matchedDraws: number, s: PeopleSample): Estimate {
  if (s.exact) return { people: matchedDraws, low: matchedDraws, high: matchedDraws };
  if (s.drawn === 0) return { people: 0, low: 0, high: s.population };
  const [lo, hi] = wilson(matchedDraws, s.drawn);
  const scale = s.population;
  return {
    people: Math.round((matchedDraws / s.drawn) * scale),
    low: Math.floor(lo * scale),
    high: Math.ceil(hi * scale),
  };
}

/** What a sample was, as the audience and what-if answers say it. */
export function sampleReport(s: PeopleSample) {
  return {
    exact: s.exact,
    partial: s.partial,
    sample: {
      people: s.people.length,
      draws: s.drawn,
      population: s.population,
      populationOf: s.populationOf,
    },
  };
}

/** Lets the event loop turn (decisions, probes) between slices of work. */
export const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

export function registerAudience(register: Register, ctx: ControlContext): void {
  register<AudienceBody>('postAudience', async ({ c, body }) => {
    const started = performance.now();
    const given = [body.segment, body.when, body.segments].filter((x) => x !== undefined).length;
    if (given !== 1)
      throw new ClientError(
        given === 0 ? 'missing_field' : 'invalid_field',
        'Give one of segment (an id of the active rule set), when (a draft condition) or segments: "all"',
        given === 0 ? 'segment' : 'when',
      );
    const active = ctx.deps.active();
    let compiled = active.compiled;
    let targets: Array<{ id: string; index: number }>;
    if (body.segment !== undefined) {
      const index = compiled.segmentIndex.get(body.segment);
      if (index === undefined)
        throw new ClientError(
          'invalid_field',
          `The active rule set has no segment ${JSON.stringify(body.segment)}`,
          'segment',
        );
      targets = [{ id: body.segment, index }];
    } else if (body.when !== undefined) {
      compiled = await compileRuleSetInSlices(await withDraftSegment(ctx, active, body.when));
      targets = [{ id: 'when', index: compiled.segmentIndex.get(DRAFT_ID)! }];
    } else {
      targets = compiled.segments.map((s, index) => ({ id: s.id, index }));
    }
    const timeoutMs = body.timeoutMs ?? AUDIENCE_DEFAULTS.timeoutMs;
    const deadline = started + timeoutMs;
    const sample = await ctx.storeCall('sample stored people', () =>
      ctx.deps.profiles.samplePeople(body.sample ?? AUDIENCE_DEFAULTS.sample, deadline),
    );
    // Draws per segment index, from the matched list: every segment at once costs what the person
    // matches, not what the rule set holds.
    const bySegment = new Float64Array(compiled.segments.length);
    const evaluator = compiled.evaluator;
    const contextTags = body.context?.tags;
    let evaluated = 0;
    for (const p of sample.people) {
      if (p.record.profile === null) continue;
      const { list, count } = evaluator.evaluate(p.record.profile, contextTags, false);
      for (let i = 0; i < count; i++) bySegment[list[i]!] = bySegment[list[i]!]! + p.draws;
      if (++evaluated % SLICE === 0) await yieldToLoop();
    }
    const results = targets.map((t) => ({ segment: t.id, ...estimate(bySegment[t.index]!, sample) }));
    const answer = {
      ruleset: active.version,
      ...sampleReport(sample),
      storeReads: sample.reads,
      elapsedMs: Math.round(performance.now() - started),
      interval: sample.exact
        ? 'exact'
        : '95% Wilson score interval of the share of draws, times the population',
    };
    return c.json(
      body.segments !== undefined
        ? { ...answer, segments: results }
        : { ...answer, ...withoutSegment(results[0]!) },
    );
  });
}

/** The active version as stored; an error when the store no longer has it as served. */
async function storedDefinition(ctx: ControlContext, version: number, checksum: string): Promise<RuleSet> {
  const stored = await ctx.storeCall('read the active rule set', () => ctx.deps.rulesets.getRuleSet(version));
  if (stored === null || stored.meta.checksum !== checksum)
    throw new ClientError(
      'store_unavailable',
      'The active rule set is not in the store as served; try again',
    );
  const parsed = parseRuleSetText(stored.source, stored.meta.format);
  if (!parsed.ok) throw new ClientError('internal', 'The active rule set no longer parses');
  return parsed.value;
}

function withoutSegment(r: { segment: string } & Estimate): Estimate {
  return { people: r.people, low: r.low, high: r.high };
}

/** The active rule set with `when` added as one more segment; 422 with the condition's errors. */
async function withDraftSegment(ctx: ControlContext, active: ActiveRuleSet, when: unknown): Promise<RuleSet> {
  const base = active.definition ?? (await storedDefinition(ctx, active.version, active.checksum));
  const draftAt = base.segments.length;
  const withDraft = { ...base, segments: [...base.segments, { id: DRAFT_ID, when: when as Condition }] };
  try {
    return await parseOrThrow(JSON.stringify(withDraft), 'json', ctx.rulesetCheckTimeoutMs);
  } catch (err) {
    if (!(err instanceof RuleSetInvalid)) throw err;
    const prefix = `segments[${draftAt}].when`;
    throw new RuleSetInvalid(
      err.errors.map((e) =>
        e.path.startsWith(prefix) ? { ...e, path: `when${e.path.slice(prefix.length)}` } : e,
      ),
    );
  }
}
