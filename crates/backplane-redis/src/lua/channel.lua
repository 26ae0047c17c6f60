-- ARGV: prefix, app, channel. Returns {subscriptions, users}.
local P, a, c = ARGV[1], ARGV[2], ARGV[3]
local t = tonumber(redis.call('HGET', P .. ':chans:' .. a, c) or '0')
return {t, redis.call('HLEN', P .. ':pm:' .. a .. ':' .. c)}
