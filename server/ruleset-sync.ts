/**
 * Keeps this instance on the fleet's active rule set. At start it loads the active version from
 * the store (or, on a store that has none yet, stores and activates the rule-set file). Then it
 * follows activations announced on the bus, with a slow poll as a safety net for announcements
 * missed while the bus was disconnected. A new version is parsed and compiled between requests,
 * never inside one, and swapped in whole: decisions already started finish on the version they
 * began with.
 */
import { compileRuleSet } from '../rules/compile.js';
import { formatRuleErrors } from '../rules/index.js';
import { parseRuleSetText } from '../rules/parse.js';
import type { ActiveRuleSet, DecisionService } from './decision/service.js';
import { checksumOf, RuleSetFileError, readRuleSetFile } from './ruleset-file.js';
import type { RuleSetStore } from './store/types.js';

export interface RuleSetSyncOptions {
  rulesets: RuleSetStore;
  /** The rule-set file stored and activated when the store has no active version. */
  bootstrapFile: string;
  /** How often the active version is checked besides the bus, ms. 0: never. */
  pollMs?: number;
  log?: (line: string) => void;
  now?: () => number;
}

export interface RuleSetSyncStats {
  /** Versions compiled and swapped in since start. */
  activations: number;
  /** Versions that could not be loaded (missing, invalid under this build's checks). */
  failures: number;
  /** Compile time of the version in use, ms. */
  compileMs: number;
}

/** Loads, parses and compiles one stored version. Throws RuleSetFileError naming the problems. */
export async function loadStoredRuleSet(
  rulesets: RuleSetStore,
  version: number,
  activatedAt: number,
): Promise<{ active: ActiveRuleSet; compileMs: number }> {
  const stored = await rulesets.getRuleSet(version);
  if (stored === null) throw new RuleSetFileError(`Rule set version ${version} is not in the store`);
  const parsed = parseRuleSetText(stored.source, stored.meta.format);
  if (!parsed.ok) {
    throw new RuleSetFileError(
      `Rule set version ${version} in the store is not valid:\n${formatRuleErrors(parsed.errors)}`,
      parsed.errors,
    );
  }
  const t0 = performance.now();
  const compiled = compileRuleSet(parsed.value);
  const compileMs = performance.now() - t0;
  return {
    active: {
      version,
      checksum: stored.meta.checksum,
      compiled,
      activatedAt: stored.meta.activatedAt ?? activatedAt,
    },
    compileMs,
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
): Promise<{ active: ActiveRuleSet; compileMs: number }> {
  const current = await rulesets.activeRuleSet();
  if (current !== null) {
    log(`rule set: version ${current}, active in the store (the rule-set file is not used)`);
    return loadStoredRuleSet(rulesets, current, now);
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
  await rulesets.activateRuleSet(version, 'startup', now);
  log(`rule set: ${file} stored and activated as version ${version}`);
  const t0 = performance.now();
  const compiled = compileRuleSet(ruleSet);
  return { active: { version, checksum, compiled, activatedAt: now }, compileMs: performance.now() - t0 };
}

export class RuleSetSync {
  private readonly rulesets: RuleSetStore;
  private readonly service: DecisionService;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | null = null;
  /** The newest version asked for; applied one at a time, the latest wins. */
  private wanted: number | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly counts: RuleSetSyncStats = { activations: 0, failures: 0, compileMs: 0 };

  constructor(service: DecisionService, opts: RuleSetSyncOptions, compileMs = 0) {
    this.service = service;
    this.rulesets = opts.rulesets;
    this.log = opts.log ?? ((line) => console.log(line));
    this.now = opts.now ?? Date.now;
    this.pollMs = opts.pollMs ?? 5000;
    this.counts.compileMs = compileMs;
  }

  /** Starts the safety-net poll. */
  start(): void {
    if (this.pollMs > 0 && this.timer === null) {
      this.timer = setInterval(() => {
        this.rulesets.activeRuleSet().then(
          (v) => {
            if (v !== null) this.request(v);
          },
          () => {}, // the store is down: the next poll tries again
        );
      }, this.pollMs);
      this.timer.unref();
    }
  }

  /** Asks for a version to be made current (from a bus announcement or the poll). */
  request(version: number): void {
    if (this.stopped) return;
    if (version === this.service.ruleSet.version && this.wanted === null) return;
    this.wanted = version;
    if (this.running === null) this.running = this.drain();
  }

  /** Resolves when every requested version has been applied or given up on. */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  stats(): RuleSetSyncStats {
    return { ...this.counts };
  }

  private async drain(): Promise<void> {
    try {
      while (this.wanted !== null && !this.stopped) {
        const version = this.wanted;
        this.wanted = null;
        if (version === this.service.ruleSet.version) continue;
        // Let requests already queued run before the compile takes the thread.
        await new Promise<void>((resolve) => setImmediate(resolve));
        try {
          const { active, compileMs } = await loadStoredRuleSet(this.rulesets, version, this.now());
          if (this.stopped) return;
          this.service.setRuleSet(active);
          this.counts.activations++;
          this.counts.compileMs = compileMs;
          this.log(`rule set: now deciding with version ${version} (compiled in ${compileMs.toFixed(1)} ms)`);
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
