-- ARGV: prefix, node, app, channel. Returns the cluster-wide subscription count.
local P, n, a, c = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HINCRBY', P .. ':chan:' .. a .. ':' .. c, n, 1)
redis.call('SADD', P .. ':node:' .. n .. ':chans', a .. '\n' .. c)
return redis.call('HINCRBY', P .. ':chans:' .. a, c, 1)
