-- Index a version of a story under its ref, pointing at the story's published article
-- (library: neardup.lua). A version indexed before is left as it is.
-- KEYS: none (the index's keys are derived from ARGV[1])
-- ARGV: 1 index prefix  2 now (Unix seconds)  3 window (seconds)  4 capacity hint (articles per
--       slice before there is history)  5 blob (neardup.lookup_blob)  6 version ref (8 bytes,
--       neardup.version_ref)  7 id of the published article it points at
-- Returns 1 when indexed, 0 when the version was there already.
return nd_insert(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7])
