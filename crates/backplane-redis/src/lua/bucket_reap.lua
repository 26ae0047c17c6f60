-- Drops what a dead node registered in one bucket, once the reap was decided in the node
-- registry (reap_claim.lua). KEYS and ARGV heads: see node_records.lua (ARGV[1] the dead node,
-- ARGV[2] its incarnation as the reap decided it, KEYS[8] the reaper's leaves); then the
-- records as read. Returns {'skip'} if the dead node resynced this bucket under a newer
-- incarnation since (it came back: what it holds now is live), {'stale'} if its records
-- changed since they were read, else {'ok', members, channels, users, leaves}: the members that
-- vanished ({app, channel, user, info, seq}), the channels left empty ({app, channel}), the
-- users offline now ({app, user}), and the dead node's pending leaves that still stand, now the
-- reaper's to confirm ({entry, ms}). The records go with the drop, so a second reaper of the
-- same bucket finds nothing: each vanished member is reported once.
local n, inc = ARGV[1], ARGV[2]
local r = read_records()
local current = redis.call('GET', KEYS[7])
if current and inc ~= '' and current ~= inc then return {'skip'} end
if not records_unchanged(r) then return {'stale'} end
local removed, vacated = drop_node(n, r)
local offline = drop_node_users(n, r)
redis.call('DEL', KEYS[7])
return {'ok', removed, vacated, offline, hand_over_leaves(r)}
