-- ARGV: prefix, node, app, channel, hold_ms. Asked by the holder of the claim P:scc:a:c once
-- per interval. Returns {count} when changes happened since the last ask (the claim is reset
-- to 0 changes and kept for hold_ms), {} when none did (the claim is released: the next change
-- claims afresh) or the claim expired.
local P, a, c, hold = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local k = P .. ':scc:' .. a .. ':' .. c
local changes = tonumber(redis.call('GET', k) or '0')
if changes <= 0 then
  redis.call('DEL', k)
  return {}
end
redis.call('SET', k, 0, 'PX', hold)
return {tonumber(redis.call('HGET', P .. ':chans:' .. a, c) or '0')}
