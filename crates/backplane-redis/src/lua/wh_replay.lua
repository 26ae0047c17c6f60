-- KEYS: the dead letters of one bucket, its set of the app's lanes, then the stream of each
-- letter's lane. ARGV: cap, now ms, then per letter: its id, its lane's member in the set
-- ("endpoint:lane") and the endpoint and lane it was read with.
-- Puts dead letters back into their lanes (new entries that keep their idempotency key and
-- start a new retry window at `now`), unless the lane is full: those stay dead. A letter gone
-- since it was read (replayed by another call) is skipped. Returns {replayed, refused}.
local dead, lanes = KEYS[1], KEYS[2]
local cap, now = tonumber(ARGV[1]), ARGV[2]
local replayed, refused = 0, 0
for i = 3, #ARGV, 4 do
  local id, member, e, l = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local found = redis.call('XRANGE', dead, id, id)[1]
  local f = found and fields(found[2])
  if f and f.ep == e and f.ln == l then
    local key = ensure_lane(KEYS[3 + (i - 3) / 4], lanes, member)
    if redis.call('XLEN', key) >= cap then
      refused = refused + 1
    else
      redis.call('XADD', key, '*', 'ev', f.ev, 'ms', f.ms, 'from', now, 'ik', f.ik)
      redis.call('XDEL', dead, id)
      replayed = replayed + 1
    end
  end
end
return {replayed, refused}
