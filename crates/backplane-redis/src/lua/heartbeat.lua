-- KEYS: the node's heartbeat, the registered nodes. ARGV: node id, ttl ms. Refreshes the
-- heartbeat; returns 1 if the node is still registered, 0 if it is not (never registered, or
-- reaped by a peer): it must resync.
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return redis.call('SISMEMBER', KEYS[2], ARGV[1])
