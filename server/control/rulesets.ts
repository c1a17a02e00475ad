/**
 * Rule sets: upload (validated; invalid uploads change nothing), dry-run validation, the list of
 * versions with the activation log, the source of one, the difference between two (or a draft and
 * one), activation on every instance (the store announces it on the bus; each instance then loads
 * and compiles the version, see loadStoredRuleSet) and the roll back of the last activation.
 */
import { createTwoFilesPatch } from 'diff';
import type { Context } from 'hono';
import { checkRuleSetText } from '../../rules/check-thread.js';
import { diffRuleSets } from '../../rules/diff.js';
import type { RuleError, RuleSet } from '../../rules/types.js';
import { ClientError, RuleSetInvalid } from '../errors.js';
import { checksumOf } from '../ruleset-file.js';
import type { Activation, RuleSetMeta } from '../store/types.js';
import type { ControlContext, Register } from './context.js';

/** Activations listed with the versions (GET /v1/rulesets). */
const LISTED_ACTIVATIONS = 50;
/**
 * The longest the text diff of two rule sets may take, ms. jsdiff computes it in steps between
 * which other requests run (its callback mode), so this bounds the answer's time, not a stall; a
 * diff that needs longer is answered without its text (`text: null`). Measured: two versions of
 * a 1 MiB rule set with 100 scattered edits take about 60 ms.
 */
const TEXT_DIFF_TIMEOUT_MS = 2_000;

/**
 * Parses and validates rule-set text (a long one on a checking thread, within the time limit:
 * rules/check-thread.ts), or throws RuleSetInvalid with every error.
 */
export async function parseOrThrow(
  text: string,
  format: 'yaml' | 'json' | undefined,
  timeoutMs: number,
): Promise<RuleSet> {
  return (await checkOrThrow(text, format, timeoutMs)).ruleSet;
}

/** parseOrThrow, and the warnings of the valid rule set as of `now` (rules/warnings.ts). */
async function checkOrThrow(
  text: string,
  format: 'yaml' | 'json' | undefined,
  timeoutMs: number,
  now?: number,
): Promise<{ ruleSet: RuleSet; warnings: RuleError[] }> {
  const parsed = await checkRuleSetText(
    text,
    format,
    now === undefined ? { timeoutMs } : { timeoutMs, warningsAt: now },
  );
  if (!parsed.ok) throw new RuleSetInvalid(parsed.errors);
  return { ruleSet: parsed.value, warnings: parsed.warnings ?? [] };
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function metaOut(meta: RuleSetMeta, active: number | null) {
  return {
    version: meta.version,
    checksum: meta.checksum,
    format: meta.format,
    createdBy: meta.createdBy,
    createdAt: iso(meta.createdAt),
    bytes: meta.bytes,
    ...(meta.activatedAt === undefined ? {} : { activatedAt: iso(meta.activatedAt) }),
    ...(meta.activatedBy === undefined ? {} : { activatedBy: meta.activatedBy }),
    active: meta.version === active,
  };
}

export function registerRuleSets(register: Register, ctx: ControlContext): void {
  const { rulesets } = ctx.deps;

  register<string>('uploadRuleSet', async ({ c, caller, body, format }) => {
    const activateParam = c.req.query('activate');
    if (activateParam !== undefined && !['true', 'false', '1', '0', ''].includes(activateParam)) {
      throw new ClientError('invalid_field', 'activate must be true or false', 'activate');
    }
    const activate = activateParam === 'true' || activateParam === '1' || activateParam === '';
    // Checked before anything is stored: a bad parameter stores nothing.
    const ifActive = optionalWhole(c.req.query('ifActive'), 'ifActive');
    const { ruleSet, warnings } = await checkOrThrow(body, format, ctx.rulesetCheckTimeoutMs, ctx.now());
    const detected = format ?? (/^\s*\{/.test(body.replace(/^\uFEFF/, '')) ? 'json' : 'yaml');
    const checksum = checksumOf(body);
    const now = ctx.now();
    const version = await ctx.storeCall('store the rule set', () =>
      rulesets.addRuleSet(body, {
        checksum,
        format: detected,
        createdBy: caller.name,
        createdAt: now,
        bytes: Buffer.byteLength(body, 'utf8'),
      }),
    );
    ctx.log(
      `rule set ${version} uploaded by ${caller.name} (${checksum}, ${ruleSet.segments.length} segments, ${ruleSet.campaigns.length} campaigns)`,
    );
    if (!activate) return c.json({ version, checksum, active: false, warnings }, 201);
    const done = await ctx.storeCall('activate the rule set', () =>
      rulesets.activateRuleSet(version, caller.name, now, ifActive === undefined ? {} : { ifActive }),
    );
    if (!done && ifActive !== undefined) {
      throw new ClientError(
        'ruleset_conflict',
        `Stored as version ${version} but not activated: version ${ifActive} is no longer the active one; look again and activate it if it is still wanted`,
        'ifActive',
      );
    }
    if (!done) throw new ClientError('internal', `Rule set ${version} was stored but could not be activated`);
    ctx.log(`rule set ${version} activated by ${caller.name}`);
    return c.json({ version, checksum, active: true, activatedAt: iso(now), warnings }, 201);
  });

  register<string>('validateRuleSet', async ({ c, body, format }) => {
    const { ruleSet, warnings } = await checkOrThrow(body, format, ctx.rulesetCheckTimeoutMs, ctx.now());
    return c.json({
      valid: true,
      checksum: checksumOf(body),
      funnel: ruleSet.funnel,
      segments: ruleSet.segments.length,
      campaigns: ruleSet.campaigns.length,
      warnings,
    });
  });

  register('listRuleSets', async ({ c }) => {
    const [versions, current, log] = await ctx.storeCall('list rule sets', () =>
      Promise.all([rulesets.listRuleSets(), rulesets.activeRuleSet(), rulesets.activations()]),
    );
    const active = current?.version ?? null;
    return c.json({
      active,
      serving: ctx.deps.active().version,
      versions: versions.map((m) => metaOut(m, active)),
      activations: log
        .slice(0, LISTED_ACTIVATIONS)
        .map((a) => ({ version: a.version, by: a.by, at: iso(a.at), rollback: a.rollback })),
      rollbackTo: active === null ? null : rollbackTarget(log, active),
    });
  });

  /** A stored version (a number, or `active`), parsed, for a diff. */
  const storedSide = async (param: string | undefined, name: string): Promise<Side> => {
    let version: number;
    if (param === undefined || param === 'active') {
      const current = await ctx.storeCall('read the active version', () => rulesets.activeRuleSet());
      if (current === null) {
        throw new ClientError('ruleset_not_found', 'No rule set is active to compare with', name);
      }
      version = current.version;
    } else {
      version = versionOf(param, name);
    }
    const stored = await ctx.storeCall('read the rule set', () => rulesets.getRuleSet(version));
    if (stored === null) {
      throw new ClientError('ruleset_not_found', `There is no rule set version ${version}`, name);
    }
    const ruleSet = await parseOrThrow(stored.source, stored.meta.format, ctx.rulesetCheckTimeoutMs);
    return { version, checksum: stored.meta.checksum, source: stored.source, ruleSet };
  };

  register('diffRuleSets', async ({ c }) => {
    const [from, to] = await Promise.all([
      storedSide(c.req.query('from'), 'from'),
      storedSide(c.req.query('to'), 'to'),
    ]);
    return c.json(await diffAnswer(from, to));
  });

  register<string>('diffDraft', async ({ c, body, format }) => {
    const ruleSet = await parseOrThrow(body, format, ctx.rulesetCheckTimeoutMs);
    const from = await storedSide(c.req.query('against'), 'against');
    return c.json(
      await diffAnswer(from, { version: null, checksum: checksumOf(body), source: body, ruleSet }),
    );
  });

  register('rollbackRuleSet', async ({ c, caller }) => {
    const ifActive = optionalWhole(c.req.query('ifActive'), 'ifActive');
    const [current, log] = await ctx.storeCall('read the activation log', () =>
      Promise.all([rulesets.activeRuleSet(), rulesets.activations()]),
    );
    if (ifActive !== undefined && current?.version !== ifActive) {
      throw new ClientError(
        'ruleset_conflict',
        `Version ${ifActive} is no longer the active one; look again and retry`,
        'ifActive',
      );
    }
    const target = current === null ? null : rollbackTarget(log, current.version);
    if (current === null || target === null) {
      throw new ClientError(
        'nothing_to_roll_back',
        current === null
          ? 'No rule set is active'
          : `Version ${current.version} is the only one activated so far: there is nothing to go back to`,
      );
    }
    const stored = await ctx.storeCall('read the rule set', () => rulesets.getRuleSet(target));
    if (stored === null) throw new ClientError('ruleset_not_found', `There is no rule set version ${target}`);
    await parseOrThrow(stored.source, stored.meta.format, ctx.rulesetCheckTimeoutMs);
    const now = ctx.now();
    const done = await ctx.storeCall('activate the rule set', () =>
      rulesets.activateRuleSet(target, caller.name, now, { ifActive: current.version, rollback: true }),
    );
    if (!done) {
      throw new ClientError(
        'ruleset_conflict',
        `The active rule set changed from version ${current.version} while rolling back; look again and retry`,
      );
    }
    ctx.log(`rule set ${target} activated by ${caller.name} (roll back from ${current.version})`);
    return c.json({ version: target, from: current.version, activatedAt: iso(now) });
  });

  const source = async (c: Context, version: number) => {
    const stored = await ctx.storeCall('read the rule set', () => rulesets.getRuleSet(version));
    if (stored === null) {
      throw new ClientError('ruleset_not_found', `There is no rule set version ${version}`, 'version');
    }
    const type = stored.meta.format === 'json' ? 'application/json' : 'application/yaml';
    c.header('content-type', `${type}; charset=utf-8`);
    c.header('x-ruleset-version', String(version));
    c.header('etag', `"${stored.meta.checksum}"`);
    return c.body(stored.source, 200);
  };

  register('getActiveRuleSet', async ({ c }) => {
    const active = await ctx.storeCall('read the active version', () => rulesets.activeRuleSet());
    if (active === null) {
      throw new ClientError(
        'ruleset_not_found',
        'No rule set was activated through the control plane yet; upload one with ?activate=true',
      );
    }
    return source(c, active.version);
  });

  register('getRuleSet', ({ c }) => source(c, versionOf(c.req.param('version'))));

  register('activateRuleSet', async ({ c, caller }) => {
    const version = versionOf(c.req.param('version'));
    const ifActive = optionalWhole(c.req.query('ifActive'), 'ifActive');
    const stored = await ctx.storeCall('read the rule set', () => rulesets.getRuleSet(version));
    if (stored === null) {
      throw new ClientError('ruleset_not_found', `There is no rule set version ${version}`, 'version');
    }
    // A stored version validated when it was uploaded; check again so that a version this
    // server can no longer compile is never announced to the fleet.
    await parseOrThrow(stored.source, stored.meta.format, ctx.rulesetCheckTimeoutMs);
    const now = ctx.now();
    const done = await ctx.storeCall('activate the rule set', () =>
      rulesets.activateRuleSet(version, caller.name, now, ifActive === undefined ? {} : { ifActive }),
    );
    if (!done && ifActive !== undefined) {
      throw new ClientError(
        'ruleset_conflict',
        `Version ${ifActive} is no longer the active one; look again and retry`,
        'ifActive',
      );
    }
    if (!done)
      throw new ClientError('ruleset_not_found', `There is no rule set version ${version}`, 'version');
    ctx.log(`rule set ${version} activated by ${caller.name}`);
    return c.json({ version, activatedAt: iso(now) });
  });
}

/** A rule set on one side of a diff: a stored version or a draft. */
interface Side {
  version: number | null;
  checksum: string;
  source: string;
  ruleSet: RuleSet;
}

async function diffAnswer(from: Side, to: Side) {
  const name = (s: Side) => (s.version === null ? 'draft' : `version ${s.version}`);
  const text = await new Promise<string | undefined>((resolve) => {
    createTwoFilesPatch(name(from), name(to), from.source, to.source, from.checksum, to.checksum, {
      context: 3,
      timeout: TEXT_DIFF_TIMEOUT_MS,
      callback: resolve,
    });
  });
  return {
    from: { version: from.version, checksum: from.checksum },
    to: { version: to.version, checksum: to.checksum },
    ...diffRuleSets(from.ruleSet, to.ruleSet),
    text: text ?? null,
  };
}

/**
 * The version to go back to from the log (newest first): the log is replayed as a stack, an
 * activation pushing its version and a roll back popping one, so that rolling back again goes
 * further back rather than forth. `active` is the store's active version (the log may miss an
 * activation made by an older server, which keeps none).
 */
export function rollbackTarget(log: readonly Activation[], active: number): number | null {
  const stack: number[] = [];
  for (let i = log.length - 1; i >= 0; i--) {
    const a = log[i]!;
    if (a.rollback) {
      stack.pop();
      if (stack[stack.length - 1] !== a.version) stack.push(a.version);
    } else if (stack[stack.length - 1] !== a.version) stack.push(a.version);
  }
  if (stack[stack.length - 1] !== active) stack.push(active);
  return stack.length >= 2 ? stack[stack.length - 2]! : null;
}

/** An optional version number in the query (`ifActive`): 400 invalid_field when it cannot be one. */
function optionalWhole(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const n = versionNumber(text);
  if (n === null) throw new ClientError('invalid_field', `${name} must be a version number`, name);
  return n;
}

/** A version named in a path or query (404 ruleset_not_found when it cannot be one). */
function versionOf(text: string | undefined, name = 'version'): number {
  const n = text === undefined ? null : versionNumber(text);
  if (n === null) throw new ClientError('ruleset_not_found', `There is no rule set version ${text}`, name);
  return n;
}

/** `text` as a version number (a whole number, 1 or more), or null. */
function versionNumber(text: string): number | null {
  const n = Number(text);
  return /^[0-9]{1,15}$/.test(text) && Number.isSafeInteger(n) && n >= 1 ? n : null;
}
