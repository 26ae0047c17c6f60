-- KEYS: the app's connection counts (HASH node -> open connections), the node's record of the
-- apps it holds connections of (both in the app's bucket).
-- ARGV: node, app, max (0 = unlimited). Returns 1 if counted, 0 if over the quota.
local n, a, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
if max > 0 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
  if total >= max then return 0 end
end
redis.call('HINCRBY', KEYS[1], n, 1)
redis.call('SADD', KEYS[2], a)
return 1
