/**
 * POST /v1/preview: what a person would get, and why, against the active rule set, a stored
 * version or a draft (validated, never stored). Always with the full explanation.
 */
import { type CompiledRuleSet, compileRuleSetInSlices } from '../../rules/compile.js';
import { decide } from '../../rules/decide.js';
import type { FrequencyCounters, Placement, Profile } from '../../rules/types.js';
import { instantMs, type PreviewBody } from '../contracts/schemas.js';
import { findPerson, profileToDecide, userRef } from '../decision/identity.js';
import { notePlacementId } from '../decision/request.js';
import { ClientError } from '../errors.js';
import { hasScope } from './auth.js';
import type { ControlContext, Register } from './context.js';
import { parseOrThrow } from './rulesets.js';

/** Compiled stored versions, by version and checksum; a few are enough. */
const MAX_CACHED = 8;

export function registerPreview(register: Register, ctx: ControlContext): void {
  const cache = new Map<string, CompiledRuleSet>();

  const ruleSetFor = async (
    ruleset: PreviewBody['ruleset'],
  ): Promise<{ label: number | 'draft'; compiled: CompiledRuleSet }> => {
    if (ruleset === undefined) {
      const active = ctx.deps.active();
      return { label: active.version, compiled: active.compiled };
    }
    if (typeof ruleset === 'string' || typeof ruleset === 'object')
      return { label: 'draft', compiled: await draftRuleSet(ctx, ruleset) };
    const stored = await ctx.storeCall('read the rule set', () => ctx.deps.rulesets.getRuleSet(ruleset));
    if (stored === null) {
      throw new ClientError('ruleset_not_found', `There is no rule set version ${ruleset}`, 'ruleset');
    }
    const active = ctx.deps.active();
    if (active.version === ruleset && active.checksum === stored.meta.checksum) {
      return { label: ruleset, compiled: active.compiled };
    }
    const key = `${ruleset}:${stored.meta.checksum}`;
    let compiled = cache.get(key);
    if (compiled === undefined) {
      compiled = await compileRuleSetInSlices(
        await parseOrThrow(stored.source, stored.meta.format, ctx.rulesetCheckTimeoutMs),
      );
      if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
      cache.set(key, compiled);
    }
    return { label: ruleset, compiled };
  };

  register<PreviewBody>('preview', async ({ c, body, caller }) => {
    // A stored person's profile is personal data: previewing one (which shows it) also needs
    // the right to read profiles, not only rules.
    if (body.user !== undefined && !hasScope(caller, 'profiles:read')) {
      throw new ClientError(
        'forbidden',
        'Previewing a stored person shows their profile: the token needs profiles:read (or use an inline profile)',
      );
    }
    if ((body.user === undefined) === (body.profile === undefined)) {
      throw new ClientError(
        body.user === undefined ? 'missing_field' : 'invalid_field',
        'Give either user (a stored person) or profile (an inline profile), not both',
        body.user === undefined ? 'user' : 'profile',
      );
    }
    checkPlacements(body.placements);
    const at = body.at === undefined ? ctx.now() : instantMs(body.at);
    const { label, compiled } = await ruleSetFor(body.ruleset);

    let pid: string | null;
    let profile: Profile;
    let counters: FrequencyCounters = {};
    let known = false;
    if (body.profile !== undefined) {
      profile = { ...body.profile, tags: body.profile.tags ?? [] };
      pid = profile.id;
    } else {
      // The same look-up and the same profile for nobody as a decision (hold-outs included).
      const user = userRef(body.user!);
      const found = await ctx.storeCall('look up the person', () => findPerson(ctx.deps.profiles, user));
      pid = found.pid;
      counters = found.record?.counters ?? {};
      known = found.record?.profile != null;
      profile = profileToDecide(user, pid, found.record);
    }
    const result = decide(
      compiled,
      profile,
      counters,
      {
        placements: body.placements,
        explain: true,
        ...(body.context?.tags === undefined ? {} : { contextTags: body.context.tags }),
      },
      at,
    );
    return c.json({
      ruleset: label,
      user: pid,
      known,
      at: new Date(at).toISOString(),
      profile,
      decisions: result.decisions,
      ghosts: result.ghosts ?? [],
      explain: result.explain,
    });
  });
}

/**
 * A draft, checked like an upload (422 with every error) and compiled: rule-set text, or a
 * rule-set object (as JSON text, so that a large draft is checked off this thread too).
 */
export async function draftRuleSet(
  ctx: ControlContext,
  draft: string | Record<string, unknown>,
): Promise<CompiledRuleSet> {
  const value =
    typeof draft === 'string'
      ? await parseOrThrow(draft, undefined, ctx.rulesetCheckTimeoutMs)
      : await parseOrThrow(JSON.stringify(draft), 'json', ctx.rulesetCheckTimeoutMs);
  return compileRuleSetInSlices(value);
}

/** Placement ids must be unique, as on the data plane (the same check). */
export function checkPlacements(placements: Placement[]): void {
  const seen = new Set<string>();
  placements.forEach((p, i) => {
    notePlacementId(seen, p.id, i);
  });
}
