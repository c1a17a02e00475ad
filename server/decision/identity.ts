/**
 * Who a decision is for: the person an id or aliases name, and the profile decided on when the
 * store knows nobody. One home for both, used by the data plane's decisions (DecisionService)
 * and the control plane's preview, so that the two cannot disagree on who someone is or on which
 * side of a hold-out they fall.
 */
import type { Profile } from '../../rules/types.js';
import type { FoundByAlias, PersonRecord, ProfileStore } from '../store/types.js';
import type { UserRef } from './request.js';

/** The person found for a user reference; both null when aliases resolved to nobody. */
export type FoundPerson = FoundByAlias;

/** The user reference of a body's `user` object: `id` when given, else its `ids`, in order. */
export function userRef(user: { id?: string; ids?: Readonly<Record<string, string>> }): UserRef {
  if (user.id !== undefined) return { kind: 'id', id: user.id };
  return { kind: 'aliases', aliases: Object.entries(user.ids ?? {}) };
}

/**
 * The person a reference names, loaded from the store. Aliases are resolved all at once; the
 * first (in the order given) that names someone wins.
 */
export function findPerson(store: ProfileStore, user: UserRef): Promise<FoundPerson> {
  if (user.kind === 'aliases' && user.aliases.length === 1 && store.loadPersonByAlias !== undefined) {
    // One alias (an exchange's cookie id, say): alias and person in one round trip where the store
    // can, and its promise as it is (not wrapped in an async function's: one per uniform bid).
    const [kind, value] = user.aliases[0]!;
    return store.loadPersonByAlias(kind, value);
  }
  return findInSteps(store, user);
}

/** findPerson by an id, or by aliases resolved first (several, or where one round trip cannot). */
async function findInSteps(store: ProfileStore, user: UserRef): Promise<FoundPerson> {
  let pid: string | null;
  if (user.kind === 'id') pid = user.id;
  else if (user.kind === 'anonymous') return { pid: null, record: null };
  else {
    const found = await Promise.all(user.aliases.map(([k, v]) => store.resolveAlias(k, v)));
    pid = found.find((x): x is string => typeof x === 'string') ?? null;
  }
  if (pid === null) return { pid: null, record: null };
  return { pid, record: await store.loadPerson(pid) };
}

/**
 * The profile to decide on: the stored one, else an empty profile whose id is the person id, or
 * for someone known by aliases only the first alias (`kind:value`), so that their hold-out draw
 * and tie-breaks stay the same from one request to the next; for an anonymous request, its seed.
 */
export function profileToDecide(user: UserRef, pid: string | null, record: PersonRecord | null): Profile {
  if (record?.profile != null) return record.profile;
  return { id: pid ?? anonymousId(user), tags: [] };
}

function anonymousId(user: UserRef): string {
  if (user.kind === 'id') return user.id;
  if (user.kind === 'anonymous') return user.seed;
  const first = user.aliases[0];
  return first === undefined ? '' : `${first[0]}:${first[1]}`;
}
