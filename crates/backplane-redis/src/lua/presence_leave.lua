-- KEYS: the channel's members, the member sockets cluster-wide, the member sockets per node,
-- the node's presence sockets on the channel, the node's record of its presence members, the
-- channel's presence sequence, the user's pending departure, the node's pending leaves.
-- ARGV: node, app, channel, socket, user, token ('' = keep no pending departure).
-- Returns {0} when the user keeps a socket on the channel, or the socket was not joined (a
-- repeated or foreign leave changes nothing); else, that being the user's last socket
-- anywhere, {1, seq} with the presence sequence of the removal, or {1, seq, token} when a token
-- was given (the departure is then pending until confirm_leave.lua takes it or the user
-- rejoins); n owes its confirmation (its pending leaves).
local n, a, c, s, u, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local pm, pt, pc, ps, record, pseq, gone, leaves = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
if redis.call('SREM', ps, u .. '\n' .. s) == 0 then return {0} end
local field = u .. '\n' .. n
local v = tonumber(redis.call('HGET', pc, field) or '0')
if v <= 1 then
  redis.call('HDEL', pc, field)
  redis.call('SREM', record, a .. '\n' .. c .. '\n' .. u)
else
  redis.call('HINCRBY', pc, field, -1)
end
if redis.call('HINCRBY', pt, u, -1) <= 0 then
  redis.call('HDEL', pt, u)
  redis.call('HDEL', pm, u)
  local seq = next_seq(pseq)
  forget_seq_if_empty(pm, pseq)
  if token == '' then return {1, seq} end
  redis.call('SET', gone, token, 'PX', LEAVE_TTL_MS)
  hold_leave(leaves, leave_entry(token, a, c, u))
  return {1, seq, token}
end
return {0}
