-- ARGV: prefix, node id. A draining node removes itself: returns what vanished, as reap.lua
-- (with no leaves: it confirmed its own before). Pending leaves it could not settle in time
-- stand over: it then stays in P:nodes without a heartbeat, so a peer reaps it once it is gone
-- and inherits them.
local P, n = ARGV[1], ARGV[2]
redis.call('DEL', P .. ':hb:' .. n)
if redis.call('EXISTS', P .. ':node:' .. n .. ':leaves') == 0 then
  redis.call('SREM', P .. ':nodes', n)
end
local removed, vacated = drop_node(P, n)
return {removed, vacated, drop_node_users(P, n), {}}
