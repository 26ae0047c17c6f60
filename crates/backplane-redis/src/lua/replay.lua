-- KEYS: replay logs. ARGV: entries per log at most, then per log the last id its reader
-- delivered. Returns, per log, {entries after that id (as XRANGE gives them), the id of the
-- first entry the log still keeps, or '0-0' if it never trimmed any}. Trimming drops the oldest
-- entries, so a reader whose id is below that first kept entry may have missed trimmed ones.
-- A missing log has neither.
local count = ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
  local after = ARGV[i + 1]
  if redis.call('EXISTS', key) == 0 then
    out[#out + 1] = {{}, '0-0'}
  else
    local entries = redis.call('XRANGE', key, '(' .. after, '+', 'COUNT', count)
    local info = redis.call('XINFO', 'STREAM', key)
    local f = {}
    for j = 1, #info, 2 do f[info[j]] = info[j + 1] end
    local first = '0-0'
    if tonumber(f['entries-added'] or 0) > tonumber(f['length'] or 0) then
      first = f['recorded-first-entry-id'] or '0-0'
    end
    out[#out + 1] = {entries, first}
  end
end
return out
