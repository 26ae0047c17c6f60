-- ARGV: the bucket's tag T, the registered nodes' key, the dead node's heartbeat key, the dead
-- node's id, the reaper's id. Returns nil unless this caller won the reap; then what vanished:
-- {{{app, channel, user, info, seq}, ...}, {{app, channel}, ...}, {{app, user}, ...},
-- {{leave entry, ms}, ...}} (members, emptied channels, users offline now, then the dead node's
-- pending leaves that still stand, now the reaper's to confirm: see hand_over_leaves).
local T, nodes, hb, dead, heir = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', hb) == 1 then return false end
if redis.call('SREM', nodes, dead) == 0 then return false end
local removed, vacated = drop_node(T, dead)
return {removed, vacated, drop_node_users(T, dead), hand_over_leaves(T, dead, heir)}
