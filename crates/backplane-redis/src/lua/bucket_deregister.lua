-- A draining node removes what it registered in one bucket. KEYS and ARGV heads: see
-- node_records.lua (ARGV[2] unused); then the records as read. Its pending leaves stay. Returns {'stale'} if the records changed since they were read, else {'ok',
-- members, channels, users, leaves left}: what vanished, as bucket_reap.lua, and 1 if pending
-- leaves it could not settle in time stand over in this bucket. The node then stays
-- registered without a heartbeat (deregister.lua), so a peer reaps it once it is gone and
-- inherits them.
local n = ARGV[1]
local r = read_records()
if not records_unchanged(r) then return {'stale'} end
local removed, vacated = drop_node(n, r)
local offline = drop_node_users(n, r)
local left = redis.call('EXISTS', KEYS[6])
if left == 0 then redis.call('DEL', KEYS[7]) end
return {'ok', removed, vacated, offline, left}
