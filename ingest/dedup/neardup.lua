-- The near-duplicate index: a library of functions, prepended to the scripts that use it
-- (decide.lua, neardup_find.lua, neardup_insert.lua). Python side: ingest/dedup/neardup.py, which
-- builds the lookup blob and holds the same rules in pure functions (tests check both agree).
--
-- Keys (under the prefix `pfx`, ingest.keys.neardup_index): per time slice `gen`,
--   {pfx}{gen}:{bucket}  hash   anchor field (4 bytes) -> up to ND_MAX_REFS version refs (8 bytes each)
--   {pfx}{gen}:s         hash   version ref -> record (shingle count, 128 slots, published article id)
--   {pfx}{gen}:m         hash   `bits` (bucket bits of this slice), `n` (versions indexed)
-- A blob (neardup.lookup_blob): shingle count (4 bytes) and 128 16-bit slots, then per anchor a
-- 4-byte field and 24 binary digits; a lookup may add its tail's count and slots.

-- The constants below mirror ingest/dedup/neardup.py (tests/unit/test_lua.py).
local ND_ANCHORS = 32
local ND_MIN_ANCHORS = 2
local ND_MAX_CANDIDATES = 16
local ND_SLOTS = 128
local ND_SLICES = 1
local ND_MAX_REFS = 4
local ND_FILL = 64
local ND_MIN_BITS = 8
local ND_MAX_BITS = 24
local ND_CONTAINMENT_MIN = 0.5
local ND_CONTAINMENT_FLOOR = 0.15
local ND_LEAD_MAX_WORDS = 60
local ND_LEAD_SMALL_MIN = 0.8
local ND_LEAD_LARGE_MIN = 0.5
local ND_SHINGLE_WORDS = 3
local ND_RECORD = 4 + ND_SLOTS * 2  -- a blob starts with the shingle count and the slots
local ND_TAIL = ND_RECORD + ND_ANCHORS * (4 + ND_MAX_BITS)  -- then the anchors; then maybe the tail

local function nd_u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function nd_slice(window) return window / ND_SLICES end

local function nd_bits(pfx, gen)
  return tonumber(redis.call('HGET', pfx .. gen .. ':m', 'bits'))
end

-- Per anchor: its 4-byte field, and the digits its bucket is cut from.
local function nd_anchors(blob)
  local fields, digits, start = {}, {}, ND_RECORD + ND_ANCHORS * 4
  for i = 1, ND_ANCHORS do
    fields[i] = string.sub(blob, ND_RECORD + i * 4 - 3, ND_RECORD + i * 4)
    digits[i] = string.sub(blob, start + (i - 1) * ND_MAX_BITS + 1, start + i * ND_MAX_BITS)
  end
  return fields, digits
end

-- The versions sharing at least ND_MIN_ANCHORS anchors with the blob, most shared first (ties:
-- the newer slice, then the smaller ref), at most ND_MAX_CANDIDATES of them.
local function nd_candidates(pfx, now, window, fields, digits)
  local current = math.floor(now / nd_slice(window))
  local hits, list = {}, {}
  for gen = current, current - ND_SLICES, -1 do
    local bits = nd_bits(pfx, gen)
    if bits then
      local head = pfx .. gen .. ':'
      for i = 1, #fields do
        local refs = redis.call('HGET', head .. string.sub(digits[i], 1, bits), fields[i])
        for at = 1, refs and #refs or 0, 8 do
          local key = gen .. ':' .. string.sub(refs, at, at + 7)
          local n = (hits[key] or 0) + 1
          hits[key] = n
          if n == ND_MIN_ANCHORS then list[#list + 1] = {gen, string.sub(refs, at, at + 7), key} end
        end
      end
    end
  end
  table.sort(list, function(a, b)
    local ha, hb = hits[a[3]], hits[b[3]]
    if ha ~= hb then return ha > hb end
    if a[1] ~= b[1] then return a[1] > b[1] end
    return a[2] < b[2]
  end)
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
  if j < ND_CONTAINMENT_FLOOR or math.min(na, nb) == 0 then return false end
  return j * (na + nb) / (1 + j) / math.min(na, nb) >= ND_CONTAINMENT_MIN
end

local function nd_is_lead_copy(j, tail_a, nb)
  if j < ND_CONTAINMENT_FLOOR or tail_a == 0 then return false end
  local tail_b = nb - math.min(ND_LEAD_MAX_WORDS, math.floor((nb + ND_SHINGLE_WORDS - 1) / 2))
  local shared = j * (tail_a + nb) / (1 + j)
  return shared >= ND_LEAD_SMALL_MIN * math.min(tail_a, tail_b)
    and shared >= ND_LEAD_LARGE_MIN * math.max(tail_a, tail_b)
end

-- A record is the blob's head (shingle count, slots) and the published article's id.
local function nd_is_match(blob, mine, tail, rec)
  local theirs, nb = {string.byte(rec, 5, ND_RECORD)}, nd_u32(rec, 1)
  if nd_is_copy(nd_jaccard(mine, theirs), nd_u32(blob, 1), nb) then return true end
  return tail ~= nil and nd_is_lead_copy(nd_jaccard(tail, theirs), nd_u32(blob, ND_TAIL + 1), nb)
end

-- The id of the published article of a story one of whose versions this blob copies, or nil.
local function nd_find(pfx, now, window, blob, own_id)
  local mine, tail = {string.byte(blob, 5, ND_RECORD)}, nil
  if #blob > ND_TAIL then tail = {string.byte(blob, ND_TAIL + 5, ND_TAIL + ND_RECORD)} end
  for i, cand in ipairs(nd_candidates(pfx, now, window, nd_anchors(blob))) do
    if i > ND_MAX_CANDIDATES then break end
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
  local buckets = math.max(previous, hint) * ND_ANCHORS / ND_FILL
  bits = math.ceil(math.log(math.max(buckets, 1)) / math.log(2))
  bits = math.min(math.max(bits, ND_MIN_BITS), ND_MAX_BITS)
  redis.call('HSET', pfx .. gen .. ':m', 'bits', bits)
  return bits
end

-- Whether an 8-byte ref is one of those in a field's value.
local function nd_has_ref(refs, ref)
  for at = 1, #refs, 8 do
    if string.sub(refs, at, at + 7) == ref then return true end
  end
  return false
end

-- Index a version under its ref, pointing at the published article `id`, in the running slice.
-- A version indexed before (a redelivery) is left as it is.
local function nd_insert(pfx, now, window, hint, blob, ref, id)
  local slice = nd_slice(window)
  local gen = math.floor(now / slice)
  local expire_at = math.ceil((gen + ND_SLICES + 1) * slice)
  local head, bits = pfx .. gen .. ':', nd_gen_bits(pfx, gen, hint)
  if redis.call('HEXISTS', head .. 's', ref) == 1 then return 0 end
  redis.call('HINCRBY', head .. 'm', 'n', 1)
  redis.call('EXPIREAT', head .. 'm', expire_at + math.ceil(slice))
  local fields, digits = nd_anchors(blob)
  for i = 1, ND_ANCHORS do
    local key = head .. string.sub(digits[i], 1, bits)
    local old = redis.call('HGET', key, fields[i]) or ''
    if not nd_has_ref(old, ref) then
      redis.call('HSET', key, fields[i], string.sub(ref .. old, 1, ND_MAX_REFS * 8))
      redis.call('EXPIREAT', key, expire_at)
    end
  end
  redis.call('HSET', head .. 's', ref, string.sub(blob, 1, ND_RECORD) .. id)
  redis.call('EXPIREAT', head .. 's', expire_at)
  return 1
end
