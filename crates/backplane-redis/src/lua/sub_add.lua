-- ARGV: prefix, node, app, channel. Returns {count, occupied}: the cluster-wide subscription
-- count, and 1 when this took the channel from 0 to 1 subscriber without cancelling a pending
-- vacancy (then channel_occupied is due; a cancelled vacancy reports neither).
local P, n, a, c = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HINCRBY', P .. ':chan:' .. a .. ':' .. c, n, 1)
redis.call('SADD', P .. ':node:' .. n .. ':chans', a .. '\n' .. c)
local t = redis.call('HINCRBY', P .. ':chans:' .. a, c, 1)
local occupied = 0
if t == 1 and redis.call('DEL', P .. ':vac:' .. a .. ':' .. c) == 0 then occupied = 1 end
return {t, occupied}
