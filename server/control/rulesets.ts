/**
 * Rule sets: upload (validated; invalid uploads change nothing), dry-run validation, the list of
 * versions, the source of one, and activation on every instance (the store announces it on the
 * bus; each instance then loads and compiles the version, see loadStoredRuleSet).
 */
import type { Context } from 'hono';
import { checkRuleSetText } from '../../rules/check-thread.js';
import type { RuleSet } from '../../rules/types.js';
import { ClientError, RuleSetInvalid } from '../errors.js';
import { checksumOf } from '../ruleset-file.js';
import type { RuleSetMeta } from '../store/types.js';
import type { ControlContext, Register } from './context.js';

/**
 * Parses and validates rule-set text (a long one on a checking thread, within the time limit:
 * rules/check-thread.ts), or throws RuleSetInvalid with every error.
 */
export async function parseOrThrow(
  text: string,
  format: 'yaml' | 'json' | undefined,
  timeoutMs: number,
): Promise<RuleSet> {
  const parsed = await checkRuleSetText(text, format, { timeoutMs });
  if (!parsed.ok) throw new RuleSetInvalid(parsed.errors);
  return parsed.value;
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
    const ruleSet = await parseOrThrow(body, format, ctx.rulesetCheckTimeoutMs);
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
    if (!activate) return c.json({ version, checksum, active: false }, 201);
    const done = await ctx.storeCall('activate the rule set', () =>
      rulesets.activateRuleSet(version, caller.name, now),
    );
    if (!done) throw new ClientError('internal', `Rule set ${version} was stored but could not be activated`);
    ctx.log(`rule set ${version} activated by ${caller.name}`);
    return c.json({ version, checksum, active: true, activatedAt: iso(now) }, 201);
  });

  register<string>('validateRuleSet', async ({ c, body, format }) => {
    const ruleSet = await parseOrThrow(body, format, ctx.rulesetCheckTimeoutMs);
    return c.json({
      valid: true,
      checksum: checksumOf(body),
      funnel: ruleSet.funnel,
      segments: ruleSet.segments.length,
      campaigns: ruleSet.campaigns.length,
    });
  });

  register('listRuleSets', async ({ c }) => {
    const [versions, current] = await ctx.storeCall('list rule sets', () =>
      Promise.all([rulesets.listRuleSets(), rulesets.activeRuleSet()]),
    );
    const active = current?.version ?? null;
    return c.json({
      active,
      serving: ctx.deps.active().version,
      versions: versions.map((m) => metaOut(m, active)),
    });
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
    const stored = await ctx.storeCall('read the rule set', () => rulesets.getRuleSet(version));
    if (stored === null) {
      throw new ClientError('ruleset_not_found', `There is no rule set version ${version}`, 'version');
    }
    // A stored version validated when it was uploaded; check again so that a version this
    // server can no longer compile is never announced to the fleet.
    await parseOrThrow(stored.source, stored.meta.format, ctx.rulesetCheckTimeoutMs);
    const now = ctx.now();
    const done = await ctx.storeCall('activate the rule set', () =>
      rulesets.activateRuleSet(version, caller.name, now),
    );
    if (!done)
      throw new ClientError('ruleset_not_found', `There is no rule set version ${version}`, 'version');
    ctx.log(`rule set ${version} activated by ${caller.name}`);
    return c.json({ version, activatedAt: iso(now) });
  });
}

function versionOf(text: string | undefined): number {
  const n = Number(text);
  if (text === undefined || !/^[0-9]{1,15}$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new ClientError('ruleset_not_found', `There is no rule set version ${text}`, 'version');
  }
  return n;
}
