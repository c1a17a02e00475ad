/**
 * Profiles: create or replace, read (with aliases), patch, forget, link aliases, and bulk import.
 * The store drops what a write changes from this instance's cache and announces it on the bus
 * (CachedStore), so other instances drop their cached copies too.
 */
import type { Profile } from '../../rules/types.js';
import { type AliasesBody, LIMITS, type ProfileBody, type ProfilePatchBody } from '../contracts/schemas.js';
import { ClientError } from '../errors.js';
import {
  chunksOf,
  ImportAborted,
  ImportTimedOut,
  ImportTooLarge,
  importProfiles,
} from '../profiles/import.js';
import { unknownStage } from '../profiles/stages.js';
import type { ControlContext, Register } from './context.js';

function pidOf(raw: string | undefined): string {
  if (raw === undefined || raw.length === 0 || raw.length > LIMITS.idLength) {
    throw new ClientError('invalid_field', `id must have 1 to ${LIMITS.idLength} characters`, 'id');
  }
  return raw;
}

function notFound(pid: string): ClientError {
  return new ClientError('profile_not_found', `No profile is stored for ${JSON.stringify(pid)}`, 'id');
}

export function registerProfiles(register: Register, ctx: ControlContext): void {
  const store = ctx.deps.profiles;

  register<ProfileBody>('putProfile', async ({ c, body }) => {
    const pid = pidOf(c.req.param('id'));
    if (body.id !== undefined && body.id !== pid) {
      throw new ClientError(
        'invalid_field',
        `id ${JSON.stringify(body.id)} does not match the path's ${JSON.stringify(pid)}`,
        'id',
      );
    }
    const offLadder = unknownStage(body.stages, ctx.deps.active().compiled.funnel);
    if (offLadder !== null) throw offLadder;
    const profile: Profile = {
      ...body,
      id: pid,
      tags: body.tags ?? [],
      updatedAt: body.updatedAt ?? ctx.now(),
    };
    const existed = (await ctx.storeCall('read the profile', () => store.getProfile(pid))) !== null;
    await ctx.storeCall('write the profile', () => store.putProfile(profile));
    return c.json(profile, existed ? 200 : 201);
  });

  register('getProfile', async ({ c }) => {
    const pid = pidOf(c.req.param('id'));
    const [profile, aliases] = await ctx.storeCall('read the profile', () =>
      Promise.all([store.getProfile(pid), store.aliasesOf(pid)]),
    );
    if (profile === null) throw notFound(pid);
    return c.json({ profile, aliases });
  });

  register<ProfilePatchBody>('patchProfile', async ({ c, body }) => {
    const pid = pidOf(c.req.param('id'));
    const offLadder = unknownStage(body.stages, ctx.deps.active().compiled.funnel);
    if (offLadder !== null) throw offLadder;
    const profile = await ctx.storeCall('patch the profile', () => store.patchProfile(pid, body, ctx.now()));
    if (profile === null) throw notFound(pid);
    return c.json(profile);
  });

  register('deleteProfile', async ({ c }) => {
    const pid = pidOf(c.req.param('id'));
    const found = await ctx.storeCall('forget the person', () => store.forgetPerson(pid));
    if (!found) throw notFound(pid);
    return c.body(null, 204);
  });

  register<AliasesBody>('linkAliases', async ({ c, body }) => {
    const pid = pidOf(c.req.param('id'));
    await ctx.storeCall('link the aliases', () => store.linkAliases(pid, body));
    const aliases = await ctx.storeCall('read the aliases', () => store.aliasesOf(pid));
    return c.json({ aliases });
  });

  register('importProfiles', async ({ c, stream }) => {
    if (stream === null) return c.json({ lines: 0, imported: 0, failed: 0, errors: [] });
    const metrics = c.get('metrics');
    try {
      const result = await importProfiles(chunksOf(stream, ctx.bodyTimeoutMs), store, {
        batchSize: ctx.importBatch,
        maxBytes: ctx.maxImportBytes,
        now: ctx.now,
        funnel: () => ctx.deps.active().compiled.funnel,
      });
      metrics?.importedLines(result.imported, result.failed);
      ctx.log(`profiles imported: ${result.imported} of ${result.lines} lines, ${result.failed} failed`);
      return c.json(result);
    } catch (e) {
      if (e instanceof ImportTooLarge || e instanceof ImportAborted || e instanceof ImportTimedOut) {
        metrics?.importedLines(e.progress.imported, e.progress.failed);
      }
      if (e instanceof ImportTimedOut) {
        throw new ClientError(
          'request_timeout',
          `Nothing arrived for ${Math.round(e.idleMs / 1000)} s; the import stopped after line ${e.progress.lines} with ${e.progress.imported} profiles written. Send the rest again.`,
        );
      }
      if (e instanceof ImportTooLarge) {
        throw new ClientError(
          'body_too_large',
          `The import is larger than ${e.limit} bytes; it stopped after line ${e.progress.lines} with ${e.progress.imported} profiles written. Split the file and send the rest.`,
        );
      }
      if (e instanceof ImportAborted) {
        ctx.log(`profile import stopped at line ${e.line}: ${(e.reason as Error)?.message}`);
        throw new ClientError(
          'store_unavailable',
          `The store did not answer; the import stopped at line ${e.line} (${e.progress.imported} profiles before it were written). Writing a profile twice is harmless: send the file again.`,
        );
      }
      throw e;
    }
  });
}
