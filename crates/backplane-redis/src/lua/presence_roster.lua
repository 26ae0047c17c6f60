-- ARGV: prefix, node, app, channel. Returns {{user, info, ...}, seq}: the members with the
-- presence sequence they reflect (0 when the channel has none).
local P, a, c = ARGV[1], ARGV[3], ARGV[4]
local base = a .. ':' .. c
local pm = P .. ':pm:' .. base
if redis.call('EXISTS', pm) == 0 then return {{}, 0} end
return {redis.call('HGETALL', pm), current_seq(P, base)}
