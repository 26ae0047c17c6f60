-- Shared by the scripts that keep presence sequences and pending leaves, and by those that
-- remove a node's registrations (reap, resync, deregister). Key layout (T = the hash tag of a
-- bucket, {P:b}; n = node id, a = app id, c = channel, u = user id; the names are made in
-- src/keys.rs and passed in KEYS, except by the scripts that remove a node's registrations,
-- which find them in the node's records and still build them here from T):
--   T:epoch                 STR   names this incarnation of the bucket's state; a new value means Redis lost its data
--   {P}:nodes               SET   registered node ids
--   {P}:hb:n                STR   heartbeat, expires after node_ttl
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

-- Move the dead node's pending leaves that still stand (their token is still pending) to heir,
-- which confirms them; returns them as {entry, score ms}. The rest were cancelled or confirmed.
local function hand_over_leaves(T, dead, heir)
  local from = T .. ':node:' .. dead .. ':leaves'
  local to = T .. ':node:' .. heir .. ':leaves'
  local items = redis.call('ZRANGE', from, 0, -1, 'WITHSCORES')
  redis.call('DEL', from)
  local standing = {}
  for i = 1, #items, 2 do
    local entry, score = items[i], items[i + 1]
    local kind, token, a, rest = string.match(entry, '^([vd])\n([^\n]*)\n([^\n]*)\n(.*)$')
    if kind then
      local key
      if kind == 'v' then
        key = T .. ':vac:' .. a .. ':' .. rest
      else
        local c, u = string.match(rest, '^([^\n]*)\n(.*)$')
        if c then key = T .. ':gone:' .. a .. ':' .. c .. ':' .. u end
      end
      if key and redis.call('GET', key) == token then
        redis.call('ZADD', to, score, entry)
        table.insert(standing, {entry, score})
      end
    end
  end
  if #standing > 0 then redis.call('PEXPIRE', to, LEAVE_TTL_MS) end
  return standing
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

-- Returns the members that vanished ({a, c, u, info, seq}) and the channels left empty ({a, c}).
local function drop_node(T, n)
  local removed, vacated = {}, {}
  local nk = T .. ':node:' .. n
  for _, a in ipairs(redis.call('SMEMBERS', nk .. ':apps')) do
    redis.call('HDEL', T .. ':conns:' .. a, n)
  end
  redis.call('DEL', nk .. ':apps')
  for _, ac in ipairs(redis.call('SMEMBERS', nk .. ':chans')) do
    local a, c = string.match(ac, '^([^\n]*)\n(.*)$')
    local ck = T .. ':chan:' .. a .. ':' .. c
    local v = tonumber(redis.call('HGET', ck, n) or '0')
    redis.call('HDEL', ck, n)
    if v > 0 then
      local t = redis.call('HINCRBY', T .. ':chans:' .. a, c, -v)
      if t <= 0 then
        redis.call('HDEL', T .. ':chans:' .. a, c)
        table.insert(vacated, {a, c})
      end
    end
  end
  redis.call('DEL', nk .. ':chans')
  for _, acu in ipairs(redis.call('SMEMBERS', nk .. ':pres')) do
    local a, c, u = string.match(acu, '^([^\n]*)\n([^\n]*)\n(.*)$')
    local base = a .. ':' .. c
    local pm, pt, pc = T .. ':pm:' .. base, T .. ':pt:' .. base, T .. ':pc:' .. base
    local v = tonumber(redis.call('HGET', pc, u .. '\n' .. n) or '0')
    redis.call('HDEL', pc, u .. '\n' .. n)
    redis.call('DEL', T .. ':ps:' .. base .. ':' .. n)
    if v > 0 then
      local t = redis.call('HINCRBY', pt, u, -v)
      if t <= 0 then
        redis.call('HDEL', pt, u)
        local info = redis.call('HGET', pm, u) or 'null'
        redis.call('HDEL', pm, u)
        table.insert(removed, {a, c, u, info, next_seq(T .. ':pseq:' .. base)})
      end
    end
  end
  redis.call('DEL', nk .. ':pres')
  for _, r in ipairs(removed) do
    local base = r[1] .. ':' .. r[2]
    forget_seq_if_empty(T .. ':pm:' .. base, T .. ':pseq:' .. base)
  end
  return removed, vacated
end

-- Drops n's signed-in users; returns those now offline cluster-wide ({a, u}).
local function drop_node_users(T, n)
  local offline = {}
  local key = T .. ':node:' .. n .. ':users'
  for _, au in ipairs(redis.call('SMEMBERS', key)) do
    local a, u = string.match(au, '^([^\n]*)\n(.*)$')
    local uc, ut = T .. ':uc:' .. a, T .. ':ut:' .. a
    local v = tonumber(redis.call('HGET', uc, u .. '\n' .. n) or '0')
    redis.call('HDEL', uc, u .. '\n' .. n)
    if v > 0 and redis.call('HINCRBY', ut, u, -v) <= 0 then
      redis.call('HDEL', ut, u)
      table.insert(offline, {a, u})
    end
  end
  redis.call('DEL', key)
  return offline
end
