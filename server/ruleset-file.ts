import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { compileRuleSet } from '../rules/compile.js';
import { formatRuleErrors } from '../rules/index.js';
import { parseRuleSetText } from '../rules/parse.js';
import type { RuleError } from '../rules/types.js';
import type { ActiveRuleSet } from './decision/service.js';

export class RuleSetFileError extends Error {
  readonly errors: readonly RuleError[];
  constructor(message: string, errors: readonly RuleError[] = []) {
    super(message);
    this.errors = errors;
  }
}

export function checksumOf(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Reads, validates and compiles a rule-set file; throws a RuleSetFileError naming every problem. */
export function loadRuleSetFile(path: string, version = 1, now = Date.now()): ActiveRuleSet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RuleSetFileError(`Cannot read the rule set ${path}: ${(e as Error).message}`);
  }
  const parsed = parseRuleSetText(text, extname(path).toLowerCase() === '.json' ? 'json' : 'yaml');
  if (!parsed.ok) {
    throw new RuleSetFileError(
      `The rule set ${path} is not valid (${parsed.errors.length} problem${parsed.errors.length === 1 ? '' : 's'}):\n${formatRuleErrors(parsed.errors)}`,
      parsed.errors,
    );
  }
  return { version, checksum: checksumOf(text), compiled: compileRuleSet(parsed.value), activatedAt: now };
}
