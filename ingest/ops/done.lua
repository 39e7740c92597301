-- A sweep item is done: record its outcome once (ingest/ops/progress.py).
-- KEYS: 1 sweep:{id}:pending  2 sweep:{id}:outcomes
-- ARGV: 1 the item  2 its outcome  3 seconds the outcomes live
-- Returns 1 when recorded now (it was pending, or never seen), 0 when it was done before.
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0
