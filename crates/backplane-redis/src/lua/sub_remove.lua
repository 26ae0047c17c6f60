-- ARGV: prefix, node, app, channel, token ('' = keep no pending vacancy). Returns {count left}
-- ({-1} if n had none); when that emptied the channel and a token was given, {0, token}: the
-- vacancy is pending under the token until confirm_leave.lua takes it or a new subscriber
-- cancels it (sub_add.lua); n owes its confirmation (P:node:n:leaves).
local P, n, a, c, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ck = P .. ':chan:' .. a .. ':' .. c
local v = tonumber(redis.call('HGET', ck, n) or '0')
if v <= 0 then return {-1} end
if v == 1 then
  redis.call('HDEL', ck, n)
  redis.call('SREM', P .. ':node:' .. n .. ':chans', a .. '\n' .. c)
else
  redis.call('HINCRBY', ck, n, -1)
end
local t = redis.call('HINCRBY', P .. ':chans:' .. a, c, -1)
if t <= 0 then
  redis.call('HDEL', P .. ':chans:' .. a, c)
  if token == '' then return {0} end
  redis.call('SET', P .. ':vac:' .. a .. ':' .. c, token, 'PX', LEAVE_TTL_MS)
  hold_leave(P, n, leave_entry(token, a, c, nil))
  return {0, token}
end
return {t}
