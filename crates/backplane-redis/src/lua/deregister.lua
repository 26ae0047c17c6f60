-- ARGV: the bucket's tag T, the registered nodes' key, the node's heartbeat key, the node's id.
-- A draining node removes itself: returns what vanished, as reap.lua (with no leaves: it
-- confirmed its own before). Pending leaves it could not settle in time stand over: it then
-- stays registered without a heartbeat, so a peer reaps it once it is gone and inherits them.
local T, nodes, hb, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('DEL', hb)
if redis.call('EXISTS', T .. ':node:' .. n .. ':leaves') == 0 then
  redis.call('SREM', nodes, n)
end
local removed, vacated = drop_node(T, n)
return {removed, vacated, drop_node_users(T, n), {}}
