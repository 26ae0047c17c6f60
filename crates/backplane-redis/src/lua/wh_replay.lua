-- ARGV: prefix, app, cap, now ms, max, id... (no ids: the oldest `max`).
-- Puts dead letters back into their lanes (new entries that keep their idempotency key and
-- start a new retry window at `now`), unless the lane is full: those stay dead.
-- Returns {replayed, refused}.
local P, a, cap, now, max = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local dead = P .. ':whd:' .. a
local letters = {}
if #ARGV > 5 then
  for i = 6, #ARGV do
    local found = redis.call('XRANGE', dead, ARGV[i], ARGV[i])
    if found[1] then
      table.insert(letters, found[1])
    end
  end
else
  letters = redis.call('XRANGE', dead, '-', '+', 'COUNT', max)
end
local replayed, refused = 0, 0
for _, letter in ipairs(letters) do
  local f = fields(letter[2])
  local key = ensure_lane(P, a, f.ep, f.ln)
  if redis.call('XLEN', key) >= cap then
    refused = refused + 1
  else
    redis.call('XADD', key, '*', 'ev', f.ev, 'ms', f.ms, 'from', now, 'ik', f.ik)
    redis.call('XDEL', dead, letter[1])
    replayed = replayed + 1
  end
end
return {replayed, refused}
