-- KEYS: the lane's stream, its bucket's set of the app's lanes. ARGV: the lane's member there
-- ("endpoint:lane"), cap, event json, created ms.
-- Queues the job unless the lane holds `cap` jobs already (never trims unacknowledged jobs).
-- Returns 1 if queued, 0 if the lane is full.
local key = ensure_lane(KEYS[1], KEYS[2], ARGV[1])
if redis.call('XLEN', key) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('XADD', key, '*', 'ev', ARGV[3], 'ms', ARGV[4], 'from', ARGV[4])
return 1
