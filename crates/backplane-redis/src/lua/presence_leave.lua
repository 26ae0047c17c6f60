-- ARGV: prefix, node, app, channel, user. 1 when that was the user's last socket anywhere.
local P, n, a, c, u = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local base = a .. ':' .. c
local pm, pt, pc = P .. ':pm:' .. base, P .. ':pt:' .. base, P .. ':pc:' .. base
local field = u .. '\n' .. n
local v = tonumber(redis.call('HGET', pc, field) or '0')
if v <= 0 then return 0 end
if v == 1 then
  redis.call('HDEL', pc, field)
  redis.call('SREM', P .. ':node:' .. n .. ':pres', a .. '\n' .. c .. '\n' .. u)
else
  redis.call('HINCRBY', pc, field, -1)
end
if redis.call('HINCRBY', pt, u, -1) <= 0 then
  redis.call('HDEL', pt, u)
  redis.call('HDEL', pm, u)
  return 1
end
return 0
