-- ARGV: prefix, node, app, channel, user, token ('' = keep no pending departure). Returns {1}
-- when that was the user's last socket anywhere, {1, token} when a token was given (the
-- departure is then pending until confirm_leave.lua takes it or the user rejoins), else {0}.
local P, n, a, c, u, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local base = a .. ':' .. c
local pm, pt, pc = P .. ':pm:' .. base, P .. ':pt:' .. base, P .. ':pc:' .. base
local field = u .. '\n' .. n
local v = tonumber(redis.call('HGET', pc, field) or '0')
if v <= 0 then return {0} end
if v == 1 then
  redis.call('HDEL', pc, field)
  redis.call('SREM', P .. ':node:' .. n .. ':pres', a .. '\n' .. c .. '\n' .. u)
else
  redis.call('HINCRBY', pc, field, -1)
end
if redis.call('HINCRBY', pt, u, -1) <= 0 then
  redis.call('HDEL', pt, u)
  redis.call('HDEL', pm, u)
  if token == '' then return {1} end
  redis.call('SET', P .. ':gone:' .. base .. ':' .. u, token, 'PX', LEAVE_TTL_MS)
  return {1, token}
end
return {0}
