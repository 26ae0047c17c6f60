-- ARGV: prefix, confirming node, app, channel, token[, user]. Takes a pending vacancy (no user)
-- or departure: 1 if it was still pending under this token (nobody returned), else 0. At most
-- once. Either way the confirming node owes it no more (its entry in P:node:n:leaves goes).
local P, n, a, c, token, u = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('ZREM', P .. ':node:' .. n .. ':leaves', leave_entry(token, a, c, u))
local key = P .. ':vac:' .. a .. ':' .. c
if u then key = P .. ':gone:' .. a .. ':' .. c .. ':' .. u end
if redis.call('GET', key) == token then
  redis.call('DEL', key)
  return 1
end
return 0
