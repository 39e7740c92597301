-- Assign an article to a story and index it (library: story.lua).
-- KEYS: none (the index's keys are derived from ARGV[1])
-- ARGV: 1 index prefix (ingest.keys.story_index)  2 now (Unix seconds)  3 the article's time (its
--       publication, Unix seconds)  4 window (seconds)  5 threshold  6 terms ("term term* ...",
--       story.story_terms)  7 article id  8 article ref (8 bytes)
-- Returns {story id, similarity that decided it}.
return st_assign(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  unpack(ARGV, 6, 8))
