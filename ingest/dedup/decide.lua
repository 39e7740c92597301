-- The dedup decision for one article: published, a copy of an earlier one, a redelivery, or an
-- update of its own page (libraries: neardup.lua, story.lua). Python side: ingest/dedup/decide.py.
-- Atomic, so two workers racing on two copies of one story decide "published" for one only.
--
-- KEYS: 1 seen:id:{id}  2 seen:hash:{content hash} or ''  3 seen:guid:{guid digest} or ''
-- ARGV: 1 the decision's input, JSON (decide.DecideInput):
--         id          the article id
--         origin      the feed entry behind it (the same again = a redelivery)
--         hash        its body hash
--         kind        'p' body from the page, 'f' from the feed (only page bodies are updates)
--         now         Unix seconds
--         ttl         seconds the identity keys live
--         history     body hashes remembered per article
--         neardup     {prefix, window, capacity}: the near-duplicate index (neardup.lua)
--         story       {prefix, terms, time, window, threshold}: the story index (story.lua); terms
--                     '' = none; time = the article's publication (story.article_time)
--       2 the near-duplicate lookup blob ('' = the body is too short to match by shape)
--       3 the article's 8-byte ref in the story index
--       4 this version's 8-byte ref in the near-duplicate index (neardup.version_ref: id and body)
-- Returns {status, id of the original (or its own), story id, revision, layer}:
--   status  'published' | 'duplicate' | 'already' | 'updated'
--   layer   what recognised a copy: 'id', 'hash', 'guid', 'near'; '' when it is to be written
--
-- Every version of a story is indexed by its shape, pointing at the story's published article:
-- a new article, an update (its new body), a copy recognised by its shape or its GUID. A copy also
-- claims its body hash and GUID for the published article where nothing holds them yet.
--
-- The record `seen:id:{id}` is "origin|revision|kind|time|story|hashes|w{written revision}"; the
-- write script (ingest/streams/write.lua) adds the document to its streams and sets the last field.

local input = cjson.decode(ARGV[1])
local blob, ref, vref = ARGV[2], ARGV[3], ARGV[4]
local id, ttl, origin, hash, kind, now = input.id, input.ttl, input.origin, input.hash, input.kind, input.now
local seen_prefix = string.sub(KEYS[1], 1, #KEYS[1] - #id)
local RECORD = '^([^|]*)|(%d+)|(%a)|(%d+)|([^|]*)|([^|]*)'

local function parse(rec)
  local o, r, k, t, s, h = string.match(rec, RECORD .. '$')
  local w = nil
  if not o then
    o, r, k, t, s, h, w = string.match(rec, RECORD .. '|w(%d+)$')
  end
  if not o then return {origin = rec, rev = 1, kind = '', ts = 0, story = '', hashes = '', written = 1} end
  r = tonumber(r)
  return {origin = o, rev = r, kind = k, ts = tonumber(t), story = s, hashes = h, written = tonumber(w or r)}
end

local function record(rev, story, hashes, written)
  return table.concat({origin, rev, kind, math.floor(now), story, hashes, 'w' .. written}, '|')
end

local function story_of(other)
  local rec = redis.call('GET', seen_prefix .. other)
  local story = rec and parse(rec).story or ''
  return story ~= '' and story or other
end

local function index_shape(points_to)
  if blob ~= '' then
    local nd = input.neardup
    nd_insert(nd.prefix, now, nd.window, nd.capacity, blob, vref, points_to)
  end
end

local function index_body()
  if KEYS[2] ~= '' then redis.call('SET', KEYS[2], id, 'EX', ttl) end
  index_shape(id)
end

-- A copy of `original`: its shape joins the index, and its hash and GUID point at the original
-- unless they point somewhere already.
local function copy_of(original, layer)
  index_shape(original)
  for i = 2, 3 do
    if KEYS[i] ~= '' then redis.call('SET', KEYS[i], original, 'EX', ttl, 'NX') end
  end
  return {'duplicate', original, story_of(original), 1, layer}
end

local function update(rec, story)
  local rev, kept = rec.rev + 1, {hash}
  for old in string.gmatch(rec.hashes, '[^,]+') do
    if #kept < input.history then kept[#kept + 1] = old end
  end
  redis.call('SET', KEYS[1], record(rev, story, table.concat(kept, ','), rec.written), 'EX', ttl)
  index_body()
  return {'updated', id, story, rev, 'id'}
end

-- The same URL again: a redelivery, a copy from another entry, a stale copy, or an update.
local function known(rec)
  local story = rec.story ~= '' and rec.story or id
  local latest = string.match(rec.hashes, '^[^,]*')
  local same = hash == latest or rec.kind ~= 'p' or kind ~= 'p'
  if same and rec.origin == origin and rec.written < rec.rev then
    -- decided, but its write did not happen (the worker died in between): decide the same again
    return {rec.rev == 1 and 'published' or 'updated', id, story, rec.rev, ''}
  end
  local again = rec.origin == origin and 'already' or 'duplicate'
  if same then return {again, id, story, rec.rev, 'id'} end
  if string.find(',' .. rec.hashes .. ',', ',' .. hash .. ',', 1, true) then
    return {'already', id, story, rec.rev, 'id'}
  end
  return update(rec, story)
end

local rec = redis.call('GET', KEYS[1])
if rec then return known(parse(rec)) end
if KEYS[2] ~= '' then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {'duplicate', seen, story_of(seen), 1, 'hash'} end
end
if KEYS[3] ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then return copy_of(seen, 'guid') end
end
if blob ~= '' then
  local nd = input.neardup
  local original = nd_find(nd.prefix, now, nd.window, blob, id)
  if original then return copy_of(original, 'near') end
end
local story = id
local st = input.story
if st.terms ~= '' then
  story = st_assign(st.prefix, now, st.time, st.window, st.threshold, st.terms, id, ref)[1]
end
redis.call('SET', KEYS[1], record(1, story, hash, 0), 'EX', ttl)
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], id, 'EX', ttl) end
index_body()
return {'published', id, story, 1, ''}
