-- KEYS: the channel's members, its presence sequence. Returns {{user, info, ...}, seq}: the
-- members with the presence sequence they reflect (0 when the channel has none).
if redis.call('EXISTS', KEYS[1]) == 0 then return {{}, 0} end
return {redis.call('HGETALL', KEYS[1]), current_seq(KEYS[2])}
