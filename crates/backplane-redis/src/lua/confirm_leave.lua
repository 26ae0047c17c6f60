-- ARGV: prefix, app, channel, token[, user]. Takes a pending vacancy (no user) or departure:
-- 1 if it was still pending under this token (nobody returned), else 0. At most once.
local P, a, c, token, u = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = P .. ':vac:' .. a .. ':' .. c
if u then key = P .. ':gone:' .. a .. ':' .. c .. ':' .. u end
if redis.call('GET', key) == token then
  redis.call('DEL', key)
  return 1
end
return 0
