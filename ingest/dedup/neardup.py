"""Near-duplicate bodies: MinHash signatures, LSH bands, and the shared index in Redis.

Pure part: a body becomes a `Signature` (128 MinHash values over 5-word
shingles of the normalised text) and a lookup blob (32 band hashes of 4 rows,
the 16-bit slots kept for confirmation, the shingle counts). Redis part: the
Lua functions `nd_find` and `nd_insert`, which `publish.py` runs inside its one
publish script, so looking a body up and indexing it is atomic with
publishing and costs a single round trip (docs/dedup.md has the layout).

A copy with a rewritten lead keeps all but its first paragraph; in a short
article that paragraph is a fifth to a half of the text, too much for the
whole-body rules. So the signature of a body of up to 600 words also holds the
MinHash of its *tail*, the text after its first 60 words (after its first
half, under 120 words), and a lookup sends it: the lead rule confirms a
candidate when the text the two share makes up most of this tail and most of
the candidate's own tail (its length follows from the candidate's shingle
count), so the two differ in their leads only. Up to 240 words, where a new
lead can hide the original from the body's own bands, the tail's bands are
looked up as well. Words, not paragraphs or sentences, mark the cut: copies
keep neither intact. Only lookups carry a tail; the index keeps its layout.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from dataclasses import dataclass
from string import Template
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

from ingest.dedup.identity import article_ref, normalize_text

NUM_PERM = 128
SHINGLE_WORDS = 5
BANDS = 32
ROWS = NUM_PERM // BANDS
MIN_WORDS = 80  # shorter bodies (paywall stubs, teasers) are too alike to be matched by shape
JACCARD_MIN = 0.8  # a copy: most shingles shared
CONTAINMENT_MIN = 0.8  # a trimmed or extended reprint: the smaller body mostly inside the larger
CONTAINMENT_FLOOR = 0.2  # below this Jaccard the containment estimate is too noisy to trust
LEAD_MAX_WORDS = 60  # where a tail starts (a news lead is one paragraph of some 20-50 words)
LEAD_CONTAINMENT_MIN = 0.8  # the lead rule: each tail at least this much made of the shared text
TAIL_PROBE_MAX_WORDS = 600  # past this a lead is under 10%, which the whole-body rules absorb
TAIL_BANDS_MAX_WORDS = 240  # past this a lead is under 25%: the body's own bands find the original
SLICES = 1  # generations per window; a lookup reads SLICES + 1 of them, so entries live 1 to 2 windows
MAX_REFS = 4  # articles remembered per band value (more would be boilerplate, not news)
BUCKET_FILL = 64  # band entries per bucket hash: compact listpack encoding on any Redis
MIN_BUCKET_BITS, MAX_BUCKET_BITS = 8, 24
CHUNK = 4096  # shingles per numpy pass, so a huge body never builds a huge matrix
DEFAULT_WINDOW_S = 7 * 86400
DEFAULT_CAPACITY = 8192  # articles per slice assumed before any history exists

Hashes = npt.NDArray[np.uint64]


def hash_constants() -> tuple[Hashes, Hashes]:
    """128 odd multipliers and 128 offsets, fixed forever (derived from a name, not a RNG)."""
    raw = hashlib.shake_256(b"newswire minhash v1").digest(NUM_PERM * 16)
    values = np.frombuffer(raw, dtype=">u8").astype(np.uint64)
    return values[:NUM_PERM] | np.uint64(1), values[NUM_PERM:]


MULTIPLIERS, OFFSETS = hash_constants()
BAND_SALTS = np.frombuffer(hashlib.shake_256(b"newswire bands v1").digest(BANDS * 8), dtype=">u8").astype(
    np.uint64
)


@dataclass(frozen=True, slots=True)
class Signature:
    """The MinHash of one body: 128 32-bit values (big-endian bytes) and its shingle count; for a
    lookup, the signature of its tail too (bodies of up to 600 words), and whether the tail's
    bands are looked up as well (up to 240 words)."""

    values: bytes
    shingles: int
    tail: Signature | None = None
    tail_bands: bool = False

    def array(self) -> Hashes:
        return np.frombuffer(self.values, dtype=">u4").astype(np.uint64)


def word_hashes(words: list[str]) -> Hashes:
    return np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))


def shingle_hashes(words: list[str]) -> Hashes:
    """One 64-bit hash per overlapping 5-word shingle (a polynomial of word hashes, then mixed)."""
    ids = word_hashes(words)
    count = len(words) - SHINGLE_WORDS + 1
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(SHINGLE_WORDS):
            acc = acc * np.uint64(0x100000001B3) + ids[k : k + count] + np.uint64(k + 1)
        return mix64(acc)


def mix64(x: Hashes) -> Hashes:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def minhash(shingles: Hashes) -> Hashes:
    """Per permutation, the least of (a*x + b) >> 32 over all shingles (multiply-shift hashing)."""
    best = np.full(NUM_PERM, np.uint64(0xFFFFFFFF), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(shingles), CHUNK):
            part = shingles[start : start + CHUNK]
            hashed = (MULTIPLIERS[:, None] * part[None, :] + OFFSETS[:, None]) >> np.uint64(32)
            best = np.minimum(best, hashed.min(axis=1))
    return best


def lead_cut(words: int) -> int:
    """Where a body's tail starts: after 60 words, or halfway through a shorter body."""
    return min(LEAD_MAX_WORDS, words // 2)


def indexed_tail(shingles: int) -> int:
    """The tail's shingle count of an indexed body, from its own (words = shingles + 4)."""
    return shingles - lead_cut(shingles + SHINGLE_WORDS - 1)


def signature(text: str) -> Signature | None:
    """The body's signature, or None when it is too short for near-duplicate matching."""
    words = normalize_text(text).split()
    if len(words) < MIN_WORDS:
        return None
    hashes = shingle_hashes(words)
    cut = lead_cut(len(words))
    tail = minhash(hashes[cut:])  # shingle i starts at word i: these lie wholly in the tail
    values, count = np.minimum(minhash(hashes[:cut]), tail).astype(">u4").tobytes(), len(np.unique(hashes))
    if len(words) > TAIL_PROBE_MAX_WORDS:
        return Signature(values, count)
    tail_sig = Signature(tail.astype(">u4").tobytes(), len(np.unique(hashes[cut:])))
    return Signature(values, count, tail_sig, len(words) <= TAIL_BANDS_MAX_WORDS)


def band_hashes(sig: Signature) -> Hashes:
    """32 64-bit band hashes: rows 4i..4i+3 and the band's own salt, mixed."""
    rows = sig.array().reshape(BANDS, ROWS)
    acc = BAND_SALTS.copy()
    with np.errstate(over="ignore"):
        for r in range(ROWS):
            acc = mix64(acc * np.uint64(0x9E3779B97F4A7C15) + rows[:, r])
    return acc


def slots(sig: Signature) -> bytes:
    """The low 16 bits of each value: what the index keeps to confirm a candidate."""
    return (sig.array() & np.uint64(0xFFFF)).astype(">u2").tobytes()


def band_section(sig: Signature) -> bytes:
    """Per band a 4-byte field (the hash's low half), then per band 24 binary digits (its top
    bits) naming the bucket."""
    bands = band_hashes(sig)
    fields = (bands & np.uint64(0xFFFFFFFF)).astype(">u4").tobytes()
    digits = "".join(format(int(h) >> (64 - MAX_BUCKET_BITS), f"0{MAX_BUCKET_BITS}b") for h in bands)
    return fields + digits.encode()


def head_section(sig: Signature) -> bytes:
    """Shingle count (4 bytes) and slots (256): what a record keeps of a signature."""
    return min(sig.shingles, 0xFFFFFFFF).to_bytes(4, "big") + slots(sig)


def lookup_blob(sig: Signature) -> bytes:
    """What the Lua side reads: the body's head and band sections; then, when the signature has a
    tail, its head section, and its band section when those bands are looked up too."""
    blob = head_section(sig) + band_section(sig)
    if sig.tail is None:
        return blob
    return blob + head_section(sig.tail) + (band_section(sig.tail) if sig.tail_bands else b"")


def estimate_jaccard(a: Signature, b: Signature) -> float:
    return float(np.count_nonzero(slots_array(a) == slots_array(b))) / NUM_PERM


def slots_array(sig: Signature) -> npt.NDArray[np.uint16]:
    return np.frombuffer(slots(sig), dtype=">u2")


def is_copy(jaccard: float, shingles_a: int, shingles_b: int) -> bool:
    """The confirmation rule (mirrored in Lua): Jaccard >= 0.8, or the smaller body >= 80% inside."""
    if jaccard >= JACCARD_MIN:
        return True
    if jaccard < CONTAINMENT_FLOOR or min(shingles_a, shingles_b) == 0:
        return False
    shared = jaccard * (shingles_a + shingles_b) / (1 + jaccard)
    return shared / min(shingles_a, shingles_b) >= CONTAINMENT_MIN


def is_lead_copy(jaccard: float, tail_a: int, shingles_b: int) -> bool:
    """The lead rule (mirrored in Lua), from the Jaccard of A's tail with all of B: the text they
    share makes up at least 80% of A's tail and of B's, so the two differ in their leads only."""
    if jaccard < CONTAINMENT_FLOOR or tail_a == 0:
        return False
    shared = jaccard * (tail_a + shingles_b) / (1 + jaccard)
    return shared >= LEAD_CONTAINMENT_MIN * max(tail_a, indexed_tail(shingles_b))


def is_near_duplicate(probe: Signature, indexed: Signature) -> bool:
    """What `nd_find` decides when `probe` is looked up and `indexed` is a candidate."""
    if is_copy(estimate_jaccard(probe, indexed), probe.shingles, indexed.shingles):
        return True
    tail = probe.tail
    if tail is None:
        return False
    return is_lead_copy(estimate_jaccard(tail, indexed), tail.shingles, indexed.shingles)


LUA_TEMPLATE = Template("""
local ND_BANDS, ND_SLOTS, ND_SLICES, ND_MAX_REFS = $bands, $perm, $slices, $max_refs
local ND_FILL, ND_MIN_BITS, ND_MAX_BITS = $fill, $min_bits, $max_bits
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
  if j >= $jaccard then return true end
  if j < $floor or math.min(na, nb) == 0 then return false end
  return j * (na + nb) / (1 + j) / math.min(na, nb) >= $containment
end

local function nd_is_lead_copy(j, tail_a, nb)
  if j < $floor or tail_a == 0 then return false end
  local tail_b = nb - math.min($lead_max, math.floor((nb + $shingle_words - 1) / 2))
  return j * (tail_a + nb) / (1 + j) >= $lead_containment * math.max(tail_a, tail_b)
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
""")

NEARDUP_LUA = LUA_TEMPLATE.substitute(
    bands=BANDS, perm=NUM_PERM, slices=SLICES, max_refs=MAX_REFS, fill=BUCKET_FILL,
    min_bits=MIN_BUCKET_BITS, max_bits=MAX_BUCKET_BITS,
    jaccard=JACCARD_MIN, containment=CONTAINMENT_MIN, floor=CONTAINMENT_FLOOR,
    lead_containment=LEAD_CONTAINMENT_MIN, lead_max=LEAD_MAX_WORDS, shingle_words=SHINGLE_WORDS,
)  # fmt: skip

FIND_CALL = "return nd_find(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5])"
INSERT_CALL = (
    "nd_insert(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7])"
)
FIND_LUA = f"{NEARDUP_LUA}\n{FIND_CALL}\n"
INSERT_LUA = f"{NEARDUP_LUA}\n{INSERT_CALL}\nreturn 1\n"


def index_prefix(prefix: str) -> str:
    return f"{prefix}:nd:"


class RedisNearDupIndex:
    """The near-duplicate index on its own: for benchmarks, tests and tools.

    Publishing does not use this class: `publish.py` runs the same Lua functions
    inside its publish script, so the check and the insert are atomic with the XADD.
    """

    def __init__(
        self, client: redis.Redis, prefix: str, *, window_s: float = DEFAULT_WINDOW_S,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:  # fmt: skip
        self.client: Any = client
        self.key_prefix = index_prefix(prefix)
        self.window_s = window_s
        self.capacity = capacity
        self._find = client.register_script(FIND_LUA)
        self._insert = client.register_script(INSERT_LUA)

    def find(self, sig: Signature, *, own_id: str = "", now: float | None = None) -> str | None:
        """The id of an indexed article this body copies (one round trip, writes nothing)."""
        return self.find_blob(lookup_blob(sig), own_id=own_id, now=now)

    def find_blob(self, blob: bytes, *, own_id: str = "", now: float | None = None) -> str | None:
        args: list[str | float | bytes] = [self.key_prefix, now or time.time(), self.window_s, blob, own_id]
        found = self._find(args=args)
        return found.decode() if isinstance(found, bytes) else None

    def insert_args(self, sig: Signature, doc_id: str, now: float | None = None) -> list[Any]:
        return [self.key_prefix, now or time.time(), self.window_s, self.capacity, lookup_blob(sig),
                article_ref(doc_id), doc_id]  # fmt: skip

    def insert(self, sig: Signature, doc_id: str, *, now: float | None = None) -> None:
        self._insert(args=self.insert_args(sig, doc_id, now))
