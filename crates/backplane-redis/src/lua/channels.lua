-- KEYS: the app's channel index of one bucket. ARGV: name prefix. Returns {channel,
-- subscriptions, ...} for the occupied channels whose name starts with the prefix.
local prefix = ARGV[1]
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local c, t = all[i], tonumber(all[i + 1])
  if t > 0 and string.sub(c, 1, #prefix) == prefix then
    table.insert(out, c)
    table.insert(out, t)
  end
end
return out
