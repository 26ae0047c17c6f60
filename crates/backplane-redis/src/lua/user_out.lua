-- KEYS: as user_in.lua. ARGV: node, app, user. One less signed-in socket of `user` on `node`.
-- Returns 1 when that was the user's last signed-in socket anywhere (offline now), else 0 (also
-- when the socket was not registered, e.g. dropped by a reap or a resync meanwhile: whoever
-- dropped it decided).
local n, a, u = ARGV[1], ARGV[2], ARGV[3]
local uc, record, ut = KEYS[1], KEYS[2], KEYS[3]
local field = u .. '\n' .. n
local v = tonumber(redis.call('HGET', uc, field) or '0')
if v <= 0 then return 0 end
if v == 1 then
  redis.call('HDEL', uc, field)
  redis.call('SREM', record, a .. '\n' .. u)
else
  redis.call('HINCRBY', uc, field, -1)
end
if redis.call('HINCRBY', ut, u, -1) <= 0 then
  redis.call('HDEL', ut, u)
  return 1
end
return 0
