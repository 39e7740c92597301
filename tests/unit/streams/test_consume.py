import threading
import time
from datetime import UTC, datetime

import orjson
import pytest
import redis

from ingest.streams.consume import (
    Delivery,
    Entry,
    claim_outcome,
    consume,
    dead_letter_item,
    group_start,
    judge,
    run,
    since_id,
    stream_entries,
)


def add(client: redis.Redis, stream: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        client.xadd(stream, {"data": orjson.dumps({"id": f"doc{i}"})})


def ids(deliveries: object) -> list[str]:
    return [d.document["id"] for d in deliveries]  # type: ignore[attr-defined]


def dead_letters(client: redis.Redis, prefix: str) -> list[dict[str, object]]:
    return [orjson.loads(f[b"data"]) for _, f in client.xrange(f"{prefix}:deadletter")]


def pending(client: redis.Redis, stream: str, group: str = "g") -> int:
    return int(client.xpending(stream, group)["pending"])


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
    again = list(consume(redis_client, stream, group="g", consumer="c", count=2))
    assert ids(again) == ["doc1", "doc2"]
    assert [d.deliveries for d in again] == [2, 2]  # the first reader had read all four


def test_acks_wait_for_the_batch_but_a_closed_reader_acks_what_was_handled(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 5)
    reader = consume(redis_client, stream, group="g", consumer="c", from_beginning=True, batch=5)
    for _ in range(3):
        next(reader)
    assert pending(redis_client, stream) == 5  # two handled, not yet acked: one XACK per batch
    reader.close()
    assert pending(redis_client, stream) == 3  # the one in hand and the two not handed out stay pending


def test_entries_abandoned_by_a_dead_consumer_are_claimed(redis_client: redis.Redis, prefix: str) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 3)
    dead = consume(redis_client, stream, group="g", consumer="dead", from_beginning=True, batch=3)
    next(dead)
    dead.close()  # three delivered to "dead", none acked
    alive = list(consume(redis_client, stream, group="g", consumer="alive", claim_idle_ms=0))
    assert ids(alive) == ["doc0", "doc1", "doc2"]
    assert [d.deliveries for d in alive] == [2, 2, 2]
    assert pending(redis_client, stream) == 0


def test_entries_pending_less_than_claim_idle_are_left_to_their_consumer(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 2)
    busy = consume(redis_client, stream, group="g", consumer="busy", from_beginning=True)
    next(busy)
    assert ids(consume(redis_client, stream, group="g", consumer="other", claim_idle_ms=60_000)) == []
    busy.close()


def test_entries_trimmed_while_pending_do_not_crash_the_consumer(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 3)
    first = consume(redis_client, stream, group="g", consumer="c", from_beginning=True, batch=3)
    next(first)
    first.close()
    redis_client.xtrim(stream, maxlen=0, approximate=False)
    assert ids(consume(redis_client, stream, group="g", consumer="c")) == []
    assert pending(redis_client, stream) == 0


def test_another_consumers_trimmed_entries_are_cleared_when_claimed(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 4)
    dead = consume(redis_client, stream, group="g", consumer="dead", from_beginning=True, batch=4)
    next(dead)
    dead.close()
    oldest_two = [eid for eid, _ in redis_client.xrange(stream, count=2)]
    redis_client.xdel(stream, *oldest_two)
    counts = run(redis_client, stream, lambda d: None, group="g", consumer="alive", claim_idle_ms=0)
    assert (counts["delivered"], counts["trimmed"]) == (2, 2)
    assert pending(redis_client, stream) == 0
    assert int(redis_client.hget(f"{prefix}:stats", "consume:trimmed") or 0) == 2


def test_undecodable_entry_is_dead_lettered_at_once_and_the_rest_flows(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 1)
    redis_client.xadd(stream, {"data": b"{not json"})
    redis_client.xadd(stream, {"other": b"1"})
    add(redis_client, stream, 1, start=1)
    got = ids(consume(redis_client, stream, group="g", consumer="c", from_beginning=True))
    assert got == ["doc0", "doc1"]
    letters = dead_letters(redis_client, prefix)
    assert [letter["data"] for letter in letters] == ["{not json", None]
    assert all(str(letter["reason"]).startswith("undecodable") for letter in letters)
    assert {letter["group"] for letter in letters} == {"g"}
    assert pending(redis_client, stream) == 0
    assert int(redis_client.hget(f"{prefix}:stats", "consume:dead_lettered") or 0) == 2


def test_handler_that_always_raises_is_retried_then_dead_lettered(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 3)
    calls: list[tuple[str, int]] = []

    def handler(delivery: Delivery) -> None:
        calls.append((delivery.document["id"], delivery.deliveries))
        if delivery.document["id"] == "doc1":
            raise ValueError("cannot handle doc1")

    counts = run(
        redis_client, stream, handler, group="g", consumer="c", from_beginning=True,
        claim_idle_ms=0, max_deliveries=3,
    )  # fmt: skip
    assert [c for c in calls if c[0] == "doc1"] == [("doc1", 1), ("doc1", 2), ("doc1", 3)]
    assert (counts["delivered"], counts["failed"], counts["dead_lettered"]) == (5, 3, 1)
    (letter,) = dead_letters(redis_client, prefix)
    assert letter["document"] == {"id": "doc1"}
    assert letter["stream"] == stream
    assert letter["deliveries"] == 4
    assert "ValueError: cannot handle doc1" in str(letter["reason"])
    assert redis_client.xrange(stream, letter["entry_id"], letter["entry_id"])  # still there to replay
    assert pending(redis_client, stream) == 0


def test_a_failed_entry_waits_for_claim_idle_before_it_is_retried(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 1)
    seen: list[int] = []

    def fail(delivery: Delivery) -> None:
        seen.append(delivery.deliveries)
        raise RuntimeError("down")

    run(redis_client, stream, fail, group="g", consumer="c", from_beginning=True, claim_idle_ms=60_000)
    assert seen == [1]
    assert pending(redis_client, stream) == 1
    run(redis_client, stream, fail, group="g", consumer="c")  # restarted: own pending first
    assert seen == [1, 2]


def test_an_entry_that_crashes_its_consumer_is_dead_lettered_alone(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    add(redis_client, stream, 6)
    handled: list[str] = []
    for _ in range(8):  # each round is a consumer process that dies on doc2
        reader = consume(redis_client, stream, group="g", consumer="c", from_beginning=True, max_deliveries=3)
        for delivery in reader:
            if delivery.document["id"] == "doc2":
                reader.close()  # the process dies without acking
                break
            handled.append(delivery.document["id"])
    assert sorted(set(handled)) == ["doc0", "doc1", "doc3", "doc4", "doc5"]
    assert [letter["document"] for letter in dead_letters(redis_client, prefix)] == [{"id": "doc2"}]
    assert pending(redis_client, stream) == 0


def test_since_starts_a_new_group_at_the_first_entry_at_or_after_that_time(
    redis_client: redis.Redis, prefix: str
) -> None:
    stream = f"{prefix}:articles"
    for ms, name in ((1_000, "a"), (2_000, "b"), (2_000_500, "c")):
        redis_client.xadd(stream, {"data": orjson.dumps({"id": name})}, id=f"{ms}-0")
    since = datetime.fromtimestamp(2, UTC).isoformat()
    assert ids(consume(redis_client, stream, group="g", consumer="c", since=since)) == ["b", "c"]
    assert ids(consume(redis_client, stream, group="g2", consumer="c", since="1970-01-01T00:00:02.001Z")) == [
        "c"
    ]


def test_follow_waits_for_new_entries_until_stopped(redis_client: redis.Redis, prefix: str) -> None:
    stream = f"{prefix}:articles"
    got: list[str] = []
    stop = threading.Event()

    def handler(delivery: Delivery) -> None:
        got.append(delivery.document["id"])
        if len(got) == 3:
            stop.set()

    options = {"follow": True, "block_ms": 100, "stop": stop}
    reader = threading.Thread(target=run, args=(redis_client, stream, handler), kwargs={
        "group": "g", "consumer": "c", **options,
    })  # fmt: skip
    reader.start()
    assert wait_for_group(redis_client, stream, "g")  # a new group starts at "$": add only after it
    add(redis_client, stream, 3)
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert got == ["doc0", "doc1", "doc2"]


def wait_for_group(client: redis.Redis, stream: str, group: str, limit_s: float = 10.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if any(g["name"] in (group, group.encode()) for g in client.xinfo_groups(stream)):
                return True
        except redis.ResponseError:  # no stream yet
            pass
        time.sleep(0.01)
    return False


def test_a_client_that_decodes_responses_works_too(redis_server: object, prefix: str) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)  # type: ignore[attr-defined]
    stream = f"{prefix}:articles"
    add(client, stream, 2)
    client.xadd(stream, {"data": "[1, 2]"})
    assert ids(consume(client, stream, group="g", consumer="c", from_beginning=True)) == ["doc0", "doc1"]
    assert len(dead_letters(redis.Redis.from_url(redis_server.url), prefix)) == 1  # type: ignore[attr-defined]


def test_group_start_and_since_id() -> None:
    assert group_start() == "$"
    assert group_start(from_beginning=True) == "0"
    assert since_id("1970-01-01T00:00:01Z") == f"999-{2**64 - 1}"
    assert since_id("1970-01-01T00:00:01") == since_id("1970-01-01T01:00:01+01:00")  # naive = UTC
    assert since_id("1970-01-01") == "0"
    with pytest.raises(ValueError, match="ISO 8601"):
        since_id("yesterday")


def test_claim_outcome_reads_every_server_generation() -> None:
    assert claim_outcome([(b"1-0", {b"data": b"{}"})]) == "claimed"
    assert claim_outcome([(None, None)]) == "trimmed"  # Redis 6.2: a nil entry that stays pending
    assert claim_outcome([]) == "gone"  # Redis >= 7 / Valkey: dropped from the pending list


def test_stream_entries_reads_resp2_and_resp3_replies() -> None:
    entry = (b"1-0", {b"data": b"{}"})
    assert stream_entries([[b"s", [entry]]]) == [entry]
    assert stream_entries({b"s": [[entry]]}) == [entry]
    assert stream_entries(None) == []


def test_judge_and_dead_letter_item() -> None:
    entry = Entry("5-0", {b"data": b'{"id": "x"}'}, 4)
    assert judge(entry, {"id": "x"}, 5, None) is None
    burial = judge(entry, {"id": "x"}, 3, "KeyError: 'title'")
    assert burial is not None
    assert "last error: KeyError" in burial.reason
    item = dead_letter_item("p:articles", "g", "c", entry, burial, 0.0)
    assert item["document"] == {"id": "x"}
    assert "data" not in item
    assert item["dead_lettered_at"] == "1970-01-01T00:00:00Z"
