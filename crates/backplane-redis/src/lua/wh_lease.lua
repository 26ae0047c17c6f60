-- ARGV: prefix, app, endpoint, lane, node, lease ms ('' to release).
-- Renews (or, with an empty lease, releases) the lane's lease if `node` holds it.
-- Returns 1 if `node` held it, else 0.
local P, a, e, l, node, lease = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local lease_key = P .. ':whl:' .. a .. ':' .. e .. ':' .. l
if redis.call('GET', lease_key) ~= node then
  return 0
end
if lease == '' then
  redis.call('DEL', lease_key)
else
  redis.call('PEXPIRE', lease_key, lease)
end
return 1
