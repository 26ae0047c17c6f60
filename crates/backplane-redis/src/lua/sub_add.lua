-- KEYS: the channel's subscriptions per node, the node's record of its channels, the app's
-- channel index (of the bucket), the channel's pending vacancy.
-- ARGV: node, app, channel. Returns {count, occupied}: the cluster-wide subscription count, and
-- 1 when this took the channel from 0 to 1 subscriber without cancelling a pending vacancy
-- (then channel_occupied is due; a cancelled vacancy reports neither).
local n, a, c = ARGV[1], ARGV[2], ARGV[3]
redis.call('HINCRBY', KEYS[1], n, 1)
redis.call('SADD', KEYS[2], a .. '\n' .. c)
local t = redis.call('HINCRBY', KEYS[3], c, 1)
local occupied = 0
if t == 1 and redis.call('DEL', KEYS[4]) == 0 then occupied = 1 end
return {t, occupied}
