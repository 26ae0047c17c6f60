-- ARGV: prefix, app, endpoint, lane, id...
-- Acknowledges delivered entries and deletes them, so the stream holds only what is undelivered.
local P, a, e, l = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = lane_key(P, a, e, l)
for i = 5, #ARGV do
  redis.call('XACK', key, GROUP, ARGV[i])
  redis.call('XDEL', key, ARGV[i])
end
return 1
