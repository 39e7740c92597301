"""The publish script against a real Redis: identity, exact and near copies, updates, stories, races."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis

from config.settings import SettingsError, load_settings
from ingest.dedup.decide import Submission, parse_identity
from ingest.dedup.identity import article_id, canonical_url, content_hash
from ingest.keys import articles_stream, duplicates_stream, topic_stream, updates_stream
from ingest.models import Document, FeedEntry, TopicMatch
from ingest.pipeline import is_known_link, publish_document, publish_documents
from ingest.streams.publish import RedisStreamSink
from workers.context import dedup_options

ROOT = Path(__file__).resolve().parents[3]
TALKS = "ukraine-ceasefire-talks"
NOW = 1_800_000_000.0
WORDS_TEXT = (
    "envoys met in vienna on tuesday to revive talks on a truce along the front line and a new "
    "exchange of prisoners while mediators from turkey and switzerland moved between the rooms "
    "officials said both sides agreed to come back next week but the gap on monitors was wide "
    "the council approved a budget for roads and schools after a long debate about taxes and "
    "the harbour will reopen once the storm has passed according to the port authority"
)
WORDS = WORDS_TEXT.split()


def body(seed: int, words: int = 200) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_doc(
    doc_id: str, text: str | None = None, *, title: str = "T", topics: tuple[str, ...] = (TALKS,),
    extraction: str = "trafilatura",
) -> Document:  # fmt: skip
    text = body(zlib.crc32(doc_id.encode())) if text is None else text
    return Document(
        id=doc_id, url=f"https://x.test/{doc_id}", canonical_url=f"https://x.test/{doc_id}", feed_url="f",
        source="X", title=title, text=text, summary="", authors=(), published_at=None,
        fetched_at="2026-11-27T00:00:00Z", language="en",
        topics=tuple(TopicMatch(slug=s, score=1.0) for s in topics), story_id=doc_id, duplicate_of=None,
        content_hash=content_hash(text), extraction=extraction,
    )  # fmt: skip


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def test_publish_is_idempotent_per_article(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    doc = make_doc("a1")
    assert sink.publish(doc, origin="entry-1").status == "published"
    assert sink.publish(doc, origin="entry-1").status == "already"  # redelivered task
    assert redis_client.xlen(articles_stream(prefix)) == 1
    assert redis_client.xlen(topic_stream(prefix, TALKS)) == 1
    published = stream_docs(redis_client, articles_stream(prefix))[0]
    assert published["id"] == "a1"
    assert published["story_id"] == "a1"  # appended by the script: a story of its own
    assert set(published) >= {"id", "text", "topics", "duplicate_of", "content_hash", "schema_version"}


def test_same_body_under_another_url_is_a_duplicate(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    sink.publish(make_doc("orig", body(1)), origin="e1")
    outcome = sink.publish(make_doc("copy", body(1)), origin="e2")
    assert (outcome.status, outcome.original_id, outcome.layer) == ("duplicate", "orig", "hash")
    assert outcome.story_id == "orig"
    assert redis_client.xlen(articles_stream(prefix)) == 1


def test_same_url_from_another_entry_is_a_duplicate_not_a_redelivery(
    redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    sink.publish(make_doc("a"), origin="feed1-entry")
    assert sink.publish(make_doc("a"), origin="feed2-entry").status == "duplicate"


def test_short_teasers_are_not_matched(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    stub = "Subscribe to read the full story about the talks in Vienna."
    assert sink.publish(make_doc("s1", stub), origin="e1").status == "published"
    assert sink.publish(make_doc("s2", stub), origin="e2").status == "published"


def test_guid_shared_across_feeds_is_a_duplicate(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    guid = "urn:wire:2026-11-27:talks-001"
    sink.publish(make_doc("w1", body(11)), origin="e1", guid=guid)
    outcome = sink.publish(make_doc("w2", body(12)), origin="e2", guid=guid)
    assert (outcome.status, outcome.layer) == ("duplicate", "guid")
    assert sink.publish(make_doc("w3", body(13)), origin="e3", guid="17").status == "published"


def test_near_copy_under_another_url_is_a_duplicate(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    text = body(21, 300)
    sink.publish(make_doc("orig", text), origin="e1", now=NOW)
    trimmed = "LONDON (Wire) — " + " ".join(text.split()[:220]) + " Editing by A. Editor."
    outcome = sink.publish(make_doc("copy", trimmed, topics=()), origin="e2", now=NOW + 60)
    assert (outcome.status, outcome.original_id, outcome.layer) == ("duplicate", "orig", "near")
    assert sink.publish(make_doc("other", body(22, 300)), origin="e3", now=NOW).status == "published"
    assert redis_client.xlen(articles_stream(prefix)) == 2


def test_changed_page_at_the_same_url_is_an_update(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    first = make_doc("live", body(31, 150))
    sink.publish(first, origin="e1", now=NOW)
    grown = make_doc("live", body(32, 60) + " " + first.text)
    outcome = sink.publish(grown, origin="e2", now=NOW + 600)
    assert (outcome.status, outcome.original_id, outcome.revision) == ("updated", "live", 2)
    assert sink.publish(grown, origin="e2", now=NOW + 601).status == "already"  # redelivered update
    assert sink.publish(grown, origin="e3", now=NOW + 602).status == "duplicate"  # same text, other entry
    assert sink.publish(first, origin="e1", now=NOW + 603).status == "already"  # a stale version again
    third = make_doc("live", body(33, 40) + " " + grown.text)
    assert sink.publish(third, origin="e4", now=NOW + 900).revision == 3
    updates = stream_docs(redis_client, updates_stream(prefix))
    assert [(u["id"], u["revision"], u["story_id"]) for u in updates] == [
        ("live", 2, "live"),
        ("live", 3, "live"),
    ]
    assert redis_client.xlen(articles_stream(prefix)) == 1  # still exactly once
    assert redis_client.xlen(topic_stream(prefix, TALKS)) == 1


def test_feed_text_is_never_an_update(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    sink.publish(make_doc("p", body(41)), origin="e1")
    summary = make_doc("p", "Envoys met in Vienna.", extraction="feed")
    assert sink.publish(summary, origin="e2").status == "duplicate"
    assert redis_client.xlen(updates_stream(prefix)) == 0


def test_reports_of_one_event_share_a_story(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    first = make_doc(
        "r1", "Envoys from Ukraine and Russia met in Vienna on Tuesday to revive ceasefire talks, with "
        "Turkish and Swiss mediators and the Austrian foreign ministry as host.",
        title="Ukraine and Russia envoys meet in Vienna for truce talks",
    )  # fmt: skip
    second = make_doc(
        "r2", "Ukrainian and Russian negotiators sat down in Vienna, where Austria hosted talks and "
        "Swiss and Turkish mediators shuttled between the delegations.",
        title="Vienna hosts first Ukraine-Russia ceasefire talks since spring",
    )  # fmt: skip
    other = make_doc(
        "r3", "The city library reopened on Thursday with a rooftop garden and longer opening hours.",
        title="City library reopens after renovation",
    )  # fmt: skip
    stories = [sink.publish(d, origin=d.id, now=NOW).story_id for d in (first, second, other)]
    assert stories == ["r1", "r1", "r3"]
    assert [d["story_id"] for d in stream_docs(redis_client, articles_stream(prefix))] == stories


def test_duplicates_and_dead_letters_are_recorded_once(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    dup = replace(make_doc("copy"), duplicate_of="orig")
    assert sink.record_duplicate(dup, "e2")
    assert not sink.record_duplicate(dup, "e2")
    assert sink.dead_letter("task-1", {"reason": "boom"})
    assert not sink.dead_letter("task-1", {"reason": "boom"})
    assert redis_client.xlen(duplicates_stream(prefix)) == 1


def test_identity_record(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    doc = make_doc("id1")
    sink.publish(doc, origin="o1", now=NOW)
    record = sink.identity("id1")
    assert record is not None
    assert (record.origin, record.revision, record.kind, record.published_ts) == ("o1", 1, "p", NOW)
    assert record.hashes == (doc.content_hash,)
    assert sink.identity("missing") is None
    assert parse_identity("just-an-origin").origin == "just-an-origin"  # records written before v2


def race(url: str, prefix: str, worker: int, rounds: int) -> None:
    """One racing process: per round, meet the other at a Redis barrier, then publish a copy."""
    client = redis.Redis.from_url(url)
    sink = RedisStreamSink(client, prefix)
    statuses = []
    for n in range(rounds):
        text = body(1000 + n, 300)
        words = text.split() if worker == 0 else ["Reuters", "—", *text.split()[:250]]
        client.rpush(f"{prefix}:barrier:{n}", worker)
        while client.llen(f"{prefix}:barrier:{n}") < 2:
            pass
        doc = make_doc(f"copy-{n}-{worker}", " ".join(words))
        statuses.append(sink.publish(doc, origin=f"entry-{n}-{worker}").status)
    print(json.dumps(statuses))


def test_two_workers_racing_on_two_copies_publish_once(
    redis_server: object, redis_client: redis.Redis, prefix: str
) -> None:
    url, rounds = redis_server.url, 10  # type: ignore[attr-defined]
    code = (
        "import sys; from tests.unit.streams.test_publish import race; "
        "race(*sys.argv[1:3], *map(int, sys.argv[3:]))"
    )
    argv = [sys.executable, "-c", code, url, prefix]
    procs = [subprocess.Popen([*argv, str(k), str(rounds)], cwd=ROOT, stdout=subprocess.PIPE) for k in (0, 1)]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    for n, pair in enumerate(zip(*outputs, strict=True)):
        assert sorted(pair) == ["duplicate", "published"], n
    assert redis_client.xlen(articles_stream(prefix)) == rounds


# --- the pipeline's two dedup steps ------------------------------------------------------------


def entry(link: str, key: str, published_at: str | None = None) -> FeedEntry:
    return FeedEntry(
        feed_url=f"https://feed.test/{key}", key=key, link=link, title="T", published_at=published_at
    )


def test_publish_document_records_a_copy_with_its_original_and_story(
    redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    text = body(51, 200)
    first, _ = publish_document(make_doc("p-orig", text), sink, entry("https://a.test/x", "k1"))
    outcome, copy = publish_document(make_doc("p-copy", text), sink, entry("https://b.test/x", "k2"))
    assert (first.status, outcome.status) == ("published", "duplicate")
    assert (copy.duplicate_of, copy.story_id) == ("p-orig", "p-orig")
    [recorded] = stream_docs(redis_client, duplicates_stream(prefix))
    assert (recorded["id"], recorded["duplicate_of"], recorded["story_id"]) == ("p-copy", "p-orig", "p-orig")


def test_a_known_link_is_fetched_again_only_when_its_entry_is_newer(
    redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    link = "https://news.test/world/live-blog?utm_source=rss"
    doc = make_doc(article_id(canonical_url(link)))
    sink.publish(doc, origin="e1", now=NOW)
    assert is_known_link(entry(link, "other-feed", "2027-01-15T07:00:00Z"), sink)  # dated before NOW
    assert is_known_link(entry(link, "no-date"), sink)
    assert not is_known_link(entry(link, "relisted", "2027-01-15T09:00:00Z"), sink)  # after NOW
    assert not is_known_link(entry("https://news.test/other", "new"), sink)


def test_windows_come_from_the_settings() -> None:
    settings = load_settings({"NEWSWIRE_DEDUP_WINDOW_DAYS": "3", "NEWSWIRE_STORY_WINDOW_HOURS": "12"})
    options = dedup_options(settings)
    assert (options.window_s, options.story_window_s) == (3 * 86400, 12 * 3600)
    assert dedup_options(load_settings({})).window_s == 7 * 86400
    with pytest.raises(SettingsError, match="NEWSWIRE_DEDUP_WINDOW_DAYS"):
        load_settings({"NEWSWIRE_DEDUP_WINDOW_DAYS": "a week"})


# --- two steps: decide, then write ---------------------------------------------------------------


def decide_only(sink: RedisStreamSink, doc: Document, origin: str) -> str:
    """The first step alone, as when the worker dies before the write."""
    return sink.decide_many([Submission(doc, origin)], now=NOW)[0].status


def test_a_worker_dying_between_decision_and_write_loses_nothing(
    redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    doc = make_doc("half")
    assert decide_only(sink, doc, "e1") == "published"
    assert redis_client.xlen(articles_stream(prefix)) == 0  # decided, not yet written
    assert sink.publish(make_doc("half-copy", doc.text), origin="e2").status == "duplicate"
    assert sink.publish(doc, origin="e1").status == "published"  # the redelivery finishes the job
    assert sink.publish(doc, origin="e1").status == "already"
    assert [d["id"] for d in stream_docs(redis_client, articles_stream(prefix))] == ["half"]
    assert redis_client.xlen(topic_stream(prefix, TALKS)) == 1


def test_a_revision_is_written_once(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    doc = make_doc("w1")
    outcome = sink.publish(doc, origin="e1")
    assert sink.write_many([(doc, outcome), (doc, outcome)]) == 0  # written by publish already
    assert redis_client.xlen(articles_stream(prefix)) == 1


def test_a_batch_publishes_each_story_once_and_records_its_copies(
    redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    text = body(77, 200)
    items = [
        (make_doc("b-orig", text), entry("https://a.test/b", "k1")),
        (make_doc("b-other"), entry("https://a.test/o", "k2")),
        (make_doc("b-copy", text), entry("https://c.test/b", "k3")),  # a copy later in the same batch
    ]
    results = publish_documents(items, sink)
    assert [o.status for o, _ in results] == ["published", "published", "duplicate"]
    assert results[2][1].duplicate_of == "b-orig"
    assert [d["id"] for d in stream_docs(redis_client, articles_stream(prefix))] == ["b-orig", "b-other"]
    [copy] = stream_docs(redis_client, duplicates_stream(prefix))
    assert (copy["id"], copy["duplicate_of"]) == ("b-copy", "b-orig")
    assert [o.status for o, _ in publish_documents(items, sink)] == ["already", "already", "duplicate"]
    assert redis_client.xlen(duplicates_stream(prefix)) == 1  # a redelivered batch adds nothing


def test_records_written_before_the_two_steps_count_as_written(
    redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    doc = make_doc("old")
    record = f"e1|1|p|{int(NOW)}|old|{doc.content_hash}"
    redis_client.set(f"{prefix}:seen:id:old", record)
    assert sink.publish(doc, origin="e1").status == "already"
    assert redis_client.xlen(articles_stream(prefix)) == 0
