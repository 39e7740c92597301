-- Story clustering: a library of functions, prepended to the scripts that use it (decide.lua,
-- story_assign.lua). Python side: ingest/dedup/story.py, which picks each article's terms.
--
-- Keys (under the prefix `pfx`, ingest.keys.story_index):
--   {pfx}t:{term}  sorted set  article refs by the article's time: the posting list of one term
--   {pfx}all       sorted set  every article ref by time (how many fall in a window weighs the idf)
--   {pfx}d:{ref}   string      "story_id term/df term*/df ...": an article's story, terms, their df
-- An article's time is its publication time (when known and not in the future), so reports that
-- arrive late or out of order meet the reports they were written beside: candidates and idf come
-- from the articles within one window of that time, before or after it. Posting lists keep their
-- ST_COMMON latest articles, `all` its last ST_KEEP windows; keys expire one window after their
-- last use.

-- The constants below mirror ingest/dedup/story.py (tests/unit/dedup/test_lua_constants.py).
local ST_COMMON = 400
local ST_RECENT = 60
local ST_PROBE = 8
local ST_TOP = 12
local ST_MARK = 1.0
local ST_KEEP = 7
local ST_KNEE = 0.25
local ST_FADE = 0.8
local ST_FULL = 64

-- "kyiv* truce" -> {{'kyiv', 2}, {'truce', 1}}: names and figures weigh double
local function st_parse(s)
  local out = {}
  for token in string.gmatch(s, '%S+') do
    local base, star = string.match(token, '^(.-)(%*?)$')
    out[#out + 1] = {base, star == '*' and ST_MARK or 1}
  end
  return out
end

-- Each term's idf over the articles within a window of time t (a posting list keeps its
-- ST_COMMON latest articles: a term that fills it is background); the latest articles of that
-- span on each of our ST_PROBE rarest terms, scored by the idf they share, and their times.
local function st_scores(pfx, t, window, terms, n)
  local idf, score, times, norm, rarest = {}, {}, {}, 0, {}
  local low, high = t - window, t + window
  for _, term in ipairs(terms) do
    local df = redis.call('ZCOUNT', pfx .. 't:' .. term[1], low, high)
    local w = math.log(1 + n / (df + 1))
    idf[term[1]], norm = {w, term[2], df}, norm + (w * term[2]) ^ 2
    if df > 0 and df < ST_COMMON then rarest[#rarest + 1] = term end
  end
  table.sort(rarest, function(a, b)
    local da, db = idf[a[1]][3], idf[b[1]][3]
    if da ~= db then return da < db end
    return a[1] < b[1]
  end)
  for i = 1, math.min(#rarest, ST_PROBE) do
    local term = rarest[i]
    local w = idf[term[1]][1] * term[2]
    local key = pfx .. 't:' .. term[1]
    local found = redis.call('ZRANGE', key, high, low, 'BYSCORE', 'REV', 'LIMIT', 0, ST_RECENT, 'WITHSCORES')
    for k = 1, #found, 2 do
      local m = found[k]
      score[m], times[m] = (score[m] or 0) + w, tonumber(found[k + 1])
    end
  end
  return idf, score, times, math.sqrt(norm)
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

-- Cosine of the two weighted term sets, both weighed by today's idf; a term of theirs that is not
-- ours by the df it had when they were indexed, themselves included (an older record: df 1).
-- A record is "story term/df term*/df ...".
local function st_similarity(idf, norm, n, rec)
  local story, rest = string.match(rec, '^(%S+) ?(.*)$')
  local dot, their, count = 0, 0, 0
  for token in string.gmatch(rest, '%S+') do  -- st_parse inlined: no table per term
    count = count + 1
    local base, df = string.match(token, '^([^/]*)/?(%d*)$')
    local mark = 1
    if string.byte(base, -1) == 42 then mark, base = ST_MARK, string.sub(base, 1, -2) end  -- '*'
    local mine = idf[base]
    local w = (mine and mine[1] or math.log(1 + n / ((tonumber(df) or 0) + 2))) * mark  -- df + itself
    their = their + w * w
    if mine then dot = dot + mine[1] * mine[1] * mine[2] * mark end
  end
  return story, dot / math.max(norm * math.sqrt(their), 1e-9), count
end

local function st_index(pfx, t, window, terms, idf, tokens, ref, story)
  for _, term in ipairs(terms) do
    local key = pfx .. 't:' .. term[1]
    redis.call('ZADD', key, t, ref)
    if redis.call('ZCARD', key) > ST_COMMON then redis.call('ZREMRANGEBYRANK', key, 0, -ST_COMMON - 1) end
    redis.call('EXPIRE', key, math.ceil(window))
  end
  redis.call('ZADD', pfx .. 'all', t, ref)
  redis.call('EXPIRE', pfx .. 'all', math.ceil(window))
  local record = {story}
  for i, token in ipairs(tokens) do record[i + 1] = token .. '/' .. idf[terms[i][1]][3] end
  redis.call('SET', pfx .. 'd:' .. ref, table.concat(record, ' '), 'EX', math.ceil(window))
end

-- How much two reports `dt` seconds apart may still be of one event: fully within the first
-- quarter of the window, then fading linearly to 1 - ST_FADE at its edge (reports of one event
-- cluster in time; the same people and places a day or two later are often another event).
local function st_closeness(dt, window)
  local knee = ST_KNEE * window
  return 1 - ST_FADE * math.max(0, math.abs(dt) - knee) / (window - knee)
end

-- Short term lists share a term or two by chance and their cosine is large for it: the
-- similarity of two articles counts in full only when the shorter list has ST_FULL terms.
local function st_fullness(count)
  return math.sqrt(math.min(1, count / ST_FULL))
end

-- The story of this article (an earlier one's, or its own id) and the similarity that decided it.
-- `t` is the article's time (its publication, or now); `ref` (8 bytes) names the article in
-- posting lists; records keep the story id.
local function st_assign(pfx, now, t, window, threshold, terms_str, id, ref)
  redis.call('ZREMRANGEBYSCORE', pfx .. 'all', '-inf', now - ST_KEEP * window)
  local terms = st_parse(terms_str)
  local n = redis.call('ZCOUNT', pfx .. 'all', t - window, t + window) + 1
  local idf, score, times, norm = st_scores(pfx, t, window, terms, n)
  local story, best = id, 0
  for i, cand in ipairs(st_ranked(score)) do
    if i > ST_TOP then break end
    local rec = redis.call('GET', pfx .. 'd:' .. cand[1])
    if rec then
      local their_story, sim, count = st_similarity(idf, norm, n, rec)
      sim = sim * st_closeness(times[cand[1]] - t, window) * st_fullness(math.min(#terms, count))
      if sim >= threshold and sim > best then story, best = their_story, sim end
    end
  end
  local tokens = {}
  for token in string.gmatch(terms_str, '%S+') do tokens[#tokens + 1] = token end
  st_index(pfx, t, window, terms, idf, tokens, ref, story)
  return {story, tostring(best)}
end
