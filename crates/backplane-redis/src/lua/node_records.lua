-- Shared by the scripts that rebuild or remove what one node registered in one bucket
-- (bucket_resync, bucket_reap, bucket_deregister). They cannot find those keys by reading the
-- node's records inside the script (that would build key names in Lua), so the caller reads
-- the records first (src/cluster_state/node_records.rs), names every key they lead to, and
-- passes the members it read in ARGV and the keys in KEYS, in the order these functions take
-- them. The script first checks that the records still hold exactly what the caller read
-- ('stale' otherwise: the caller reads again).
--
-- KEYS, fixed head: 1 the bucket's epoch, 2-6 the node's records in the bucket (apps, chans,
-- pres, users, leaves), 7 the incarnation it resynced the bucket under, 8 the leaves of the
-- node that inherits pending leaves; then the keys the records lead to, taken in order by key():
-- those of drop_node, then drop_node_users, then (bucket_resync) the snapshot's, then
-- hand_over_leaves'.
-- ARGV, fixed head: 1 the node, 2 the incarnation (resync: this node's; reap: the dead node's
-- as the reap decided it), then further arguments of the script (taken in order by arg()),
-- then what the caller read (see read_records).

local key_at = 8
local function key()
  key_at = key_at + 1
  return KEYS[key_at]
end

local arg_at = 2
local function arg()
  arg_at = arg_at + 1
  return ARGV[arg_at]
end

-- The records as the caller read them: {apps = {a}, chans = {{a, c}}, pres = {{a, c, u}},
-- users = {{a, u}}, leaves = {{entry, score}}, nleaves = entries in the zset (malformed ones
-- are counted but not listed: they lead to no key)}.
local function read_records()
  local r = {apps = {}, chans = {}, pres = {}, users = {}, leaves = {}}
  for _ = 1, tonumber(arg()) do table.insert(r.apps, arg()) end
  for _ = 1, tonumber(arg()) do table.insert(r.chans, {arg(), arg()}) end
  for _ = 1, tonumber(arg()) do table.insert(r.pres, {arg(), arg(), arg()}) end
  for _ = 1, tonumber(arg()) do table.insert(r.users, {arg(), arg()}) end
  r.nleaves = tonumber(arg())
  for _ = 1, tonumber(arg()) do table.insert(r.leaves, {arg(), arg()}) end
  return r
end

local function set_is(set, members)
  if redis.call('SCARD', set) ~= #members then return false end
  for _, m in ipairs(members) do
    if redis.call('SISMEMBER', set, m) == 0 then return false end
  end
  return true
end

-- Whether the node's records still hold exactly what the caller read.
local function records_unchanged(r)
  local chans, pres, users = {}, {}, {}
  for _, ac in ipairs(r.chans) do table.insert(chans, ac[1] .. '\n' .. ac[2]) end
  for _, acu in ipairs(r.pres) do table.insert(pres, acu[1] .. '\n' .. acu[2] .. '\n' .. acu[3]) end
  for _, au in ipairs(r.users) do table.insert(users, au[1] .. '\n' .. au[2]) end
  if not (set_is(KEYS[2], r.apps) and set_is(KEYS[3], chans) and set_is(KEYS[4], pres) and set_is(KEYS[5], users)) then
    return false
  end
  if redis.call('ZCARD', KEYS[6]) ~= r.nleaves then return false end
  for _, l in ipairs(r.leaves) do
    if not redis.call('ZSCORE', KEYS[6], l[1]) then return false end
  end
  return true
end

-- Drops the node n's connections, subscriptions and presence sockets in the bucket. Returns
-- the members that vanished ({a, c, u, info, seq}) and the channels left empty ({a, c}).
-- Keys taken: per app `conns`; per channel `chan`, `chans`; per member `pm`, `pt`, `pc`, `ps`
-- (n's sockets), `pseq`.
local function drop_node(n, r)
  local removed, vacated, emptied_keys = {}, {}, {}
  for _ in ipairs(r.apps) do redis.call('HDEL', key(), n) end
  redis.call('DEL', KEYS[2])
  for _, ac in ipairs(r.chans) do
    local ck, index = key(), key()
    local v = tonumber(redis.call('HGET', ck, n) or '0')
    redis.call('HDEL', ck, n)
    if v > 0 and redis.call('HINCRBY', index, ac[2], -v) <= 0 then
      redis.call('HDEL', index, ac[2])
      table.insert(vacated, {ac[1], ac[2]})
    end
  end
  redis.call('DEL', KEYS[3])
  for _, acu in ipairs(r.pres) do
    local pm, pt, pc, ps, pseq = key(), key(), key(), key(), key()
    local u = acu[3]
    local v = tonumber(redis.call('HGET', pc, u .. '\n' .. n) or '0')
    redis.call('HDEL', pc, u .. '\n' .. n)
    redis.call('DEL', ps)
    if v > 0 and redis.call('HINCRBY', pt, u, -v) <= 0 then
      redis.call('HDEL', pt, u)
      local info = redis.call('HGET', pm, u) or 'null'
      redis.call('HDEL', pm, u)
      table.insert(removed, {acu[1], acu[2], u, info, next_seq(pseq)})
      table.insert(emptied_keys, {pm, pseq})
    end
  end
  redis.call('DEL', KEYS[4])
  for _, k in ipairs(emptied_keys) do forget_seq_if_empty(k[1], k[2]) end
  return removed, vacated
end

-- Drops n's signed-in users in the bucket; returns those now offline cluster-wide ({a, u}).
-- Keys taken: per user `uc`, `ut`.
local function drop_node_users(n, r)
  local offline = {}
  for _, au in ipairs(r.users) do
    local uc, ut = key(), key()
    local u = au[2]
    local v = tonumber(redis.call('HGET', uc, u .. '\n' .. n) or '0')
    redis.call('HDEL', uc, u .. '\n' .. n)
    if v > 0 and redis.call('HINCRBY', ut, u, -v) <= 0 then
      redis.call('HDEL', ut, u)
      table.insert(offline, {au[1], u})
    end
  end
  redis.call('DEL', KEYS[5])
  return offline
end

-- Moves n's pending leaves that still stand (their token is still pending) to the heir's
-- leaves (KEYS[8]), which confirms them; returns them as {entry, score ms}. The rest were
-- cancelled or confirmed. Keys taken: per listed leave, its pending vacancy or departure.
local function hand_over_leaves(r)
  redis.call('DEL', KEYS[6])
  local standing = {}
  for _, l in ipairs(r.leaves) do
    local entry, score, pending = l[1], l[2], key()
    local token = string.match(entry, '^[vd]\n([^\n]*)\n')
    if token and redis.call('GET', pending) == token then
      redis.call('ZADD', KEYS[8], score, entry)
      table.insert(standing, {entry, score})
    end
  end
  if #standing > 0 then redis.call('PEXPIRE', KEYS[8], LEAVE_TTL_MS) end
  return standing
end
