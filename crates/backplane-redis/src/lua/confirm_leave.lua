-- KEYS: the confirming node's pending leaves, the pending vacancy (no user) or departure.
-- ARGV: app, channel, token[, user]. Takes the pending leave: 1 if it was still pending under
-- this token (nobody returned), else 0. At most once. Either way the confirming node owes it
-- no more (its entry goes).
local a, c, token, u = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('ZREM', KEYS[1], leave_entry(token, a, c, u))
if redis.call('GET', KEYS[2]) == token then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
