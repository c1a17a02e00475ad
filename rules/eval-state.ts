/**
 * What a compiled segment test reads: the contract between compile.ts, which builds the tests as
 * closures over an EvalState, and evaluator.ts, which fills one EvalState per request and runs
 * them. It sits in a file of its own so that both can import it and neither imports the other
 * for it (compile.ts imports the evaluator to own one; the evaluator never imports compile.ts).
 */
import type { Profile } from './types.js';

/** Evaluation state of one request; each evaluator owns one and refills it per request. */
export interface EvalState {
  profile: Profile;
  attrs: Record<string, unknown>;
  clv: Record<string, unknown>;
  /** key id -> epoch when the person holds the key */
  keyStamp: Int32Array;
  epoch: number;
  /** stage position per stage-brand (ladder index; -1 off the ladder) */
  stagePos: Int32Array;
  /** segment index -> epoch when evaluated; result in segResult */
  segSeen: Int32Array;
  segResult: Uint8Array;
  segments: readonly CompiledSegment[];
}

/** A compiled condition: whether it holds for the request in `s`. */
export type Predicate = (s: EvalState) => boolean;

export interface CompiledSegment {
  readonly index: number;
  readonly id: string;
  readonly test: Predicate;
  /** Selling points of the segment, best first. */
  readonly sellingPoints: readonly string[];
}

/**
 * Whether segment `i` holds in this request, evaluating it at most once per request: a segment
 * that refers to another reuses its result.
 */
export function evalSegment(s: EvalState, i: number): boolean {
  if (s.segSeen[i] === s.epoch) return s.segResult[i] === 1;
  // Mark before evaluating: validated rule sets have no cycles, but a stray one must not recurse.
  s.segSeen[i] = s.epoch;
  s.segResult[i] = 0;
  const ok = s.segments[i]!.test(s);
  s.segResult[i] = ok ? 1 : 0;
  return ok;
}
