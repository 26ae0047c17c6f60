-- KEYS: the registered nodes, the node's heartbeat, the incarnations. ARGV: node id, 1 if
-- pending leaves stand over in some bucket. A draining node, after dropping its buckets,
-- removes its heartbeat; it leaves the registry only if no pending leave stands over, else a
-- peer reaps it once the heartbeat is gone and inherits the leaves.
redis.call('DEL', KEYS[2])
if ARGV[2] == '0' then
  redis.call('SREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 1
