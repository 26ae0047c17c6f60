-- ARGV: prefix, node, app, channel, hold_ms. Records one change of the channel's subscription
-- count on its claim P:scc:a:c (the number of changes not yet published). Returns 1 when this
-- created the claim (the caller publishes the channel's counts), 0 when a holder exists.
local P, a, c, hold = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local k = P .. ':scc:' .. a .. ':' .. c
if redis.call('SET', k, 1, 'NX', 'PX', hold) then return 1 end
-- INCR keeps the claim's expiry.
redis.call('INCR', k)
return 0
