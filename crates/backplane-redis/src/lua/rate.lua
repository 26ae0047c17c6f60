-- One cluster-wide per-second budget (an app's REST events or reads), all or nothing.
-- KEYS[1]: P:rate:a:kind, HASH {w = window second, n = units used in it}.
-- ARGV: units wanted, budget per second.
-- Returns {allowed (1/0), milliseconds until the window ends}.
-- The window is Redis's own clock (TIME), so the nodes' clocks do not matter. Nothing is
-- taken when the units do not fit. The key expires shortly after its window, so an app that
-- stops calling leaves nothing behind.
local now = redis.call('TIME')
local second, micros = tonumber(now[1]), tonumber(now[2])
local units, budget = tonumber(ARGV[1]), tonumber(ARGV[2])
local resets_ms = 1000 - math.floor(micros / 1000)
local state = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if tonumber(state[1]) == second then
  used = tonumber(state[2]) or 0
end
if used + units > budget then
  return {0, resets_ms}
end
redis.call('HSET', KEYS[1], 'w', second, 'n', used + units)
redis.call('PEXPIRE', KEYS[1], 2000)
return {1, resets_ms}
