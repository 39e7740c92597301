import orjson
import redis

from ingest.consume import consume


def add(client: redis.Redis, stream: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        client.xadd(stream, {"data": orjson.dumps({"id": f"doc{i}"})})


def ids(deliveries: object) -> list[str]:
    return [d.document["id"] for d in deliveries]  # type: ignore[attr-defined]


def test_new_group_from_beginning_replays_everything_then_stops(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 5)
    assert ids(consume(redis_client, stream, group="g", consumer="c", from_beginning=True)) == [
        f"doc{i}" for i in range(5)
    ]
    assert ids(consume(redis_client, stream, group="g", consumer="c")) == []  # all acked
    add(redis_client, stream, 2, start=5)
    assert ids(consume(redis_client, stream, group="g", consumer="c")) == ["doc5", "doc6"]


def test_new_group_without_from_beginning_starts_at_new_entries(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 3)
    assert ids(consume(redis_client, stream, group="late", consumer="c")) == []
    add(redis_client, stream, 1, start=3)
    assert ids(consume(redis_client, stream, group="late", consumer="c")) == ["doc3"]


def test_count_limits_and_unacked_entry_is_redelivered(redis_client: redis.Redis, prefix: str) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 4)
    reader = consume(redis_client, stream, group="g", consumer="c", from_beginning=True)
    assert next(reader).document["id"] == "doc0"
    assert next(reader).document["id"] == "doc1"  # asking for doc1 acked doc0
    reader.close()  # crashed while handling doc1: never acked
    assert ids(consume(redis_client, stream, group="g", consumer="c", count=2)) == ["doc1", "doc2"]


def test_entries_abandoned_by_a_dead_consumer_are_claimed(redis_client: redis.Redis, prefix: str) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 3)
    dead = consume(redis_client, stream, group="g", consumer="dead", from_beginning=True, batch=3)
    next(dead)
    dead.close()  # three delivered to "dead", none acked
    got = ids(consume(redis_client, stream, group="g", consumer="alive", claim_idle_ms=0))
    assert got == ["doc0", "doc1", "doc2"]
    assert redis_client.xpending(stream, "g")["pending"] == 0


def test_entries_trimmed_while_pending_do_not_crash_the_consumer(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 3)
    first = consume(redis_client, stream, group="g", consumer="c", from_beginning=True, batch=3)
    next(first)
    first.close()
    redis_client.xtrim(stream, maxlen=0)
    assert ids(consume(redis_client, stream, group="g", consumer="c")) == []
    assert redis_client.xpending(stream, "g")["pending"] == 0
