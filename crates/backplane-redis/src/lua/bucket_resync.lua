-- Replaces what this node registered in one bucket with its snapshot of that bucket.
-- KEYS and ARGV heads: see node_records.lua (KEYS[8] = this node's own leaves). ARGV after the
-- head: the epoch this node last saw in the bucket ('' if none), a fresh epoch to use if the
-- bucket has none, the records as read (node_records.lua), then the snapshot:
--   nconn, (app, count)*, nsubs, (app, channel, count)*,
--   npres, (app, channel, user, info, nsockets, socket*)*, nusers, (app, user, signed-in sockets)*
-- with their keys between the records' keys and the leaves' (see node_records.lua): per app
-- `conns`; per subscription `chan`, `chans`, `vac`; per member `pm`, `ps` (this node's
-- sockets), `pt`, `pc`, `pseq`; per user `ut`, `uc`.
-- Returns {'stale'} if the records changed since they were read, else {'ok', added, removed,
-- epoch, reset, online, offline, occupied, vacated, leaves}: members that appeared
-- ({app, channel, user, info, seq}) or vanished ({app, channel, user, seq}) cluster-wide, each
-- with the presence sequence of that change; the bucket's epoch and whether it differs from
-- the one this node last saw (Redis lost the bucket's data since: the other nodes may not have
-- re-registered in it yet, and every member re-registered looks added, so the caller keeps
-- only the real changes); signed-in users ({app, user}) that came online or went offline
-- cluster-wide; the channels ({app, channel}) this took from no subscriber to some or back (a
-- write whose outcome the node never learnt, e.g. a timed-out decrement, is settled here); and
-- the node's pending leaves that still stand ({entry, ms}, see hand_over_leaves), so a leave
-- that took effect after the node gave up on it (or before the node restarted) is confirmed.
local n, inc = ARGV[1], ARGV[2]
local known, proposal = arg(), arg()
local r = read_records()
if not records_unchanged(r) then return {'stale'} end
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = proposal
  redis.call('SET', KEYS[1], epoch)
end
local reset = known ~= '' and known ~= epoch
local dropped, emptied = drop_node(n, r)
local offline_users = {}
for _, au in ipairs(drop_node_users(n, r)) do offline_users[au[1] .. '\n' .. au[2]] = au end
local still_empty = {}
for _, ac in ipairs(emptied) do still_empty[ac[1] .. '\n' .. ac[2]] = true end
local gone = {}
for _, d in ipairs(dropped) do gone[d[1] .. '\n' .. d[2] .. '\n' .. d[3]] = true end
for _ = 1, tonumber(arg()) do
  local a, count = arg(), tonumber(arg())
  redis.call('HINCRBY', key(), n, count)
  redis.call('SADD', KEYS[2], a)
end
local occupied = {}
for _ = 1, tonumber(arg()) do
  local a, c, count = arg(), arg(), tonumber(arg())
  local ck, index, vac = key(), key(), key()
  redis.call('HINCRBY', ck, n, count)
  local t = redis.call('HINCRBY', index, c, count)
  redis.call('SADD', KEYS[3], a .. '\n' .. c)
  local ac = a .. '\n' .. c
  if still_empty[ac] then
    still_empty[ac] = nil
  elseif t == count and count > 0 and redis.call('DEL', vac) == 0 then
    table.insert(occupied, {a, c})
  end
end
local vacated = {}
for _, ac in ipairs(emptied) do
  if still_empty[ac[1] .. '\n' .. ac[2]] then table.insert(vacated, ac) end
end
local added = {}
for _ = 1, tonumber(arg()) do
  local a, c, u, info, nsockets = arg(), arg(), arg(), arg(), tonumber(arg())
  local pm, ps, pt, pc, pseq = key(), key(), key(), key(), key()
  local member = a .. '\n' .. c .. '\n' .. u
  local count = 0
  for _ = 1, nsockets do
    count = count + redis.call('SADD', ps, u .. '\n' .. arg())
  end
  if redis.call('HEXISTS', pm, u) == 0 then
    redis.call('HSET', pm, u, info)
    if gone[member] then gone[member] = nil else table.insert(added, {a, c, u, info, next_seq(pseq)}) end
  end
  redis.call('HINCRBY', pt, u, count)
  redis.call('HINCRBY', pc, u .. '\n' .. n, count)
  redis.call('SADD', KEYS[4], member)
end
local online = {}
for _ = 1, tonumber(arg()) do
  local a, u, count = arg(), arg(), tonumber(arg())
  local ut, uc = key(), key()
  local au = a .. '\n' .. u
  if redis.call('HINCRBY', ut, u, count) == count then
    if offline_users[au] then offline_users[au] = nil else table.insert(online, {a, u}) end
  end
  redis.call('HINCRBY', uc, u .. '\n' .. n, count)
  redis.call('SADD', KEYS[5], au)
end
local offline = {}
for _, au in pairs(offline_users) do table.insert(offline, au) end
local removed = {}
for _, d in ipairs(dropped) do
  if gone[d[1] .. '\n' .. d[2] .. '\n' .. d[3]] then table.insert(removed, {d[1], d[2], d[3], d[5]}) end
end
redis.call('SET', KEYS[7], inc)
local leaves = hand_over_leaves(r)
return {'ok', added, removed, epoch, reset and 1 or 0, online, offline, occupied, vacated, leaves}
