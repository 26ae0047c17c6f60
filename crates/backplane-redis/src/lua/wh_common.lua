-- Shared by the webhook queue scripts. Key layout (T = the hash tag of the lane's bucket,
-- {P:b}, b from the app, endpoint and lane, so one app's lanes spread over the buckets;
-- a = app, e = endpoint hash, l = lane). The names are made in src/keys.rs and passed in KEYS.
--   T:whq:a:e:l     STREAM  the lane's jobs (fields ev, ms, from, ik?), consumer group "fc";
--                           an entry is deleted when acknowledged, so XLEN is the undelivered count
--   T:whl:a:e:l     STR     the lane's lease: the node consuming it (SET NX PX, renewed)
--   T:whlanes:a     SET     "e:l" of every lane of the bucket the app ever queued to (stats)
--   T:whd:a         STREAM  dead letters of the app's lanes in the bucket (fields ep, ln, ev, ms,
--                           ik, why, at), capped
local GROUP = 'fc'

-- Create the lane's stream and its group (reading from the start) the first time it is used,
-- and list it in its bucket's set of the app's lanes.
local function ensure_lane(key, lanes, member)
  if redis.call('EXISTS', key) == 0 then
    redis.call('XGROUP', 'CREATE', key, GROUP, '0', 'MKSTREAM')
  end
  redis.call('SADD', lanes, member)
  return key
end

-- A stream entry's fields {k, v, ...} as a table.
local function fields(flat)
  local t = {}
  for i = 1, #flat, 2 do
    t[flat[i]] = flat[i + 1]
  end
  return t
end
