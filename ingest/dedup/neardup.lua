-- The near-duplicate index: a library of functions, prepended to the scripts that use it
-- (decide.lua, neardup_find.lua, neardup_insert.lua). Python side: ingest/dedup/neardup.py, which
-- builds the lookup blob and holds the same rules in pure functions (tests check both agree).
--
-- Keys (under the prefix `pfx`, ingest.keys.neardup_index): per time slice `gen`,
--   {pfx}{gen}:{bucket}  hash   band field (4 bytes) -> up to ND_MAX_REFS article refs (8 bytes each)
--   {pfx}{gen}:s         hash   article ref -> record (shingle count, 128 slots, article id)
--   {pfx}{gen}:m         hash   `bits` (bucket bits of this slice), `n` (articles indexed)
-- A blob (neardup.lookup_blob): shingle count (4 bytes) and 128 16-bit slots, then per band a
-- 4-byte field and 24 binary digits; a lookup may add its tail's head and the tail's bands.

-- The constants below mirror ingest/dedup/neardup.py (tests/unit/dedup/test_lua_constants.py).
local ND_BANDS = 32
local ND_SLOTS = 128
local ND_SLICES = 1
local ND_MAX_REFS = 4
local ND_FILL = 64
local ND_MIN_BITS = 8
local ND_MAX_BITS = 24
local ND_JACCARD_MIN = 0.8
local ND_CONTAINMENT_MIN = 0.8
local ND_CONTAINMENT_FLOOR = 0.2
local ND_LEAD_MAX_WORDS = 60
local ND_LEAD_CONTAINMENT_MIN = 0.8
local ND_SHINGLE_WORDS = 5
local ND_RECORD = 4 + ND_SLOTS * 2  -- a blob starts with the shingle count and the slots
local ND_TAIL = ND_RECORD + ND_BANDS * (4 + ND_MAX_BITS)  -- then the bands; then maybe the tail's
local ND_TAIL_BANDS = ND_TAIL + ND_RECORD  -- the tail's head; then maybe the tail's bands

local function nd_u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function nd_slice(window) return window / ND_SLICES end

local function nd_bits(pfx, gen)
  return tonumber(redis.call('HGET', pfx .. gen .. ':m', 'bits'))
end

-- Per band of the section after byte `at`: its 4-byte field, and the digits its bucket is cut from.
local function nd_bands(blob, at)
  local fields, digits, start = {}, {}, at + ND_BANDS * 4
  for band = 1, ND_BANDS do
    fields[band] = string.sub(blob, at + band * 4 - 3, at + band * 4)
    digits[band] = string.sub(blob, start + (band - 1) * ND_MAX_BITS + 1, start + band * ND_MAX_BITS)
  end
  return fields, digits
end

-- A lookup's bands: the body's, then the tail's where they differ from the body's.
local function nd_probe_bands(blob)
  local fields, digits = nd_bands(blob, ND_RECORD)
  if #blob > ND_TAIL_BANDS then
    local tail_fields, tail_digits = nd_bands(blob, ND_TAIL_BANDS)
    for band = 1, ND_BANDS do
      if tail_fields[band] ~= fields[band] or tail_digits[band] ~= digits[band] then
        fields[#fields + 1], digits[#digits + 1] = tail_fields[band], tail_digits[band]
      end
    end
  end
  return fields, digits
end

local function nd_candidates(pfx, now, window, fields, digits)
  local current = math.floor(now / nd_slice(window))
  local found, list = {}, {}
  for gen = current, current - ND_SLICES, -1 do
    local bits = nd_bits(pfx, gen)
    if bits then
      local head = pfx .. gen .. ':'
      for band = 1, #fields do
        local refs = redis.call('HGET', head .. string.sub(digits[band], 1, bits), fields[band])
        for i = 1, refs and #refs or 0, 8 do
          local ref = string.sub(refs, i, i + 7)
          if not found[gen .. ref] then
            found[gen .. ref] = true
            list[#list + 1] = {gen, ref}
          end
        end
      end
    end
  end
  return list
end

-- The share of equal slots (two bytes each) in two signatures.
local function nd_jaccard(mine, theirs)
  local same = 0
  for i = 1, ND_SLOTS * 2, 2 do
    if mine[i] == theirs[i] and mine[i + 1] == theirs[i + 1] then same = same + 1 end
  end
  return same / ND_SLOTS
end

local function nd_is_copy(j, na, nb)
  if j >= ND_JACCARD_MIN then return true end
  if j < ND_CONTAINMENT_FLOOR or math.min(na, nb) == 0 then return false end
  return j * (na + nb) / (1 + j) / math.min(na, nb) >= ND_CONTAINMENT_MIN
end

local function nd_is_lead_copy(j, tail_a, nb)
  if j < ND_CONTAINMENT_FLOOR or tail_a == 0 then return false end
  local tail_b = nb - math.min(ND_LEAD_MAX_WORDS, math.floor((nb + ND_SHINGLE_WORDS - 1) / 2))
  return j * (tail_a + nb) / (1 + j) >= ND_LEAD_CONTAINMENT_MIN * math.max(tail_a, tail_b)
end

-- A record is the blob's head (shingle count, slots) and the article id.
local function nd_is_match(blob, mine, tail, rec)
  local theirs, nb = {string.byte(rec, 5, ND_RECORD)}, nd_u32(rec, 1)
  if nd_is_copy(nd_jaccard(mine, theirs), nd_u32(blob, 1), nb) then return true end
  return tail ~= nil and nd_is_lead_copy(nd_jaccard(tail, theirs), nd_u32(blob, ND_TAIL + 1), nb)
end

-- The id of an indexed article whose body this blob copies, or nil.
local function nd_find(pfx, now, window, blob, own_id)
  local mine, tail = {string.byte(blob, 5, ND_RECORD)}, nil
  if #blob > ND_TAIL then tail = {string.byte(blob, ND_TAIL + 5, ND_TAIL + ND_RECORD)} end
  for _, cand in ipairs(nd_candidates(pfx, now, window, nd_probe_bands(blob))) do
    local rec = redis.call('HGET', pfx .. cand[1] .. ':s', cand[2])
    local their_id = rec and string.sub(rec, ND_RECORD + 1)
    if rec and their_id ~= own_id and nd_is_match(blob, mine, tail, rec) then return their_id end
  end
  return nil
end

-- A new slice sizes its buckets from the last slice's volume (or the hint): about ND_FILL each.
local function nd_gen_bits(pfx, gen, hint)
  local bits = nd_bits(pfx, gen)
  if bits then return bits end
  local previous = tonumber(redis.call('HGET', pfx .. (gen - 1) .. ':m', 'n')) or 0
  local buckets = math.max(previous, hint) * ND_BANDS / ND_FILL
  bits = math.ceil(math.log(math.max(buckets, 1)) / math.log(2))
  bits = math.min(math.max(bits, ND_MIN_BITS), ND_MAX_BITS)
  redis.call('HSET', pfx .. gen .. ':m', 'bits', bits)
  return bits
end

-- Index a body under its article: band buckets and the record, in the running slice.
local function nd_insert(pfx, now, window, hint, blob, ref, id)
  local slice = nd_slice(window)
  local gen = math.floor(now / slice)
  local expire_at = math.ceil((gen + ND_SLICES + 1) * slice)
  local head, bits = pfx .. gen .. ':', nd_gen_bits(pfx, gen, hint)
  redis.call('HINCRBY', head .. 'm', 'n', 1)
  redis.call('EXPIREAT', head .. 'm', expire_at + math.ceil(slice))
  local fields, digits = nd_bands(blob, ND_RECORD)
  for band = 1, ND_BANDS do
    local key = head .. string.sub(digits[band], 1, bits)
    local old = redis.call('HGET', key, fields[band]) or ''
    redis.call('HSET', key, fields[band], string.sub(ref .. old, 1, ND_MAX_REFS * 8))
    redis.call('EXPIREAT', key, expire_at)
  end
  redis.call('HSET', head .. 's', ref, string.sub(blob, 1, ND_RECORD) .. id)
  redis.call('EXPIREAT', head .. 's', expire_at)
end
