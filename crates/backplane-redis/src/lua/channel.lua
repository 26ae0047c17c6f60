-- KEYS: the app's channel index, the channel's members. ARGV: channel.
-- Returns {subscriptions, users}.
local t = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
return {t, redis.call('HLEN', KEYS[2])}
