/**
 * The Lua scripts of the Redis store. Each runs atomically in Redis and touches one hash slot
 * only, so every one of them runs on Redis Cluster as on a single Redis (redis-keys.ts has the
 * layout):
 *
 * - A person's scripts touch the person's keys (`{pid}`) and the keys of the person's slot
 *   (`sl:{T}`, `fq:{T}`, where T is a tag that hashes to that slot; slots.ts).
 * - The dictionary, the store's identity, rule sets and the gathered funnel counts share the
 *   global tag `{ms}`.
 *
 * A person is one value, `p:{pid}` (person-format.ts, format 2): a first byte with the format
 * and the number of stages, the stages as varint brand id / stage id pairs, then the body, which
 * no script looks into. Strings are ids into the string dictionary; scripts never read the
 * dictionary (it lives in another slot): the caller passes the ids of the brands and stages it
 * names.
 *
 * Which dictionary a slot's ids come from is written in the slot's marker (`sl:{T}`, field
 * `epoch`). A write carries the epoch of the dictionary its ids come from and is refused when the
 * marker says another one (STALEDICT: the writer's dictionary is out of date, or the slot's
 * values come from a dictionary the store has lost). A slot without a marker is marked by the
 * first write that says it has checked the epoch with the dictionary (NOMARK asks for that check).
 *
 * Funnel counts: a script that changes a stored stage adds the change to its slot's pending
 * counts (`fq:{T}`: `s|brand id|stage id` -> people, `m|brand id|day|from id|to id` -> moves), in
 * the same step as the stage. Those are folded into the global counts by name (`fn:{ms}:<brand>`,
 * `fm:{ms}:<brand>:<day>`) in three idempotent steps (FOLD_TAKE, FOLD_APPLY, FOLD_CLEAR; see
 * redis.ts), so the counts stay exactly the sum of the stored stages.
 */
import { PERSON_FORMAT } from './person-format.js';

/** The error a write answers when its ids come from another dictionary than the slot's (see above). */
export const STALE_DICTIONARY = 'STALEDICT';
/** The error a write answers when the slot has no marker yet and the caller did not confirm its epoch. */
export const NO_MARKER = 'NOMARK';

/**
 * `checkSlot(sl, epoch, confirmed)`: nil when the slot's marker is `epoch` (set now when there is
 * none and `confirmed` is '1'); otherwise the error reply to return.
 */
const SLOT_FN = `
local function checkSlot(sl, epoch, confirmed)
  local have = redis.call('HGET', sl, 'epoch')
  if have == epoch then return nil end
  if not have then
    if confirmed == '1' then
      redis.call('HSET', sl, 'epoch', epoch)
      return nil
    end
    return redis.error_reply('${NO_MARKER} the slot has no dictionary marker yet')
  end
  return redis.error_reply('${STALE_DICTIONARY} ' .. have)
end
`;

/**
 * `pend(fq, field, delta)` adds to a pending count; `pendStage(fq, b, s, d)` and
 * `pendMove(fq, b, day, from, to)` name the fields.
 */
const PEND_FN = `
local function pend(fq, field, delta)
  local n = redis.call('HINCRBY', fq, field, delta)
  if n == 0 then redis.call('HDEL', fq, field) end
end
local function pendStage(fq, b, s, d)
  pend(fq, 's|' .. b .. '|' .. s, d)
end
local function pendMove(fq, b, day, from, to)
  pend(fq, 'm|' .. b .. '|' .. day .. '|' .. from .. '|' .. to, 1)
end
`;

/**
 * A person's value: `readStages(v)` gives the brand ids, the stage ids and where the body starts
 * (nil when `v` is not a value of this format); `writeStages(brands, stages)` the head of a value
 * (the first byte, format and stage count, and the pairs); `indexOf(list, x)`; `uint(n)`.
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

/**
 * A person's exposures to campaigns (measure.ts has the rules in TypeScript): `x:{pid}`, field
 * per campaign, `arm,start,window,flags` (arm `t` or `c`; flags: 1 conversion, 2 purchase
 * counted). `expose(x, mq, campaign, arm, at, window, keep)` and
 * `attribute(x, mq, outcome, at, keep)` add what they count to the slot's pending measurement
 * counts (`mq:{T}`, apart from the funnel's `fq:{T}` so that an instance of an earlier version,
 * which folds only `fq`, never meets them) under the JSON names of measure.ts
 * (`["l", campaign, arm, what]`).
 */
const EXPOSURE_FN = `
local ARMS = { t = 'treatment', c = 'control' }
local function liftField(campaign, arm, what)
  return cjson.encode({ 'l', campaign, ARMS[arm], what })
end
local function readExposure(v)
  local arm, s, w, f = string.match(v, '^([tc]),(%-?%d+),(%d+),(%d+)$')
  if not arm then return nil end
  return arm, tonumber(s), tonumber(w), tonumber(f)
end
local function expose(x, mq, campaign, arm, at, window, keep)
  local have = redis.call('HGET', x, campaign)
  local harm, s, w, f
  if have then harm, s, w, f = readExposure(have) end
  if not harm then
    redis.call('HSET', x, campaign, arm .. ',' .. string.format('%d', at) .. ',' .. string.format('%d', window) .. ',0')
    pend(mq, liftField(campaign, arm, 'people'), 1)
    pend(mq, liftField(campaign, arm, 'exposures'), 1)
  elseif harm == arm and at > s + w then
    redis.call('HSET', x, campaign, arm .. ',' .. string.format('%d', at) .. ',' .. string.format('%d', window) .. ',' .. f)
    pend(mq, liftField(campaign, arm, 'exposures'), 1)
  else
    return
  end
  redis.call('PEXPIRE', x, keep)
end
local OUTCOME_BITS = { conversions = 1, purchases = 2 }
local function attribute(x, mq, outcome, at, keep)
  local all = redis.call('HGETALL', x)
  local bit = OUTCOME_BITS[outcome]
  local changed = false
  for i = 1, #all, 2 do
    local arm, s, w, f = readExposure(all[i + 1])
    if arm and at >= s and at <= s + w and math.floor(f / bit) % 2 == 0 then
      redis.call('HSET', x, all[i], arm .. ',' .. string.format('%d', s) .. ',' .. string.format('%d', w) .. ',' .. (f + bit))
      pend(mq, liftField(all[i], arm, outcome), 1)
      changed = true
    end
  end
  if changed then redis.call('PEXPIRE', x, keep) end
end
`;

/**
 * Records the exposures of many people whose keys are on one node (every key on a single Redis; a
 * run of slots of one master on Redis Cluster), in one call: a flush of the decision recorder
 * costs a call per node rather than one per person. KEYS[1] a key of the first person (it routes
 * the call); ARGV[1] how long exposure records live (ms), then per exposure: the person's x:{pid}
 * and their slot's mq:{T}, campaign, arm (`t`, `c`), time ms, attribution window ms.
 */
export const EXPOSE_LUA = `#!lua flags=allow-cross-slot-keys
${PEND_FN}${EXPOSURE_FN}
local keep = tonumber(ARGV[1])
for i = 2, #ARGV, 6 do
  expose(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), keep)
end
return 1
`;

/**
 * Adds delivery counts that belong to no one person (decisions filled, ghosts) to the gathered
 * counts. KEYS[1] fold:{ms} (routing: every key named is global); ARGV[1] key prefix, [2] how long
 * a day's row lives after its last change (ms), then per count: campaign, day, row field, amount.
 */
export const DELIVERY_ADD_LUA = `
local prefix, keep = ARGV[1], ARGV[2]
for i = 3, #ARGV, 4 do
  local key = prefix .. 'dl:{ms}:' .. ARGV[i] .. ':' .. ARGV[i + 1]
  redis.call('HINCRBY', key, ARGV[i + 2], ARGV[i + 3])
  redis.call('PEXPIRE', key, keep)
end
return 1
`;

/**
 * `appendImpression(key, field, at, keep, ttl)`: appends one impression time to a counters hash
 * (packed big-endian doubles, impressions.ts), keeping the `keep` most recent times not older
 * than `ttl` before the newest, and makes the hash live at least `ttl` ms from now (a shorter ttl
 * of another campaign never cuts a longer one short). Returns the number of times kept.
 */
const APPEND_IMPRESSION_FN = `
local function appendImpression(key, field, at, keep, ttl)
  local times = {}
  local cur = redis.call('HGET', key, field)
  if cur then
    local n = math.floor(#cur / 8)
    for i = 0, n - 1 do
      times[#times + 1] = struct.unpack('>d', cur, i * 8 + 1)
    end
  end
  times[#times + 1] = at
  table.sort(times)
  local newest = times[#times]
  local floor = newest - ttl
  local from = #times - keep + 1
  if from < 1 then from = 1 end
  local out = {}
  for i = from, #times do
    if times[i] >= floor then out[#out + 1] = struct.pack('>d', times[i]) end
  end
  redis.call('HSET', key, field, table.concat(out))
  local pttl = redis.call('PTTL', key)
  if pttl < ttl then redis.call('PEXPIRE', key, ttl) end
  return #out
end
`;

/**
 * Appends one impression to a counters hash, atomically (appendImpression).
 * KEYS[1] fc:{pid}; ARGV campaign id, time (ms), keep, ttl (ms).
 */
export const RECORD_IMPRESSION_LUA = `${APPEND_IMPRESSION_FN}
return appendImpression(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
`;

/**
 * What a decision needs about one person, in one command: KEYS p:{pid}, fc:{pid}, sl:{T}; ARGV
 * the caller's dictionary epoch. One script call costs the client far less than a pipeline of
 * commands (measured: about 14 against 41 µs of CPU for three). Returns { value, counters (flat
 * field, value pairs) }, and a third element, the slot's marker ('' when none), when there is a
 * value and the marker is not the caller's epoch (its ids must not be read with what the caller
 * knows). A missing value comes back as nil (Redis turns GET's nil into false inside the script).
 */
export const LOAD_PERSON_LUA = `
local v = redis.call('GET', KEYS[1])
local c = redis.call('HGETALL', KEYS[2])
if v then
  local e = redis.call('HGET', KEYS[3], 'epoch') or ''
  if e ~= ARGV[1] then return { v, c, e } end
end
return { v, c }
`;

/**
 * The decision read of someone known by an alias, in one round trip, on a single Redis only
 * (on a cluster the alias and the person are in different slots): KEYS a:{kind:value}, sl:{T};
 * ARGV the caller's epoch, then the person's and the counters' key prefix (`p:{`, `fc:{`, with
 * the store's prefix). Returns {} when the alias names nobody, else { pid, value, counters } and
 * the marker as LOAD_PERSON_LUA does. The person's keys are built here, not declared: a single
 * Redis allows it, and the script is never sent to a cluster.
 */
export const LOAD_BY_ALIAS_LUA = `
local pid = redis.call('GET', KEYS[1])
if not pid then return {} end
local v = redis.call('GET', ARGV[2] .. pid .. '}')
local c = redis.call('HGETALL', ARGV[3] .. pid .. '}')
if v then
  local e = redis.call('HGET', KEYS[2], 'epoch') or ''
  if e ~= ARGV[1] then return { pid, v, c, e } end
end
return { pid, v, c }
`;

/**
 * A person's value for reads outside decisions (profile reads, patches): KEYS p:{pid}, sl:{T};
 * ARGV the caller's epoch. Returns { value }, or { value, marker } as LOAD_PERSON_LUA.
 */
export const READ_PERSON_LUA = `
local v = redis.call('GET', KEYS[1])
if v then
  local e = redis.call('HGET', KEYS[2], 'epoch') or ''
  if e ~= ARGV[1] then return { v, e } end
end
return { v }
`;

/**
 * Writes people (several per call for imports; on Redis Cluster the people of one call share a
 * slot). KEYS per person: p:{pid}, sl:{T}, fq:{T}; ARGV[1] the dictionary epoch of the ids,
 * ARGV[2] '1' when the caller checked that epoch with the dictionary (marks unmarked slots), then
 * per person the head (first byte and stages; '' when the profile does not say: the stored stages
 * are kept) and the body. Pending counts: -1 at each stage no longer held, +1 at each stage newly
 * held. Every slot is checked before anything is written, each marker once (a single Redis has
 * one for all), and the pending counts of the call are added up first, one HINCRBY a field (an
 * import of 100 people at a few stages: a few calls, not 200).
 * Returns the number of people.
 */
export const PUT_PEOPLE_LUA = `${SLOT_FN}${PERSON_FN}
local people = #KEYS / 3
local checked = {}
for k = 1, people do
  local sl = KEYS[3 * k - 1]
  if not checked[sl] then
    local err = checkSlot(sl, ARGV[1], ARGV[2])
    if err then return err end
    checked[sl] = true
  end
end
local deltas, order = {}, {}
local function pendStage(fq, b, s, d)
  local byKey = deltas[fq]
  if not byKey then
    byKey = {}
    deltas[fq] = byKey
    order[#order + 1] = fq
  end
  local field = 's|' .. b .. '|' .. s
  byKey[field] = (byKey[field] or 0) + d
end
local wanted = {}
for k = 1, people do
  local head = ARGV[1 + 2 * k]
  if head ~= '' then
    local brands, stages, stop = readStages(head)
    if brands == nil or stop ~= #head + 1 then return redis.error_reply('ERR unreadable stages') end
    local want = {}
    for i = 1, #brands do want[brands[i]] = stages[i] end
    wanted[k] = want
  end
end
for k = 1, people do
  local p, fq = KEYS[3 * k - 2], KEYS[3 * k]
  local head, body = ARGV[1 + 2 * k], ARGV[2 + 2 * k]
  local old = redis.call('GET', p)
  local brands, stages, stop = readStages(old)
  if head == '' then
    -- the profile does not say: the stored stages (and their counts) stay as they are
    local kept = brands and string.sub(old, 1, stop - 1) or writeStages({}, {})
    redis.call('SET', p, kept .. body)
  else
    local have = {}
    if brands then
      for i = 1, #brands do have[brands[i]] = stages[i] end
    end
    local want = wanted[k]
    for brand, stage in pairs(have) do
      if want[brand] ~= stage then pendStage(fq, brand, stage, -1) end
    end
    for brand, stage in pairs(want) do
      if have[brand] ~= stage then pendStage(fq, brand, stage, 1) end
    end
    redis.call('SET', p, head .. body)
  end
end
for _, fq in ipairs(order) do
  for field, d in pairs(deltas[fq]) do
    if d ~= 0 then
      local n = redis.call('HINCRBY', fq, field, d)
      if n == 0 then redis.call('HDEL', fq, field) end
    end
  end
end
return people
`;

/**
 * Writes a patched person if the body is still the one the patch was computed from; stages are
 * changed brand by brand on the value as it is now (an event may have moved another brand).
 * KEYS p:{pid}, sl:{T}, fq:{T}; ARGV[1] the dictionary epoch, ARGV[2] '1' when confirmed (as
 * PUT_PEOPLE_LUA), ARGV[3] the body as read, ARGV[4] the new body, then triples brand id, '1'
 * (set) or '0' (remove), stage id. Returns 1 when written, 0 on a conflict (read again), -1 when
 * the person is gone.
 */
export const PATCH_PERSON_LUA = `${SLOT_FN}${PEND_FN}${PERSON_FN}
local fq = KEYS[3]
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
local brands, stages, body = readStages(cur)
if brands == nil or string.sub(cur, body) ~= ARGV[3] then return 0 end
local err = checkSlot(KEYS[2], ARGV[1], ARGV[2])
if err then return err end
for i = 5, #ARGV, 3 do
  local b = tonumber(ARGV[i])
  local j = indexOf(brands, b)
  if ARGV[i + 1] == '1' then
    local s = tonumber(ARGV[i + 2])
    if j == nil then
      brands[#brands + 1] = b
      stages[#stages + 1] = s
      pendStage(fq, b, s, 1)
    elseif stages[j] ~= s then
      pendStage(fq, b, stages[j], -1)
      pendStage(fq, b, s, 1)
      stages[j] = s
    end
  elseif j then
    pendStage(fq, b, stages[j], -1)
    table.remove(brands, j)
    table.remove(stages, j)
  end
end
redis.call('SET', KEYS[1], writeStages(brands, stages) .. ARGV[4])
return 1
`;

/**
 * Forgets a person's keys, taking their stages out of the counts.
 * KEYS p:{pid}, fc:{pid}, ax:{pid}, ev:{pid}, fq:{T}, x:{pid}. Returns { keys deleted but the events',
 * the person's alias members } (aliases live in their own slots: the caller unlinks them).
 */
export const FORGET_PERSON_LUA = `${PEND_FN}${PERSON_FN}
local brands, stages = readStages(redis.call('GET', KEYS[1]))
if brands then
  for i = 1, #brands do pendStage(KEYS[5], brands[i], stages[i], -1) end
end
local members = redis.call('SMEMBERS', KEYS[3])
local deleted = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[6])
redis.call('DEL', KEYS[4])
return { deleted, members }
`;

/**
 * Applies one event, all of it or nothing, once per event id and person.
 * KEYS ev:{pid}, fc:{pid}, p:{pid}, sl:{T}, fq:{T}, x:{pid}, mq:{T}.
 * ARGV[1] the dictionary epoch, [2] '1' when confirmed, [3] dedupe window ms, [4] event time ms,
 *   [5] '1' when an impression: [6] campaign, [7] keep, [8] ttl ms,
 *   [9] '1' when a stage move: [10] brand id, [11] default stage id, [12] UTC day,
 *   [13] the outcome to attribute ('' none, `conversions`, `purchases`), [14] how long exposure
 *   records live (ms), [15] N, the number of delivery counts, [16 .. 15 + 2N] their pending
 *   fields (measure.ts) and amounts,
 *   then the move table as from, to pairs of stage ids (from `*`: any stage not listed),
 *   and last the event id.
 * The person's events seen are one hash, `e:<eventId>` -> until when (Redis' clock, ms), living
 * the dedupe window after the last event; expired fields are dropped whenever the hash has
 * doubled since the last such sweep (field `limit`), so a sweep costs O(1) per event over time.
 * A move for a person without a value creates one with only the stage (no tags, nothing else).
 * Returns {0} for a duplicate, {1} when applied without a move, {1, from id, to id} with one.
 */
export const APPLY_EVENT_LUA = `${SLOT_FN}${PEND_FN}${EXPOSURE_FN}${APPEND_IMPRESSION_FN}${PERSON_FN}
local fq = KEYS[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local field = 'e:' .. ARGV[#ARGV]
local seenUntil = redis.call('HGET', KEYS[1], field)
if seenUntil and tonumber(seenUntil) > now then return { 0 } end
if ARGV[9] == '1' then
  local err = checkSlot(KEYS[4], ARGV[1], ARGV[2])
  if err then return err end
end
local window = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], field, now + window)
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or '64')
if redis.call('HLEN', KEYS[1]) > limit then
  local all = redis.call('HGETALL', KEYS[1])
  local left = 0
  for i = 1, #all, 2 do
    if all[i] ~= 'limit' then
      if tonumber(all[i + 1]) <= now then redis.call('HDEL', KEYS[1], all[i]) else left = left + 1 end
    end
  end
  redis.call('HSET', KEYS[1], 'limit', math.max(64, 2 * left))
end
redis.call('PEXPIRE', KEYS[1], window)
if ARGV[5] == '1' then
  appendImpression(KEYS[2], ARGV[6], tonumber(ARGV[4]), tonumber(ARGV[7]), tonumber(ARGV[8]))
end
local nDelivery = tonumber(ARGV[15])
local moveAt = 16 + 2 * nDelivery
for i = 16, moveAt - 1, 2 do pend(KEYS[7], ARGV[i], tonumber(ARGV[i + 1])) end
if ARGV[13] ~= '' then attribute(KEYS[6], KEYS[7], ARGV[13], tonumber(ARGV[4]), tonumber(ARGV[14])) end
if ARGV[9] ~= '1' then return { 1 } end
local b = tonumber(ARGV[10])
local moves = {}
for i = moveAt, #ARGV - 1, 2 do moves[ARGV[i]] = ARGV[i + 1] end
local cur = redis.call('GET', KEYS[3])
local brands, stages, body = readStages(cur)
local j = brands and indexOf(brands, b)
local from = ARGV[11]
if j then from = string.format('%d', stages[j]) end
local to = moves[from]
if to == nil then to = moves['*'] end
if to == nil or to == from then return { 1 } end
local rest
if brands then
  rest = string.sub(cur, body)
else
  -- no value (or one of another format): only the stage; the body: no fields, no tags
  brands, stages, rest = {}, {}, uint(0) .. uint(0)
end
local s = tonumber(to)
if j then
  stages[j] = s
  pendStage(fq, b, from, -1)
else
  brands[#brands + 1] = b
  stages[#stages + 1] = s
end
redis.call('SET', KEYS[3], writeStages(brands, stages) .. rest)
pendStage(fq, b, to, 1)
pendMove(fq, b, ARGV[12], from, to)
return { 1, from, to }
`;

/**
 * Links many aliases in one call, where every key is on one node (a single Redis or a Sentinel's
 * master; not Redis Cluster, whose aliases and people live in many slots): per link, the alias
 * points at the person, joins the person's set, and leaves the set of whoever it pointed at
 * before. In order, so an alias listed twice ends with the later person. KEYS per link a:{member},
 * ax:{pid}; ARGV[1] the key prefix, then per link pid, member. One call instead of two or three
 * commands a link: an import with 3 aliases a person spent most of its time on them.
 */
export const LINK_ALIASES_LUA = `#!lua flags=allow-cross-slot-keys
local prefix = ARGV[1]
for k = 1, #KEYS / 2 do
  local pid, member = ARGV[2 * k], ARGV[2 * k + 1]
  local old = redis.call('GETSET', KEYS[2 * k - 1], pid)
  redis.call('SADD', KEYS[2 * k], member)
  if old and old ~= pid then redis.call('SREM', prefix .. 'ax:{' .. old .. '}', member) end
end
return #KEYS / 2
`;

/** Deletes a key if it holds the given value (an alias still pointing at the person). */
export const DEL_IF_EQUALS_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

// ---- the global slot: identity, dictionary, rule sets, gathered counts ----------------------------

/**
 * The store's identity, made on first use: KEYS meta:{ms}; ARGV a new epoch and the time (ms).
 * Returns { epoch, createdAt } of the store (the new ones when there were none).
 */
export const IDENTITY_LUA = `
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'createdAt', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'epoch', 'createdAt', 'retire')
`;

/**
 * Ids for strings, handed out for those that have none. KEYS dict:{ms}, dict:r:{ms}, meta:{ms},
 * dict:retiring:{ms}; ARGV[1] an epoch to take when the store has no identity yet, ARGV[2] the
 * time (ms), then the strings. Returns { epoch, id of the first string, … }. Ids count up from 0
 * (dict:r:{ms} field `n`: the next id) and are never reused while the store keeps its identity.
 * A string asked for while its id is retiring is in use again: it stays.
 */
export const DICT_ASSIGN_LUA = `
local D, R = KEYS[1], KEYS[2]
if redis.call('HSETNX', KEYS[3], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[3], 'createdAt', ARGV[2])
end
local retiring = redis.call('EXISTS', KEYS[4]) == 1
local out = { redis.call('HGET', KEYS[3], 'epoch') }
for i = 3, #ARGV do
  local id = redis.call('HGET', D, ARGV[i])
  if not id then
    id = string.format('%d', redis.call('HINCRBY', R, 'n', 1) - 1)
    redis.call('HSET', D, ARGV[i], id)
    redis.call('HSET', R, id, ARGV[i])
  elseif retiring then
    redis.call('SREM', KEYS[4], id)
  end
  out[i - 1] = tonumber(id)
end
return out
`;

/**
 * Erasing the strings only deleted people held (RedisStore.sweepDictionary), step one: up to
 * ARGV[1] ids of deleted people's strings move from `dict:gone` to `dict:retiring`, and the
 * meta's `retire` generation is raised so that every process hears of it (with the identity).
 * KEYS dict:gone:{ms}, dict:retiring:{ms}, meta:{ms}. Returns every id retiring.
 */
export const DICT_RETIRE_LUA = `
local ids = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
for i = 1, #ids, 5000 do
  redis.call('SADD', KEYS[2], unpack(ids, i, math.min(i + 4999, #ids)))
end
local all = redis.call('SMEMBERS', KEYS[2])
if #all > 0 then redis.call('HINCRBY', KEYS[3], 'retire', 1) end
return all
`;

/**
 * Step two: erases the strings of the ids ARGV that are still retiring (an id a process asked for
 * again since, DICT_ASSIGN_LUA, is not), ends the retirement, and raises the generation again.
 * KEYS dict:{ms}, dict:r:{ms}, dict:retiring:{ms}, meta:{ms}. Returns the number erased.
 */
export const DICT_ERASE_LUA = `
local D, R, RT = KEYS[1], KEYS[2], KEYS[3]
local erased = 0
for i = 1, #ARGV do
  local id = ARGV[i]
  if redis.call('SREM', RT, id) == 1 then
    local name = redis.call('HGET', R, id)
    if name then
      if redis.call('HGET', D, name) == id then redis.call('HDEL', D, name) end
      redis.call('HDEL', R, id)
      erased = erased + 1
    end
  end
end
redis.call('DEL', RT)
redis.call('HINCRBY', KEYS[4], 'retire', 1)
return erased
`;

/**
 * Strings of ids: KEYS dict:r:{ms}, meta:{ms}; ARGV the ids. Returns { epoch ('' without an
 * identity), string or nil per id }.
 */
export const DICT_LOOKUP_LUA = `
local out = { redis.call('HGET', KEYS[2], 'epoch') or '' }
for i = 1, #ARGV do out[i + 1] = redis.call('HGET', KEYS[1], ARGV[i]) end
return out
`;

/**
 * The whole dictionary when it has at most ARGV[1] strings: KEYS dict:r:{ms}, meta:{ms}.
 * Returns { epoch, entries (flat id, string pairs, with `n`) } or { epoch } when it is larger.
 */
export const DICT_ALL_LUA = `
local epoch = redis.call('HGET', KEYS[2], 'epoch') or ''
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[1]) then return { epoch } end
return { epoch, redis.call('HGETALL', KEYS[1]) }
`;

/**
 * Stores a new rule-set version. KEYS rs:seq:{ms}; ARGV[1] the key of version 0 without its
 * number (`…rs:v:{ms}:`), then field, value pairs of the version's hash. Returns the version.
 */
export const ADD_RULESET_LUA = `
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[1] .. v, unpack(ARGV, 2))
return v
`;

/**
 * Activates a stored version and logs it. KEYS rs:v:{ms}:<version>, rs:active:{ms}, rs:log:{ms};
 * ARGV version, by, at, '1' to activate only when no version is active, the version that must be
 * active ('' for any), the log entry, the log's length. Returns 1 when activated, 0 when there is
 * no such version, -1 when another version is active and ARGV[4] is '1', -2 when the active
 * version is not ARGV[5].
 */
export const ACTIVATE_RULESET_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if ARGV[5] ~= nil and ARGV[5] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[5] then return -2 end
redis.call('HSET', KEYS[1], 'activatedAt', ARGV[3], 'activatedBy', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
if KEYS[3] ~= nil then
  redis.call('LPUSH', KEYS[3], ARGV[6])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
end
return 1
`;

/**
 * The active version and its checksum: KEYS rs:active:{ms}; ARGV[1] the key of version 0 without
 * its number. Returns { version, checksum } or {} when none is active.
 */
export const ACTIVE_RULESET_LUA = `
local active = redis.call('GET', KEYS[1])
if not active then return {} end
return { active, redis.call('HGET', ARGV[1] .. active, 'checksum') }
`;

/**
 * Folding, step 1, for a run of slots served by one node: KEYS[1] a key of the run (it routes the
 * call; the others are named from ARGV, all on this node); ARGV[1] key prefix, then the slot
 * tags. Per slot: a fold already taken and not cleared is taken again as it is (its owner may
 * have died); otherwise the pending counts, the funnel's (`fq`) and measurement's (`mq`), become
 * the slot's fold under the next generation.
 * Returns, per slot that has a fold, { index of its tag in ARGV (from 2), generation, the slot's
 * marker ('' when none), the fold (flat field, value pairs, without the generation) }.
 */
export const FOLD_TAKE_LUA = `#!lua flags=allow-cross-slot-keys
local prefix = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local t = '{' .. ARGV[i] .. '}'
  local ff, fq, sl = prefix .. 'ff:' .. t, prefix .. 'fq:' .. t, prefix .. 'sl:' .. t
  local mq = prefix .. 'mq:' .. t
  -- Most slots have nothing pending: one call tells.
  local gen = false
  if redis.call('EXISTS', fq, ff, mq) > 0 then
    if redis.call('EXISTS', ff) == 0 then
      if redis.call('EXISTS', fq) == 1 then redis.call('RENAME', fq, ff) end
      local m = redis.call('HGETALL', mq)
      for k = 1, #m, 2 do redis.call('HINCRBY', ff, m[k], m[k + 1]) end
      redis.call('DEL', mq)
      redis.call('HSET', ff, '#gen', redis.call('HINCRBY', sl, 'gen', 1))
    end
    gen = redis.call('HGET', ff, '#gen')
  end
  if gen then
    local fields = redis.call('HGETALL', ff)
    local flat = {}
    for k = 1, #fields, 2 do
      if fields[k] ~= '#gen' then
        flat[#flat + 1] = fields[k]
        flat[#flat + 1] = fields[k + 1]
      end
    end
    out[#out + 1] = { i, tonumber(gen), redis.call('HGET', sl, 'epoch') or '', flat }
  end
end
return out
`;

/**
 * Whose turn it is to fold in the background, and which part: KEYS fold:lease:{ms},
 * fold:cursor:{ms}; ARGV[1] how long the turn lasts (ms), ARGV[2] the number of parts. Returns
 * the part (0 .. parts-1) when the caller takes the turn, -1 when another instance has it, so
 * that a fleet folds one part at a time whatever its size.
 */
export const FOLD_TURN_LUA = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return -1 end
return (redis.call('INCR', KEYS[2]) - 1) % tonumber(ARGV[2])
`;

/**
 * Folding, step 2: adds folds to the global counts, each (slot, generation) once. KEYS fold:{ms}
 * (the last generation added per slot, a 32-bit big-endian number at byte 4 × slot: 64 KiB for
 * every slot, where a hash of 16,384 fields takes about a megabyte);
 * ARGV[1] key prefix, [2] how long the moves of a day are kept (ms), [3] how long delivery rows
 * and lift counts are kept (ms), then per fold: slot, generation, the number of changes, and per
 * change 4 strings: `s`, brand, stage, people; or `m`, brand, `<day>|<from>><to>`, moves (the day
 * as YYYY-MM-DD); or `d`, campaign, `<day><row field>`, amount; or `l`, campaign, `<arm>|<what>`,
 * amount. Returns the folds added.
 */
export const FOLD_APPLY_LUA = `
local prefix, ttl, keep = ARGV[1], ARGV[2], ARGV[3]
local added = 0
local i = 4
while i <= #ARGV do
  local slot, gen, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local first = i + 3
  i = first + 4 * n
  local at = 4 * tonumber(slot)
  local raw = redis.call('GETRANGE', KEYS[1], at, at + 3)
  local done = 0
  if #raw == 4 then done = struct.unpack('>I4', raw) end
  if gen > done then
    for c = first, i - 1, 4 do
      local brand, d = ARGV[c + 1], tonumber(ARGV[c + 3])
      if ARGV[c] == 's' then
        local key = prefix .. 'fn:{ms}:' .. brand
        local left = redis.call('HINCRBY', key, ARGV[c + 2], d)
        if left <= 0 then redis.call('HDEL', key, ARGV[c + 2]) end
      elseif ARGV[c] == 'd' then
        local key = prefix .. 'dl:{ms}:' .. brand .. ':' .. string.sub(ARGV[c + 2], 1, 10)
        redis.call('HINCRBY', key, string.sub(ARGV[c + 2], 11), d)
        redis.call('PEXPIRE', key, keep)
      elseif ARGV[c] == 'l' then
        local key = prefix .. 'lf:{ms}:' .. brand
        redis.call('HINCRBY', key, ARGV[c + 2], d)
        redis.call('PEXPIRE', key, keep)
      else
        local day, move = string.sub(ARGV[c + 2], 1, 10), string.sub(ARGV[c + 2], 12)
        local key = prefix .. 'fm:{ms}:' .. brand .. ':' .. day
        redis.call('HINCRBY', key, move, d)
        redis.call('PEXPIRE', key, ttl)
      end
    end
    redis.call('SETRANGE', KEYS[1], at, struct.pack('>I4', gen))
    added = added + 1
  end
end
return added
`;

/**
 * Folding, step 3: drops folds that were added. KEYS[1] a key of the run (routing, as
 * FOLD_TAKE_LUA); ARGV[1] key prefix, then slot tag, generation pairs. Returns the folds dropped.
 */
export const FOLD_CLEAR_LUA = `#!lua flags=allow-cross-slot-keys
local prefix = ARGV[1]
local dropped = 0
for i = 2, #ARGV, 2 do
  local ff = prefix .. 'ff:{' .. ARGV[i] .. '}'
  if redis.call('HGET', ff, '#gen') == ARGV[i + 1] then
    redis.call('DEL', ff)
    dropped = dropped + 1
  end
end
return dropped
`;

/**
 * A budget line's report and lease (budget.ts has the same rules in TypeScript, and the reasons).
 * KEYS[1] the line's today key, KEYS[2] its total key, KEYS[3 ..] other days the report names; all
 * under the campaign's hash tag. ARGV: [1] now (ms), [2] settle window (ms), [3] ring bucket (ms),
 * [4] how long the keys live after a change (ms), [5] ask, [6] daily amount (-1: none), [7] total
 * amount (-1: none), [8] days left of an even total (-1: none), [9] pace share in millionths, [10]
 * decisions, [11] overdraft, [12] the KEYS index of a lease given back (0: none), [13] when it was
 * granted, [14] units given back, [15] N deliveries, then N triples (KEYS index, units, KEYS index
 * of the day before whose commitments it settles first, 0: none), then M and M pairs (hour,
 * opportunities). Hash fields: `s` spent, `n` decisions, `c:<second>` the commit
 * ring, `o:<hour>` opportunities. Returns the grant, the limit (0 none, 1 budget, 2 pace), today's
 * spent, committed and decisions, the total's, and today's limit (-1: none).
 */
export const BUDGET_LEASE_LUA = `
local now, settle, bucket, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local ask, daily, total, daysLeft = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local pace = tonumber(ARGV[9]) / 1000000
local oldest = math.floor((now - settle) / bucket)
-- Whole numbers as digits: Lua would write 1e+14 for large ones, which HINCRBY refuses.
local function int(n) return string.format('%d', n) end
local function ring(key)
  local h = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'c:' then out[#out + 1] = { tonumber(string.sub(h[i], 3)), tonumber(h[i + 1]), h[i] } end
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end
local function committed(key)
  local sum = 0
  for _, e in ipairs(ring(key)) do
    if e[1] < oldest or e[2] <= 0 then redis.call('HDEL', key, e[3]) else sum = sum + e[2] end
  end
  return sum
end
local function commit(key, units)
  if units > 0 then redis.call('HINCRBY', key, 'c:' .. int(math.floor(now / bucket)), int(units)) end
end
local function giveBack(key, at, units)
  local f = 'c:' .. int(math.floor(at / bucket))
  local have = tonumber(redis.call('HGET', key, f))
  if have == nil or units <= 0 then return end
  if units >= have then redis.call('HDEL', key, f) else redis.call('HINCRBY', key, f, int(-units)) end
end
local function deliver(key, units)
  redis.call('HINCRBY', key, 's', int(units))
  local left = units
  for _, e in ipairs(ring(key)) do
    if left <= 0 then break end
    local take = math.min(e[2], left)
    if take >= e[2] then redis.call('HDEL', key, e[3]) else redis.call('HINCRBY', key, e[3], int(-take)) end
    left = left - take
  end
end
local today, all = KEYS[1], KEYS[2]
local back = tonumber(ARGV[12])
if back > 0 then
  giveBack(KEYS[back], tonumber(ARGV[13]), tonumber(ARGV[14]))
  giveBack(all, tonumber(ARGV[13]), tonumber(ARGV[14]))
end
local overdraft = tonumber(ARGV[11])
commit(today, overdraft)
commit(all, overdraft)
local i = 16
for _ = 1, tonumber(ARGV[15]) do
  local units = tonumber(ARGV[i + 1])
  local previous = tonumber(ARGV[i + 2])
  if units > 0 then
    local rest = units
    if previous > 0 then
      local take = math.min(rest, committed(KEYS[previous]))
      if take > 0 then deliver(KEYS[previous], take) end
      rest = rest - take
    end
    if rest > 0 then deliver(KEYS[tonumber(ARGV[i])], rest) end
    deliver(all, units)
  end
  i = i + 3
end
local decisions = tonumber(ARGV[10])
if decisions > 0 then
  redis.call('HINCRBY', today, 'n', int(decisions))
  redis.call('HINCRBY', all, 'n', int(decisions))
end
for _ = 1, tonumber(ARGV[i]) do
  redis.call('HINCRBY', today, 'o:' .. ARGV[i + 1], ARGV[i + 2])
  i = i + 2
end
local daySpent = tonumber(redis.call('HGET', today, 's') or '0')
local allSpent = tonumber(redis.call('HGET', all, 's') or '0')
local dayUsed = daySpent + committed(today)
local allUsed = allSpent + committed(all)
local dayLimit = daily
if daysLeft >= 0 and total >= 0 then
  local share = math.max(0, math.floor((total - (allUsed - dayUsed)) / math.max(1, daysLeft)))
  if dayLimit < 0 or share < dayLimit then dayLimit = share end
end
local room, limit, unlimited = 0, 0, true
if dayLimit >= 0 then room, limit, unlimited = dayLimit - dayUsed, 1, false end
if total >= 0 and (unlimited or total - allUsed < room) then room, limit, unlimited = total - allUsed, 1, false end
if dayLimit >= 0 and pace < 1 then
  local paced = math.floor(dayLimit * math.max(0, pace)) - dayUsed
  if paced < room then room, limit = paced, 2 end
end
local units = ask
if not unlimited and math.floor(room) < units then units = math.floor(room) end
if units < 0 then units = 0 end
commit(today, units)
commit(all, units)
redis.call('PEXPIRE', today, ttl)
redis.call('PEXPIRE', all, ttl)
for k = 3, #KEYS do redis.call('PEXPIRE', KEYS[k], ttl) end
if units >= ask then limit = 0 end
return { units, limit, daySpent, dayUsed - daySpent + units, tonumber(redis.call('HGET', today, 'n') or '0'),
  allSpent, allUsed - allSpent + units, tonumber(redis.call('HGET', all, 'n') or '0'), dayLimit }
`;

/** The hashes of KEYS (a budget line's days and total), each as HGETALL answers it. */
export const BUDGET_READ_LUA = `
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
`;
