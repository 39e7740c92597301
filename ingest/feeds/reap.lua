-- Feeds whose poll lease expired (their worker died) go back to the schedule, due now.
-- KEYS: 1 inflight  2 schedule
-- ARGV: 1 now  2 at most this many
-- Returns how many were put back.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], 'NX', tonumber(ARGV[1]), member)
end
return #expired
