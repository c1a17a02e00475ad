/**
 * The Lua scripts of the Redis store. Each runs atomically in Redis: a person's stage change and
 * the funnel counts it implies are one step, so the counts never drift from the stored stages.
 *
 * A person is one value, `p:{pid}` (codec.ts, format 2): a first byte with the format and the
 * number of stages, the stages as varint brand id / stage id pairs, then the body, which no
 * script looks into. The scripts rewrite only the stages, and map ids to names through the string
 * dictionary (dictionary.ts: `dict` string -> id, `dict:r` id -> string), handing out ids for
 * brands and stages the dictionary does not have yet. Funnel counts stay keyed by names.
 *
 * Funnel and dictionary keys are not per person (`fn:{brand}`, `fm:{brand}:<day>`, `dict`,
 * `dict:r`), so they are named inside the scripts from the key prefix passed as ARGV[1]. That is
 * fine on a single Redis (and its replicas); on Redis Cluster these scripts would touch more than
 * one slot.
 */
import { APPEND_IMPRESSION_LUA_FN, PERSON_FORMAT } from './codec.js';

/** The error a write answers when the ids it carries come from another dictionary (see dictionary.ts). */
export const STALE_DICTIONARY = 'STALEDICT';

/** `count(prefix, brand, stage, delta)`: adjusts fn:{brand}; a stage at zero people is removed. */
const COUNT_FN = `
local function count(prefix, brand, stage, delta)
  local key = prefix .. 'fn:{' .. brand .. '}'
  local n = redis.call('HINCRBY', key, stage, delta)
  if n <= 0 then redis.call('HDEL', key, stage) end
end
`;

/**
 * The dictionary, for scripts that declare `D` (the dict hash) and `R` (dict:r) before it:
 * `nameOf(id)` (false when there is no such id), `idOf(name, create)` (nil when there is none and
 * `create` is false; a new id otherwise, creating the dictionary and its epoch when needed) and
 * `epoch()` ('' when there is no dictionary).
 */
const DICT_FN = `
local names = {}
local function nameOf(id)
  local name = names[id]
  if name == nil then
    name = redis.call('HGET', R, string.format('%d', id))
    names[id] = name
  end
  return name
end
local function idOf(name, create)
  local id = redis.call('HGET', D, name)
  if id then return tonumber(id) end
  if not create then return nil end
  if redis.call('HEXISTS', R, 'epoch') == 0 then
    local t = redis.call('TIME')
    redis.call('HSET', R, 'epoch', t[1] .. '.' .. t[2])
  end
  local n = redis.call('HINCRBY', R, 'n', 1) - 1
  local key = string.format('%d', n)
  redis.call('HSET', D, name, key)
  redis.call('HSET', R, key, name)
  names[n] = name
  return n
end
local function epoch()
  return redis.call('HGET', R, 'epoch') or ''
end
`;

/**
 * A person's value: `readStages(v)` gives the brand ids, the stage ids and where the body starts
 * (nil when `v` is not a value of this format); `writeStages(brands, stages)` the head of a value
 * (the first byte, format and stage count, and the pairs); `indexOf(list, x)`.
 */
const PERSON_FN = `
local FORMAT, MORE = ${PERSON_FORMAT}, 31
local function readUint(s, pos)
  local n, scale = 0, 1
  for i = pos, pos + 7 do
    local b = string.byte(s, i)
    if b == nil then return nil end
    if b < 128 then return n + b * scale, i + 1 end
    n = n + (b - 128) * scale
    scale = scale * 128
  end
  return nil
end
local function uint(n)
  local out = ''
  while n >= 128 do
    out = out .. string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  return out .. string.char(n)
end
local function readStages(v)
  if type(v) ~= 'string' then return nil end
  local head = string.byte(v, 1)
  if head == nil or head % 8 ~= FORMAT then return nil end
  local n, pos = math.floor(head / 8), 2
  if n == MORE then
    local more
    more, pos = readUint(v, 2)
    if more == nil then return nil end
    n = n + more
  end
  local brands, stages = {}, {}
  for i = 1, n do
    brands[i], pos = readUint(v, pos)
    if pos == nil then return nil end
    stages[i], pos = readUint(v, pos)
    if pos == nil then return nil end
  end
  return brands, stages, pos
end
local function indexOf(list, x)
  for i = 1, #list do
    if list[i] == x then return i end
  end
  return nil
end
local function writeStages(brands, stages)
  local n = #brands
  local out = { string.char(FORMAT + 8 * math.min(n, MORE)) }
  if n >= MORE then out[2] = uint(n - MORE) end
  for i = 1, n do
    out[#out + 1] = uint(brands[i])
    out[#out + 1] = uint(stages[i])
  end
  return table.concat(out)
end
`;

/** The dictionary keys from the prefix in ARGV[1]. */
const DICT_KEYS = `
local D, R = ARGV[1] .. 'dict', ARGV[1] .. 'dict:r'
`;

const STALE_REPLY = `redis.error_reply('${STALE_DICTIONARY} the string dictionary is not the one the ids were taken from')`;

/**
 * Ids for strings, handed out for those that have none. KEYS[1] dict, KEYS[2] dict:r; ARGV the
 * strings. Returns { epoch, id of ARGV[1], id of ARGV[2], ... }.
 */
export const DICT_ASSIGN_LUA = `
local D, R = KEYS[1], KEYS[2]
${DICT_FN}
local out = {}
for i = 1, #ARGV do out[i + 1] = idOf(ARGV[i], true) end
out[1] = epoch()
return out
`;

/**
 * Writes people (several per call, for imports; each person's value and count changes happen
 * together, in one step). KEYS p:{pid1}, p:{pid2}, ...; ARGV[1] key prefix, ARGV[2] the epoch of
 * the dictionary the ids were taken from, then per person: the head (first byte and stages; ''
 * when the profile does not say: the stored stages are kept) and the body. Counts: -1 at each stage no
 * longer held, +1 at each stage newly held. Answers STALEDICT, writing nothing, when the
 * dictionary is not the one of the epoch.
 */
export const PUT_PEOPLE_LUA = `${DICT_KEYS}${DICT_FN}${PERSON_FN}
if epoch() ~= ARGV[2] then return ${STALE_REPLY} end
local prefix = ARGV[1]
local wanted = {}
for k = 1, #KEYS do
  local head = ARGV[1 + 2 * k]
  if head ~= '' then
    local brands, stages, stop = readStages(head)
    if brands == nil or stop ~= #head + 1 then return redis.error_reply('ERR unreadable stages') end
    local want = {}
    for i = 1, #brands do want[brands[i]] = stages[i] end
    wanted[k] = want
  end
end
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
for k = 1, #KEYS do
  local head, body = ARGV[1 + 2 * k], ARGV[2 + 2 * k]
  local old = redis.call('GET', KEYS[k])
  local brands, stages, stop = readStages(old)
  if head == '' then
    -- the profile does not say: the stored stages (and their counts) stay as they are
    local kept = brands and string.sub(old, 1, stop - 1) or writeStages({}, {})
    redis.call('SET', KEYS[k], kept .. body)
  else
    local have = {}
    if brands then
      for i = 1, #brands do have[brands[i]] = stages[i] end
    end
    local want = wanted[k]
    for brand, stage in pairs(have) do
      if want[brand] ~= stage then bump(brand, stage, -1) end
    end
    for brand, stage in pairs(want) do
      if have[brand] ~= stage then bump(brand, stage, 1) end
    end
    redis.call('SET', KEYS[k], head .. body)
  end
end
for b, stages in pairs(deltas) do
  local brand = nameOf(b)
  if brand then
    local key = prefix .. 'fn:{' .. brand .. '}'
    for s, d in pairs(stages) do
      local stage = nameOf(s)
      if d ~= 0 and stage then
        local left = redis.call('HINCRBY', key, stage, d)
        if left <= 0 then redis.call('HDEL', key, stage) end
      end
    end
  end
end
return #KEYS
`;

/**
 * Writes a patched person if the body is still the one the patch was computed from; stages are
 * changed brand by brand on the value as it is now (an event may have moved another brand).
 * KEYS[1] p:{pid}; ARGV[1] key prefix, ARGV[2] the dictionary epoch, ARGV[3] the body as read,
 * ARGV[4] the new body, then triples brand, '1' (set) or '0' (remove), stage. Returns 1 when
 * written, 0 on a conflict (read again), -1 when the person is gone; STALEDICT when the
 * dictionary is not the one of the epoch.
 */
export const PATCH_PERSON_LUA = `${DICT_KEYS}${COUNT_FN}${DICT_FN}${PERSON_FN}
local prefix = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
local brands, stages, body = readStages(cur)
if brands == nil or string.sub(cur, body) ~= ARGV[3] then return 0 end
if epoch() ~= ARGV[2] then return ${STALE_REPLY} end
for i = 5, #ARGV, 3 do
  local brand = ARGV[i]
  local set = ARGV[i + 1] == '1'
  local b = idOf(brand, set)
  local j = b and indexOf(brands, b)
  if set then
    local stage = ARGV[i + 2]
    local s = idOf(stage, true)
    if j == nil then
      brands[#brands + 1] = b
      stages[#stages + 1] = s
      count(prefix, brand, stage, 1)
    elseif stages[j] ~= s then
      local old = nameOf(stages[j])
      if old then count(prefix, brand, old, -1) end
      count(prefix, brand, stage, 1)
      stages[j] = s
    end
  elseif j then
    local old = nameOf(stages[j])
    if old then count(prefix, brand, old, -1) end
    table.remove(brands, j)
    table.remove(stages, j)
  end
end
redis.call('SET', KEYS[1], writeStages(brands, stages) .. ARGV[4])
return 1
`;

/**
 * Forgets a person's keys, taking their stages out of the funnel counts.
 * KEYS p:{pid}, fc:{pid}, ax:{pid}; ARGV[1] key prefix.
 * Returns { keys deleted, the person's alias members } (aliases are unlinked by the caller).
 */
export const FORGET_PERSON_LUA = `${DICT_KEYS}${COUNT_FN}${DICT_FN}${PERSON_FN}
local prefix = ARGV[1]
local brands, stages = readStages(redis.call('GET', KEYS[1]))
if brands then
  for i = 1, #brands do
    local brand, stage = nameOf(brands[i]), nameOf(stages[i])
    if brand and stage then count(prefix, brand, stage, -1) end
  end
end
local members = redis.call('SMEMBERS', KEYS[3])
local deleted = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return { deleted, members }
`;

/**
 * Applies one event, all of it or nothing, once per event id.
 * KEYS[1] ev:<eventId>, KEYS[2] fc:{pid}, KEYS[3] p:{pid}.
 * ARGV[1] key prefix, [2] dedupe window ms, [3] event time ms,
 *   [4] '1' when an impression: [5] campaign, [6] keep, [7] ttl ms,
 *   [8] '1' when a stage move: [9] brand, [10] default stage, [11] UTC day, [12] moves ttl ms,
 *   [13..] the move table as from, to pairs.
 * A move for a person without a value creates one with only the stage (no tags, nothing else).
 * Returns {0} for a duplicate, {1} when applied without a move, {1, from, to} with one.
 */
export const APPLY_EVENT_LUA = `${DICT_KEYS}${COUNT_FN}${APPEND_IMPRESSION_LUA_FN}${DICT_FN}${PERSON_FN}
local prefix = ARGV[1]
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return { 0 } end
if ARGV[4] == '1' then
  appendImpression(KEYS[2], ARGV[5], tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7]))
end
if ARGV[8] ~= '1' then return { 1 } end
local brand = ARGV[9]
local moves = {}
for i = 13, #ARGV, 2 do moves[ARGV[i]] = ARGV[i + 1] end
local cur = redis.call('GET', KEYS[3])
local brands, stages, body = readStages(cur)
local b = idOf(brand, false)
local j = brands and b and indexOf(brands, b)
local recorded = nil
if j then recorded = nameOf(stages[j]) or nil end
local from = recorded or ARGV[10]
local to = moves[from]
if to == nil then to = moves['*'] end
if to == nil or to == from then return { 1 } end
local s = idOf(to, true)
b = b or idOf(brand, true)
local rest
if brands then
  rest = string.sub(cur, body)
else
  -- no value (or one of another format): only the stage; the body: no fields, no tags
  brands, stages, rest = {}, {}, uint(0) .. uint(0)
end
if j then
  stages[j] = s
else
  brands[#brands + 1] = b
  stages[#stages + 1] = s
end
redis.call('SET', KEYS[3], writeStages(brands, stages) .. rest)
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
 * Reads what a decision needs about one person in one command (KEYS p:{pid}, fc:{pid}, dict:r;
 * ARGV the caller's dictionary epoch, and the most dictionary entries it takes along); one script
 * call costs the client far less than a pipeline of commands (measured: about 14 against 41 µs of
 * CPU for three). A missing
 * value comes back as nil (Redis turns GET's nil into false inside the script). Returns
 * { value, counters }; when there is a value and the dictionary's epoch is not the caller's (a
 * process that has not heard from this dictionary yet, or knew one Redis lost), a third element,
 * 1 (its ids must not be read with what the caller knows), and, when the dictionary holds at most
 * ARGV[2] entries, a fourth: the whole of dict:r (flat field, value pairs, `n` and `epoch`
 * included), so that a process starting up decodes in this same round trip.
 */
export const LOAD_PERSON_LUA = `
local v = redis.call('GET', KEYS[1])
if v and (redis.call('HGET', KEYS[3], 'epoch') or '') ~= ARGV[1] then
  if redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[2]) then
    return { v, redis.call('HGETALL', KEYS[2]), 1, redis.call('HGETALL', KEYS[3]) }
  end
  return { v, redis.call('HGETALL', KEYS[2]), 1 }
end
return { v, redis.call('HGETALL', KEYS[2]) }
`;

/**
 * Reads a person's value (KEYS[1] p:{pid}; KEYS[2] dict:r) for reads outside decisions (profile
 * reads, patches). Returns { value }, or { value, 1 } when there is a value and the dictionary's
 * epoch is not the caller's (ARGV[1]).
 */
export const READ_PERSON_LUA = `
local v = redis.call('GET', KEYS[1])
if v and (redis.call('HGET', KEYS[2], 'epoch') or '') ~= ARGV[1] then return { v, 1 } end
return { v }
`;
