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
--   P:scc:a:c               STR   claim on the next subscription_count update: changes not yet published (expires)
--   P:node:n:users          SET   "a\nu" users n holds signed-in sockets of
--   P:ut:a                  HASH  user -> signed-in sockets, cluster-wide (present = online)
--   P:uc:a                  HASH  "u\nn" -> signed-in sockets of u on node n

-- How long a pending leave may wait for its confirmation: far beyond any leave delay, short
-- enough that a leave whose node died unconfirmed stops cancelling later returns.
local LEAVE_TTL_MS = 60000

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
