-- Remember the entries a feed shows now, keeping older ones up to a cap (oldest forgotten first).
-- KEYS: 1 seen:{feed hash} (a string of fixed-size entry digests, oldest first)
-- ARGV: 1 digest size in bytes  2 cap (digests kept)  3.. the digests of the current entries
-- Returns how many digests are remembered.
local size, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local blob = redis.call('GET', KEYS[1]) or ''
local current, fresh, kept = {}, {}, {}
for i = 3, #ARGV do
  if not current[ARGV[i]] then current[ARGV[i]] = true; fresh[#fresh + 1] = ARGV[i] end
end
for i = 1, #blob - size + 1, size do
  local digest = string.sub(blob, i, i + size - 1)
  if not current[digest] then kept[#kept + 1] = digest end
end
blob = table.concat(kept) .. table.concat(fresh)
if #blob > cap * size then blob = string.sub(blob, #blob - cap * size + 1) end
redis.call('SET', KEYS[1], blob)
return #blob / size
