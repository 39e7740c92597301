-- Index a body under its article (library: neardup.lua).
-- KEYS: none (the index's keys are derived from ARGV[1])
-- ARGV: 1 index prefix  2 now (Unix seconds)  3 window (seconds)  4 capacity hint (articles per
--       slice before there is history)  5 blob (neardup.lookup_blob)  6 article ref (8 bytes)  7 article id
nd_insert(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7])
return 1
