-- ARGV: prefix, node, app, channel, socket, user, info, max members (0 = unlimited).
-- Returns {0} when the channel is full, else {1, added (0/1), {user, info, ...}, returned (0/1),
-- seq}: the roster with the presence sequence it reflects (this join's own when added).
-- returned when the user's departure was still pending (see presence_leave.lua), which this
-- join cancels. A socket already joined changes nothing.
local P, n, a, c, s, u, info, max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local base = a .. ':' .. c
local pm = P .. ':pm:' .. base
local added, returned = 0, 0
if redis.call('HEXISTS', pm, u) == 0 then
  if max > 0 and redis.call('HLEN', pm) >= max then return {0} end
  redis.call('HSET', pm, u, info)
  added = 1
  returned = redis.call('DEL', P .. ':gone:' .. base .. ':' .. u)
end
if redis.call('SADD', P .. ':ps:' .. base .. ':' .. n, u .. '\n' .. s) == 1 then
  redis.call('HINCRBY', P .. ':pt:' .. base, u, 1)
  redis.call('HINCRBY', P .. ':pc:' .. base, u .. '\n' .. n, 1)
  redis.call('SADD', P .. ':node:' .. n .. ':pres', a .. '\n' .. c .. '\n' .. u)
end
local seq
if added == 1 then seq = next_seq(P, base) else seq = current_seq(P, base) end
return {1, added, redis.call('HGETALL', pm), returned, seq}
