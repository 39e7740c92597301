"""Near-duplicate bodies: MinHash signatures, anchor shingles, and the shared index in Redis.

Pure part: a body becomes a `Signature`: 128 MinHash values over its 3-word shingles (for the
second stage, the confirmation) and its 32 *anchors*, the shingles of least hash (the first
stage, candidates). A copy shares anchors with its original in proportion to the text they
share, whatever was cut, added or edited around it, so an article found on two or more anchors
is a candidate; the candidate is confirmed when the estimated share of the smaller body that
lies inside the other (containment) is high enough. Redis part: the Lua functions `nd_find`
and `nd_insert` (`neardup.lua`), run by the decision script (`decide.lua`), so a lookup and the
insert are atomic with the decision and cost no extra round trip (docs/dedup.md has the rules,
the layout and the measurements).

Every version of a story is indexed (the published article and each copy recognised by its
shape), each record pointing at the story's published article: a new body is a copy when it
matches any version seen, in whatever order the versions arrive.

A copy with a rewritten lead keeps all but its first paragraph; in a short article that
paragraph is a fifth to a half of the text. So a lookup of a body of up to 600 words also
sends the MinHash of its *tail*, the text after its first 60 words (after its first half, under
120 words): the lead rule confirms a candidate when the text they share is most of the smaller
of the two tails and at least half of the larger. Only lookups carry a tail.
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
from ingest.dedup.identity import normalize_text

NUM_PERM = 128
SHINGLE_WORDS = 3  # a word changed breaks 3 shingles: 10% of words edited keeps ~73% of them
ANCHORS = 32  # shingles of least hash, indexed: the first stage
MIN_ANCHORS = 2  # anchors a candidate shares with the probe (one is chance: "one of the")
MAX_CANDIDATES = 16  # candidates confirmed per lookup, most anchors first
MIN_WORDS = 80  # shorter bodies (paywall stubs, teasers) are too alike to be matched by shape
CONTAINMENT_MIN = 0.5  # a copy: at least half of the smaller body's shingles inside the other
CONTAINMENT_FLOOR = 0.15  # below this Jaccard (bodies over ~6x apart) the estimate is too noisy
LEAD_MAX_WORDS = 60  # where a tail starts (a news lead is one paragraph of some 20-50 words)
LEAD_SMALL_MIN = 0.8  # the lead rule: the smaller tail at least this much made of the shared text
LEAD_LARGE_MIN = 0.5  # ... and the larger tail at least this much
TAIL_PROBE_MAX_WORDS = 600  # past this a lead is under 10%, which the whole-body rule absorbs
SLICES = 1  # generations per window; a lookup reads SLICES + 1 of them, so entries live 1 to 2 windows
MAX_REFS = 4  # versions remembered per anchor (more would be boilerplate, not news)
BUCKET_FILL = 64  # anchor entries per bucket hash: compact listpack encoding on any Redis
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
ANCHOR_SALT = np.uint64(int.from_bytes(hashlib.shake_256(b"newswire anchors v2").digest(8), "big"))


@dataclass(frozen=True, slots=True)
class Signature:
    """The MinHash of one body (128 32-bit values, big-endian bytes), its shingle count and its
    anchors (64-bit hashes naming them in the index); for a lookup, the tail's MinHash too."""

    values: bytes
    shingles: int
    anchors: bytes = b""
    tail: Signature | None = None

    def array(self) -> Hashes:
        return np.frombuffer(self.values, dtype=">u4").astype(np.uint64)


def word_hashes(words: list[str]) -> Hashes:
    return np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))


def shingle_hashes(words: list[str]) -> Hashes:
    """One 64-bit hash per overlapping 3-word shingle (a polynomial of word hashes, then mixed)."""
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


def anchors(unique: Hashes) -> Hashes:
    """The 32 shingles of least hash (a bottom-k sketch), each renamed by a second mix so that
    their bucket digits are spread (the least hashes all start with zeros)."""
    least = np.sort(unique)[:ANCHORS]
    with np.errstate(over="ignore"):
        return mix64(least ^ ANCHOR_SALT)


def lead_cut(words: int) -> int:
    """Where a body's tail starts: after 60 words, or halfway through a shorter body."""
    return min(LEAD_MAX_WORDS, words // 2)


def indexed_tail(shingles: int) -> int:
    """The tail's shingle count of an indexed body, from its own (words = shingles + 2)."""
    return shingles - lead_cut(shingles + SHINGLE_WORDS - 1)


def signature(text: str) -> Signature | None:
    """The body's signature, or None when it is too short for near-duplicate matching."""
    words = normalize_text(text).split()
    if len(words) < MIN_WORDS:
        return None
    hashes = shingle_hashes(words)
    unique = np.unique(hashes)
    cut = lead_cut(len(words))
    tail = minhash(hashes[cut:])  # shingle i starts at word i: these lie wholly in the tail
    values = np.minimum(minhash(hashes[:cut]), tail).astype(">u4").tobytes()
    anchor_bytes = anchors(unique).astype(">u8").tobytes()
    if len(words) > TAIL_PROBE_MAX_WORDS:
        return Signature(values, len(unique), anchor_bytes)
    tail_sig = Signature(tail.astype(">u4").tobytes(), len(np.unique(hashes[cut:])))
    return Signature(values, len(unique), anchor_bytes, tail_sig)


def anchor_hashes(sig: Signature) -> Hashes:
    return np.frombuffer(sig.anchors, dtype=">u8").astype(np.uint64)


def slots(sig: Signature) -> bytes:
    """The low 16 bits of each value: what the index keeps to confirm a candidate."""
    return (sig.array() & np.uint64(0xFFFF)).astype(">u2").tobytes()


def anchor_section(sig: Signature) -> bytes:
    """Per anchor a 4-byte field (the hash's low half), then per anchor 24 binary digits (its top
    bits) naming the bucket."""
    hashes = anchor_hashes(sig)
    fields = (hashes & np.uint64(0xFFFFFFFF)).astype(">u4").tobytes()
    digits = "".join(format(int(h) >> (64 - MAX_BUCKET_BITS), f"0{MAX_BUCKET_BITS}b") for h in hashes)
    return fields + digits.encode()


def head_section(sig: Signature) -> bytes:
    """Shingle count (4 bytes) and slots (256): what a record keeps of a signature."""
    return min(sig.shingles, 0xFFFFFFFF).to_bytes(4, "big") + slots(sig)


def lookup_blob(sig: Signature) -> bytes:
    """What the Lua side reads: the body's head and anchor sections, then the tail's head when
    the signature has a tail."""
    blob = head_section(sig) + anchor_section(sig)
    return blob if sig.tail is None else blob + head_section(sig.tail)


def estimate_jaccard(a: Signature, b: Signature) -> float:
    return float(np.count_nonzero(slots_array(a) == slots_array(b))) / NUM_PERM


def slots_array(sig: Signature) -> npt.NDArray[np.uint16]:
    return np.frombuffer(slots(sig), dtype=">u2")


def shared_anchors(a: Signature, b: Signature) -> int:
    return len(set(anchor_hashes(a).tolist()) & set(anchor_hashes(b).tolist()))


def is_copy(jaccard: float, shingles_a: int, shingles_b: int) -> bool:
    """The confirmation rule (mirrored in Lua): at least half of the smaller body inside the other,
    estimated from the Jaccard and the two shingle counts."""
    if jaccard < CONTAINMENT_FLOOR or min(shingles_a, shingles_b) == 0:
        return False
    shared = jaccard * (shingles_a + shingles_b) / (1 + jaccard)
    return shared / min(shingles_a, shingles_b) >= CONTAINMENT_MIN


def is_lead_copy(jaccard: float, tail_a: int, shingles_b: int) -> bool:
    """The lead rule (mirrored in Lua), from the Jaccard of A's tail with all of B: the text they
    share makes up most of the smaller of the two tails and half of the larger, so the two differ
    in their leads (and maybe a trim) only."""
    if jaccard < CONTAINMENT_FLOOR or tail_a == 0:
        return False
    shared = jaccard * (tail_a + shingles_b) / (1 + jaccard)
    tail_b = indexed_tail(shingles_b)
    small, large = min(tail_a, tail_b), max(tail_a, tail_b)
    return shared >= LEAD_SMALL_MIN * small and shared >= LEAD_LARGE_MIN * large


def is_near_duplicate(probe: Signature, indexed: Signature) -> bool:
    """What `nd_find` decides when `probe` is looked up and `indexed` is a candidate."""
    if shared_anchors(probe, indexed) < MIN_ANCHORS:
        return False
    return is_confirmed(probe, indexed)


def is_confirmed(probe: Signature, indexed: Signature) -> bool:
    """The second stage alone: the containment rule, or the lead rule with the probe's tail."""
    if is_copy(estimate_jaccard(probe, indexed), probe.shingles, indexed.shingles):
        return True
    tail = probe.tail
    if tail is None:
        return False
    return is_lead_copy(estimate_jaccard(tail, indexed), tail.shingles, indexed.shingles)


def version_ref(doc_id: str, content_hash: str) -> bytes:
    """8 bytes naming one version (an article's body) in the index: each body of a story keeps
    its own record, all pointing at the story's published article."""
    return hashlib.blake2b(f"{doc_id}|{content_hash}".encode(), digest_size=8).digest()


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
        """The id of the published article whose story this body copies (one round trip, writes
        nothing)."""
        return self.find_blob(lookup_blob(sig), own_id=own_id, now=now)

    def find_blob(self, blob: bytes, *, own_id: str = "", now: float | None = None) -> str | None:
        args: list[str | float | bytes] = [self.key_prefix, now or time.time(), self.window_s, blob, own_id]
        found = self._find(args=args)
        return found.decode() if isinstance(found, bytes) else None

    def insert_args(
        self, sig: Signature, doc_id: str, now: float | None = None, *, points_to: str = ""
    ) -> list[Any]:
        ref = version_ref(doc_id, sig.values.hex())
        return [self.key_prefix, now or time.time(), self.window_s, self.capacity, lookup_blob(sig), ref,
                points_to or doc_id]  # fmt: skip

    def insert(self, sig: Signature, doc_id: str, *, now: float | None = None, points_to: str = "") -> None:
        """Index a version under its own ref, pointing at `points_to` (default: itself)."""
        self._insert(args=self.insert_args(sig, doc_id, now, points_to=points_to))
