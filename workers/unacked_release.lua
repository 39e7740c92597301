-- An ack (or a reject without requeue) by the holder: drop kombu's unacked record, unless the
-- message was restored meanwhile and another channel holds it now (then that one's record stays).
-- KEYS: 1 unacked_index  2 unacked  3 broker:owners  4 broker:held:{holder}
-- ARGV: 1 delivery tag  2 holder
-- Returns 1 when the record was dropped, 0 when another channel holds the message now.
local owner = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
if owner and owner ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
