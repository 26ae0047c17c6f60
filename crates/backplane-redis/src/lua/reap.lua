-- ARGV: prefix, dead node id. Returns nil unless this caller won the reap; then what vanished:
-- {{{app, channel, user, info}, ...}, {{app, channel}, ...}, {{app, user}, ...}} (members, emptied
-- channels, then users offline now).
local P, dead = ARGV[1], ARGV[2]
if redis.call('EXISTS', P .. ':hb:' .. dead) == 1 then return false end
if redis.call('SREM', P .. ':nodes', dead) == 0 then return false end
local removed, vacated = drop_node(P, dead)
return {removed, vacated, drop_node_users(P, dead)}
