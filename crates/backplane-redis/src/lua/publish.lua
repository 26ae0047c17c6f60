-- ARGV: log max length, log ttl ms, cache ttl ms, then six values per message: its replay log
-- key, its log's counter key, its pub/sub channel, its envelope, its cache key ('' = not a
-- cached event) and the cache entry. For each message, in order and atomically: keep the cache
-- entry, number the message (the counter: 1, 2, ... per log, expiring with it), append the
-- envelope and its number to the channel's replay log (capped by length, trimmed by age,
-- expiring when idle) and publish "<log id>:<number> <envelope>", so every receiver knows the
-- message's position in its log, and a reader that finds entries trimmed knows how many.
local max_len, ttl, cache_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for i = 4, #ARGV, 6 do
  local log, counter, chan, env, ck = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if ck ~= '' then redis.call('SET', ck, ARGV[i + 5], 'PX', cache_ttl) end
  local n = redis.call('INCR', counter)
  redis.call('PEXPIRE', counter, ttl)
  local id = redis.call('XADD', log, 'MAXLEN', '~', max_len, '*', 'm', env, 'n', n)
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', log, 'MINID', '~', string.format('%d', ms - ttl))
  redis.call('PEXPIRE', log, ttl)
  redis.call('PUBLISH', chan, id .. ':' .. n .. ' ' .. env)
end
return 1
