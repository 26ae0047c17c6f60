-- ARGV: prefix, node id. A draining node removes itself: returns the presence members that
-- vanished ({app, channel, user, info}, ...), to announce.
local P, n = ARGV[1], ARGV[2]
redis.call('SREM', P .. ':nodes', n)
redis.call('DEL', P .. ':hb:' .. n)
return drop_node(P, n)
