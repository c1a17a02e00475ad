/**
 * The Lua scripts of the Redis store. Each runs atomically in Redis: a person's stage change and
 * the funnel counts it implies are one step, so the counts never drift from the stored stages.
 *
 * Funnel keys are per brand, not per person (`fn:{brand}`, `fm:{brand}:<day>`), so they are
 * named inside the scripts from the key prefix passed as ARGV[1]. That is fine on a single Redis
 * (and its replicas); on Redis Cluster these scripts would touch more than one slot.
 */
import { APPEND_IMPRESSION_LUA_FN } from './codec.js';

/** `count(prefix, brand, stage, delta)`: adjusts fn:{brand}; a stage at zero people is removed. */
const COUNT_FN = `
local function count(prefix, brand, stage, delta)
  local key = prefix .. 'fn:{' .. brand .. '}'
  local n = redis.call('HINCRBY', key, stage, delta)
  if n <= 0 then redis.call('HDEL', key, stage) end
end
`;

/**
 * Writes profiles: each blob, and each person's stages replaced by the given ones (several people
 * per call, for imports; each person's write and count changes happen together, in one step).
 * KEYS p:{pid1}, st:{pid1}, p:{pid2}, st:{pid2}, ...; ARGV[1] key prefix, then per person: the
 * profile bytes, the number of stages n, and n brand, stage pairs (n = -1: keep the stored ones).
 * Counts: -1 at each stage no longer held, +1 at each stage newly held.
 */
export const PUT_PEOPLE_LUA = `
local prefix = ARGV[1]
-- Count changes are summed over the people of the call and applied once per brand and stage.
local deltas = {}
local function bump(brand, stage, d)
  local b = deltas[brand]
  if not b then
    b = {}
    deltas[brand] = b
  end
  b[stage] = (b[stage] or 0) + d
end
local a = 2
for k = 1, #KEYS, 2 do
  local st = KEYS[k + 1]
  redis.call('SET', KEYS[k], ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local first = a + 2
  local last = a + 1 + 2 * math.max(n, 0)
  a = last + 1
  local old = n < 0 and {} or redis.call('HGETALL', st)
  if n < 0 then
    -- the profile does not say: the stored stages (and their counts) stay as they are
  elseif #old == 0 then
    if n > 0 then
      for i = first, last, 2 do bump(ARGV[i], ARGV[i + 1], 1) end
      redis.call('HSET', st, unpack(ARGV, first, last))
    end
  else
    local have = {}
    for i = 1, #old, 2 do have[old[i]] = old[i + 1] end
    local want = {}
    for i = first, last, 2 do want[ARGV[i]] = ARGV[i + 1] end
    local changed = false
    for brand, stage in pairs(have) do
      if want[brand] ~= stage then
        bump(brand, stage, -1)
        changed = true
      end
    end
    for brand, stage in pairs(want) do
      if have[brand] ~= stage then
        bump(brand, stage, 1)
        changed = true
      end
    end
    if changed then
      redis.call('DEL', st)
      if n > 0 then redis.call('HSET', st, unpack(ARGV, first, last)) end
    end
  end
end
for brand, stages in pairs(deltas) do
  local key = prefix .. 'fn:{' .. brand .. '}'
  for stage, d in pairs(stages) do
    if d ~= 0 then
      local left = redis.call('HINCRBY', key, stage, d)
      if left <= 0 then redis.call('HDEL', key, stage) end
    end
  end
end
return #KEYS / 2
`;

/**
 * Writes a patched profile if the blob is still the one the patch was computed from.
 * KEYS[1] p:{pid}, KEYS[2] st:{pid}; ARGV[1] key prefix, ARGV[2] the blob as read, ARGV[3] '1'
 * when there was a blob ('0': there was none, only stages), ARGV[4] the new blob, then triples
 * brand, '1' (set) or '0' (remove), stage. Returns 1 when written, 0 on a conflict (read again),
 * -1 when the person is gone.
 */
export const PATCH_PERSON_LUA = `${COUNT_FN}
local prefix = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if cur ~= ARGV[2] then
    if not cur and redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
    return 0
  end
else
  if cur then return 0 end
  if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
end
redis.call('SET', KEYS[1], ARGV[4])
for i = 5, #ARGV, 3 do
  local brand = ARGV[i]
  local old = redis.call('HGET', KEYS[2], brand)
  if ARGV[i + 1] == '1' then
    local stage = ARGV[i + 2]
    if old ~= stage then
      if old then count(prefix, brand, old, -1) end
      count(prefix, brand, stage, 1)
      redis.call('HSET', KEYS[2], brand, stage)
    end
  elseif old then
    count(prefix, brand, old, -1)
    redis.call('HDEL', KEYS[2], brand)
  end
end
return 1
`;

/**
 * Forgets a person's keys, taking their stages out of the funnel counts.
 * KEYS p:{pid}, fc:{pid}, ax:{pid}, st:{pid}; ARGV[1] key prefix.
 * Returns { keys deleted, the person's alias members } (aliases are unlinked by the caller).
 */
export const FORGET_PERSON_LUA = `${COUNT_FN}
local prefix = ARGV[1]
local st = redis.call('HGETALL', KEYS[4])
for i = 1, #st, 2 do count(prefix, st[i], st[i + 1], -1) end
local members = redis.call('SMEMBERS', KEYS[3])
local deleted = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return { deleted, members }
`;

/**
 * Applies one event, all of it or nothing, once per event id.
 * KEYS[1] ev:<eventId>, KEYS[2] fc:{pid}, KEYS[3] st:{pid}.
 * ARGV[1] key prefix, [2] dedupe window ms, [3] event time ms,
 *   [4] '1' when an impression: [5] campaign, [6] keep, [7] ttl ms,
 *   [8] '1' when a stage move: [9] brand, [10] default stage, [11] UTC day, [12] moves ttl ms,
 *   [13..] the move table as from, to pairs.
 * Returns {0} for a duplicate, {1} when applied without a move, {1, from, to} with one.
 */
export const APPLY_EVENT_LUA = `${COUNT_FN}${APPEND_IMPRESSION_LUA_FN}
local prefix = ARGV[1]
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return { 0 } end
if ARGV[4] == '1' then
  appendImpression(KEYS[2], ARGV[5], tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7]))
end
if ARGV[8] ~= '1' then return { 1 } end
local brand = ARGV[9]
local moves = {}
for i = 13, #ARGV, 2 do moves[ARGV[i]] = ARGV[i + 1] end
local recorded = redis.call('HGET', KEYS[3], brand)
local from = recorded or ARGV[10]
local to = moves[from]
if to == nil then to = moves['*'] end
if to == nil or to == from then return { 1 } end
redis.call('HSET', KEYS[3], brand, to)
if recorded then count(prefix, brand, recorded, -1) end
count(prefix, brand, to, 1)
local fm = prefix .. 'fm:{' .. brand .. '}:' .. ARGV[11]
redis.call('HINCRBY', fm, from .. '>' .. to, 1)
redis.call('PEXPIRE', fm, ARGV[12])
return { 1, from, to }
`;

/** Deletes a key if it holds the given value (an alias still pointing at the person). */
export const DEL_IF_EQUALS_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * Stores a new rule-set version. KEYS[1] rs:seq; ARGV[1] key prefix, then field, value pairs of
 * rs:v:<version>. Returns the version.
 */
export const ADD_RULESET_LUA = `
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[1] .. 'rs:v:' .. v, unpack(ARGV, 2))
return v
`;

/**
 * Activates a stored version. KEYS[1] rs:v:<version>, KEYS[2] rs:active; ARGV version, by, at.
 * Returns 0 when there is no such version.
 */
export const ACTIVATE_RULESET_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'activatedAt', ARGV[3], 'activatedBy', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
return 1
`;

/**
 * Reads what a decision needs about one person in one command: the profile blob, the frequency
 * counters and the stages (KEYS p:{pid}, fc:{pid}, st:{pid}: one slot). One script call costs the
 * client far less than a pipeline of three commands (measured: about 14 against 41 µs of CPU).
 * A missing profile comes back as nil (Redis turns GET's nil into false inside the script).
 */
export const LOAD_PERSON_LUA = `
return { redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]) }
`;
