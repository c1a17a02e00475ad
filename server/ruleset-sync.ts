/**
 * Keeps this instance on the fleet's active rule set. At start it loads the active version from
 * the store (or, on a store that has none yet, stores and activates the rule-set file). Then it
 * follows activations announced on the bus, with a poll as a safety net for announcements
 * missed while the bus was disconnected. A new version is parsed and compiled between requests,
 * never inside one, and swapped in whole: decisions already started finish on the version they
 * began with.
 *
 * A rule set is known by its version and the checksum of its source: a store that lost its data
 * and was given another rule set under a version number this instance already serves is noticed
 * (the checksums differ) and followed. A store that has no active rule set any more (it lost its
 * data) gets back the one this instance serves, when this instance may restore (the control
 * plane's; data-plane workers wait for it): stored as a new version and activated unless another
 * instance did so first.
 *
 * `health()` says whether this instance serves the store's active rule set, and since when it
 * has not: readiness fails when it has not for longer than a compile may take.
 */

import { checkRuleSetText } from '../rules/check-thread.js';
import { compileRuleSet, compileRuleSetInSlices } from '../rules/compile.js';
import { formatRuleErrors } from '../rules/index.js';
import type { ActiveRuleSet, DecisionService } from './decision/service.js';
import { checksumOf, RuleSetFileError, readRuleSetFile } from './ruleset-file.js';
import type { ActiveVersion, RuleSetHealth, RuleSetStore } from './store/types.js';

export interface RuleSetSyncOptions {
  rulesets: RuleSetStore;
  /** The rule-set file stored and activated when the store has no active version. */
  bootstrapFile: string;
  /** How often the active version is checked besides the bus, ms. 0: never. */
  pollMs?: number;
  /** The longest a version may take to check (RULESET_CHECK_TIMEOUT_MS). */
  checkTimeoutMs?: number;
  /** Whether this instance stores its rule set again when the store has lost every active one. */
  restore?: boolean;
  log?: (line: string) => void;
  /** Problems an operator must hear of (a store without its rule set). Default `log`. */
  error?: (line: string) => void;
  now?: () => number;
}

export interface RuleSetSyncStats {
  /** Versions compiled and swapped in since start. */
  activations: number;
  /** Versions that could not be loaded (missing, invalid under this build's checks). */
  failures: number;
  /** Compile time of the version in use, ms. */
  compileMs: number;
  /** Times the store had no active rule set and this instance stored its own again. */
  restores: number;
}

/** A loaded version and the text it came from. */
export interface LoadedRuleSet {
  active: ActiveRuleSet;
  compileMs: number;
  source: { text: string; format: 'yaml' | 'json' };
}

/**
 * Loads, parses and compiles one stored version (parsed on a checking thread when it is long,
 * within `checkTimeoutMs`: rules/check-thread.ts; compiled in slices between which the thread
 * goes on deciding). Throws RuleSetFileError naming the problems.
 */
export async function loadStoredRuleSet(
  rulesets: RuleSetStore,
  version: number,
  activatedAt: number,
  checkTimeoutMs?: number,
): Promise<LoadedRuleSet> {
  const stored = await rulesets.getRuleSet(version);
  if (stored === null) throw new RuleSetFileError(`Rule set version ${version} is not in the store`);
  const parsed = await checkRuleSetText(stored.source, stored.meta.format, { timeoutMs: checkTimeoutMs });
  if (!parsed.ok) {
    throw new RuleSetFileError(
      `Rule set version ${version} in the store is not valid:\n${formatRuleErrors(parsed.errors)}`,
      parsed.errors,
    );
  }
  // Compiled in slices: the thread that asked keeps deciding meanwhile (compileMs is the
  // time from start to end, the slices and what ran between them).
  const t0 = performance.now();
  const compiled = await compileRuleSetInSlices(parsed.value);
  const compileMs = performance.now() - t0;
  return {
    active: {
      version,
      checksum: stored.meta.checksum,
      compiled,
      activatedAt: stored.meta.activatedAt ?? activatedAt,
    },
    compileMs,
    source: { text: stored.source, format: stored.meta.format },
  };
}

/**
 * The version to decide with at start: the store's active one, or the file stored and activated
 * as a new version when the store has none.
 */
export async function initialRuleSet(
  rulesets: RuleSetStore,
  file: string,
  now: number,
  log: (line: string) => void,
): Promise<LoadedRuleSet> {
  const current = await rulesets.activeRuleSet();
  if (current !== null) {
    log(`rule set: version ${current.version}, active in the store (the rule-set file is not used)`);
    return loadStoredRuleSet(rulesets, current.version, now);
  }
  const { text, format, ruleSet } = readRuleSetFile(file);
  const checksum = checksumOf(text);
  const version = await rulesets.addRuleSet(text, {
    checksum,
    format,
    createdBy: 'startup',
    createdAt: now,
    bytes: Buffer.byteLength(text),
  });
  if (!(await rulesets.activateRuleSet(version, 'startup', now, { ifNoneActive: true }))) {
    // Another instance starting at the same moment activated its own first: decide with that.
    const other = await rulesets.activeRuleSet();
    if (other !== null) {
      log(
        `rule set: version ${other.version}, activated by another instance (the rule-set file is not used)`,
      );
      return loadStoredRuleSet(rulesets, other.version, now);
    }
  }
  log(`rule set: ${file} stored and activated as version ${version}`);
  const t0 = performance.now();
  const compiled = compileRuleSet(ruleSet);
  return {
    active: { version, checksum, compiled, activatedAt: now },
    compileMs: performance.now() - t0,
    source: { text, format },
  };
}

export class RuleSetSync {
  private readonly rulesets: RuleSetStore;
  private readonly checkTimeoutMs: number | undefined;
  private readonly service: DecisionService;
  private readonly log: (line: string) => void;
  private readonly error: (line: string) => void;
  private readonly now: () => number;
  private readonly pollMs: number;
  private readonly restore: boolean;
  private timer: NodeJS.Timeout | null = null;
  /** The newest version asked for; applied one at a time, the latest wins. */
  private wanted: ActiveVersion | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** The source of the rule set served now (what a restore stores). */
  private source: LoadedRuleSet['source'] | null;
  private storeActive: ActiveVersion | null | undefined = undefined;
  private outOfStepSince: number | null = null;
  private checking: Promise<void> | null = null;
  private readonly counts: RuleSetSyncStats = { activations: 0, failures: 0, compileMs: 0, restores: 0 };

  constructor(service: DecisionService, opts: RuleSetSyncOptions, initial?: LoadedRuleSet) {
    this.service = service;
    this.rulesets = opts.rulesets;
    this.checkTimeoutMs = opts.checkTimeoutMs;
    this.log = opts.log ?? ((line) => console.log(line));
    this.error = opts.error ?? this.log;
    this.now = opts.now ?? Date.now;
    this.pollMs = opts.pollMs ?? 5000;
    this.restore = opts.restore ?? false;
    this.counts.compileMs = initial?.compileMs ?? 0;
    this.source = initial?.source ?? null;
  }

  /** Starts the safety-net poll. */
  start(): void {
    if (this.pollMs > 0 && this.timer === null) {
      this.timer = setInterval(() => {
        this.check().catch(() => {}); // the store is down: the next poll tries again
      }, this.pollMs);
      this.timer.unref();
    }
  }

  /**
   * Reads what the store has active and follows it; restores this instance's rule set when the
   * store has none (and this instance may). Concurrent calls share one check.
   */
  check(): Promise<void> {
    this.checking ??= this.checkOnce().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  /** Asks for a version to be made current (from a bus announcement or the poll). */
  request(version: number, checksum?: string): void {
    if (this.stopped) return;
    const serving = this.service.ruleSet;
    const same = version === serving.version && (checksum === undefined || checksum === serving.checksum);
    if (same && this.wanted === null) {
      if (checksum !== undefined) this.seen({ version, checksum });
      return;
    }
    this.wanted = { version, checksum: checksum ?? '' };
    if (this.running === null) this.running = this.drain();
  }

  /** Resolves when every requested version has been applied or given up on. */
  async settled(): Promise<void> {
    while (this.running !== null || this.checking !== null) {
      await this.running;
      await this.checking;
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  stats(): RuleSetSyncStats {
    return { ...this.counts };
  }

  health(): RuleSetHealth {
    return {
      inStep: this.outOfStepSince === null,
      store: this.storeActive,
      outOfStepSince: this.outOfStepSince,
    };
  }

  private async checkOnce(): Promise<void> {
    const active = await this.rulesets.activeRuleSet();
    this.seen(active);
    if (active !== null) {
      this.request(active.version, active.checksum);
      return;
    }
    if (!this.restore || this.stopped || this.source === null) return;
    // The store has no active rule set: it lost its data. Store the one served here again.
    const serving = this.service.ruleSet;
    const at = this.now();
    const version = await this.rulesets.addRuleSet(this.source.text, {
      checksum: serving.checksum,
      format: this.source.format,
      createdBy: 'restore',
      createdAt: at,
      bytes: Buffer.byteLength(this.source.text),
    });
    if (await this.rulesets.activateRuleSet(version, 'restore', at, { ifNoneActive: true })) {
      this.counts.restores++;
      this.error(
        `rule set: the store had no active rule set (it lost its data); stored the one served here (was version ${serving.version}, ${serving.checksum}) as version ${version} and activated it`,
      );
    }
    const now = await this.rulesets.activeRuleSet();
    this.seen(now);
    if (now !== null) this.request(now.version, now.checksum);
  }

  /** Notes what the store has active, and whether this instance serves it. */
  private seen(active: ActiveVersion | null): void {
    this.storeActive = active;
    const serving = this.service.ruleSet;
    const inStep =
      active !== null && active.version === serving.version && active.checksum === serving.checksum;
    if (inStep) this.outOfStepSince = null;
    else this.outOfStepSince ??= this.now();
  }

  private async drain(): Promise<void> {
    try {
      while (this.wanted !== null && !this.stopped) {
        const { version, checksum } = this.wanted;
        this.wanted = null;
        const serving = this.service.ruleSet;
        if (version === serving.version && (checksum === '' || checksum === serving.checksum)) continue;
        // Let requests already queued run before the compile takes the thread.
        await new Promise<void>((resolve) => setImmediate(resolve));
        try {
          const loaded = await loadStoredRuleSet(this.rulesets, version, this.now(), this.checkTimeoutMs);
          if (this.stopped) return;
          this.service.setRuleSet(loaded.active);
          this.source = loaded.source;
          this.counts.activations++;
          this.counts.compileMs = loaded.compileMs;
          if (this.storeActive !== undefined) this.seen(this.storeActive);
          this.log(
            `rule set: now deciding with version ${version} (${loaded.active.checksum.slice(0, 19)}, compiled in ${loaded.compileMs.toFixed(1)} ms)`,
          );
        } catch (e) {
          this.counts.failures++;
          this.log(
            `rule set: version ${version} not activated here, still on ${this.service.ruleSet.version}: ${(e as Error).message}`,
          );
        }
      }
    } finally {
      this.running = null;
    }
  }
}
