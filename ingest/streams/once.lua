-- Add an entry to a stream once per marker (copies to the duplicates stream, dead letters).
-- KEYS: 1 once:{marker}  2 the stream
-- ARGV: 1 seconds the marker lives  2 approximate stream cap (MAXLEN ~)  3 the entry's data (JSON)
-- Returns 1 added now, 0 added before.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[3])
  return 1
end
return 0
