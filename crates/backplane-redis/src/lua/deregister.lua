-- ARGV: prefix, node id. A draining node removes itself: returns what vanished, as reap.lua.
local P, n = ARGV[1], ARGV[2]
redis.call('SREM', P .. ':nodes', n)
redis.call('DEL', P .. ':hb:' .. n)
local removed, vacated = drop_node(P, n)
return {removed, vacated, drop_node_users(P, n)}
