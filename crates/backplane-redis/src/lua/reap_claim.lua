-- KEYS: the dead node's heartbeat, the registered nodes, the incarnations, the reaps under way.
-- ARGV: the dead node. Decides the reap, once: returns false unless this caller won it (the
-- heartbeat is missing and the node was still registered); then the dead node's incarnation,
-- recorded in the reaps under way until every bucket is dropped (any node finishes a reap
-- whose reaper died half-way).
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return false end
local inc = redis.call('HGET', KEYS[3], ARGV[1]) or ''
redis.call('HDEL', KEYS[3], ARGV[1])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1] .. '\n' .. inc)
return inc
