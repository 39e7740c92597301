"""Near-duplicate benchmark: recall per kind of copy and per edit rate, false merges, arrival
orders, lookup latency and Redis bytes, all with the default settings.

    python bench/dedup.py [--base heldout|dev] [--seeds 5] [--bulk 100000,1000000] [--stories N]

Base texts are the reports of an independent story set (`--base heldout`, the default, for
reporting; `--base dev` for tuning): tests/data/stories_independent_*.jsonl. Copies are made by
tests/dedup_copies.py (its kinds and edit rates). Everything runs against a private Redis through
the Lua the publish script runs:

1. signature cost: CPU per article (normalising, shingles, MinHash, anchors);
2. recall per kind: each copy looked up with its original indexed, and the original looked up
   with the copy indexed (either may arrive first), over `--seeds` seeds;
3. the edit-rate curve: copy-edits of 0 to 20% of the words, alone and with a 70% trim;
4. false merges: every pair of the 202 distinct reports of both story sets (wrapped in one site's
   boilerplate and bylines), and every pair of the real article bodies of ../shared/corpus when
   present (read at run time);
5. story clustering: pairwise precision and recall of story_id on both independent sets in
   2 x `--seeds` shuffled arrival orders (dev is the tuning set), the worst order;
6. arrival orders: every base text's versions (original, every kind, URL variants), all stories
   mixed and published in a random order through the real publish path, per seed: stories
   published more than once, copies pointing at another story (the worst seed counts);
7. scale: the index filled with 100k and 1M synthetic versions spread over the window; lookups
   timed (round trip and Redis's own time) and bytes per article measured.
Prints tables; never fails on a figure.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import redis  # noqa: E402

from ingest.dedup import neardup, story  # noqa: E402
from ingest.dedup.identity import article_id, article_ref, canonical_url, content_hash  # noqa: E402
from ingest.models import Document, FeedEntry  # noqa: E402
from ingest.pipeline import publish_documents  # noqa: E402
from ingest.streams.publish import RedisStreamSink  # noqa: E402
from newswire import redisd  # noqa: E402
from tests import dedup_copies as copies  # noqa: E402

DATA = ROOT / "tests" / "data"
SHARED = next(
    (p / "shared" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "corpus").is_dir()), ROOT
)
CORPORA = [SHARED / "corpus" / name for name in ("article-extraction-benchmark", "wcxb-article-dev")]
NOW = 1_800_000_000.0
TARGETS = (
    "targets: recall >= 0.99 up to 10% of words changed, 0 false merges, <= 0.3 ms/lookup, <= 1.5 KB/article"
)
RATES = [0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20]

Sig = neardup.Signature


def reports(name: str) -> list[dict[str, str]]:
    path = DATA / f"stories_independent_{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def corpus_bodies() -> list[str]:
    bodies = []
    for corpus in CORPORA:
        truth = corpus / "ground-truth.json"
        if truth.is_file():
            bodies += [v["articleBody"] for v in json.loads(truth.read_text()).values()]
    return bodies


def must_sign(text: str) -> Sig:
    sig = neardup.signature(text)
    if sig is None:
        raise ValueError("a base text under 80 words")
    return sig


# --- 1. cost -------------------------------------------------------------------------------


def signature_ms(texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        neardup.signature(text + " ")  # a fresh string: normalize_text's cache must not answer
    return (time.perf_counter() - started) / len(texts) * 1000


# --- 2, 3. recall --------------------------------------------------------------------------


def found_both_ways(client: Any, original: Sig, copy: Sig | None) -> tuple[bool, bool]:
    """(the copy found with the original indexed, the original found with the copy indexed)."""
    if copy is None:
        return False, False
    prefix = f"r{uuid.uuid4().hex[:8]}"
    index = neardup.RedisNearDupIndex(client, prefix)
    index.insert(original, "o" * 24, now=NOW)
    forward = index.find(copy, now=NOW) == "o" * 24
    reverse = neardup.RedisNearDupIndex(client, prefix + "x")
    reverse.insert(copy, "c" * 24, now=NOW)
    backward = reverse.find(original, now=NOW) == "c" * 24
    client.delete(*client.scan_iter(f"{prefix}*"))
    return forward, backward


def recall(client: Any, texts: list[str], kind: copies.Kind, seeds: int) -> tuple[float, float, int]:
    hits = [0, 0]
    total = 0
    for seed in range(seeds):
        for n, text in enumerate(texts):
            copy = neardup.signature(kind(text, random.Random(seed * 100_003 + n)))
            forward, backward = found_both_ways(client, must_sign(text), copy)
            hits[0] += forward
            hits[1] += backward
            total += 1
    return hits[0] / total, hits[1] / total, total


def run_recall(client: Any, texts: list[str], seeds: int) -> None:
    print(f"\nrecall per kind of copy ({len(texts)} base texts x {seeds} seeds; lookups in Redis)")
    print(f"  {'kind':<26} {'copy found':>11} {'original found':>15}")
    for name, kind in copies.KINDS.items():
        forward, backward, _ = recall(client, texts, kind, seeds)
        print(f"  {name:<26} {forward:>11.3f} {backward:>15.3f}")
    print("\nrecall per edit rate (words substituted, inserted or deleted at random places)")
    print(f"  {'words changed':<14} {'copy-edit':>10} {'+ trim 70%':>11} {'+ reprint':>10}")
    for rate in RATES:
        row = [recall(client, texts, kind, seeds)[:2] for kind in (
            copies.copy_edit(rate), copies.combined(copies.copy_edit(rate), copies.trim(0.7)),
            copies.combined(copies.copy_edit(rate), copies.reprint))]  # fmt: skip
        cells = " ".join(f"{min(f, b):>10.3f}" for f, b in row)
        print(f"  {rate:<14.0%} {cells}   (worse of the two directions)")


# --- 4. false merges -----------------------------------------------------------------------


def pairwise(sigs: list[Sig]) -> tuple[int, int, int]:
    """Pairs, first-stage candidates (two anchors shared), confirmed as copies (either way)."""
    anchors = [set(neardup.anchor_hashes(s).tolist()) for s in sigs]
    pairs = candidates = confirmed = 0
    for i, j in combinations(range(len(sigs)), 2):
        pairs += 1
        if len(anchors[i] & anchors[j]) < neardup.MIN_ANCHORS:
            continue
        candidates += 1
        confirmed += neardup.is_confirmed(sigs[i], sigs[j]) or neardup.is_confirmed(sigs[j], sigs[i])
    return pairs, candidates, confirmed


def run_false_merges(rows: list[dict[str, str]], bodies: list[str]) -> None:
    print("\nfalse merges (pairs of distinct texts found as copies either way)")
    plain = [must_sign(r["text"]) for r in rows]
    framed = [must_sign(copies.site_page(r["text"], "a", "Ana Lima")) for r in rows]
    words = len(" ".join(copies.SITES["a"]).split())
    sets = [(f"{len(rows)} story reports", plain),
            (f"{len(rows)} reports + one site's boilerplate ({words} words)", framed)]  # fmt: skip
    if bodies:
        real = [s for s in (neardup.signature(b) for b in bodies) if s is not None]
        sets.append((f"{len(real)} real article bodies (corpus)", real))
    for label, sigs in sets:
        pairs, candidates, confirmed = pairwise(sigs)
        print(f"  {label:<50} pairs {pairs:>9,}  candidates {candidates:>6,}  merged {confirmed}")


# --- 5. arrival orders ---------------------------------------------------------------------


def story_versions(row: dict[str, str], rng: random.Random) -> list[tuple[str, str, str]]:
    """(url, title, text) of every version of one story: the original, its URL variants, and one
    copy of each kind on sites of their own."""
    home = f"https://www.alpha.test/news/{row['id']}"
    out = [(home, row["title"], row["text"]), (f"{home}/amp", row["title"], row["text"]),
           (f"{home}?utm_source=rss&fbclid=1", row["title"], row["text"])]  # fmt: skip
    for n, kind in enumerate(copies.KINDS.values()):
        url = f"https://site{n}.test/{row['id']}"
        out.append((url, copies.edited_title(row["title"], rng), kind(row["text"], rng)))
    return out


def doc_of(url: str, title: str, text: str) -> Document:
    canonical = canonical_url(url)
    return Document(
        id=article_id(canonical), url=url, canonical_url=canonical, feed_url=url, source="s", title=title,
        text=text, summary="", authors=(), published_at=None, fetched_at="2026-11-27T00:00:00Z",
        language="en", topics=(), story_id="", duplicate_of=None, content_hash=content_hash(text),
        extraction="trafilatura",
    )  # fmt: skip


def run_orders(client: Any, rows: list[dict[str, str]], seeds: int) -> None:
    print(f"\narrival orders: {len(rows)} stories, all their versions mixed in a random order, publish path")
    print(f"  {'seed':>4} {'versions':>9} {'stories once':>13} {'published twice+':>17} {'wrong story':>12}")
    worst = (len(rows) + 1, 0, 0)
    for seed in range(seeds):
        rng = random.Random(seed)
        items, owner = [], {}
        for row in rows:
            for k, (url, title, text) in enumerate(story_versions(row, rng)):
                doc = doc_of(url, title, text)
                owner[doc.id] = row["id"]
                items.append((doc, FeedEntry(feed_url=url, key=f"{row['id']}:{k}", link=url, title=title)))
        rng.shuffle(items)
        sink = RedisStreamSink(client, f"a{uuid.uuid4().hex[:8]}")
        results = [
            r for start in range(0, len(items), 8) for r in publish_documents(items[start : start + 8], sink)
        ]
        published: dict[str, int] = {}
        wrong = 0
        for outcome, doc in results:
            if outcome.status == "published":
                published[owner[doc.id]] = published.get(owner[doc.id], 0) + 1
            elif outcome.status == "duplicate" and owner.get(outcome.original_id) != owner[doc.id]:
                wrong += 1
        once = sum(1 for count in published.values() if count == 1)
        twice = sum(1 for count in published.values() if count > 1)
        print(f"  {seed:>4} {len(items):>9} {once:>9}/{len(rows)} {twice:>17} {wrong:>12}")
        worst = min(worst, (once, -twice, -wrong))
    print(f"  worst order: {worst[0]}/{len(rows)} stories once, {-worst[1]} published twice or more, "
          f"{-worst[2]} copies in another story")  # fmt: skip


# --- 6. scale ------------------------------------------------------------------------------


def random_signature(rng: np.random.Generator) -> Sig:
    values = rng.integers(0, 2**32, size=neardup.NUM_PERM, dtype=np.uint64).astype(">u4").tobytes()
    anchors = rng.integers(0, 2**63, size=neardup.ANCHORS, dtype=np.uint64).astype(">u8").tobytes()
    return Sig(values, int(rng.integers(150, 1500)), anchors)


def bulk_load(index: neardup.RedisNearDupIndex, size: int, rng: np.random.Generator) -> None:
    """Insert synthetic versions with times spread over the window, through the real Lua."""
    index.client.script_load(index._insert.script)
    pipe = index.client.pipeline(transaction=False)
    for n in range(size):
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
    """Redis's own time per EVALSHA (INFO commandstats), best and median of `rounds` rounds."""
    per_round = []
    for _ in range(rounds):
        client.config_resetstat()
        for i in range(n):
            call(i)
        per_round.append(float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]))
    return min(per_round), statistics.median(per_round)


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def identity_bytes(client: Any, n: int = 20_000) -> float:
    """seen:id (its record) and seen:hash per article, measured on n synthetic articles."""
    before = used_memory(client)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"bench:seen:id:{i:024x}", f"{i:020x}|1|p|1800000000|{i:024x}|{i:032x}|w1", ex=86400)
        pipe.set(f"bench:seen:hash:{i:032x}", f"{i:024x}", ex=86400)
    pipe.execute()
    return (used_memory(client) - before) / n


def run_scale(client: Any, sizes: list[int], probes_text: list[str]) -> None:
    rng = np.random.default_rng(11)
    probes = [neardup.lookup_blob(must_sign(t)) for t in probes_text[:100]]  # ready, as when publishing
    noop = client.register_script("return 1")
    print("\nnear-duplicate lookups (synthetic versions spread over the window; probes = real reports)")
    print(
        f"  {'indexed':>9} {'median ms':>10} {'p99 ms':>8} {'in Redis us best/median':>24} {'B/article':>10}"
    )
    for size in sizes:
        client.execute_command("FLUSHALL", "SYNC")
        base = used_memory(client)
        index = neardup.RedisNearDupIndex(client, "s", capacity=size)
        bulk_load(index, size, rng)
        per_article = (used_memory(client) - base) / size
        find = lambda i, index=index: index.find_blob(probes[i % len(probes)], now=NOW)  # noqa: E731
        times = timed_ms(find, 2000)
        best, middle = server_us(client, find, 300)
        p99 = statistics.quantiles(times, n=100)[98]
        print(f"  {size:>9,} {statistics.median(times):>10.3f} {p99:>8.3f} {f'{best:.0f} / {middle:.0f}':>24}"
              f" {per_article:>10.0f}")  # fmt: skip
    print(f"  round trip of an empty script: {statistics.median(timed_ms(lambda i: noop(), 2000)):.3f} ms")
    print(f"  identity keys (seen:id record + seen:hash): {identity_bytes(client):.0f} B/article")


def story_load(client: Any, n: int, rng: np.random.Generator) -> story.RedisStoryIndex:
    """n articles of 64 terms each, drawn Zipf-like from 200k terms, over the 48-hour window."""
    index = story.RedisStoryIndex(client, "s")
    client.script_load(index._assign.script)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        terms = " ".join(f"t{t}" for t in np.unique(rng.zipf(1.3, 80) % 200_000)[: story.MAX_TERMS])
        when = NOW - float(rng.uniform(0, index.window_s))
        doc_id = f"{i:024x}"
        args = (
            index.key_prefix,
            NOW,
            when,
            index.window_s,
            index.threshold,
            terms,
            doc_id,
            article_ref(doc_id),
        )
        pipe.evalsha(index._assign.sha, 0, *args)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return index


def run_stories(client: Any, size: int) -> None:
    client.execute_command("FLUSHALL", "SYNC")
    base = used_memory(client)
    index = story_load(client, size, np.random.default_rng(5))
    per_article = (used_memory(client) - base) / size
    rng = np.random.default_rng(6)
    terms = [
        " ".join(f"t{t}" for t in np.unique(rng.zipf(1.3, 80) % 200_000)[: story.MAX_TERMS])
        for _ in range(200)
    ]
    assign = lambda i: index._assign(  # noqa: E731
        args=[
            index.key_prefix,
            NOW,
            NOW,
            index.window_s,
            index.threshold,
            terms[i % 200],
            f"p{i}",
            f"ref{i:05d}",
        ]
    )
    times = timed_ms(assign, 200)
    best, middle = server_us(client, assign, 200)
    print(f"\nstory index, {size:,} articles in the 48 h window (synthetic Zipf terms, not a target):")
    print(f"  assign median {statistics.median(times):.3f} ms (in Redis {best:.0f}/{middle:.0f} us); "
          f"{per_article:.0f} B/article")  # fmt: skip


def pair_scores(truth: dict[str, str], predicted: dict[str, str]) -> tuple[float, float]:
    tp = fp = fn = 0
    for a, b in combinations(sorted(truth), 2):
        same, joined = truth[a] == truth[b], predicted[a] == predicted[b]
        tp, fp, fn = tp + (same and joined), fp + (joined and not same), fn + (same and not joined)
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def run_story_quality(client: Any, seeds: int) -> None:
    """Pairwise precision and recall of story_id on both independent sets, each report arriving at
    its own publication time in a shuffled order; the worst order counts."""
    print(f"\nstory clustering, independent sets, {seeds} shuffled arrival orders (pairwise over reports)")
    for name, role in (("dev", "tuning set"), ("heldout", "held out")):
        rows = reports(name)
        scores = []
        for seed in range(seeds):
            order = rows[:]
            random.Random(1000 + seed).shuffle(order)
            index = story.RedisStoryIndex(client, f"q{uuid.uuid4().hex[:8]}")
            predicted = {}
            for row in order:
                stamp = datetime.fromisoformat(row["published_at"].replace("Z", "+00:00")).timestamp()
                predicted[row["id"]] = index.assign(row["id"], row["title"], row["text"], now=stamp + 3600,
                                                    published_at=row["published_at"])  # fmt: skip
            scores.append(pair_scores({r["id"]: r["story"] for r in rows}, predicted))
        worst_p, worst_r = min(p for p, _ in scores), min(r for _, r in scores)
        mean_p, mean_r = statistics.mean(p for p, _ in scores), statistics.mean(r for _, r in scores)
        print(f"  {name:<8} ({role}, {len(rows)} reports): worst P {worst_p:.3f} R {worst_r:.3f}; "
              f"mean P {mean_p:.3f} R {mean_r:.3f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", choices=("heldout", "dev"), default="heldout")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--bulk", default="100000,1000000", help="index sizes for latency and memory")
    parser.add_argument("--stories", type=int, default=100_000, help="story index size (0: skip)")
    args = parser.parse_args(argv)
    rows = reports(args.base)
    texts = [r["text"] for r in rows]
    bodies = corpus_bodies()
    print(f"base texts: {len(rows)} reports of stories_independent_{args.base}; {TARGETS}")
    print(f"  signature CPU: {signature_ms(texts * 5):.3f} ms/article (reports, mean "
          f"{statistics.mean(len(t.split()) for t in texts):.0f} words)", end="")  # fmt: skip
    if bodies:
        long = [b for b in bodies if len(b.split()) >= neardup.MIN_WORDS]
        mean = statistics.mean(len(b.split()) for b in long)
        print(f"; {signature_ms(long):.3f} ms/article (corpus, mean {mean:.0f} words)")
    else:
        print("; corpus absent")
    with tempfile.TemporaryDirectory() as tmp:
        server = redisd.start(Path(tmp), persistent=False)
        try:
            client = redis.Redis.from_url(server.url, socket_timeout=600)  # FLUSHALL of 1M keys under load
            run_story_quality(client, 2 * args.seeds)
            run_recall(client, texts, args.seeds)
            run_false_merges(reports("dev") + reports("heldout"), bodies)
            run_orders(client, rows, args.seeds)
            run_scale(client, [int(s) for s in args.bulk.split(",") if s], texts)
            if args.stories:
                run_stories(client, args.stories)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
