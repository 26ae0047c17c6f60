-- ARGV: prefix, node, app, channel. Returns the cluster-wide count left, -1 if n had none.
local P, n, a, c = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ck = P .. ':chan:' .. a .. ':' .. c
local v = tonumber(redis.call('HGET', ck, n) or '0')
if v <= 0 then return -1 end
if v == 1 then
  redis.call('HDEL', ck, n)
  redis.call('SREM', P .. ':node:' .. n .. ':chans', a .. '\n' .. c)
else
  redis.call('HINCRBY', ck, n, -1)
end
local t = redis.call('HINCRBY', P .. ':chans:' .. a, c, -1)
if t <= 0 then redis.call('HDEL', P .. ':chans:' .. a, c); t = 0 end
return t
