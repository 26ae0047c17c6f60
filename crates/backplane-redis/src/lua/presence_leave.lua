-- ARGV: prefix, node, app, channel, socket, user, token ('' = keep no pending departure).
-- Returns {0} when the user keeps a socket on the channel, or the socket was not joined (a
-- repeated or foreign leave changes nothing); else, that being the user's last socket
-- anywhere, {1, seq} with the presence sequence of the removal, or {1, seq, token} when a token
-- was given (the departure is then pending until confirm_leave.lua takes it or the user
-- rejoins); n owes its confirmation (P:node:n:leaves).
local P, n, a, c, s, u, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local base = a .. ':' .. c
local pm, pt, pc = P .. ':pm:' .. base, P .. ':pt:' .. base, P .. ':pc:' .. base
local ps = P .. ':ps:' .. base .. ':' .. n
if redis.call('SREM', ps, u .. '\n' .. s) == 0 then return {0} end
local field = u .. '\n' .. n
local v = tonumber(redis.call('HGET', pc, field) or '0')
if v <= 1 then
  redis.call('HDEL', pc, field)
  redis.call('SREM', P .. ':node:' .. n .. ':pres', a .. '\n' .. c .. '\n' .. u)
else
  redis.call('HINCRBY', pc, field, -1)
end
if redis.call('HINCRBY', pt, u, -1) <= 0 then
  redis.call('HDEL', pt, u)
  redis.call('HDEL', pm, u)
  local seq = next_seq(P, base)
  forget_seq_if_empty(P, base)
  if token == '' then return {1, seq} end
  redis.call('SET', P .. ':gone:' .. base .. ':' .. u, token, 'PX', LEAVE_TTL_MS)
  hold_leave(P, n, leave_entry(token, a, c, u))
  return {1, seq, token}
end
return {0}
