-- ARGV: prefix, app, name prefix. Returns {channel, subscriptions, users, ...} for occupied
-- channels whose name starts with the prefix, in one round trip.
local P, a, prefix = ARGV[1], ARGV[2], ARGV[3]
local out = {}
local all = redis.call('HGETALL', P .. ':chans:' .. a)
for i = 1, #all, 2 do
  local c, t = all[i], tonumber(all[i + 1])
  if t > 0 and string.sub(c, 1, #prefix) == prefix then
    table.insert(out, c)
    table.insert(out, t)
    table.insert(out, redis.call('HLEN', P .. ':pm:' .. a .. ':' .. c))
  end
end
return out
