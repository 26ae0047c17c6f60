-- KEYS: the lane's lease. ARGV: node, lease ms ('' to release).
-- Renews (or, with an empty lease, releases) the lane's lease if `node` holds it.
-- Returns 1 if `node` held it, else 0.
local node, lease = ARGV[1], ARGV[2]
if redis.call('GET', KEYS[1]) ~= node then
  return 0
end
if lease == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
