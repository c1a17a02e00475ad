/**
 * The Redis store's key names, all behind the key prefix (REDIS_KEY_PREFIX). Keys a script
 * touches share one hash slot (Redis Cluster runs a script on one slot only):
 *
 * A person, tag `{pid}`:
 *   p:{pid}              the person: stages and profile in one value, strings as dictionary ids
 *                        (person-format.ts, format 2)
 *   fc:{pid}             hash: campaign id -> packed impression times
 *   ax:{pid}             set of the person's aliases, `kind:value`
 *   ev:{pid}             hash: events applied to the person, `e:<eventId>` -> until when they
 *                        count as seen (the dedupe window, default 7 days)
 *   x:{pid}              hash: campaign -> the person's exposure (arm, window, outcomes counted;
 *                        measure.ts)
 * An alias, tag `{kind:value}`:
 *   a:{kind:value}       alias -> pid
 * A campaign's budget lines, tag `{campaign}`:
 *   bg:{campaign}:["<creative>","<unit>","<day>|total"]  hash: `s` delivered, `n` decisions, `c:<second>`
 *                        units leased then and not settled, `o:<hour>` opportunities (budget.ts)
 * A note, tag `{key}` (a bid's win notice to nobody in particular, counted once):
 *   n:{key}              '1', living as long as the note is to count
 * A hash slot, tag `{T}` where T is a short string that hashes to the slot (slots.ts); on Redis
 * Cluster only: a single Redis (or Sentinel's master) keeps one of each, under the global tag
 * `{ms}`, as if it were one slot (every key is on its one node), which spares it 16,384 keys:
 *   sl:{T}               hash: `epoch` (the dictionary the slot's ids come from), `gen` (folds)
 *   fq:{T}               hash: funnel changes made in the slot and not yet folded (lua.ts)
 *   mq:{T}               hash: delivery and lift counts made in the slot and not yet folded
 *   ff:{T}               hash: a fold being added to the global counts
 * Global, tag `{ms}`:
 *   meta:{ms}            hash: the store's identity, `epoch` and `createdAt`; `retire` (dictionary sweeps)
 *   dict:{ms}            hash: string -> id;  dict:r:{ms}: id -> string, and `n` (the next id)
 *   dict:gone:{ms}       set: ids of strings deleted people held, to be checked and erased
 *   dict:retiring:{ms}   set: the ids a dictionary sweep is checking now (meta's `retire` counts)
 *   dict:sweep:{ms}      whose turn it is to sweep the dictionary
 *   rs:seq:{ms}          the last rule-set version given out
 *   rs:v:{ms}:<version>  hash: source, checksum, format, createdBy, createdAt, bytes, activatedAt, activatedBy
 *   rs:active:{ms}       the active version
 *   rs:log:{ms}          the activation log, newest first (JSON entries, capped)
 *   fn:{ms}:<brand>      hash: stage -> people recorded at it
 *   fm:{ms}:<brand>:<day> hash: `from>to` -> people moved that UTC day (kept ~400 days)
 *   dl:{ms}:<campaign>:<day> hash: delivery counts of the campaign's day (its time zone),
 *                        `["creative","channel","metric"]` -> count (kept the retention)
 *   lf:{ms}:<campaign>   hash: lift counts, `<arm>|<what>` -> count (kept the retention)
 *   fold:{ms}            the last fold generation added per slot (4 bytes a slot)
 *   fold:lease:{ms}, fold:cursor:{ms}   whose turn it is to fold in the background, and where
 *   bus:{ms}             the fleet's (sharded) pub/sub channel
 */
import { SLOTS, slotOf, slotTag } from './slots.js';

/** The hash tag of everything global. */
export const GLOBAL_TAG = 'ms';

export class RedisKeys {
  readonly prefix: string;
  /** Keys per hash slot (Redis Cluster), or one set of them for the whole store. */
  readonly sharded: boolean;
  /** Slots that have keys of their own: 16,384 on Redis Cluster, else 1. */
  readonly countSlots: number;
  readonly meta: string;
  readonly dict: string;
  readonly dictNames: string;
  readonly dictGone: string;
  readonly dictRetiring: string;
  readonly dictSweepLease: string;
  readonly rulesetSeq: string;
  /** A version's key without the version number. */
  readonly rulesetVersionBase: string;
  readonly rulesetActive: string;
  readonly rulesetLog: string;
  private readonly rulesetDocumentBase: string;
  readonly folds: string;
  readonly foldLease: string;
  readonly foldCursor: string;
  readonly channel: string;
  /** Marker keys made so far, by slot (a decision read names one: made once, not per read). */
  private readonly markers: Array<string | undefined> = [];

  constructor(prefix = '', sharded = false) {
    if (/[{}]/.test(prefix))
      throw new Error(`Redis key prefix ${JSON.stringify(prefix)} must not contain { or }`);
    this.prefix = prefix;
    this.sharded = sharded;
    this.countSlots = sharded ? SLOTS : 1;
    const g = `{${GLOBAL_TAG}}`;
    this.meta = `${prefix}meta:${g}`;
    this.dict = `${prefix}dict:${g}`;
    this.dictNames = `${prefix}dict:r:${g}`;
    this.dictGone = `${prefix}dict:gone:${g}`;
    this.dictRetiring = `${prefix}dict:retiring:${g}`;
    this.dictSweepLease = `${prefix}dict:sweep:${g}`;
    this.rulesetSeq = `${prefix}rs:seq:${g}`;
    this.rulesetVersionBase = `${prefix}rs:v:${g}:`;
    this.rulesetActive = `${prefix}rs:active:${g}`;
    this.rulesetLog = `${prefix}rs:log:${g}`;
    this.rulesetDocumentBase = `${prefix}rs:doc:${g}:`;
    this.folds = `${prefix}fold:${g}`;
    this.foldLease = `${prefix}fold:lease:${g}`;
    this.foldCursor = `${prefix}fold:cursor:${g}`;
    this.channel = `${prefix}bus:${g}`;
  }

  person(pid: string): string {
    return `${this.prefix}p:{${pid}}`;
  }
  counters(pid: string): string {
    return `${this.prefix}fc:{${pid}}`;
  }
  aliasesOf(pid: string): string {
    return `${this.prefix}ax:{${pid}}`;
  }
  events(pid: string): string {
    return `${this.prefix}ev:{${pid}}`;
  }
  exposures(pid: string): string {
    return `${this.prefix}x:{${pid}}`;
  }
  /** The key of an alias member (`kind:value`). */
  alias(member: string): string {
    return `${this.prefix}a:{${member}}`;
  }
  /** A note (RedisStore.noteOnce). */
  note(key: string): string {
    return `${this.prefix}n:{${key}}`;
  }
  /** The hash slot of a person's keys. */
  slotOfPerson(pid: string): number {
    return slotOf(`{${pid}}`);
  }
  /** The tag of a slot's keys: the slot's own on Redis Cluster, the global one elsewhere. */
  slotKeysTag(slot: number): string {
    return this.sharded ? slotTag(slot) : GLOBAL_TAG;
  }
  slotMarker(slot: number): string {
    const at = this.sharded ? slot : 0;
    let key = this.markers[at];
    if (key === undefined) {
      key = `${this.prefix}sl:{${this.slotKeysTag(at)}}`;
      this.markers[at] = key;
    }
    return key;
  }
  pendingCounts(slot: number): string {
    return `${this.prefix}fq:{${this.slotKeysTag(slot)}}`;
  }
  /** Delivery and lift counts made in the slot and not yet folded (lua.ts). */
  pendingMeasures(slot: number): string {
    return `${this.prefix}mq:{${this.slotKeysTag(slot)}}`;
  }
  /** A named configuration document beside the rule sets (in the global slot). */
  document(name: string): string {
    return `${this.rulesetDocumentBase}${name}`;
  }

  rulesetVersion(version: number): string {
    return `${this.rulesetVersionBase}${version}`;
  }
  stageCounts(brand: string): string {
    return `${this.prefix}fn:{${GLOBAL_TAG}}:${brand}`;
  }
  dayMoves(brand: string, day: string): string {
    return `${this.prefix}fm:{${GLOBAL_TAG}}:${brand}:${day}`;
  }
  deliveryDay(campaign: string, day: string): string {
    return `${this.prefix}dl:{${GLOBAL_TAG}}:${campaign}:${day}`;
  }
  liftCounts(campaign: string): string {
    return `${this.prefix}lf:{${GLOBAL_TAG}}:${campaign}`;
  }
  /** A budget line's day (`YYYY-MM-DD`) or `total`, under its campaign's tag (budget.ts). */
  budget(campaign: string, creative: string, unit: string, period: string): string {
    return `${this.prefix}bg:{${campaign}}:${JSON.stringify([creative, unit, period])}`;
  }
}
