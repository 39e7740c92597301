-- Put one unacked message back on its queue(s), atomically, once: only while it is still unacked,
-- unchanged since the caller read it, and (unless no holder is given) still held by that holder.
-- Two reapers restoring the same dead worker's message: the first restores it, the second finds it gone.
-- KEYS: 1 unacked_index  2 unacked  3 broker:owners
-- ARGV: 1 the broker:held: key without its holder  2 holder ('' = whoever holds it: the visibility
--       timeout)  3 delivery tag  4 kombu's record as read  5 the message to push (marked redelivered)
--       6 'l' to push on the left (next out), 'r' on the right  7.. destination lists
-- Returns 1 when restored, 0 when there was nothing (left) to restore, -1 when the record changed
-- since the caller read it (read it again).
local owner = redis.call('HGET', KEYS[3], ARGV[3])
if ARGV[2] ~= '' and owner ~= ARGV[2] then
  redis.call('SREM', ARGV[1] .. ARGV[2], ARGV[3])
  return 0
end
local stored = redis.call('HGET', KEYS[2], ARGV[3])
if stored and stored ~= ARGV[4] then
  return -1
end
if stored then
  local push = ARGV[6] == 'l' and 'LPUSH' or 'RPUSH'
  for i = 7, #ARGV do
    redis.call(push, ARGV[i], ARGV[5])
  end
end
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[3])
if owner then
  redis.call('HDEL', KEYS[3], ARGV[3])
  redis.call('SREM', ARGV[1] .. owner, ARGV[3])
end
return stored and 1 or 0
