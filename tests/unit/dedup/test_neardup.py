"""Near-duplicate signatures (pure) and the shared index in a real Redis."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import redis

from ingest.dedup import neardup
from ingest.dedup.identity import normalize_text

VOCAB_TEXT = (
    "the council voted on tuesday to extend the tram line by four kilometres to the harbour "
    "where a new depot will be built opponents said the cost had doubled since the plan was "
    "first shown and that buses would serve the district better residents who live near the "
    "route will be consulted again in the spring before work starts in the summer of next year "
    "engineers expect the line to carry twelve thousand passengers a day once it opens"
)
VOCAB = VOCAB_TEXT.split()
NOW = 1_800_000_000.0


def article(seed: int, words: int = 300) -> str:
    """A body of its own: words drawn from one vocabulary, so distinct articles still share words."""
    rng = random.Random(seed)
    sentences = []
    while sum(len(s.split()) for s in sentences) < words:
        sentences.append(" ".join(rng.choice(VOCAB) for _ in range(rng.randint(8, 20))).capitalize() + ".")
    return " ".join(sentences)


def shingles(text: str) -> set[tuple[str, ...]]:
    words = normalize_text(text).split()
    k = neardup.SHINGLE_WORDS
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def sig(text: str) -> neardup.Signature:
    result = neardup.signature(text)
    assert result is not None
    return result


# --- pure -----------------------------------------------------------------------------------


def test_short_bodies_get_no_signature() -> None:
    assert neardup.signature(" ".join(["word"] * 79)) is None
    assert neardup.signature(article(1, 100)) is not None


PINNED_DIGEST = "c1c1ebee33ee987f"  # changing it orphans every stored signature
PINNED_ANCHORS = "607abbb956a4694a"


def test_signature_is_fixed_forever() -> None:
    """Stored signatures outlive a deploy: the hash family must never change silently."""
    digest = hashlib.sha256(sig(article(42)).values).hexdigest()[:16]
    assert digest == PINNED_DIGEST
    assert hashlib.sha256(sig(article(42)).anchors).hexdigest()[:16] == PINNED_ANCHORS


def test_case_and_punctuation_do_not_change_the_signature() -> None:
    text = article(3)
    assert sig(text) == sig(text.upper().replace(".", " !"))


@pytest.mark.parametrize("keep", [0.5, 0.7, 0.9])
def test_estimate_is_close_to_the_exact_jaccard(keep: float) -> None:
    errors = []
    for seed in range(20):
        text = article(seed, 400)
        words = text.split()
        trimmed = " ".join(words[: int(len(words) * keep)])
        errors.append(neardup.estimate_jaccard(sig(text), sig(trimmed)) - exact_jaccard(text, trimmed))
    assert abs(sum(errors) / len(errors)) < 0.03  # unbiased
    assert max(abs(e) for e in errors) < 0.15  # about 3.5 standard deviations at 128 permutations


def test_copies_are_near_duplicates_and_distinct_articles_are_not() -> None:
    text = article(5, 400)
    words = text.split()
    assert neardup.is_near_duplicate(sig(text), sig("PARIS (Wire) — " + text + " Editing by A. N. Other."))
    assert neardup.is_near_duplicate(sig(text), sig(" ".join(words[: int(len(words) * 0.7)])))
    assert neardup.is_near_duplicate(sig(text), sig(article(99, 130) + " " + text))  # grown by a third
    assert neardup.is_near_duplicate(sig(rewrite_lead(text, 98, 60)), sig(text))
    assert not any(neardup.is_near_duplicate(sig(text), sig(article(s, 400))) for s in range(6, 30))


def test_containment_rule() -> None:
    assert neardup.is_copy(0.8, 500, 500)
    assert neardup.is_copy(0.7, 700, 1000)  # a 70% trim: all of the smaller body is inside
    assert neardup.is_copy(0.4, 700, 1000)  # a 70% trim with a tenth of its words edited
    assert neardup.is_copy(0.34, 1000, 1000)  # half of the shingles shared
    assert not neardup.is_copy(0.3, 1000, 1000)
    assert not neardup.is_copy(0.1, 100, 2000)  # too little overlap to trust the estimate


def test_anchors_are_the_least_shingles_and_a_copy_shares_them() -> None:
    text = article(12, 300)
    words = normalize_text(text).split()
    unique = np.unique(neardup.shingle_hashes(words))
    assert neardup.anchor_hashes(sig(text)).tolist() == neardup.anchors(unique).tolist()
    assert len(set(neardup.anchor_hashes(sig(text)).tolist())) == neardup.ANCHORS
    trimmed = " ".join(text.split()[:150])
    assert neardup.shared_anchors(sig(text), sig(trimmed)) >= 8  # about half of them, as half the text
    assert neardup.shared_anchors(sig(text), sig(article(13, 300))) < neardup.ANCHORS // 2


def test_lookup_blob_layout() -> None:
    head = 4 + 256  # shingle count, slots
    section = head + 32 * 4 + 32 * neardup.MAX_BUCKET_BITS  # then anchor fields, bucket digits
    long = sig(article(8, 700))
    assert len(neardup.lookup_blob(long)) == section  # a long body sends no tail
    medium = sig(article(8, 300))
    blob = neardup.lookup_blob(medium)
    assert len(blob) == section + head  # the tail, to confirm with
    bare = neardup.Signature(medium.values, medium.shingles, medium.anchors)
    assert blob[:section] == neardup.lookup_blob(bare)
    assert set(blob[head + 128 : section]) <= set(b"01")


def test_tail_starts_after_the_lead() -> None:
    """The tail's values are the MinHash of the words after the cut, and its count matches."""
    text = article(9, 200)
    words = normalize_text(text).split()
    assert neardup.lead_cut(len(words)) == 60
    assert neardup.lead_cut(90) == 45  # a short body: halfway
    tail = sig(text).tail
    assert tail is not None
    alone = neardup.minhash(neardup.shingle_hashes(words[60:])).astype(">u4").tobytes()
    assert tail.values == alone
    assert abs(tail.shingles - neardup.indexed_tail(sig(text).shingles)) <= 2  # repeats aside


def rewrite_lead(text: str, seed: int, lead_words: int) -> str:
    """The first `lead_words` words replaced by as many words of another body."""
    words = text.split()
    return " ".join(article(seed, lead_words).split()[:lead_words] + words[lead_words:])


@pytest.mark.parametrize(("words", "lead"), [(90, 40), (150, 45), (300, 60), (500, 60)])
def test_a_rewritten_lead_is_a_copy(words: int, lead: int) -> None:
    text = article(50 + words, words)
    copy = rewrite_lead(text, 1000 + words, lead)
    assert neardup.is_near_duplicate(sig(copy), sig(text))
    assert neardup.is_near_duplicate(sig(text), sig(copy))  # in either order


def test_a_piece_quoting_less_than_half_of_another_is_not_its_copy() -> None:
    """A short piece whose last third is quoted inside a longer article is not its copy, by the
    whole-body rule nor by the lead rule (its tail is half new)."""
    quote = article(60, 60)
    longer = article(61, 200) + " " + quote + " " + article(62, 100)
    piece = " ".join(article(63, 120).split()[:120]) + " " + quote
    assert not neardup.is_near_duplicate(sig(piece), sig(longer))
    assert not neardup.is_near_duplicate(sig(longer), sig(piece))


def test_briefs_sharing_a_footer_are_not_copies() -> None:
    """Bodies with a shared footer of a third of their length (leaked boilerplate) stay apart."""
    footer = " ".join(article(70, 40).split()[:35])
    briefs = [" ".join(article(71 + i, 100).split()[:100]) + " " + footer for i in range(10)]
    sigs = [sig(b) for b in briefs]
    assert not any(neardup.is_near_duplicate(a, b) for a in sigs for b in sigs if a is not b)


# --- the shared index --------------------------------------------------------------------


@pytest.fixture
def index(redis_client: redis.Redis, prefix: str) -> neardup.RedisNearDupIndex:
    return neardup.RedisNearDupIndex(redis_client, prefix, window_s=7 * 86400)


def doc_id(n: int) -> str:
    return f"{n:024x}"


def test_index_finds_a_copy_and_not_a_stranger(index: neardup.RedisNearDupIndex) -> None:
    text = article(10, 400)
    index.insert(sig(text), doc_id(1), now=NOW)
    for s in range(11, 40):
        index.insert(sig(article(s, 400)), doc_id(s), now=NOW)
    copy = "Update: " + " ".join(text.split()[: int(len(text.split()) * 0.75)])
    assert index.find(sig(copy), now=NOW + 60) == doc_id(1)
    brief = article(2, 100)
    index.insert(sig(brief), doc_id(2), now=NOW)
    assert index.find(sig(rewrite_lead(brief, 3, 45)), now=NOW + 60) == doc_id(2)  # 45% of it new
    assert index.find(sig(article(77, 400)), now=NOW + 60) is None
    assert index.find(sig(text), own_id=doc_id(1), now=NOW) is None  # an article is no copy of itself


def test_every_version_points_at_the_published_article(index: neardup.RedisNearDupIndex) -> None:
    """A copy indexed under its own ref leads a later copy of it to the story's published article,
    even when that later copy is too far from the published body itself."""
    text = article(14, 300)
    words = text.split()
    index.insert(sig(text), doc_id(1), now=NOW)
    early = " ".join(words[100:]) + " " + article(15, 80)  # the last two thirds and a new ending
    assert index.find(sig(early), now=NOW) == doc_id(1)
    index.insert(sig(early), doc_id(2), now=NOW, points_to=doc_id(1))
    late = " ".join(early.split()[:200]) + " " + article(16, 150)  # mostly the first copy's text
    assert index.find(sig(late), now=NOW) == doc_id(1)
    assert index.find(sig(early), own_id=doc_id(1), now=NOW) is None
    before = index.client.hlen(f"{index.key_prefix}{int(NOW // index.window_s)}:s")
    index.insert(sig(early), doc_id(2), now=NOW, points_to=doc_id(1))  # a redelivery: nothing new
    assert index.client.hlen(f"{index.key_prefix}{int(NOW // index.window_s)}:s") == before


def test_lua_and_python_agree_on_what_is_a_copy(index: neardup.RedisNearDupIndex) -> None:
    base = article(20, 300)
    index.insert(sig(base), doc_id(20), now=NOW)
    words = base.split()
    rng = random.Random(4)
    verdicts = []
    cases = [(share, keep, lead) for share in (0.02, 0.06, 0.1, 0.15, 0.2, 0.25, 0.3)
             for keep in (1.0, 0.6) for lead in (0, 60)]  # fmt: skip
    for share, keep, lead in cases:
        edited = list(words[: int(len(words) * keep)])
        edited[:lead] = article(len(verdicts), lead).split()[:lead]  # a new lead: the tail decides
        for i in rng.sample(range(len(edited)), int(share * len(edited))):
            edited[i] = "zzz"
        probe = sig(" ".join(edited))
        verdicts.append(neardup.is_near_duplicate(probe, sig(base)))
        assert (index.find(probe, now=NOW) == doc_id(20)) == verdicts[-1], (share, keep, lead)
    assert True in verdicts
    assert False in verdicts


def test_entries_leave_the_window(index: neardup.RedisNearDupIndex, redis_client: redis.Redis) -> None:
    text = article(30, 300)
    index.insert(sig(text), doc_id(30), now=NOW)
    window = index.window_s
    assert index.find(sig(text), now=NOW + window * 0.99) == doc_id(30)
    assert index.find(sig(text), now=NOW + window * 2.01) is None  # at most two windows
    ttls = [redis_client.ttl(k) for k in redis_client.scan_iter(f"{index.key_prefix}*")]
    assert ttls
    assert all(t > 0 for t in ttls)  # every key expires on its own


def test_buckets_stay_compact(index: neardup.RedisNearDupIndex, redis_client: redis.Redis) -> None:
    for s in range(50):
        index.insert(sig(article(100 + s, 120)), doc_id(100 + s), now=NOW)
    buckets = [k for k in redis_client.scan_iter(f"{index.key_prefix}*") if not k.endswith((b":m", b":s"))]
    assert len(buckets) <= 50 * neardup.ANCHORS
    assert {redis_client.object("encoding", k) for k in buckets} == {b"listpack"}
