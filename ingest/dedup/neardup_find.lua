-- Look a body up in the near-duplicate index (library: neardup.lua). Writes nothing.
-- KEYS: none (the index's keys are derived from ARGV[1])
-- ARGV: 1 index prefix (ingest.keys.neardup_index)  2 now (Unix seconds)  3 window (seconds)
--       4 lookup blob (neardup.lookup_blob)  5 the looked-up article's own id ('' = none)
-- Returns the id of the published article of a story one of whose versions the blob copies, or nil.
return nd_find(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5])
