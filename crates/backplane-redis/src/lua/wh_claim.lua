-- KEYS: the lane's stream, its lease. ARGV: node, lease ms, max.
-- Takes or renews the lane's lease for `node`; if another node holds it returns {0}.
-- On taking the lease, every entry still pending in the group (claimed by a previous holder,
-- alive or dead, and never acknowledged) is moved to `node` with XAUTOCLAIM. Then returns the
-- lane's head: `node`'s own pending entries first (id order), then new ones (XREADGROUP >)
-- up to `max`.
-- Since a holder claims its next batch only after acknowledging (or dead-lettering) the last,
-- the pending entries are exactly the batch in flight, so order is kept across takeovers.
-- Returns {1, took_over (0/1), {{id, {field, value, ...}}, ...}}.
local node, lease, max = ARGV[1], ARGV[2], ARGV[3]
local lease_key = KEYS[2]
local owner = redis.call('GET', lease_key)
local took = false
if not owner then
  redis.call('SET', lease_key, node, 'PX', lease)
  took = true
elseif owner == node then
  redis.call('PEXPIRE', lease_key, lease)
else
  return {0}
end
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  return {1, 0, {}}
end
local moved = 0
if took then
  local cursor = '0-0'
  repeat
    local r = redis.call('XAUTOCLAIM', key, GROUP, node, 0, cursor, 'COUNT', 100)
    cursor = r[1]
    moved = moved + #r[2]
  until cursor == '0-0'
end
local function read(from, count)
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, node, 'COUNT', count, 'STREAMS', key, from)
  if not r or not r[1] then
    return {}
  end
  return r[1][2]
end
local entries = {}
for _, entry in ipairs(read('0', max)) do
  -- Entries deleted while pending come back without fields: acknowledge and skip them.
  if entry[2] and #entry[2] > 0 then
    table.insert(entries, entry)
  else
    redis.call('XACK', key, GROUP, entry[1])
  end
end
if #entries < tonumber(max) then
  for _, entry in ipairs(read('>', tonumber(max) - #entries)) do
    table.insert(entries, entry)
  end
end
return {1, (took and moved > 0) and 1 or 0, entries}
