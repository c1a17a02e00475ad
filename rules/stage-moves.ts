/**
 * Stage moves: how an event (click, conversion, purchase, ...) moves a person along a brand's
 * funnel ladder. Pure; the control plane applies the result to the stored profile.
 *
 * The first move in rule-set order that fits the event, the brand and the person's current
 * stage applies. A move with `from` applies only to people at one of those stages, and may move
 * them anywhere (backwards too). A move without `from` applies to anyone but never moves a person
 * backwards: someone already at or past its `to` stays where they are.
 */
import type { CompiledRuleSet } from './compile.js';
import type { EventType } from './types.js';

export interface StageChange {
  /** The stage before the event (the default stage when none was recorded). */
  readonly from: string;
  readonly to: string;
}

/**
 * Where an event moves a person for a brand, or null when it does not move them (no move fits,
 * or the move would leave them where they are or send them backwards without a `from`).
 */
export function stageAfterEvent(
  compiled: CompiledRuleSet,
  brand: string,
  current: string | undefined,
  event: EventType,
): StageChange | null {
  const moves = compiled.source.stageMoves;
  if (moves === undefined) return null;
  const from = current ?? compiled.defaultStageOf(brand);
  const pos = compiled.stagePosition(from);
  for (const move of moves) {
    if (move.on !== event) continue;
    if (move.brands !== undefined && !move.brands.includes(brand)) continue;
    if (move.from !== undefined) {
      if (!move.from.includes(from)) continue;
      return move.to === from ? null : { from, to: move.to };
    }
    const target = compiled.stagePosition(move.to);
    // Without `from`: only forwards. A person off the ladder moves onto it.
    if (pos >= 0 && target <= pos) return null;
    return { from, to: move.to };
  }
  return null;
}
