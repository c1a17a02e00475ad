/**
 * POST /v1/rulesets/what-if: what a draft would change before it is uploaded. The draft and the
 * active rule set decide side by side for a sample of stored people (SampleStore) and the given
 * placements, at one moment: how many decisions change, fill before and after, per campaign what
 * it gains and loses, and the most frequent changes, with a few example people each (ids only,
 * and only for a token that may read profiles).
 *
 * Decisions are compared on what the person is shown (campaign and creative): a different
 * channel or send time alone is not a change. Runs in slices like the audience count.
 */
import { decide } from '../../rules/decide.js';
import type { PlacementDecision } from '../../rules/types.js';
import { instantMs, type WhatIfBody } from '../contracts/schemas.js';
import { sampleReport, yieldToLoop } from './audience.js';
import { hasScope } from './auth.js';
import type { ControlContext, Register } from './context.js';
import { checkPlacements, draftRuleSet } from './preview.js';

const SLICE = 100;
/** Changes listed at most. */
const TOP_CHANGES = 20;

type Choice = { campaign: string; creative: string } | null;

function choiceOf(d: PlacementDecision): Choice {
  return d.campaign === null ? null : { campaign: d.campaign, creative: d.creative };
}

function keyOf(c: Choice): string {
  return c === null ? '' : `${c.campaign}\u0000${c.creative}`;
}

export function registerWhatIf(register: Register, ctx: ControlContext): void {
  register<WhatIfBody>('whatIf', async ({ c, body, caller }) => {
    const started = performance.now();
    checkPlacements(body.placements);
    const draft = await draftRuleSet(ctx, body.ruleset);
    const active = ctx.deps.active();
    const at = body.at === undefined ? ctx.now() : instantMs(body.at);
    const showIds = hasScope(caller, 'profiles:read');
    const maxExamples = showIds ? (body.examples ?? 3) : 0;
    const sample = await ctx.storeCall('sample stored people', () =>
      ctx.deps.profiles.samplePeople(body.sample ?? 1_000, started + (body.timeoutMs ?? 5_000)),
    );
    const request = {
      placements: body.placements,
      ...(body.context?.tags === undefined ? {} : { contextTags: body.context.tags }),
    };
    let decisions = 0;
    let changed = 0;
    let filledBefore = 0;
    let filledAfter = 0;
    const perCampaign = new Map<string, { before: number; after: number; gained: number; lost: number }>();
    const campaign = (id: string) => {
      let e = perCampaign.get(id);
      if (e === undefined) perCampaign.set(id, (e = { before: 0, after: 0, gained: 0, lost: 0 }));
      return e;
    };
    const changes = new Map<
      string,
      { placement: string; from: Choice; to: Choice; decisions: number; examples: string[] }
    >();
    let done = 0;
    for (const p of sample.people) {
      const profile = p.record.profile;
      if (profile === null) continue;
      const before = decide(active.compiled, profile, p.record.counters, request, at).decisions;
      const after = decide(draft, profile, p.record.counters, request, at).decisions;
      for (let i = 0; i < before.length; i++) {
        const b = choiceOf(before[i]!);
        const a = choiceOf(after[i]!);
        decisions++;
        if (b !== null) {
          filledBefore++;
          campaign(b.campaign).before++;
        }
        if (a !== null) {
          filledAfter++;
          campaign(a.campaign).after++;
        }
        if (keyOf(a) === keyOf(b)) continue;
        changed++;
        if (b !== null && b.campaign !== a?.campaign) campaign(b.campaign).lost++;
        if (a !== null && a.campaign !== b?.campaign) campaign(a.campaign).gained++;
        const placement = body.placements[i]!.id;
        const key = `${placement}\u0000${keyOf(b)}\u0001${keyOf(a)}`;
        let change = changes.get(key);
        if (change === undefined)
          changes.set(key, (change = { placement, from: b, to: a, decisions: 0, examples: [] }));
        change.decisions++;
        if (change.examples.length < maxExamples) change.examples.push(p.pid);
      }
      if (++done % SLICE === 0) await yieldToLoop();
    }
    const top = [...changes.values()]
      .sort((x, y) => y.decisions - x.decisions)
      .slice(0, TOP_CHANGES)
      .map((ch) =>
        showIds ? ch : { placement: ch.placement, from: ch.from, to: ch.to, decisions: ch.decisions },
      );
    return c.json({
      active: active.version,
      ...sampleReport(sample),
      decisions,
      changed,
      fill: {
        before: decisions === 0 ? 0 : filledBefore / decisions,
        after: decisions === 0 ? 0 : filledAfter / decisions,
      },
      campaigns: [...perCampaign]
        .map(([id, e]) => ({ campaign: id, ...e }))
        .sort((x, y) => (x.campaign < y.campaign ? -1 : 1)),
      changes: top,
      storeReads: sample.reads,
      elapsedMs: Math.round(performance.now() - started),
    });
  });
}
