-- KEYS: the lane's stream, the dead letters of its bucket. ARGV: endpoint, lane, reason,
-- failed ms, cap, then (id, key) pairs.
-- Moves the entries to the dead letters (capped at `cap` per bucket, oldest trimmed) and out
-- of the lane, in one step: a job is in exactly one of them.
local key, dead = KEYS[1], KEYS[2]
local e, l, why, at, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV, 2 do
  local id, ik = ARGV[i], ARGV[i + 1]
  local found = redis.call('XRANGE', key, id, id)
  if found[1] then
    local f = fields(found[1][2])
    redis.call('XADD', dead, 'MAXLEN', cap, '*', 'ep', e, 'ln', l, 'ev', f.ev, 'ms', f.ms, 'ik', ik, 'why', why, 'at', at)
  end
  redis.call('XACK', key, GROUP, id)
  redis.call('XDEL', key, id)
end
return 1
