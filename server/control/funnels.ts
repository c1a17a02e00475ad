/**
 * GET /v1/funnels/{brand}?days=7: people per stage of a brand (the active ladder's order, then
 * stages not on the ladder), and the flow between consecutive stages over the window:
 *
 *   rate(a -> b) = moved(a -> b) / (people now at a + moved(a -> b))
 *
 * that is, the share of the people who were at `a` during the window (those still there plus
 * those who moved on to `b`) who moved to `b`. Only direct moves count; null when nobody was at
 * `a`. Days are the brand's time zone's (its first campaign's, else UTC: CompiledRuleSet.brandTimezone),
 * as events count their moves; the window ends today there.
 */

import { localDay } from '../../rules/time.js';
import { LIMITS } from '../contracts/schemas.js';
import { ClientError } from '../errors.js';
import type { ControlContext, Register } from './context.js';

const DAY = 86_400_000;

export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function registerFunnels(register: Register, ctx: ControlContext): void {
  register('getFunnel', async ({ c }) => {
    const brand = c.req.param('brand') ?? '';
    if (brand.length === 0 || brand.length > LIMITS.idLength) {
      throw new ClientError('invalid_field', `brand must have 1 to ${LIMITS.idLength} characters`, 'brand');
    }
    const daysParam = c.req.query('days');
    const days = daysParam === undefined ? 7 : Number(daysParam);
    if (!Number.isInteger(days) || days < 1 || days > LIMITS.fundays || !/^[0-9]+$/.test(daysParam ?? '7')) {
      throw new ClientError(
        'invalid_field',
        `days must be a whole number from 1 to ${LIMITS.fundays}`,
        'days',
      );
    }
    const now = ctx.now();
    const active = ctx.deps.active();
    const timezone = active.compiled.brandTimezone(brand);
    const to = localDay(timezone, now);
    const from = dayOf(Date.parse(`${to}T00:00:00Z`) - (days - 1) * DAY);
    const counts = await ctx.storeCall('read the funnel', () => ctx.deps.profiles.funnel(brand, from, to));
    const ladder = active.compiled.funnel;
    const onLadder = new Set(ladder);
    const others = Object.keys(counts.stages)
      .filter((s) => !onLadder.has(s))
      .sort();
    const people = (s: string) => counts.stages[s] ?? 0;
    const stages = [
      ...ladder.map((stage) => ({ stage, people: people(stage), onLadder: true })),
      ...others.map((stage) => ({ stage, people: people(stage), onLadder: false })),
    ];
    const daily: Array<{ day: string; moves: Record<string, number> }> = [];
    for (let t = Date.parse(`${from}T00:00:00Z`); dayOf(t) <= to; t += DAY) {
      const day = dayOf(t);
      daily.push({ day, moves: { ...(counts.moves[day] ?? {}) } });
    }
    const flow = [];
    for (let i = 0; i + 1 < ladder.length; i++) {
      const a = ladder[i]!;
      const b = ladder[i + 1]!;
      const key = `${a}>${b}`;
      const moved = daily.reduce((n, d) => n + (d.moves[key] ?? 0), 0);
      const base = people(a) + moved;
      flow.push({ from: a, to: b, moved, rate: base === 0 ? null : moved / base });
    }
    return c.json({ brand, ruleset: active.version, timezone, days, from, to, stages, flow, daily });
  });
}
