-- KEYS: four per message: its replay log, its log's counter, its pub/sub channel, its cache
-- entry. ARGV: log max length, log ttl ms, cache ttl ms, then two per message: its envelope and
-- its cache entry ('' = not a cached event). For each message, in order and atomically: keep
-- the cache entry, number the message (the counter: 1, 2, ... per log, expiring with it),
-- append the envelope and its number to the channel's replay log (capped by length, trimmed by
-- age, expiring when idle) and publish "<log id>:<number> <envelope>", so every receiver knows
-- the message's position in its log, and a reader that finds entries trimmed knows how many.
local max_len, ttl, cache_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for m = 0, #KEYS / 4 - 1 do
  local log, counter, chan, ck = KEYS[m * 4 + 1], KEYS[m * 4 + 2], KEYS[m * 4 + 3], KEYS[m * 4 + 4]
  local env, cached = ARGV[4 + m * 2], ARGV[5 + m * 2]
  if cached ~= '' then redis.call('SET', ck, cached, 'PX', cache_ttl) end
  local n = redis.call('INCR', counter)
  redis.call('PEXPIRE', counter, ttl)
  local id = redis.call('XADD', log, 'MAXLEN', '~', max_len, '*', 'm', env, 'n', n)
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', log, 'MINID', '~', string.format('%d', ms - ttl))
  redis.call('PEXPIRE', log, ttl)
  redis.call('PUBLISH', chan, id .. ':' .. n .. ' ' .. env)
end
return 1
