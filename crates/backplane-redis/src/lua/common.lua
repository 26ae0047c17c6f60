-- Shared by the scripts that remove a node's registrations (reap, resync).
-- Key layout (P = prefix, n = node id, a = app id, c = channel, u = user id):
--   P:epoch                 STR   names this incarnation of the state; a new value means Redis lost its data
--   P:nodes                 SET   registered node ids
--   P:hb:n                  STR   heartbeat, expires after node_ttl
--   P:node:n:apps           SET   apps n holds connections of
--   P:node:n:chans          SET   "a\nc" n holds subscriptions on
--   P:node:n:pres           SET   "a\nc\nu" presence members n holds sockets of
--   P:conns:a               HASH  node -> open connections
--   P:chans:a               HASH  channel -> subscriptions, cluster-wide
--   P:chan:a:c              HASH  node -> subscriptions on that node
--   P:pm:a:c                HASH  user -> user_info JSON (the members)
--   P:pt:a:c                HASH  user -> sockets, cluster-wide
--   P:pc:a:c                HASH  "u\nn" -> sockets of u on node n
--   P:ps:a:c:n              SET   "u\nsocket": the sockets node n holds on presence channel c
--   P:pseq:a:c              STR   presence sequence: bumped with every membership change; created
--                                 from the server clock (µs) and deleted with the last member, so
--                                 a recreated channel counts on from above any old value
--   P:vac:a:c               STR   token of a pending vacancy (the channel emptied; expires)
--   P:gone:a:c:u            STR   token of a pending departure (u's last socket left; expires)
--   P:node:n:leaves         ZSET  the pending leaves n must confirm, scored by when they happened
--                                 (server clock, ms): "v\ntoken\na\nc" (vacancy) or
--                                 "d\ntoken\na\nc\nu" (departure); written with the leave,
--                                 removed by confirm_leave, handed to n's reaper (expires)
--   P:scc:a:c               STR   claim on the next subscription_count update: changes not yet published (expires)
--   P:node:n:users          SET   "a\nu" users n holds signed-in sockets of
--   P:ut:a                  HASH  user -> signed-in sockets, cluster-wide (present = online)
--   P:uc:a                  HASH  "u\nn" -> signed-in sockets of u on node n

-- How long a pending leave may wait for its confirmation: far beyond any leave delay, short
-- enough that a leave whose node died unconfirmed stops cancelling later returns.
local LEAVE_TTL_MS = 60000

-- The entry of a pending leave in its node's P:node:n:leaves (u = nil for a vacancy).
local function leave_entry(token, a, c, u)
  if u then return 'd\n' .. token .. '\n' .. a .. '\n' .. c .. '\n' .. u end
  return 'v\n' .. token .. '\n' .. a .. '\n' .. c
end

-- Record that node n owes the confirmation of a pending leave, stamped with the server clock:
-- if n dies inside the delay, its reaper inherits the entry and confirms it (reap.lua). The set
-- expires with its newest entry's pending key, so a node that never confirms leaks nothing.
local function hold_leave(P, n, entry)
  local k = P .. ':node:' .. n .. ':leaves'
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. (now - LEAVE_TTL_MS))
  redis.call('ZADD', k, now, entry)
  redis.call('PEXPIRE', k, LEAVE_TTL_MS)
end

-- Move the dead node's pending leaves that still stand (their token is still pending) to heir,
-- which confirms them; returns them as {entry, score ms}. The rest were cancelled or confirmed.
local function hand_over_leaves(P, dead, heir)
  local from = P .. ':node:' .. dead .. ':leaves'
  local to = P .. ':node:' .. heir .. ':leaves'
  local items = redis.call('ZRANGE', from, 0, -1, 'WITHSCORES')
  redis.call('DEL', from)
  local standing = {}
  for i = 1, #items, 2 do
    local entry, score = items[i], items[i + 1]
    local kind, token, a, rest = string.match(entry, '^([vd])\n([^\n]*)\n([^\n]*)\n(.*)$')
    if kind then
      local key
      if kind == 'v' then
        key = P .. ':vac:' .. a .. ':' .. rest
      else
        local c, u = string.match(rest, '^([^\n]*)\n(.*)$')
        if c then key = P .. ':gone:' .. a .. ':' .. c .. ':' .. u end
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

-- The channel's presence sequence (base = "a:c"), created from the clock when missing.
local function current_seq(P, base)
  local k = P .. ':pseq:' .. base
  local v = redis.call('GET', k)
  if v then return tonumber(v) end
  local t = redis.call('TIME')
  v = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', k, v)
  return tonumber(v)
end

-- The next presence sequence of a channel: call once per membership change.
local function next_seq(P, base)
  current_seq(P, base)
  return redis.call('INCR', P .. ':pseq:' .. base)
end

-- A channel whose last member left forgets its sequence (no key outlives its channel).
local function forget_seq_if_empty(P, base)
  if redis.call('EXISTS', P .. ':pm:' .. base) == 0 then redis.call('DEL', P .. ':pseq:' .. base) end
end

-- Returns the members that vanished ({a, c, u, info, seq}) and the channels left empty ({a, c}).
local function drop_node(P, n)
  local removed, vacated = {}, {}
  local nk = P .. ':node:' .. n
  for _, a in ipairs(redis.call('SMEMBERS', nk .. ':apps')) do
    redis.call('HDEL', P .. ':conns:' .. a, n)
  end
  redis.call('DEL', nk .. ':apps')
  for _, ac in ipairs(redis.call('SMEMBERS', nk .. ':chans')) do
    local a, c = string.match(ac, '^([^\n]*)\n(.*)$')
    local ck = P .. ':chan:' .. a .. ':' .. c
    local v = tonumber(redis.call('HGET', ck, n) or '0')
    redis.call('HDEL', ck, n)
    if v > 0 then
      local t = redis.call('HINCRBY', P .. ':chans:' .. a, c, -v)
      if t <= 0 then
        redis.call('HDEL', P .. ':chans:' .. a, c)
        table.insert(vacated, {a, c})
      end
    end
  end
  redis.call('DEL', nk .. ':chans')
  for _, acu in ipairs(redis.call('SMEMBERS', nk .. ':pres')) do
    local a, c, u = string.match(acu, '^([^\n]*)\n([^\n]*)\n(.*)$')
    local base = a .. ':' .. c
    local pm, pt, pc = P .. ':pm:' .. base, P .. ':pt:' .. base, P .. ':pc:' .. base
    local v = tonumber(redis.call('HGET', pc, u .. '\n' .. n) or '0')
    redis.call('HDEL', pc, u .. '\n' .. n)
    redis.call('DEL', P .. ':ps:' .. base .. ':' .. n)
    if v > 0 then
      local t = redis.call('HINCRBY', pt, u, -v)
      if t <= 0 then
        redis.call('HDEL', pt, u)
        local info = redis.call('HGET', pm, u) or 'null'
        redis.call('HDEL', pm, u)
        table.insert(removed, {a, c, u, info, next_seq(P, base)})
      end
    end
  end
  redis.call('DEL', nk .. ':pres')
  for _, r in ipairs(removed) do forget_seq_if_empty(P, r[1] .. ':' .. r[2]) end
  return removed, vacated
end

-- Drops n's signed-in users; returns those now offline cluster-wide ({a, u}).
local function drop_node_users(P, n)
  local offline = {}
  local key = P .. ':node:' .. n .. ':users'
  for _, au in ipairs(redis.call('SMEMBERS', key)) do
    local a, u = string.match(au, '^([^\n]*)\n(.*)$')
    local uc, ut = P .. ':uc:' .. a, P .. ':ut:' .. a
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
