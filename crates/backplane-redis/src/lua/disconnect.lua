-- ARGV: prefix, node, app.
local P, n, a = ARGV[1], ARGV[2], ARGV[3]
local key = P .. ':conns:' .. a
if redis.call('HINCRBY', key, n, -1) <= 0 then redis.call('HDEL', key, n) end
return 1
