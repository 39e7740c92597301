-- A message just taken off its queue: kombu's unacked record, plus which broker channel holds it.
-- KEYS: 1 unacked_index (zset: tag -> time taken)  2 unacked (hash: tag -> kombu's [message, exchange,
--       routing key])  3 broker:owners (hash: tag -> holder)  4 broker:held:{holder} (set of tags)
--       5 broker:workers (zset: holder -> heartbeat expiry, ms on this server's clock)
--       6 broker:taking:{holder} (list: the message as BLMOVE took it; optional)
-- ARGV: 1 delivery tag  2 kombu's record  3 time taken (s, kombu's index score)  4 holder
--       5 the broker:held: key without its holder (to drop the tag from a previous holder's set)
--       6 heartbeat ttl ms (a holder's first message registers it, before its first heartbeat)
--       7 the message as taken (with KEYS[6]): it leaves the taking list as it enters the index
-- Returns 1.
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous and previous ~= ARGV[4] then
  redis.call('SREM', ARGV[5] .. previous, ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[1])
if not redis.call('ZSCORE', KEYS[5], ARGV[4]) then
  local now = redis.call('TIME')
  redis.call('ZADD', KEYS[5], now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[6]), ARGV[4])
end
if KEYS[6] then
  redis.call('LREM', KEYS[6], 1, ARGV[7])
end
return 1
