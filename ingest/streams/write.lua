-- The idempotent write: each revision of an article enters its streams once, whoever writes it.
-- Runs after the decision (ingest/dedup/decide.lua), which recorded the revision to write.
-- It also records where the document went, for the HTTP look-ups (ingest/streams/lookup.py):
-- the entry id in the article's ref hash (field ARGV 4: `articles` or `updates`), the article in
-- its story's members by first-seen time, and the story in the recent stories (capped).
-- KEYS: 1 seen:id:{id}  2 ref:{id}  3 members:{story_id}  4 stories  5.. the streams to add it to
-- ARGV: 1 revision  2 approximate stream cap (MAXLEN ~)  3 the document (JSON)  4 ref field
--       5 article id  6 story id  7 seconds the look-up keys live  8 recent stories kept
-- Returns 1 written now, 0 written before, -1 no decision record (it vanished: an error).
local rec = redis.call('GET', KEYS[1])
if not rec then return -1 end
local head, written = string.match(rec, '^(.*)|w(%d+)$')
if not head or tonumber(written) >= tonumber(ARGV[1]) then return 0 end
local first
for i = 5, #KEYS do
  local entry = redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[3])
  first = first or entry
end
redis.call('SET', KEYS[1], head .. '|w' .. ARGV[1], 'KEEPTTL')
if first then
  local ms = tonumber(string.match(first, '^(%d+)'))
  redis.call('HSET', KEYS[2], ARGV[4], first, 'story', ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  redis.call('ZADD', KEYS[3], 'NX', ms, ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[7])
  redis.call('ZADD', KEYS[4], ms, ARGV[6])
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -1 - tonumber(ARGV[8]))
end
return 1
