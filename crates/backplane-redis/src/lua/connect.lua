-- ARGV: prefix, node, app, max (0 = unlimited). 1 if counted, 0 if over the quota.
local P, n, a, max = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = P .. ':conns:' .. a
if max > 0 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', key)) do total = total + tonumber(v) end
  if total >= max then return 0 end
end
redis.call('HINCRBY', key, n, 1)
redis.call('SADD', P .. ':node:' .. n .. ':apps', a)
return 1
