// The Lua scripts that make a queue's multi-step changes atomic on the server. A queue named N is the stream
// `mpthreads:{N}` (its items, one entry each, read through the consumer group `mpthreads`) and the hash
// `mpthreads:{N}:meta` (what the first opener chose: kind and maxsize). The braces keep both keys in one
// cluster slot.
//
// Counting without counters: an item gotten from a Queue is deleted from the stream together with its
// acknowledgement, and a JoinableQueue item when its task is done. So at every moment
//   items on the server not yet gotten = XLEN - (entries in the pending list)
//   unfinished tasks of a JoinableQueue = XLEN
// and nothing can drift when a process dies between two commands.

export const kGroup = 'mpthreads';

export function streamKey(name: string): string {
  return `mpthreads:{${name}}`;
}

export function metaKey(name: string): string {
  return `mpthreads:{${name}}:meta`;
}

/**
 * KEYS: stream, meta. ARGV: maxsize ('' when the opener did not say), kind. Stores the queue's settings if it
 * is new, makes sure its group exists, and returns the settings stored: { maxsize, kind }.
 */
export const OPEN = `
local stored = redis.call('HMGET', KEYS[2], 'maxsize', 'kind')
if not stored[1] then
  local maxsize = ARGV[1]
  if maxsize == '' then maxsize = '0' end
  redis.call('HSET', KEYS[2], 'maxsize', maxsize, 'kind', ARGV[2])
  stored = { maxsize, ARGV[2] }
end
redis.pcall('XGROUP', 'CREATE', KEYS[1], '${kGroup}', '0', 'MKSTREAM')
return stored
`;

/**
 * KEYS: stream. ARGV: maxsize, then the items in put order. Adds as many as there is room for, in order, and
 * returns how many.
 */
export const PUT = `
local n = #ARGV - 1
local maxsize = tonumber(ARGV[1])
if maxsize > 0 then
  local room = maxsize - redis.call('XLEN', KEYS[1]) + redis.call('XPENDING', KEYS[1], '${kGroup}')[1]
  if room < n then n = room end
end
for i = 1, n do redis.call('XADD', KEYS[1], '*', 'v', ARGV[i + 1]) end
if n < 0 then return 0 end
return n
`;

/** KEYS: stream. Items on the server not yet gotten. */
export const SIZE = `
return redis.call('XLEN', KEYS[1]) - redis.call('XPENDING', KEYS[1], '${kGroup}')[1]
`;

/**
 * KEYS: stream. ARGV: entry ids. A task is done: acknowledges each entry this consumer still holds and
 * deletes it (one whose lease passed to another consumer is that consumer's to finish). Returns how many.
 */
export const DONE = `
local n = 0
for i = 1, #ARGV do
  if redis.call('XACK', KEYS[1], '${kGroup}', ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
`;

/**
 * KEYS: stream. ARGV: consumer, idle ms, entry ids. For each entry this consumer still holds, sets how long it
 * has been idle: 0 renews a lease, a long time hands it back (the next sweep of any consumer takes it).
 */
export const TOUCH = `
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], '${kGroup}', ARGV[i], ARGV[i], 1, ARGV[1])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], '${kGroup}', ARGV[1], 0, ARGV[i], 'IDLE', ARGV[2], 'JUSTID')
    n = n + 1
  end
end
return n
`;

/**
 * KEYS: stream. ARGV: (id, item) pairs. Gives back Queue items read but never delivered: each goes to the
 * end of the stream again (its old entry acknowledged and deleted). Returns how many.
 */
export const GIVE_BACK = `
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], '${kGroup}', ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('XADD', KEYS[1], '*', 'v', ARGV[i + 1])
    n = n + 1
  end
end
return n
`;

/** KEYS: stream. ARGV: consumer. Removes the consumer from the group if it holds nothing. */
export const RETIRE = `
local p = redis.call('XPENDING', KEYS[1], '${kGroup}', '-', '+', 1, ARGV[1])
if #p == 0 then redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], '${kGroup}', ARGV[1]) end
return #p
`;
