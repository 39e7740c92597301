-- A polled feed goes back to the schedule at its next time, unless it was removed meanwhile.
-- KEYS: 1 schedule  2 inflight
-- ARGV: 1 feed URL  2 next poll time
-- Returns 1 when rescheduled, 0 when the feed is gone.
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 or redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
return 0
