-- KEYS: the channel's claim, the app's channel index. ARGV: channel, hold_ms. Asked by the
-- holder of the claim once per interval. Returns {count} when changes happened since the last
-- ask (the claim is reset to 0 changes and kept for hold_ms), {} when none did (the claim is
-- released: the next change claims afresh) or the claim expired.
local changes = tonumber(redis.call('GET', KEYS[1]) or '0')
if changes <= 0 then
  redis.call('DEL', KEYS[1])
  return {}
end
redis.call('SET', KEYS[1], 0, 'PX', ARGV[2])
return {tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')}
