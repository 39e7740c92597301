-- Story clustering: a library of functions, prepended to the scripts that use it (decide.lua,
-- story_assign.lua). Python side: ingest/dedup/story.py, which picks each article's terms.
--
-- Keys (under the prefix `pfx`, ingest.keys.story_index), all expiring after the story window:
--   {pfx}t:{term}  sorted set  article refs by time: the posting list of one term
--   {pfx}all       sorted set  every article ref of the window by time (its size weighs the idf)
--   {pfx}d:{ref}   string      "story_id term term* ...": an article's story and terms

-- The constants below mirror ingest/dedup/story.py (tests/unit/dedup/test_lua_constants.py).
local ST_COMMON = 400
local ST_RECENT = 60
local ST_TOP = 12
local ST_MARK = 2.0

-- "kyiv* truce" -> {{'kyiv', 2}, {'truce', 1}}: names and figures weigh double
local function st_parse(s)
  local out = {}
  for token in string.gmatch(s, '%S+') do
    local base, star = string.match(token, '^(.-)(%*?)$')
    out[#out + 1] = {base, star == '*' and ST_MARK or 1}
  end
  return out
end

-- Each term's idf over the window (a posting list keeps its ST_COMMON latest articles: a term
-- that fills it is background); the latest articles sharing the rarer terms, scored.
local function st_scores(pfx, now, window, terms, n)
  local idf, score, norm = {}, {}, 0
  for _, term in ipairs(terms) do
    local key = pfx .. 't:' .. term[1]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local df = redis.call('ZCARD', key)
    local w = math.log(1 + n / (df + 1))
    idf[term[1]], norm = {w, term[2], df}, norm + (w * term[2]) ^ 2
    if df > 0 and df < ST_COMMON then
      for _, m in ipairs(redis.call('ZRANGE', key, -ST_RECENT, -1)) do
        score[m] = (score[m] or 0) + w * term[2]
      end
    end
  end
  return idf, score, math.sqrt(norm)
end

-- The ST_TOP best candidates, best first (ties: the smaller ref), without sorting them all: a
-- candidate list runs to ~2,000 articles, and a full sort was most of the script's time.
local function st_ranked(score)
  local top = {}
  for m, s in pairs(score) do
    local n = #top
    if n < ST_TOP or s > top[n][2] or (s == top[n][2] and m < top[n][1]) then
      local i = n < ST_TOP and n + 1 or n
      while i > 1 and (s > top[i - 1][2] or (s == top[i - 1][2] and m < top[i - 1][1])) do
        top[i] = top[i - 1]
        i = i - 1
      end
      top[i] = {m, s}
    end
  end
  return top
end

-- Cosine of the two weighted term sets, both weighed by today's idf (their terms that are not
-- ours count as rare: df 1). A record is "story term term* ...".
local function st_similarity(idf, norm, n, rec)
  local story, rest = string.match(rec, '^(%S+) ?(.*)$')
  local dot, their, rare = 0, 0, math.log(1 + n / 2)
  for token in string.gmatch(rest, '%S+') do  -- st_parse inlined: no table per term
    local mark, base = 1, token
    if string.byte(token, -1) == 42 then mark, base = ST_MARK, string.sub(token, 1, -2) end  -- '*'
    local mine = idf[base]
    local w = (mine and mine[1] or rare) * mark
    their = their + w * w
    if mine then dot = dot + mine[1] * mine[1] * mine[2] * mark end
  end
  return story, dot / math.max(norm * math.sqrt(their), 1e-9)
end

local function st_index(pfx, now, window, terms, idf, terms_str, ref, story)
  for _, term in ipairs(terms) do
    local key = pfx .. 't:' .. term[1]
    redis.call('ZADD', key, now, ref)
    if idf[term[1]][3] >= ST_COMMON then redis.call('ZREMRANGEBYRANK', key, 0, -ST_COMMON - 1) end
    redis.call('EXPIRE', key, math.ceil(window))
  end
  redis.call('ZADD', pfx .. 'all', now, ref)
  redis.call('EXPIRE', pfx .. 'all', math.ceil(window))
  redis.call('SET', pfx .. 'd:' .. ref, story .. ' ' .. terms_str, 'EX', math.ceil(window))
end

-- The story of this article (an earlier one's, or its own id) and the similarity that decided it.
-- `ref` (8 bytes) names the article in posting lists; records keep the story id.
local function st_assign(pfx, now, window, threshold, terms_str, id, ref)
  redis.call('ZREMRANGEBYSCORE', pfx .. 'all', '-inf', now - window)
  local terms, n = st_parse(terms_str), redis.call('ZCARD', pfx .. 'all') + 1
  local idf, score, norm = st_scores(pfx, now, window, terms, n)
  local story, best = id, 0
  for i, cand in ipairs(st_ranked(score)) do
    if i > ST_TOP then break end
    local rec = redis.call('GET', pfx .. 'd:' .. cand[1])
    if rec then
      local their_story, sim = st_similarity(idf, norm, n, rec)
      if sim >= threshold and sim > best then story, best = their_story, sim end
    end
  end
  st_index(pfx, now, window, terms, idf, terms_str, ref, story)
  return {story, tostring(best)}
end
