-- ARGV: prefix, node, app, user. One more socket of `user` signed in on `node`. Returns 1 when
-- that brought the user online cluster-wide (their first signed-in socket anywhere), else 0.
local P, n, a, u = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HINCRBY', P .. ':uc:' .. a, u .. '\n' .. n, 1)
redis.call('SADD', P .. ':node:' .. n .. ':users', a .. '\n' .. u)
if redis.call('HINCRBY', P .. ':ut:' .. a, u, 1) == 1 then return 1 end
return 0
