-- Shared by the scripts that keep presence sequences and pending leaves. Key layout (T = the
-- hash tag of a bucket, {P:b}; {P} the tag of the node registry; n = node id, a = app id,
-- c = channel, u = user id). Every name is made in src/keys.rs and passed in KEYS: no script
-- builds a key name, so Redis Cluster can route each script to the one slot it touches.
--   T:epoch                 STR   names this incarnation of the bucket's state; a new value means Redis lost its data
--   {P}:nodes               SET   registered node ids
--   {P}:hb:n                STR   heartbeat, expires after node_ttl
--   {P}:inc                 HASH  node -> its incarnation: minted when it registers while not registered
--   {P}:reaping             ZSET  "n\nincarnation" of the nodes being reaped, scored by when (ms)
--   T:node:n:inc            STR   the incarnation n last resynced this bucket under (a reap of an
--                                 older incarnation leaves the bucket alone)
--   T:node:n:apps           SET   apps n holds connections of
--   T:node:n:chans          SET   "a\nc" n holds subscriptions on
--   T:node:n:pres           SET   "a\nc\nu" presence members n holds sockets of
--   T:conns:a               HASH  node -> open connections
--   T:chans:a               HASH  channel -> subscriptions, cluster-wide
--   T:chan:a:c              HASH  node -> subscriptions on that node
--   T:pm:a:c                HASH  user -> user_info JSON (the members)
--   T:pt:a:c                HASH  user -> sockets, cluster-wide
--   T:pc:a:c                HASH  "u\nn" -> sockets of u on node n
--   T:ps:a:c:n              SET   "u\nsocket": the sockets node n holds on presence channel c
--   T:pseq:a:c              STR   presence sequence: bumped with every membership change; created
--                                 from the server clock (µs) and deleted with the last member, so
--                                 a recreated channel counts on from above any old value
--   T:vac:a:c               STR   token of a pending vacancy (the channel emptied; expires)
--   T:gone:a:c:u            STR   token of a pending departure (u's last socket left; expires)
--   T:node:n:leaves         ZSET  the pending leaves n must confirm, scored by when they happened
--                                 (server clock, ms): "v\ntoken\na\nc" (vacancy) or
--                                 "d\ntoken\na\nc\nu" (departure); written with the leave,
--                                 removed by confirm_leave, handed to n's reaper (expires)
--   T:scc:a:c               STR   claim on the next subscription_count update: changes not yet published (expires)
--   T:node:n:users          SET   "a\nu" users n holds signed-in sockets of
--   T:ut:a                  HASH  user -> signed-in sockets, cluster-wide (present = online)
--   T:uc:a                  HASH  "u\nn" -> signed-in sockets of u on node n
--   T:ev:a:c, T:log:a:c, T:logn:a:c, T:cache:a:c, T:cachemiss:a:c: the channel's pub/sub
--                                 channel, replay log and its counter, cached event, miss claim

-- How long a pending leave may wait for its confirmation: far beyond any leave delay, short
-- enough that a leave whose node died unconfirmed stops cancelling later returns.
local LEAVE_TTL_MS = 60000

-- The entry of a pending leave in its node's P:node:n:leaves (u = nil for a vacancy).
local function leave_entry(token, a, c, u)
  if u then return 'd\n' .. token .. '\n' .. a .. '\n' .. c .. '\n' .. u end
  return 'v\n' .. token .. '\n' .. a .. '\n' .. c
end

-- Record in `leaves` (a node's pending leaves) that it owes the confirmation of a pending
-- leave, stamped with the server clock: if the node dies inside the delay, its reaper inherits
-- the entry and confirms it (reap.lua). The set expires with its newest entry's pending key, so
-- a node that never confirms leaks nothing.
local function hold_leave(leaves, entry)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', leaves, '-inf', '(' .. (now - LEAVE_TTL_MS))
  redis.call('ZADD', leaves, now, entry)
  redis.call('PEXPIRE', leaves, LEAVE_TTL_MS)
end

-- The channel's presence sequence (its key `pseq`), created from the clock when missing.
local function current_seq(pseq)
  local v = redis.call('GET', pseq)
  if v then return tonumber(v) end
  local t = redis.call('TIME')
  v = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', pseq, v)
  return tonumber(v)
end

-- The next presence sequence of a channel: call once per membership change.
local function next_seq(pseq)
  current_seq(pseq)
  return redis.call('INCR', pseq)
end

-- A channel whose last member left (`pm`, its members) forgets its sequence (no key outlives
-- its channel).
local function forget_seq_if_empty(pm, pseq)
  if redis.call('EXISTS', pm) == 0 then redis.call('DEL', pseq) end
end
