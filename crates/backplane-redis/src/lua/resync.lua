-- ARGV: the bucket's tag T, the registered nodes' key, this node's heartbeat key, node id,
-- heartbeat ttl ms, the epoch this node last registered under ('' if none), a fresh epoch to
-- use if Redis has none, then the node's snapshot:
--   nconn, (app, count)*, nsubs, (app, channel, count)*,
--   npres, (app, channel, user, info, nsockets, socket*)*, nusers, (app, user, signed-in sockets)*
-- Replaces the node's registrations with the snapshot. Returns {added, removed}: members that
-- appeared ({app, channel, user, info, seq}) or vanished ({app, channel, user, seq})
-- cluster-wide, each with the presence sequence of that change.
-- The epoch names the current incarnation of the cluster state; if it differs from the one this
-- node registered under, Redis lost its data since (`reset`): the other nodes may not have
-- re-registered yet. Every member re-registered then looks added; receiving nodes drop the
-- announcements that tell their sockets nothing new. Returns {added, removed, epoch, reset,
-- online, offline, occupied, vacated, leaves}: online and offline are signed-in users
-- ({app, user}) that came online or went offline cluster-wide as a result; occupied and vacated
-- the channels ({app, channel}) this took from no subscriber to some or back (a write whose
-- outcome the node never learnt, e.g. a timed-out decrement, is settled here); leaves the
-- node's pending leaves that still stand ({entry, ms}, see hand_over_leaves), so a leave that
-- took effect after the node gave up on it (or before the node restarted) is still confirmed.
local T, nodes, hb, n, ttl, known, proposal = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local epoch = redis.call('GET', T .. ':epoch')
if not epoch then
  epoch = proposal
  redis.call('SET', T .. ':epoch', epoch)
end
local reset = known ~= '' and known ~= epoch
local dropped, emptied = drop_node(T, n)
local still_empty = {}
for _, ac in ipairs(emptied) do still_empty[ac[1] .. '\n' .. ac[2]] = true end
local gone = {}
for _, r in ipairs(dropped) do gone[r[1] .. '\n' .. r[2] .. '\n' .. r[3]] = true end
local nk = T .. ':node:' .. n
local i = 8
local nconn = tonumber(ARGV[i]); i = i + 1
for _ = 1, nconn do
  local a, count = ARGV[i], tonumber(ARGV[i + 1]); i = i + 2
  redis.call('HINCRBY', T .. ':conns:' .. a, n, count)
  redis.call('SADD', nk .. ':apps', a)
end
local occupied = {}
local nsubs = tonumber(ARGV[i]); i = i + 1
for _ = 1, nsubs do
  local a, c, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]); i = i + 3
  redis.call('HINCRBY', T .. ':chan:' .. a .. ':' .. c, n, count)
  local t = redis.call('HINCRBY', T .. ':chans:' .. a, c, count)
  redis.call('SADD', nk .. ':chans', a .. '\n' .. c)
  local ac = a .. '\n' .. c
  if still_empty[ac] then
    still_empty[ac] = nil
  elseif t == count and count > 0 and redis.call('DEL', T .. ':vac:' .. a .. ':' .. c) == 0 then
    table.insert(occupied, {a, c})
  end
end
local vacated = {}
for _, ac in ipairs(emptied) do
  if still_empty[ac[1] .. '\n' .. ac[2]] then table.insert(vacated, ac) end
end
local added = {}
local npres = tonumber(ARGV[i]); i = i + 1
for _ = 1, npres do
  local a, c, u, info, nsockets = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]); i = i + 5
  local base = a .. ':' .. c
  local pm = T .. ':pm:' .. base
  local ps = T .. ':ps:' .. base .. ':' .. n
  local key = a .. '\n' .. c .. '\n' .. u
  local count = 0
  for _ = 1, nsockets do
    count = count + redis.call('SADD', ps, u .. '\n' .. ARGV[i]); i = i + 1
  end
  if redis.call('HEXISTS', pm, u) == 0 then
    redis.call('HSET', pm, u, info)
    if gone[key] then gone[key] = nil else table.insert(added, {a, c, u, info, next_seq(T .. ':pseq:' .. base)}) end
  end
  redis.call('HINCRBY', T .. ':pt:' .. base, u, count)
  redis.call('HINCRBY', T .. ':pc:' .. base, u .. '\n' .. n, count)
  redis.call('SADD', nk .. ':pres', key)
end
local offline_users = {}
for _, au in ipairs(drop_node_users(T, n)) do offline_users[au[1] .. '\n' .. au[2]] = au end
local online = {}
local nusers = tonumber(ARGV[i]); i = i + 1
for _ = 1, nusers do
  local a, u, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]); i = i + 3
  local key = a .. '\n' .. u
  if redis.call('HINCRBY', T .. ':ut:' .. a, u, count) == count then
    if offline_users[key] then offline_users[key] = nil else table.insert(online, {a, u}) end
  end
  redis.call('HINCRBY', T .. ':uc:' .. a, u .. '\n' .. n, count)
  redis.call('SADD', nk .. ':users', key)
end
local offline = {}
for _, au in pairs(offline_users) do table.insert(offline, au) end
local removed = {}
for _, r in ipairs(dropped) do
  if gone[r[1] .. '\n' .. r[2] .. '\n' .. r[3]] then table.insert(removed, {r[1], r[2], r[3], r[5]}) end
end
redis.call('SADD', nodes, n)
redis.call('SET', hb, '1', 'PX', ttl)
local leaves = hand_over_leaves(T, n, n)
return {added, removed, epoch, reset and 1 or 0, online, offline, occupied, vacated, leaves}
