-- KEYS: the channel's claim on its next subscription_count update (the number of changes not
-- yet published). ARGV: hold_ms. Records one change. Returns 1 when this created the claim (the
-- caller publishes the channel's counts), 0 when a holder exists.
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then return 1 end
-- INCR keeps the claim's expiry.
redis.call('INCR', KEYS[1])
return 0
