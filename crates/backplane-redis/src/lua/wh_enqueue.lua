-- ARGV: prefix, app, endpoint, lane, cap, event json, created ms.
-- Queues the job unless the lane holds `cap` jobs already (never trims unacknowledged jobs).
-- Returns 1 if queued, 0 if the lane is full.
local P, a, e, l, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = ensure_lane(P, a, e, l)
if redis.call('XLEN', key) >= cap then
  return 0
end
redis.call('XADD', key, '*', 'ev', ARGV[6], 'ms', ARGV[7], 'from', ARGV[7])
return 1
