-- The idempotent write: each revision of an article enters its streams once, whoever writes it.
-- Runs after the decision (ingest/dedup/decide.lua), which recorded the revision to write.
-- KEYS: 1 seen:id:{id}  2.. the streams to add the document to
-- ARGV: 1 revision  2 approximate stream cap (MAXLEN ~)  3 the document (JSON)
-- Returns 1 written now, 0 written before, -1 no decision record (it vanished: an error).
local rec = redis.call('GET', KEYS[1])
if not rec then return -1 end
local head, written = string.match(rec, '^(.*)|w(%d+)$')
if not head or tonumber(written) >= tonumber(ARGV[1]) then return 0 end
for i = 2, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[3])
end
redis.call('SET', KEYS[1], head .. '|w' .. ARGV[1], 'KEEPTTL')
return 1
