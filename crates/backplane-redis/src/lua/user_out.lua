-- ARGV: prefix, node, app, user. One less signed-in socket of `user` on `node`. Returns 1 when
-- that was the user's last signed-in socket anywhere (offline now), else 0 (also when the socket
-- was not registered, e.g. dropped by a reap or a resync meanwhile: whoever dropped it decided).
local P, n, a, u = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local uc = P .. ':uc:' .. a
local field = u .. '\n' .. n
local v = tonumber(redis.call('HGET', uc, field) or '0')
if v <= 0 then return 0 end
if v == 1 then
  redis.call('HDEL', uc, field)
  redis.call('SREM', P .. ':node:' .. n .. ':users', a .. '\n' .. u)
else
  redis.call('HINCRBY', uc, field, -1)
end
if redis.call('HINCRBY', P .. ':ut:' .. a, u, -1) <= 0 then
  redis.call('HDEL', P .. ':ut:' .. a, u)
  return 1
end
return 0
