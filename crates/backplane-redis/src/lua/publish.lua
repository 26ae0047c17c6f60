-- ARGV: log max length, log ttl ms, cache ttl ms, then five values per message: its replay log
-- key, its pub/sub channel, its envelope, its cache key ('' = not a cached event) and the
-- cache entry. For each message, in order and atomically: keep the cache entry, append the
-- envelope to the channel's replay log (capped by length, trimmed by age, expiring when idle)
-- and publish "<log id> <envelope>", so every receiver knows the message's position in its log.
local max_len, ttl, cache_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for i = 4, #ARGV, 5 do
  local log, chan, env, ck = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if ck ~= '' then redis.call('SET', ck, ARGV[i + 4], 'PX', cache_ttl) end
  local id = redis.call('XADD', log, 'MAXLEN', '~', max_len, '*', 'm', env)
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', log, 'MINID', '~', string.format('%d', ms - ttl))
  redis.call('PEXPIRE', log, ttl)
  redis.call('PUBLISH', chan, id .. ' ' .. env)
end
return 1
