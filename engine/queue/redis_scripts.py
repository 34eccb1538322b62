"""The Lua scripts of the Redis Streams queue (engine.queue.redis_streams).

Each runs atomically in Redis: that is what lets two engine processes lease one
destination at the same moment without both taking its head. Keys are built inside
the scripts from the prefix ARGV[1] ("{conduit}"); the braces make every key of one
prefix hash to one slot, so the scripts are also valid on a Redis Cluster.

Keys of a prefix P:
- P:s:<destination>    the stream of entries (fields i: entry id, m: message id,
                       o: output id or "", t: queued at, k: the message's patient
                       pseudonym or "", the key of FIFO per key), consumer group "conduit",
                       one consumer per engine owner plus FREE for released entries;
- P:ix                 entry id -> "<destination>\\x1f<stream id>" for every entry in a
                       stream (finds an entry by id; an id there is never added twice);
- P:try:<destination>  entry id -> JSON [attempts, due at, last error], entries tried;
- P:dead:<destination> sorted set of dead letters, JSON [id, message id, output id,
                       attempts, error], scored by entry id (queue order);
- P:dests              every destination with a stream.
"""

from __future__ import annotations

from engine.queue.base import BY_KEY_WINDOW

GROUP = "conduit"
FREE = "~released"  # the consumer holding released entries: anyone may take them

# ARGV: P, destination, owner, limit, grace ms, FREE, n, n x (id, message, output, at,
# key), h, h x held stream ids, d, d x done stream ids, live owners...
# Done: this owner's entries whose confirmation or dead letter is committed and on its
# way to Redis (LEASE_BY_KEY passes them by: their key's next entry may go).
# Both leases first publish the outbox rows given (an id already in P:ix is skipped: a
# re-publish adds nothing). Each returns {entries, reclaimed}: entries {stream id, id,
# message, output, at, try JSON or ""}; reclaimed {owner, n...}.
_PUBLISH = """
local P, dest, me = ARGV[1], ARGV[2], ARGV[3]
local limit, grace, free = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local G = '""" + GROUP + """'
local s, ix, try = P .. ':s:' .. dest, P .. ':ix', P .. ':try:' .. dest
local n = 7
local rows = tonumber(ARGV[n])
n = n + 1
if rows > 0 and redis.call('EXISTS', s) == 0 then
  redis.call('XGROUP', 'CREATE', s, G, '0', 'MKSTREAM')
  redis.call('SADD', P .. ':dests', dest)
end
for _ = 1, rows do
  local id = ARGV[n]
  if redis.call('HEXISTS', ix, id) == 0 then
    local sid = redis.call('XADD', s, '*', 'i', id, 'm', ARGV[n + 1], 'o', ARGV[n + 2],
                           't', ARGV[n + 3], 'k', ARGV[n + 4])
    redis.call('HSET', ix, id, dest .. '\\31' .. sid)
  end
  n = n + 5
end
local nheld = tonumber(ARGV[n])
n = n + 1
local held = {}
for i = n, n + nheld - 1 do held[ARGV[i]] = true end
n = n + nheld
local ndone = tonumber(ARGV[n])
n = n + 1
local done = {}
for i = n, n + ndone - 1 do done[ARGV[i]] = true end
local live = {}
for i = n + ndone, #ARGV do live[ARGV[i]] = true end
if redis.call('EXISTS', s) == 0 then return {{}, {}} end
"""

# The entries' fields as returned, with their retry state; the reclaimed counts.
_RETURN = """
local out, ids = {}, {}
for _, e in ipairs(got) do
  local f = {}
  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
  out[#out + 1] = {e[1], f['i'], f['m'], f['o'], f['t'], ''}
  ids[#ids + 1] = f['i']
end
if #ids > 0 and redis.call('EXISTS', try) == 1 then
  local tried = redis.call('HMGET', try, unpack(ids))
  for i, state in ipairs(tried) do
    if state then out[i][6] = state end
  end
end
local rec = {}
for name, count in pairs(reclaimed) do
  if count > 0 then
    rec[#rec + 1] = name
    rec[#rec + 1] = count
  end
end
return {out, rec}
"""

# FIFO per destination: nothing while another owner that is live (in the list, or
# active within the grace) holds entries; else up to `limit` from the head: the entries
# of dead owners, released ones and this owner's own not handed out (a lease whose
# commit failed), in stream order, then new ones.
LEASE = _PUBLISH + """
local takeable, reclaimed, pending = {}, {}, 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', s, G)) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  local name = f['name']
  if name == me or name == free then
    takeable[name] = true
    pending = pending + f['pending']
  elseif live[name] or f['idle'] < grace then
    if f['pending'] > 0 then return {{}, {}} end
  elseif f['pending'] > 0 then
    takeable[name] = true
    reclaimed[name] = 0
    pending = pending + f['pending']
  else
    redis.call('XGROUP', 'DELCONSUMER', s, G, name)
  end
end

local ids = {}
if pending > 0 then
  for _, p in ipairs(redis.call('XPENDING', s, G, '-', '+', pending)) do
    if #ids >= limit then break end
    local sid, who = p[1], p[2]
    if takeable[who] and not (who == me and held[sid]) then
      ids[#ids + 1] = sid
      if reclaimed[who] then reclaimed[who] = reclaimed[who] + 1 end
    end
  end
end
local got = {}
if #ids > 0 then got = redis.call('XCLAIM', s, G, me, 0, unpack(ids)) end
if #got < limit then
  local r = redis.call('XREADGROUP', 'GROUP', G, me, 'COUNT', limit - #got, 'STREAMS', s, '>')
  if r then
    for _, e in ipairs(r[1][2]) do got[#got + 1] = e end
  end
end
""" + _RETURN

# FIFO per key (engine.queue.by_key): walks the stream from its head, at most
# BY_KEY_WINDOW entries, reading each chunk's holders from the pending list; the first
# entry of each key (field k) is taken if it is new, released, a dead owner's or this
# owner's own not handed out; one held by a live owner (this one's handed out included)
# holds back its key only; a done one (its outcome committed) is passed by. New entries
# up to the last one taken are first read into the released consumer, in order (a group
# hands out new entries only from its head); the chosen ones are then claimed.
LEASE_BY_KEY = _PUBLISH + """
local status, reclaimed = {}, {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', s, G)) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  local name = f['name']
  if name == me or name == free then
    status[name] = name
  elseif live[name] or f['idle'] < grace then
    status[name] = 'live'
  elseif f['pending'] > 0 then
    status[name] = 'dead'
    reclaimed[name] = 0
  else
    redis.call('XGROUP', 'DELCONSUMER', s, G, name)
  end
end

local window = """ + str(BY_KEY_WINDOW) + """
local seen, picks, scanned, fresh, read_new, start = {}, {}, 0, 0, 0, '-'
while #picks < limit and scanned < window do
  local chunk = redis.call('XRANGE', s, start, '+', 'COUNT', math.min(256, window - scanned))
  if #chunk == 0 then break end
  local holder = {}
  for _, p in ipairs(redis.call('XPENDING', s, G, chunk[1][1], chunk[#chunk][1], #chunk)) do
    holder[p[1]] = p[2]
  end
  for _, e in ipairs(chunk) do
    scanned = scanned + 1
    local sid, who = e[1], holder[e[1]]
    if not who then fresh = fresh + 1 end
    local key = ''
    for i = 1, #e[2], 2 do
      if e[2][i] == 'k' then key = e[2][i + 1] end
    end
    if done[sid] then  -- passed by: its outcome is on its way
    elseif not seen[key] then
      seen[key] = true
      local take = not who or who == free or status[who] == 'dead'
      if who == me then take = not held[sid] end
      if take then
        picks[#picks + 1] = e
        if not who then read_new = fresh end
        if who and reclaimed[who] then reclaimed[who] = reclaimed[who] + 1 end
        if #picks >= limit then break end
      end
    end
  end
  start = '(' .. chunk[#chunk][1]
end
if read_new > 0 then
  redis.call('XREADGROUP', 'GROUP', G, free, 'COUNT', read_new, 'STREAMS', s, '>')
end
if #picks > 0 then
  local claim = {'XCLAIM', s, G, me, 0}
  for _, e in ipairs(picks) do claim[#claim + 1] = e[1] end
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
local got = picks
""" + _RETURN

# ARGV: P, FREE, then outcomes, each an op and its arguments, applied in order:
#   a id                  ack: remove the entry, whoever holds it
#   r id owner tryjson    retry later: record attempts and due time, if owner holds it
#   d id owner deadjson   dead letter: move the entry to P:dead, if owner holds it
#   l destination owner   release: give owner's entries (every owner's if "") of the
#                         destination (every one if "") to FREE, in place
#   z destination n m...  forget n dead letters (replayed or discarded)
# Every op is idempotent: a batch sent again after a lost reply changes nothing more.
OUTCOMES = """
local P, free = ARGV[1], ARGV[2]
local G = '""" + GROUP + """'
local ix = P .. ':ix'

local function where(id)
  local v = redis.call('HGET', ix, id)
  if not v then return nil end
  local cut = string.find(v, '\\31', 1, true)
  return string.sub(v, 1, cut - 1), string.sub(v, cut + 1)
end

local function holder(s, sid)
  local p = redis.call('XPENDING', s, G, sid, sid, 1)
  if p[1] then return p[1][2] end
  return nil
end

local function remove(dest, s, sid, id)
  redis.call('XACK', s, G, sid)
  redis.call('XDEL', s, sid)
  redis.call('HDEL', ix, id)
  redis.call('HDEL', P .. ':try:' .. dest, id)
end

local function give_back(s, owner)
  if redis.call('EXISTS', s) == 0 then return end
  local total = redis.call('XPENDING', s, G)[1]
  if total == 0 then return end
  local ids = {}
  for _, p in ipairs(redis.call('XPENDING', s, G, '-', '+', total)) do
    if p[2] ~= free and (owner == '' or p[2] == owner) then ids[#ids + 1] = p[1] end
  end
  for i = 1, #ids, 500 do
    local args = {'XCLAIM', s, G, free, 0}
    for j = i, math.min(i + 499, #ids) do args[#args + 1] = ids[j] end
    args[#args + 1] = 'JUSTID'
    redis.call(unpack(args))
  end
end

-- A run of acks (the usual batch) costs a few calls per destination, not five per entry.
local function ack_run(first)
  local ids = {}
  local n = first
  while ARGV[n] == 'a' and #ids < 1000 do  -- unpack's stack is limited
    ids[#ids + 1] = ARGV[n + 1]
    n = n + 2
  end
  local places = redis.call('HMGET', ix, unpack(ids))
  local by_dest = {}
  for i, v in ipairs(places) do
    if v then
      local cut = string.find(v, '\\31', 1, true)
      local dest = string.sub(v, 1, cut - 1)
      local d = by_dest[dest]
      if not d then
        d = {sids = {}, ids = {}}
        by_dest[dest] = d
      end
      d.sids[#d.sids + 1] = string.sub(v, cut + 1)
      d.ids[#d.ids + 1] = ids[i]
    end
  end
  for dest, d in pairs(by_dest) do
    local s = P .. ':s:' .. dest
    redis.call('XACK', s, G, unpack(d.sids))
    redis.call('XDEL', s, unpack(d.sids))
    redis.call('HDEL', ix, unpack(d.ids))
    redis.call('HDEL', P .. ':try:' .. dest, unpack(d.ids))
  end
  return n
end

local n = 3
while n <= #ARGV do
  local op = ARGV[n]
  if op == 'a' then
    n = ack_run(n)
  elseif op == 'r' or op == 'd' then
    local id, owner = ARGV[n + 1], ARGV[n + 2]
    local dest, sid = where(id)
    if dest then
      local s = P .. ':s:' .. dest
      if holder(s, sid) == owner then
        if op == 'r' then
          redis.call('HSET', P .. ':try:' .. dest, id, ARGV[n + 3])
        else
          redis.call('ZADD', P .. ':dead:' .. dest, tonumber(id), ARGV[n + 3])
          remove(dest, s, sid, id)
        end
      end
    end
    n = n + 4
  elseif op == 'l' then
    local dests = {ARGV[n + 1]}
    if ARGV[n + 1] == '' then dests = redis.call('SMEMBERS', P .. ':dests') end
    for _, dest in ipairs(dests) do give_back(P .. ':s:' .. dest, ARGV[n + 2]) end
    n = n + 3
  elseif op == 'z' then
    local count = tonumber(ARGV[n + 2])
    local key = P .. ':dead:' .. ARGV[n + 1]
    for i = n + 3, n + 2 + count do redis.call('ZREM', key, ARGV[i]) end
    n = n + 3 + count
  else
    return redis.error_reply('unknown queue outcome ' .. op)
  end
end
return 1
"""
