/**
 * The rule-set language as a library: parse and validate (with every error at once), compile
 * once, decide many times. Pure: no I/O, no server imports.
 */
import { type CompiledRuleSet, compileRuleSet } from './compile.js';
import { parseRuleSetText } from './parse.js';
import type { RuleError, Validated } from './types.js';
import { validateRuleSet } from './validate.js';

export type { CompiledCampaign, CompiledRuleSet } from './compile.js';
export { compileRuleSet } from './compile.js';
export { decide } from './decide.js';
export { parseRuleSetText } from './parse.js';
export { type StageChange, stageAfterEvent } from './stage-moves.js';
export * from './types.js';
export { validateRuleSet } from './validate.js';

/** Parses, validates and compiles rule-set text (YAML or JSON). */
export function loadRuleSet(text: string, format?: 'yaml' | 'json'): Validated<CompiledRuleSet> {
  const parsed = parseRuleSetText(text, format);
  if (!parsed.ok) return parsed;
  return { ok: true, value: compileRuleSet(parsed.value) };
}

/** Validates and compiles an already-parsed rule set. */
export function compileValidated(data: unknown): Validated<CompiledRuleSet> {
  const v = validateRuleSet(data);
  if (!v.ok) return v;
  return { ok: true, value: compileRuleSet(v.value) };
}

/** One line per error, for logs and the command line. */
export function formatRuleErrors(errors: readonly RuleError[]): string {
  return errors
    .map((e) => {
      const where =
        e.line !== undefined
          ? ` (line ${e.line}${e.column !== undefined ? `, column ${e.column}` : ''})`
          : '';
      return `${e.path === '' ? '(rule set)' : e.path}: ${e.message} [${e.code}]${where}`;
    })
    .join('\n');
}
