"""Identity keys (pure), and every story once: its versions in every order, two workers racing."""

import itertools
import json
import random
import sys
import threading
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis

from ingest.dedup.identity import (
    MARK_RE,
    article_id,
    article_ref,
    canonical_url,
    content_hash,
    normalize_text,
    same_site,
    strip_combining,
    url_key,
)
from ingest.keys import articles_stream, duplicates_stream, topic_stream
from ingest.models import Document, FeedEntry, TopicMatch
from ingest.pipeline import publish_documents
from ingest.streams.publish import RedisStreamSink
from tests import dedup_copies as copies


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://News.Example.COM:443/world/story/", "https://news.example.com/world/story"),
        ("http://example.com:80/a?utm_source=rss&utm_medium=feed&id=7", "http://example.com/a?id=7"),
        ("https://example.com/a?b=2&a=1#comments", "https://example.com/a?a=1&b=2"),
        ("https://example.com/a?fbclid=x&gclid=y&mc_cid=z&ocid=w", "https://example.com/a"),
        ("https://example.com/world/story/amp", "https://example.com/world/story"),
        ("https://example.com/world/story.amp.html", "https://example.com/world/story.html"),
        ("https://example.com//double//slash", "https://example.com/double/slash"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
    ],
)
def test_canonical_url_removes_what_never_changes_the_article(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


def test_identity_ignores_scheme_www_mobile_and_amp_hosts() -> None:
    variants = [
        "https://www.example.com/world/story",
        "http://example.com/world/story/",
        "https://m.example.com/world/story?utm_campaign=x",
        "https://amp.example.com/world/story/amp",
    ]
    assert len({url_key(v) for v in variants}) == 1
    assert len({article_id(v) for v in variants}) == 1


def test_different_articles_keep_different_ids() -> None:
    assert article_id("https://example.com/world/story-1") != article_id("https://example.com/world/story-2")
    assert article_id("https://example.com/a?id=1") != article_id("https://example.com/a?id=2")
    assert article_id("https://example.com/a") != article_id("https://example.org/a")


def test_same_site() -> None:
    assert same_site("https://www.example.com/a", "https://example.com/b")
    assert not same_site("https://example.com/a", "https://other.example/b")


def test_content_hash_ignores_case_accents_punctuation_and_spacing() -> None:
    a = "Talks resumed in Genève on Monday — officials said."
    b = "talks resumed in geneve on monday, officials said"
    assert normalize_text(a) == normalize_text(b)
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash("Talks collapsed in Geneva on Monday.")


def test_every_combining_character_is_a_mark() -> None:
    """strip_combining only looks at marks: true for this Python's whole Unicode table."""
    combining = (chr(c) for c in range(sys.maxunicode + 1) if unicodedata.combining(chr(c)))
    assert all(MARK_RE.fullmatch(c) for c in combining)


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii, nothing to drop",
        "Genève, Zürich, Łódź and São Paulo — “quoted”",
        "Tiếng Việt có nhiều dấu",
        "がっこうへ いきました、ガンダム",  # NFKD splits the voicing marks off
        "नई दिल्ली में बैठक",  # vowel signs: marks that are not all combining
        "שָׁלוֹם and مَرْحَبًا",
        "x\u0301\u0301\u0327 y\u20dd",
    ],
)
def test_strip_combining_drops_exactly_the_combining_characters(text: str) -> None:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    expected = "".join(c for c in decomposed if not unicodedata.combining(c))
    assert strip_combining(decomposed) == expected


def test_a_body_is_normalised_once_for_its_hash_and_its_signature() -> None:
    body = "Ministers met in Brussels on Friday to weigh the grain deal. " * 20
    assert normalize_text(body) is normalize_text(body)
    assert normalize_text("A different body.") == "a different body"


def test_article_ref_is_eight_stable_bytes() -> None:
    ref = article_ref("6a04fa6630321a84b0f47895")
    assert len(ref) == 8
    assert ref == article_ref("6a04fa6630321a84b0f47895")
    assert ref != article_ref("6a04fa6630321a84b0f47896")


# --- every story once: a story's versions in every order, two workers racing ------------------
#
# Base texts are reports of the held-out story set (tests/data/stories_independent_heldout.jsonl,
# never tuned on); the copies are made by tests/dedup_copies.py. Each version is published
# through the real publish path (ingest.pipeline.publish_documents) by one of two threads whose
# publications race pairwise (a barrier before each step), in every order of the versions.

HELDOUT = Path(__file__).resolve().parents[2] / "data" / "stories_independent_heldout.jsonl"
DEV = HELDOUT.with_name("stories_independent_dev.jsonl")
TOPIC = "ukraine-ceasefire-talks"


def reports(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Version:
    url: str
    title: str
    text: str
    site: str


def document(version: Version, source: str) -> Document:
    canonical = canonical_url(version.url)
    return Document(
        id=article_id(canonical), url=version.url, canonical_url=canonical, feed_url=f"https://{version.site}/rss",
        source=source, title=version.title, text=version.text, summary="", authors=(), published_at=None,
        fetched_at="2026-11-27T00:00:00Z", language="en", topics=(TopicMatch(slug=TOPIC, score=1.0),),
        story_id="", duplicate_of=None, content_hash=content_hash(version.text), extraction="trafilatura",
    )  # fmt: skip


def versions_of(report: dict[str, str], kind: str, seed: int) -> list[Version]:
    """The story's versions for one kind of copy: the original, the copy (on another site, with
    its headline changed), a wire reprint, the original with tracking parameters, the copy on an
    AMP URL; for the URL kinds, the same body under other URLs of one article."""
    rng = random.Random(seed)
    slug, text, title = report["id"], report["text"], report["title"]
    home = f"https://www.alpha.test/news/{slug}"
    reprinted = Version(f"https://beta.test/wire/{slug}", title, copies.reprint(text, rng), "beta.test")
    tracked = Version(f"{home}?utm_source=rss&utm_medium=feed&fbclid=x1", title, text, "alpha.test")
    original = Version(home, title, text, "alpha.test")
    if kind == "AMP URL":
        trimmed = copies.trim(0.7)(text, rng)
        return [
            original, Version(f"{home}/amp", title, text, "alpha.test"), reprinted,
            Version(f"https://gamma.test/amp/{slug}", title, trimmed, "gamma.test"),
            Version(f"{reprinted.url}/amp", title, reprinted.text, "beta.test"),
        ]  # fmt: skip
    if kind == "tracking parameters":
        return [
            original, tracked, Version(f"{home}/?ocid=rss&gclid=7", title, text, "alpha.test"),
            reprinted, Version(f"{reprinted.url}?utm_campaign=wire", title, reprinted.text, "beta.test"),
        ]  # fmt: skip
    copy_url = f"https://delta.test/stories/{slug}-copy"
    copy = Version(copy_url, copies.edited_title(title, rng), copies.KINDS[kind](text, rng), "delta.test")
    amp = Version(f"{copy_url}/amp", copy.title, copy.text, "delta.test")
    return [original, copy, reprinted, tracked, amp]


ALL_KINDS = [*copies.KINDS, *copies.URL_KINDS]


def publish_in_order(
    clients: list[redis.Redis], prefix: str, items: list[tuple[Document, FeedEntry]]
) -> None:
    """Two threads, each with its own client: step k races items 2k and 2k+1."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(part: int) -> None:
        try:
            sink = RedisStreamSink(clients[part], prefix)
            for step in range(0, len(items), 2):
                barrier.wait(timeout=10)
                if step + part < len(items):
                    publish_documents([items[step + part]], sink)
        except BaseException as error:  # noqa: BLE001 - handed to the test below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(part,)) for part in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_story_once_in_every_order_with_two_workers_racing(
    redis_server: object, redis_client: redis.Redis, kind: str
) -> None:
    held = reports(HELDOUT)
    report = held[ALL_KINDS.index(kind) * 7 % len(held)]
    versions = versions_of(report, kind, seed=ALL_KINDS.index(kind))
    items = [(document(v, v.site), FeedEntry(feed_url=f"https://{v.site}/rss", key=f"v{n}", link=v.url,
              title=v.title)) for n, v in enumerate(versions)]  # fmt: skip
    failures = []
    orders = list(itertools.permutations(range(len(items))))
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(2)]  # type: ignore[attr-defined]
    for order in orders:
        prefix = f"o{uuid.uuid4().hex[:10]}"
        publish_in_order(clients, prefix, [items[i] for i in order])
        published = stream_docs(redis_client, articles_stream(prefix))
        copies_seen = stream_docs(redis_client, duplicates_stream(prefix))
        ok = (
            len(published) == 1
            and len(copies_seen) == len(items) - 1
            and all(d["duplicate_of"] == published[0]["id"] for d in copies_seen)
            and all(d["story_id"] == published[0]["story_id"] for d in copies_seen)
            and redis_client.xlen(topic_stream(prefix, TOPIC)) == 1
        )
        if not ok:
            failures.append((order, len(published), len(copies_seen)))
        redis_client.delete(*redis_client.scan_iter(f"{prefix}:*", count=10_000))
    assert len(orders) == 120
    assert failures == []


def test_no_false_merges_among_distinct_reports_sharing_boilerplate_and_bylines(
    redis_client: redis.Redis, prefix: str
) -> None:
    """Every report of both independent story sets (202 distinct stories: different reports of one
    event, sibling events sharing places and people), each wrapped in one of two sites' header,
    byline and footer, published in a shuffled order: every one is published, none is a copy."""
    rows = reports(DEV) + reports(HELDOUT)
    assert len(rows) >= 200
    random.Random(5).shuffle(rows)
    authors = ["Ana Lima", "Tom Berg", "Clare Dunn"]
    items = []
    for n, row in enumerate(rows):
        site = "ab"[n % 2]
        text = copies.site_page(row["text"], site, authors[n % 3])
        doc = document(Version(f"https://{site}.test/{row['id']}", row["title"], text, f"{site}.test"), site)
        items.append(
            (doc, FeedEntry(feed_url=f"https://{site}.test/rss", key=row["id"], link=doc.url, title="t"))
        )
    sink = RedisStreamSink(redis_client, prefix)
    outcomes = [
        outcome
        for chunk in range(0, len(items), 8)
        for outcome, _ in publish_documents(items[chunk : chunk + 8], sink)
    ]
    assert [o.status for o in outcomes].count("published") == len(rows)
    assert redis_client.xlen(duplicates_stream(prefix)) == 0
