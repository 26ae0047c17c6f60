-- ARGV: prefix, node id, ttl ms. Refreshes the heartbeat; returns 1 if the node is still
-- registered, 0 if it is not (never registered, or reaped by a peer): it must resync.
local P, n, ttl = ARGV[1], ARGV[2], ARGV[3]
redis.call('SET', P .. ':hb:' .. n, '1', 'PX', ttl)
return redis.call('SISMEMBER', P .. ':nodes', n)
