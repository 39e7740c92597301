-- Put back one message a broker channel took off its queue (BLMOVE) but never recorded as unacked:
-- the channel died with the message unread in its socket. Atomic and once: only while the message
-- is still in the channel's taking list (two reapers: the first puts it back, the second finds it gone).
-- KEYS: 1 broker:taking:{holder}  2.. the message's queue(s)
-- ARGV: 1 the message as taken  2 the message to push
-- Returns 1 when put back, 0 when it was no longer there.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
for i = 2, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[2])
end
return 1
