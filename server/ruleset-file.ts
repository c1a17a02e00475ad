import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { compileRuleSet } from '../rules/compile.js';
import { formatRuleErrors } from '../rules/index.js';
import { parseRuleSetText } from '../rules/parse.js';
import type { RuleError, RuleSet } from '../rules/types.js';
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

/** A rule-set file as read and validated. */
export interface RuleSetFile {
  text: string;
  format: 'yaml' | 'json';
  ruleSet: RuleSet;
}

/** Reads and validates a rule-set file; throws a RuleSetFileError naming every problem. */
export function readRuleSetFile(path: string): RuleSetFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RuleSetFileError(`Cannot read the rule set ${path}: ${(e as Error).message}`);
  }
  const format = extname(path).toLowerCase() === '.json' ? 'json' : 'yaml';
  const parsed = parseRuleSetText(text, format);
  if (!parsed.ok) {
    const n = parsed.errors.length;
    throw new RuleSetFileError(
      `The rule set ${path} is not valid (${n} problem${n === 1 ? '' : 's'}):\n${formatRuleErrors(parsed.errors)}`,
      parsed.errors,
    );
  }
  return { text, format, ruleSet: parsed.value };
}

/** Reads, validates and compiles a rule-set file as the given version. */
export function loadRuleSetFile(path: string, version = 1, now = Date.now()): ActiveRuleSet {
  const file = readRuleSetFile(path);
  return {
    version,
    checksum: checksumOf(file.text),
    compiled: compileRuleSet(file.ruleSet),
    activatedAt: now,
    definition: file.ruleSet,
  };
}
