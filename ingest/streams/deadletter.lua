-- A consumer gives up on a stream entry: ack it in its group and move it to the dead-letter
-- stream, in one step (ingest/streams/consume.py), so it is neither lost nor handed out again.
-- KEYS: 1 the stream  2 {prefix}:deadletter  3 {prefix}:stats
-- ARGV: 1 the consumer group  2 the entry id  3 the dead letter (JSON)  4 approximate cap (MAXLEN ~)
-- Returns 1 moved now, 0 the entry was acked before (by this consumer or another).
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'data', ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'consume:dead_lettered', 1)
  return 1
end
return 0
