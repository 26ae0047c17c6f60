-- KEYS: the lane's stream. ARGV: id...
-- Acknowledges delivered entries and deletes them, so the stream holds only what is undelivered.
for i = 1, #ARGV do
  redis.call('XACK', KEYS[1], GROUP, ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return 1
