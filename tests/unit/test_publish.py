import orjson
import redis

from ingest.models import Document, TopicMatch
from ingest.publish import RedisStreamSink, articles_stream, duplicates_stream, topic_stream

BODY = " ".join(f"word{i}" for i in range(80))


def make_doc(
    doc_id: str, text: str = BODY, topics: tuple[str, ...] = ("ukraine-ceasefire-talks",)
) -> Document:
    return Document(
        id=doc_id, url=f"https://x.test/{doc_id}", canonical_url=f"https://x.test/{doc_id}", feed_url="f",
        source="X", title="T", text=text, summary="", authors=(), published_at=None,
        fetched_at="2026-11-27T00:00:00Z", language="en",
        topics=tuple(TopicMatch(slug=s, score=1.0) for s in topics), story_id=doc_id, duplicate_of=None,
        content_hash=f"h-{text[:20]}-{len(text)}", extraction="trafilatura",
    )  # fmt: skip


def test_publish_is_idempotent_per_article(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    doc = make_doc("a1")
    assert sink.publish(doc, origin="entry-1").status == "published"
    assert sink.publish(doc, origin="entry-1").status == "already"  # redelivered task
    assert redis_client.xlen(articles_stream(prefix)) == 1
    assert redis_client.xlen(topic_stream(prefix, "ukraine-ceasefire-talks")) == 1
    fields = redis_client.xrange(articles_stream(prefix))[0][1]
    assert orjson.loads(fields[b"data"])["id"] == "a1"


def test_same_body_under_another_url_is_a_duplicate(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    sink.publish(make_doc("orig"), origin="e1")
    outcome = sink.publish(make_doc("copy"), origin="e2")
    assert (outcome.status, outcome.original_id) == ("duplicate", "orig")
    assert redis_client.xlen(articles_stream(prefix)) == 1


def test_same_url_from_another_entry_is_a_duplicate_not_a_redelivery(
    redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    sink.publish(make_doc("a"), origin="feed1-entry")
    assert sink.publish(make_doc("a"), origin="feed2-entry").status == "duplicate"


def test_short_teasers_are_not_matched_by_hash(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    stub = "Subscribe to read the full story."
    assert sink.publish(make_doc("s1", text=stub), origin="e1").status == "published"
    assert sink.publish(make_doc("s2", text=stub), origin="e2").status == "published"


def test_guid_shared_across_feeds_is_a_duplicate(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    guid = "urn:wire:2026-11-27:talks-001"
    sink.publish(make_doc("w1", text=BODY + " one"), origin="e1", guid=guid)
    assert sink.publish(make_doc("w2", text=BODY + " two"), origin="e2", guid=guid).status == "duplicate"
    assert sink.publish(make_doc("w3", text=BODY + " three"), origin="e3", guid="17").status == "published"


def test_duplicates_and_dead_letters_are_recorded_once(redis_client: redis.Redis, prefix: str) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    dup = make_doc("copy")
    assert sink.record_duplicate(dup, "e2")
    assert not sink.record_duplicate(dup, "e2")
    assert sink.dead_letter("task-1", {"reason": "boom"})
    assert not sink.dead_letter("task-1", {"reason": "boom"})
    assert redis_client.xlen(duplicates_stream(prefix)) == 1
