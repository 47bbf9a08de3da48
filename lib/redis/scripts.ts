// The Lua scripts that make a queue's multi-step changes atomic on the server. A queue named N is the stream
// `mpthreads:{N}` (its items, one entry each, read through the consumer group `mpthreads`) and the hash
// `mpthreads:{N}:meta` (what the first opener chose: kind and maxsize). The braces keep both keys in one
// cluster slot.
//
// Counting with one counter only, changed in the same script as what it counts, so nothing can drift when a
// process dies between two commands: an entry gotten from a Queue is acknowledged and deleted in one step
// (TAKE), and a JoinableQueue entry when its task is done (DONE); an entry a consumer read and gives back stays
// where it is in the stream, marked idle for ages in the pending list (HAND_BACK), and the meta field `back`
// counts those until a FETCH claims them (first, oldest first). So at every moment
//   items on the server not yet gotten = XLEN - (entries in the pending list) + back
//   unfinished tasks of a JoinableQueue = XLEN
// (a pending entry is read ahead by a consumer, leased, delivered and about to be deleted, or given back).

export const kGroup = 'mpthreads';

export function streamKey(name: string): string {
  return `mpthreads:{${name}}`;
}

export function metaKey(name: string): string {
  return `mpthreads:{${name}}:meta`;
}

/**
 * KEYS: stream, meta. ARGV: maxsize ('' when the opener did not say), kind, visibilityTimeout ('' when the
 * opener did not say). Stores the queue's settings if it is new, makes sure its group exists, keeps the
 * shortest visibilityTimeout any opener asked for (`minvt`: every holder renews its leases well within it),
 * and returns { maxsize, kind, minvt }.
 */
export const OPEN = `
local stored = redis.call('HMGET', KEYS[2], 'maxsize', 'kind', 'minvt')
if not stored[1] then
  local maxsize = ARGV[1]
  if maxsize == '' then maxsize = '0' end
  redis.call('HSET', KEYS[2], 'maxsize', maxsize, 'kind', ARGV[2])
  stored = { maxsize, ARGV[2], false }
end
if ARGV[3] ~= '' and (not stored[3] or tonumber(ARGV[3]) < tonumber(stored[3])) then
  redis.call('HSET', KEYS[2], 'minvt', ARGV[3])
  stored[3] = ARGV[3]
end
redis.pcall('XGROUP', 'CREATE', KEYS[1], '${kGroup}', '0', 'MKSTREAM')
return { stored[1], stored[2], stored[3] or '' }
`;

/** How idle a given-back entry is made: no lease ever gets this old. */
export const kHandedBack = 2_147_483_647;

/** Lua: claims for ARGV[1] up to `want` entries idle at least `idle` ms, scanning on from XAUTOCLAIM's cursor. */
const claim = `
local function claim(key, want, idle, into)
  local cursor, got = '0-0', 0
  for _ = 1, 50 do
    local r = redis.call('XAUTOCLAIM', key, '${kGroup}', ARGV[1], idle, cursor, 'COUNT', math.max(want - got, 10))
    for _, e in ipairs(r[2]) do
      into[#into + 1] = e
      got = got + 1
    end
    cursor = r[1]
    if got >= want or cursor == '0-0' then break end
  end
  return got, cursor
end
`;

/**
 * KEYS: stream, meta. ARGV: consumer, count, orphan idle ms ('' for none), '1' when that idle is a lease's
 * visibilityTimeout (a JoinableQueue's: the queue's minvt, if shorter, is used instead, so that a consumer opened
 * before a shorter one was asked for claims expired leases as soon as the others do). Up to `count` entries for this
 * consumer, oldest first: entries given back (in place, so order holds), then, when none is left, entries idle
 * at least `orphan idle` ms in any consumer's pending list (a JoinableQueue's expired leases; what a consumer
 * killed outright had read ahead), then new ones. XAUTOCLAIM looks at no more than ten entries per one it may
 * claim, so the scan goes on from its cursor: live leases at the head of the list must not hide an expired
 * one behind them. Returns { claimed, new, given back still }.
 */
export const FETCH = `${claim}
local count = tonumber(ARGV[2])
local claimed = {}
local back = tonumber(redis.call('HGET', KEYS[2], 'back') or '0')
if back > 0 then
  local got, cursor = claim(KEYS[1], math.min(count, back), ${kHandedBack - 3_600_000}, claimed)
  if got > 0 then
    back = back - got
    redis.call('HINCRBY', KEYS[2], 'back', -got)
  elseif cursor == '0-0' then
    -- The counter says entries are given back and a whole scan found none: it drifted. Mend it, or orphans
    -- and expired leases would never be claimed again (they are looked for only once none is given back).
    back = 0
    redis.call('HSET', KEYS[2], 'back', 0)
  end
end
local idle = ARGV[3]
if idle ~= '' and ARGV[4] == '1' then
  local minvt = tonumber(redis.call('HGET', KEYS[2], 'minvt') or '')
  if minvt and minvt < tonumber(idle) then idle = tostring(minvt) end
end
if #claimed < count and back <= 0 and idle ~= '' then claim(KEYS[1], count - #claimed, idle, claimed) end
local fresh = {}
if #claimed < count then
  local r = redis.call('XREADGROUP', 'GROUP', '${kGroup}', ARGV[1], 'COUNT', count - #claimed, 'STREAMS', KEYS[1], '>')
  if r then fresh = r[1][2] end
end
return { claimed, fresh, back }
`;

/** Lua: items on the server not yet gotten (see the counting above). */
const size = `
local function size(stream, meta)
  local back = tonumber(redis.call('HGET', meta, 'back') or '0')
  return redis.call('XLEN', stream) - redis.call('XPENDING', stream, '${kGroup}')[1] + back
end
`;

/** The key of one producer's (a PutBuffer's) last landed put: `${streamKey(name)}:producer:${id}`. */
export function producerKey(stream: string, producer: string): string {
  return `${stream}:producer:${producer}`;
}

/** Seconds a producer's key outlives its last batch: a batch sent again later than that could land twice. */
const kProducerTtl = 3_600;

/**
 * KEYS: stream, meta, producer. ARGV: maxsize, then each item's put number and bytes, in put order. Adds as many
 * as there is room for, in order, and returns how many of the batch are on the server: a batch is sent again
 * when its answer was lost (the connection dropped), so the put numbers this producer landed already (its
 * key holds the last) are skipped and counted, not added twice. A producer's numbers only grow.
 */
export const PUT = `${size}
local last = tonumber(redis.call('GET', KEYS[3]) or '-1')
local n = (#ARGV - 1) / 2
local landed = 0
while landed < n and tonumber(ARGV[2 * landed + 2]) <= last do landed = landed + 1 end
local add = n - landed
local maxsize = tonumber(ARGV[1])
if maxsize > 0 then
  local room = maxsize - size(KEYS[1], KEYS[2])
  if room < add then add = room end
end
if add <= 0 then return landed end
for i = landed + 1, landed + add do redis.call('XADD', KEYS[1], '*', 'v', ARGV[2 * i + 1]) end
redis.call('SET', KEYS[3], ARGV[2 * (landed + add)], 'EX', ${kProducerTtl})
return landed + add
`;

/** KEYS: stream, meta. Items on the server not yet gotten. */
export const SIZE = `${size}
return size(KEYS[1], KEYS[2])
`;

/**
 * KEYS: stream. ARGV: ids of Queue entries delivered to gets. Acknowledges and deletes them: the stream is
 * trimmed below the oldest entry still pending anywhere (everything below it was delivered and acknowledged),
 * which costs the server a tenth of an XDEL per entry; only ids at or above it (another consumer holds an
 * older one) are deleted one by one.
 */
export const TAKE = `
redis.call('XACK', KEYS[1], '${kGroup}', unpack(ARGV))
local p = redis.call('XPENDING', KEYS[1], '${kGroup}')
local function parse(id)
  local m, s = string.match(id, '(%d+)-(%d+)')
  return tonumber(m), tonumber(s)
end
local minms, minseq
if p[1] > 0 then
  minms, minseq = parse(p[2])
else
  minms, minseq = 0, 0
  for i = 1, #ARGV do
    local m, s = parse(ARGV[i])
    if m > minms or (m == minms and s >= minseq) then minms, minseq = m, s + 1 end
  end
end
redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', minms, minseq))
local left = {}
for i = 1, #ARGV do
  local m, s = parse(ARGV[i])
  if m > minms or (m == minms and s >= minseq) then left[#left + 1] = ARGV[i] end
end
if #left > 0 then redis.call('XDEL', KEYS[1], unpack(left)) end
return #left
`;

/**
 * KEYS: stream, meta. ARGV: consumer, entry ids. A task is done: acknowledges each entry this consumer still
 * holds and deletes it (one whose lease passed to another consumer, its own having expired, is that consumer's
 * to finish: XACK alone would take it from under it, and from `back` if it gave it back). Returns how many.
 */
export const DONE = `
local n, back = 0, 0
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], '${kGroup}', ARGV[i], ARGV[i], 1, ARGV[1])
  if #p > 0 then
    if p[1][3] >= ${kHandedBack - 3_600_000} then back = back + 1 end
    redis.call('XACK', KEYS[1], '${kGroup}', ARGV[i])
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
if back > 0 then redis.call('HINCRBY', KEYS[2], 'back', -back) end
return n
`;

/**
 * KEYS: stream, meta. ARGV: consumer, entry ids. Renews this consumer's leases (resets how long each entry it
 * still holds has been idle). Returns the queue's minvt ('' if none), for the renewal pace.
 */
export const RENEW = `
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], '${kGroup}', ARGV[i], ARGV[i], 1, ARGV[1])
  if #p > 0 then redis.call('XCLAIM', KEYS[1], '${kGroup}', ARGV[1], 0, ARGV[i], 'JUSTID') end
end
return redis.call('HGET', KEYS[2], 'minvt') or ''
`;

/**
 * KEYS: stream, meta. ARGV: consumer, entry ids. Gives back entries this consumer read and did not deliver (or
 * leased and will not finish), in place: each still its own is marked idle for ages (any FETCH claims it
 * first), and counted in `back`. Returns how many.
 */
export const HAND_BACK = `
local n = 0
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], '${kGroup}', ARGV[i], ARGV[i], 1, ARGV[1])
  -- (Given back already, by a RECOVER or a hand-back sent twice, it is not counted again.)
  if #p > 0 and p[1][3] < ${kHandedBack - 3_600_000} then
    redis.call('XCLAIM', KEYS[1], '${kGroup}', ARGV[1], 0, ARGV[i], 'IDLE', ${kHandedBack}, 'JUSTID')
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'back', n) end
return n
`;

/**
 * KEYS: stream, meta. ARGV: consumer, then every id its thread knows it holds (read ahead, leased, delivered
 * and not yet acknowledged). A read or fetch whose answer was lost with its connection may have taken entries
 * that the thread never saw: each entry of this consumer's pending list that the thread does not know, and
 * that is not given back already, is given back as HAND_BACK does (in place, so that the next FETCH claims it
 * first and order holds). Returns how many.
 */
export const RECOVER = `
local known = {}
for i = 2, #ARGV do known[ARGV[i]] = true end
local n, start = 0, '-'
while true do
  local p = redis.call('XPENDING', KEYS[1], '${kGroup}', start, '+', 1000, ARGV[1])
  for _, e in ipairs(p) do
    if not known[e[1]] and e[3] < ${kHandedBack - 3_600_000} then
      redis.call('XCLAIM', KEYS[1], '${kGroup}', ARGV[1], 0, e[1], 'IDLE', ${kHandedBack}, 'JUSTID')
      n = n + 1
    end
  end
  if #p < 1000 then break end
  start = '(' .. p[#p][1]
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'back', n) end
return n
`;

/**
 * KEYS: stream, then the producer key if it may go (nothing of it can be sent again). ARGV: consumer. Removes
 * the producer's key (first: XPENDING fails if the group is gone), and the consumer from the group if it holds
 * nothing.
 */
export const RETIRE = `
if KEYS[2] then redis.call('DEL', KEYS[2]) end
local p = redis.call('XPENDING', KEYS[1], '${kGroup}', '-', '+', 1, ARGV[1])
if #p == 0 then redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], '${kGroup}', ARGV[1]) end
return #p
`;
