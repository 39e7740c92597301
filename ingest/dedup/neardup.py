"""Near-duplicate bodies: MinHash signatures, LSH bands, and the shared index in Redis.

Pure part: a body becomes a `Signature` (128 MinHash values over 5-word
shingles of the normalised text) and a lookup blob (32 band hashes of 4 rows,
the 16-bit slots kept for confirmation, the shingle counts). Redis part: the
Lua functions `nd_find` and `nd_insert` (`neardup.lua`), which the decision script
(`decide.lua`) runs, so looking a body up and indexing it is atomic with the
decision and costs no extra round trip (docs/dedup.md has the layout).

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
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

from ingest import keys, lua
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


LUA_PACKAGE = "ingest.dedup"
FIND_FILES = ("neardup.lua", "neardup_find.lua")  # the library, then the entry point
INSERT_FILES = ("neardup.lua", "neardup_insert.lua")


def index_prefix(prefix: str) -> str:
    return keys.neardup_index(prefix)


class RedisNearDupIndex:
    """The near-duplicate index on its own: for benchmarks, tests and tools.

    Publishing does not use this class: the decision script (`decide.lua`) runs the same Lua
    functions, so the check and the insert are atomic with the decision.
    """

    def __init__(
        self, client: redis.Redis, prefix: str, *, window_s: float = DEFAULT_WINDOW_S,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:  # fmt: skip
        self.client: Any = client
        self.key_prefix = index_prefix(prefix)
        self.window_s = window_s
        self.capacity = capacity
        self._find = lua.register(client, LUA_PACKAGE, *FIND_FILES)
        self._insert = lua.register(client, LUA_PACKAGE, *INSERT_FILES)

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
