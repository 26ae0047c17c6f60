-- KEYS: the signed-in sockets per user and node, the node's record of its users, the signed-in
-- sockets per user (all in the user's bucket). ARGV: node, app, user. One more socket of `user`
-- signed in on `node`. Returns 1 when that brought the user online cluster-wide (their first
-- signed-in socket anywhere), else 0.
local n, a, u = ARGV[1], ARGV[2], ARGV[3]
redis.call('HINCRBY', KEYS[1], u .. '\n' .. n, 1)
redis.call('SADD', KEYS[2], a .. '\n' .. u)
if redis.call('HINCRBY', KEYS[3], u, 1) == 1 then return 1 end
return 0
