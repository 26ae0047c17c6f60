-- ARGV: prefix, app. Returns {depth, oldest created ms (or -1), dead letters}.
local P, a = ARGV[1], ARGV[2]
local depth, oldest = 0, -1
for _, el in ipairs(redis.call('SMEMBERS', P .. ':whlanes:' .. a)) do
  local key = P .. ':whq:' .. a .. ':' .. el
  local n = redis.call('XLEN', key)
  if n > 0 then
    depth = depth + n
    local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1]
    if first then
      local ms = tonumber(fields(first[2]).ms)
      if ms and (oldest < 0 or ms < oldest) then
        oldest = ms
      end
    end
  end
end
return {depth, oldest, redis.call('XLEN', P .. ':whd:' .. a)}
