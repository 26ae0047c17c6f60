-- ARGV: prefix, dead node id, reaper node id. Returns nil unless this caller won the reap; then
-- what vanished: {{{app, channel, user, info, seq}, ...}, {{app, channel}, ...}, {{app, user}, ...},
-- {{leave entry, ms}, ...}} (members, emptied channels, users offline now, then the dead node's
-- pending leaves that still stand, now the reaper's to confirm: see hand_over_leaves).
local P, dead, heir = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. ':hb:' .. dead) == 1 then return false end
if redis.call('SREM', P .. ':nodes', dead) == 0 then return false end
local removed, vacated = drop_node(P, dead)
return {removed, vacated, drop_node_users(P, dead), hand_over_leaves(P, dead, heir)}
