"""Near-duplicate benchmark: recall per kind of copy, false merges, lookup latency, Redis bytes.

    python bench/dedup.py [--corpus PATH] [--bulk 100000,1000000] [--seed 7]

Originals are the article bodies of the extraction corpus (ground-truth.json, read at
run time). Each original of 80+ words gets five labelled copies: a wire reprint
(dateline and boilerplate added), a copy-edit (5-10% of the sentences edited by a word
or two, house-style punctuation), a bottom-trim to 70%, a rewritten lead paragraph, and
a live blog grown by a third; plus two stress rows that are not targets (5% and 10% of
all words replaced at random). False merges: every pair of distinct originals, each
looked up with the other indexed; then the same with one site's header and footer
around every body. Everything runs against a private Redis through the
same Lua functions the publish script uses. Then the index is filled with synthetic
signatures (spread over the window, as in a steady state) and lookups are timed with
100k and 1M articles indexed, with and without the probes' tails in turn. Prints
tables; exits 0, also when the corpus is absent.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import redis  # noqa: E402

from ingest.dedup import neardup, story  # noqa: E402
from ingest.dedup.identity import article_ref  # noqa: E402
from newswire import redisd  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "article-extraction-benchmark"
NOW = 1_800_000_000.0
LEAD_WORDS = 60
TARGETS = "targets: recall >= 0.99 per copy kind, 0 false merges, <= 0.3 ms/lookup, <= 1.5 KB/article"
FILLER_TEXT = (
    "officials said the plan would be reviewed again later this month while critics argued that the "
    "decision came too late for families already affected by rising costs across the region"
)
FILLER = FILLER_TEXT.split()
SITE_HEADER = "Listen to this story. Our morning briefing brings you the news that matters before breakfast."
SITE_FOOTER = (
    "Our reporters rely on readers like you. If you value independent local journalism, please consider "
    "a subscription, which starts at less than the price of a coffee a week and gives you unlimited "
    "access to every article, the daily puzzle page and our weekend magazine. Have a tip or a "
    "correction? Write to the newsroom using the contact form on this site; we read every message and "
    "reply to most of them within two working days. Comments on this article are moderated and may take "
    "a few hours to appear. All rights reserved; no part of this page may be copied without permission."
)

Variant = Callable[[str, list[str], random.Random], str]


# --- labelled copies ---------------------------------------------------------------------


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n") if p.strip()]


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?”\"])\s+", text) if s]


def reprint(text: str, others: list[str], rng: random.Random) -> str:
    city = rng.choice(["LONDON", "WASHINGTON", "PARIS", "NAIROBI", "TOKYO"])
    agency = rng.choice(["(Wire)", "(AP)", "(Reuters)", "(AFP)"])
    footer = (
        "Reporting by Ana Lima; additional reporting by Tom Berg; editing by Clare Dunn.\n"
        "This story has not been edited by our staff and is published from a syndicated feed."
    )
    return f"{city} {agency} — {text}\n{footer}"


def copy_edit(text: str, others: list[str], rng: random.Random) -> str:
    """5-10% of the sentences get one or two word edits; house style everywhere."""
    parts = sentences(text.replace("“", '"').replace("”", '"').replace("—", "-"))
    share = rng.uniform(0.05, 0.10)
    for i in rng.sample(range(len(parts)), max(1, round(share * len(parts)))):
        parts[i] = edit_words(parts[i], rng, rng.randint(1, 2))
    return " ".join(parts).replace(" percent", "%").replace(" per cent", "%")


def edit_words(sentence: str, rng: random.Random, edits: int) -> str:
    words = sentence.split()
    for _ in range(edits):
        if not words:
            break
        i = rng.randrange(len(words))
        action = rng.choice(["swap", "drop", "add"])
        if action == "swap":
            words[i] = rng.choice(FILLER)
        elif action == "drop" and len(words) > 3:
            del words[i]
        else:
            words.insert(i, rng.choice(FILLER))
    return " ".join(words)


def trim70(text: str, others: list[str], rng: random.Random) -> str:
    words = text.split(" ")
    return " ".join(words[: int(len(words) * 0.7)])


def lead_rewrite(text: str, others: list[str], rng: random.Random) -> str:
    """The lead rewritten: the first paragraph, or its first sentence when that paragraph is
    longer than a news lead (60 words)."""
    paras = paragraphs(text)
    lead = paras[0] if len(paras[0].split()) <= LEAD_WORDS else sentences(paras[0])[0]
    donor = rng.choice(others).split()
    start = rng.randrange(max(1, len(donor) - len(lead.split())))
    fresh = " ".join(donor[start : start + len(lead.split())])
    return text.replace(lead, fresh, 1)


def live_blog(text: str, others: list[str], rng: random.Random) -> str:
    """A third more text, in new posts above the old ones (as live blogs grow)."""
    need = len(text.split()) // 3
    donor = rng.choice(others).split()
    start = rng.randrange(max(1, len(donor) - need))
    return f"Update 14:05: {' '.join(donor[start : start + need])}\n{text}"


def word_edits(share: float) -> Variant:
    def variant(text: str, others: list[str], rng: random.Random) -> str:
        words = text.split()
        for i in rng.sample(range(len(words)), int(share * len(words))):
            words[i] = rng.choice(FILLER)
        return " ".join(words)

    return variant


COPY_KINDS: dict[str, Variant] = {
    "wire reprint": reprint,
    "copy-edit 5-10%": copy_edit,
    "trimmed to 70%": trim70,
    "rewritten lead": lead_rewrite,
    "live blog +1/3": live_blog,
}
STRESS_KINDS: dict[str, Variant] = {
    "stress: 5% words": word_edits(0.05),
    "stress: 10% words": word_edits(0.10),
}


# --- measuring ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Original:
    id: str
    text: str
    sig: neardup.Signature


def load_originals(corpus: Path) -> tuple[list[Original], int]:
    data = json.loads((corpus / "ground-truth.json").read_text())
    bodies = [v["articleBody"] for v in data.values()]
    out = []
    for i, body in enumerate(bodies):
        sig = neardup.signature(body)
        if sig is not None:
            out.append(Original(f"{i:024x}", body, sig))
    return out, len(bodies)


def index_originals(index: neardup.RedisNearDupIndex, originals: list[Original]) -> int:
    """Insert each original after checking it: how many were (wrongly) found as copies."""
    merged = 0
    for orig in originals:
        merged += index.find(orig.sig, now=NOW) is not None
        index.insert(orig.sig, orig.id, now=NOW)
    return merged


@dataclass(frozen=True, slots=True)
class Recall:
    found: int
    eligible: int  # copies of 80+ words: shorter ones are never matched by design
    total: int


def recall(index: neardup.RedisNearDupIndex, originals: list[Original], kind: Variant, seed: int) -> Recall:
    texts = [o.text for o in originals]
    found = eligible = 0
    for n, orig in enumerate(originals):
        rng = random.Random(seed * 100_003 + n)
        sig = neardup.signature(kind(orig.text, texts[:n] + texts[n + 1 :], rng))
        eligible += sig is not None
        found += sig is not None and index.find(sig, now=NOW) == orig.id
    return Recall(found, eligible, len(originals))


def probe_bands(sig: neardup.Signature) -> set[int]:
    """The band hashes a lookup reads: the body's, and its tail's when it sends them."""
    bands = set(neardup.band_hashes(sig).tolist())
    tail = sig.tail if sig.tail_bands else None
    return bands if tail is None else bands | set(neardup.band_hashes(tail).tolist())


def pairwise(sigs: list[neardup.Signature]) -> tuple[int, int, int]:
    """Over all pairs of distinct bodies, each looked up with the other one indexed: pairs, LSH
    candidates (a band in common), confirmed as copies (by either lookup)."""
    indexed = [set(neardup.band_hashes(s).tolist()) for s in sigs]
    probes = [probe_bands(s) for s in sigs]
    pairs = candidates = confirmed = 0
    for i, j in combinations(range(len(sigs)), 2):
        pairs += 1
        hits = [(a, b) for a, b in ((i, j), (j, i)) if probes[a] & indexed[b]]
        candidates += bool(hits)
        confirmed += any(neardup.is_near_duplicate(sigs[a], sigs[b]) for a, b in hits)
    return pairs, candidates, confirmed


def with_boilerplate(text: str) -> str:
    """The same site's furniture around a body: a header line and a long footer."""
    return f"{SITE_HEADER}\n{text}\n{SITE_FOOTER}"


def own_minhash(words: list[str]) -> None:
    neardup.minhash(np.unique(neardup.shingle_hashes(words)))


def datasketch_minhash(words: list[str]) -> None:
    from datasketch import MinHash  # noqa: PLC0415 - optional, for the comparison only

    shingles = [" ".join(words[i : i + neardup.SHINGLE_WORDS]).encode() for i in range(len(words) - 4)]
    MinHash(num_perm=neardup.NUM_PERM).update_batch(shingles)


def signature_speed(originals: list[Original]) -> dict[str, float]:
    """ms per body from normalised words to 128 MinHash values (normalising is shared)."""
    words = [neardup.normalize_text(o.text).split() for o in originals]
    started = time.perf_counter()
    for o in originals:
        neardup.normalize_text(o.text)
    speeds = {"normalise text (both)": (time.perf_counter() - started) / len(words) * 1000}
    makers = {"newswire numpy MinHash": own_minhash, "datasketch 2.0 MinHash": datasketch_minhash}
    for name, make in makers.items():
        try:
            started = time.perf_counter()
            for w in words:
                make(w)
        except ImportError:
            continue
        speeds[name] = (time.perf_counter() - started) / len(words) * 1000
    return speeds


# --- scale: synthetic signatures, latency, memory ------------------------------------------


def random_signature(rng: np.random.Generator) -> neardup.Signature:
    values = rng.integers(0, 2**32, size=neardup.NUM_PERM, dtype=np.uint64).astype(">u4").tobytes()
    return neardup.Signature(values, int(rng.integers(200, 1500)))


def bulk_load(index: neardup.RedisNearDupIndex, start: int, stop: int, rng: np.random.Generator) -> None:
    """Insert synthetic articles with times spread over the window, through the real Lua."""
    index.client.script_load(index._insert.script)
    pipe = index.client.pipeline(transaction=False)
    for n in range(start, stop):
        when = NOW - float(rng.uniform(0, index.window_s))
        pipe.evalsha(index._insert.sha, 0, *index.insert_args(random_signature(rng), f"{n:024x}", when))
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def timed_ms(call: Callable[[int], object], n: int) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def server_us(client: Any, call: Callable[[int], object], n: int, rounds: int = 5) -> tuple[float, float]:
    """Redis's own time per EVALSHA (INFO commandstats): the script alone, no network or client.
    Best and median of `rounds` rounds of n calls, since other processes share the CPU."""
    return interleaved_server_us(client, [call], n, rounds)[0]


def interleaved_server_us(
    client: Any, calls: list[Callable[[int], object]], n: int, rounds: int = 5
) -> list[tuple[float, float]]:
    """`server_us` for several calls, their rounds taken in turn so that other load hits each alike."""
    per_round: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, times in zip(calls, per_round, strict=True):
            client.config_resetstat()
            for i in range(n):
                call(i)
            times.append(float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]))
    return [(min(times), statistics.median(times)) for times in per_round]


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def flush(client: Any) -> int:
    client.execute_command("FLUSHALL", "SYNC")
    return used_memory(client)


def identity_bytes(client: Any, n: int = 20_000) -> float:
    """seen:id (its record) and seen:hash per article, measured on n synthetic articles."""
    before = used_memory(client)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"bench:seen:id:{i:024x}", f"{i:020x}|1|p|1800000000|{i:024x}|{i:032x}", ex=86400)
        pipe.set(f"bench:seen:hash:{i:032x}", f"{i:024x}", ex=86400)
    pipe.execute()
    return (used_memory(client) - before) / n


def story_load(client: Any, n: int, rng: np.random.Generator) -> story.RedisStoryIndex:
    """n articles of 32 terms each, drawn Zipf-like from 200k terms, over the 48-hour window."""
    index = story.RedisStoryIndex(client, "s")
    client.script_load(index._assign.script)
    sha = index._assign.sha
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        terms = " ".join(f"t{t}" for t in np.unique(rng.zipf(1.3, 40) % 200_000)[:32])
        when = NOW - float(rng.uniform(0, index.window_s))
        doc_id = f"{i:024x}"
        args = (index.key_prefix, when, index.window_s, index.threshold, terms, doc_id, article_ref(doc_id))
        pipe.evalsha(sha, 0, *args)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return index


# --- the run ------------------------------------------------------------------------------


def run_quality(client: Any, originals: list[Original], seed: int) -> None:
    index = neardup.RedisNearDupIndex(client, "q", window_s=neardup.DEFAULT_WINDOW_S)
    online = index_originals(index, originals)
    print(f"\nrecall per kind of copy ({len(originals)} originals of 80+ words; lookups in Redis)")
    print(f"  {'kind':<22} {'copies 80+ words':>18} {'all copies':>12}")
    for name, kind in {**COPY_KINDS, **STRESS_KINDS}.items():
        r = recall(index, originals, kind, seed)
        print(f"  {name:<22} {r.found / r.eligible:>8.3f} ({r.found}/{r.eligible}) {r.found / r.total:>9.3f}")
    print("\nfalse merges among distinct originals")
    pairs, candidates, confirmed = pairwise([o.sig for o in originals])
    print(f"  pairs {pairs:,}   LSH candidates {candidates}   confirmed as copies {confirmed}")
    print(f"  originals flagged as a copy when indexed one by one (Lua): {online}")
    framed = [neardup.signature(with_boilerplate(o.text)) for o in originals]
    pairs, candidates, confirmed = pairwise([s for s in framed if s is not None])
    words = len(SITE_HEADER.split()) + len(SITE_FOOTER.split())
    print(f"  same-site boilerplate ({words} shared words around every body): pairs {pairs:,}"
          f"   LSH candidates {candidates}   confirmed as copies {confirmed}")  # fmt: skip


def run_scale(client: Any, sizes: list[int], originals: list[Original]) -> None:
    rng = np.random.default_rng(11)
    probes = [neardup.lookup_blob(o.sig) for o in originals[:100]]  # ready signatures, as when publishing
    bare = [neardup.lookup_blob(neardup.Signature(o.sig.values, o.sig.shingles)) for o in originals[:100]]
    noop = client.register_script("return 1")
    print("\nnear-duplicate lookups (synthetic signatures spread over the window; probes = real bodies)")
    header = ("indexed", "median ms", "p99 ms", "in Redis us best/median", "no tails", "B/article")
    header += ("insert us",)
    print("  " + " ".join(f"{h:>{w}}" for h, w in zip(header, (9, 10, 8, 24, 14, 10, 10), strict=True)))
    for size in sizes:
        base = flush(client)
        index = neardup.RedisNearDupIndex(client, "s", capacity=size)
        started = time.perf_counter()
        bulk_load(index, 0, size, rng)
        insert_us = (time.perf_counter() - started) / size * 1e6
        per_article = (used_memory(client) - base) / size
        times = timed_ms(lambda i, index=index: index.find_blob(probes[i % len(probes)], now=NOW), 1000)
        (best, middle), (bare_best, bare_middle) = interleaved_server_us(client, [
            lambda i, index=index: index.find_blob(probes[i % len(probes)], now=NOW),
            lambda i, index=index: index.find_blob(bare[i % len(bare)], now=NOW),  # the tail's cost
        ], 200)  # fmt: skip
        p99 = statistics.quantiles(times, n=100)[98]
        server, without = f"{best:.0f} / {middle:.0f}", f"{bare_best:.0f} / {bare_middle:.0f}"
        print(f"  {size:>9,} {statistics.median(times):>10.3f} {p99:>8.3f} {server:>24} {without:>14}"
              f" {per_article:>10.0f} {insert_us:>10.0f}")  # fmt: skip
    print(f"  round trip of an empty script: {statistics.median(timed_ms(lambda i: noop(), 1000)):.3f} ms")
    print(f"  identity keys (seen:id record + seen:hash): {identity_bytes(client):.0f} B/article")


def run_stories(client: Any, size: int) -> None:
    base = flush(client)
    index = story_load(client, size, np.random.default_rng(5))
    per_article = (used_memory(client) - base) / size
    rng = np.random.default_rng(6)
    terms = [" ".join(f"t{t}" for t in np.unique(rng.zipf(1.3, 40) % 200_000)[:32]) for _ in range(200)]
    assign = lambda i: index._assign(  # noqa: E731
        args=[index.key_prefix, NOW, index.window_s, index.threshold, terms[i % 200], f"p{i}", f"ref{i:05d}"]
    )
    times = timed_ms(assign, 200)
    best, middle = server_us(client, assign, 200)
    print(f"\nstory index, {size:,} articles in the 48 h window (synthetic Zipf terms, not a target):")
    median = statistics.median(times)
    print(
        f"  assign median {median:.3f} ms (in Redis {best:.0f}/{middle:.0f} us); {per_article:.0f} B/article"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--bulk", default="100000,1000000", help="index sizes for latency and memory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stories", type=int, default=100_000, help="story index size (0: skip)")
    args = parser.parse_args(argv)
    if not (args.corpus / "ground-truth.json").is_file():
        print(f"corpus not found at {args.corpus} (no ground-truth.json); skipping the benchmark")
        return 0
    originals, total = load_originals(args.corpus)
    print(f"{total} bodies, {len(originals)} of 80+ words; {TARGETS}")
    for name, ms in signature_speed(originals).items():
        print(f"  signature {name:<30} {ms:.3f} ms/article")
    with tempfile.TemporaryDirectory() as tmp:
        server = redisd.start(Path(tmp), persistent=False)
        try:
            client = redis.Redis.from_url(server.url)
            run_quality(client, originals, args.seed)
            run_scale(client, [int(s) for s in args.bulk.split(",") if s], originals)
            if args.stories:
                run_stories(client, args.stories)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
