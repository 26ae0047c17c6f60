-- Shared by the webhook queue scripts. Key layout (P = prefix, a = app, e = endpoint hash,
-- l = lane):
--   P:whq:a:e:l     STREAM  the lane's jobs (fields ev, ms, from, ik?), consumer group "fc";
--                           an entry is deleted when acknowledged, so XLEN is the undelivered count
--   P:whl:a:e:l     STR     the lane's lease: the node consuming it (SET NX PX, renewed)
--   P:whlanes:a     SET     "e:l" of every lane the app ever queued to (stats, replay)
--   P:whd:a         STREAM  the app's dead letters (fields ep, ln, ev, ms, ik, why, at), capped
local GROUP = 'fc'

local function lane_key(P, a, e, l)
  return P .. ':whq:' .. a .. ':' .. e .. ':' .. l
end

-- Create the stream and its group (reading from the start) the first time a lane is used.
local function ensure_lane(P, a, e, l)
  local key = lane_key(P, a, e, l)
  if redis.call('EXISTS', key) == 0 then
    redis.call('XGROUP', 'CREATE', key, GROUP, '0', 'MKSTREAM')
  end
  redis.call('SADD', P .. ':whlanes:' .. a, e .. ':' .. l)
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
