-- Schedule feeds that are neither scheduled nor in flight.
-- KEYS: 1 schedule  2 inflight
-- ARGV: 1 when they are due  2.. feed URLs
-- Returns how many were added.
local added = 0
for i = 2, #ARGV do
  if not redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    added = added + redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i])
  end
end
return added
