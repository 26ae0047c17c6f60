-- KEYS: the registered nodes, this node's heartbeat, the incarnations. ARGV: node id,
-- heartbeat ttl ms, a fresh incarnation. Registers the node before it resyncs its buckets one
-- by one, so no peer reaps it half-way. A node that was not registered (new, or reaped while
-- it was cut off) gets the fresh incarnation: a reap decided against its past incarnation then
-- leaves alone the buckets it has resynced since (bucket_reap.lua). Returns its incarnation.
local n = ARGV[1]
local inc = redis.call('HGET', KEYS[3], n)
if redis.call('SISMEMBER', KEYS[1], n) == 0 or not inc then
  inc = ARGV[3]
  redis.call('HSET', KEYS[3], n, inc)
end
redis.call('SADD', KEYS[1], n)
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return inc
