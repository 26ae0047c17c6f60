-- KEYS: the channel's subscriptions per node, the node's record of its channels, the app's
-- channel index, the channel's pending vacancy, the node's pending leaves.
-- ARGV: node, app, channel, token ('' = keep no pending vacancy). Returns {count left} ({-1} if
-- n had none); when that emptied the channel and a token was given, {0, token}: the vacancy is
-- pending under the token until confirm_leave.lua takes it or a new subscriber cancels it
-- (sub_add.lua); n owes its confirmation (its pending leaves).
local n, a, c, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local v = tonumber(redis.call('HGET', KEYS[1], n) or '0')
if v <= 0 then return {-1} end
if v == 1 then
  redis.call('HDEL', KEYS[1], n)
  redis.call('SREM', KEYS[2], a .. '\n' .. c)
else
  redis.call('HINCRBY', KEYS[1], n, -1)
end
local t = redis.call('HINCRBY', KEYS[3], c, -1)
if t <= 0 then
  redis.call('HDEL', KEYS[3], c)
  if token == '' then return {0} end
  redis.call('SET', KEYS[4], token, 'PX', LEAVE_TTL_MS)
  hold_leave(KEYS[5], leave_entry(token, a, c, nil))
  return {0, token}
end
return {t}
