-- KEYS: the channel's members, the user's pending departure, the node's presence sockets on the
-- channel, the member sockets cluster-wide, the member sockets per node, the node's record of
-- its presence members, the channel's presence sequence.
-- ARGV: node, app, channel, socket, user, info, max members (0 = unlimited).
-- Returns {0} when the channel is full, else {1, added (0/1), {user, info, ...}, returned (0/1),
-- seq}: the roster with the presence sequence it reflects (this join's own when added).
-- returned when the user's departure was still pending (see presence_leave.lua), which this
-- join cancels. A socket already joined changes nothing.
local n, a, c, s, u, info, max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local pm, gone, ps, pt, pc, record, pseq = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local added, returned = 0, 0
if redis.call('HEXISTS', pm, u) == 0 then
  if max > 0 and redis.call('HLEN', pm) >= max then return {0} end
  redis.call('HSET', pm, u, info)
  added = 1
  returned = redis.call('DEL', gone)
end
if redis.call('SADD', ps, u .. '\n' .. s) == 1 then
  redis.call('HINCRBY', pt, u, 1)
  redis.call('HINCRBY', pc, u .. '\n' .. n, 1)
  redis.call('SADD', record, a .. '\n' .. c .. '\n' .. u)
end
local seq
if added == 1 then seq = next_seq(pseq) else seq = current_seq(pseq) end
return {1, added, redis.call('HGETALL', pm), returned, seq}
