"""`GET /v1/streams/{stream}` on a real `newswire http` process and a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from tests.integration.gateway import add_docs, doc, http_process
from tests.sse_client import events

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def base(cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with http_process(cli_env, tmp_path / "http.log") as url:
        yield url


def read_events(
    base: str, path: str, count: int, headers: dict[str, str] | None = None
) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    with httpx.stream("GET", f"{base}{path}", headers={**SSE, **(headers or {})}, timeout=30) as reply:
        assert reply.status_code == 200, reply.read()
        for event in events(reply):
            if "id" in event:
                got.append(event)
            if len(got) == count or event.get("event") == "dropped":
                break
    return got


def wait_connected(reply: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of a reply, after its opening comment (the server has placed the cursor)."""
    stream = events(reply)
    assert next(stream).get("comment", "").startswith("newswire")
    return stream


def test_new_entries_only_by_default_one_event_per_entry(
    base: str, redis_client: redis.Redis, prefix: str
) -> None:
    add_docs(redis_client, f"{prefix}:articles", 0, 3)  # before the client: not sent
    with httpx.stream("GET", f"{base}/v1/streams/articles", headers=SSE, timeout=30) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        stream = wait_connected(reply)
        ids = add_docs(redis_client, f"{prefix}:articles", 3, 4)
        got = []
        for event in stream:
            got += [event] if "id" in event else []
            if len(got) == len(ids):
                break
    assert [e["id"] for e in got] == ids
    assert {e["event"] for e in got} == {"article"}
    assert [orjson.loads(e["data"])["id"] for e in got] == ["doc3", "doc4", "doc5", "doc6"]


def test_after_since_and_the_event_names_of_each_stream(
    base: str, redis_client: redis.Redis, prefix: str
) -> None:
    ids = add_docs(redis_client, f"{prefix}:articles", 0, 20)
    assert [e["id"] for e in read_events(base, f"/v1/streams/articles?after={ids[9]}", 10)] == ids[10:]
    ms = int(ids[5].split("-")[0])
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    first_at_or_after = next(i for i in ids if int(i.split("-")[0]) >= ms)  # ids are milliseconds
    assert read_events(base, f"/v1/streams/articles?since={since}", 1)[0]["id"] == first_at_or_after
    for name, event in (
        ("duplicates", "duplicate"),
        ("updates", "update"),
        ("topic:us-trade-tariffs", "article"),
    ):
        first = add_docs(redis_client, f"{prefix}:{name}", 100, 1)
        got = read_events(base, f"/v1/streams/{name}?after=0", 1)
        assert (got[0]["id"], got[0]["event"]) == (first[0], event)


def test_bad_requests_are_refused_with_a_reason(base: str) -> None:
    assert httpx.get(f"{base}/v1/streams/nothing", headers=SSE).status_code == 404
    assert httpx.get(f"{base}/v1/streams/topic:no-such-topic", headers=SSE).status_code == 404
    bad = httpx.get(f"{base}/v1/streams/articles?after=yesterday", headers=SSE)
    assert bad.status_code == 400
    assert "entry id" in bad.json()["error"]
    assert httpx.get(f"{base}/v1/streams/articles?since=soon", headers=SSE).status_code == 400
    assert httpx.get(f"{base}/v1/streams/articles", headers={"Accept": "application/json"}).status_code == 406


def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(
    base: str, redis_client: redis.Redis, prefix: str
) -> None:
    stream, total = f"{prefix}:articles", 3000
    written: list[str] = add_docs(redis_client, stream, 0, 200)

    def publish() -> None:  # keeps writing while the client reads, leaves and comes back
        for start in range(200, total, 100):
            written.extend(add_docs(redis_client, stream, start, 100))
            time.sleep(0.01)

    writer = threading.Thread(target=publish)
    received = read_events(base, "/v1/streams/articles?after=0", 150)  # catch-up from Redis, then leave
    writer.start()
    while len(received) < total:
        time.sleep(0.05)  # away for a moment; the writer goes on
        want = min(700, total - len(received))
        more = read_events(base, "/v1/streams/articles", want, {"Last-Event-ID": received[-1]["id"]})
        received.extend(more)
    writer.join()
    assert [e["id"] for e in received] == written
    assert len({orjson.loads(e["data"])["id"] for e in received}) == total


def test_a_client_too_far_behind_is_dropped_with_a_reason_and_resumes(
    base: str, redis_client: redis.Redis, prefix: str
) -> None:
    stream, padding = f"{prefix}:articles", "x" * 2000
    with httpx.stream("GET", f"{base}/v1/streams/articles", headers=SSE, timeout=60) as reply:
        got = wait_connected(reply)
        written = []
        for start in range(0, 20_000, 500):  # ~40 MB while the client reads nothing
            pipe = redis_client.pipeline(transaction=False)
            for n in range(start, start + 500):
                pipe.xadd(stream, {"data": orjson.dumps(doc(n, text=padding))})
            written += [i.decode() for i in pipe.execute()]
        received = []
        for event in got:
            if event.get("event") == "dropped":
                dropped = orjson.loads(event["data"])
                break
            if "id" in event:
                received.append(event["id"])
    assert 0 < len(received) < len(written)
    assert received == written[: len(received)]  # nothing skipped before the drop
    assert "too far behind" in dropped["reason"]
    assert dropped["last_event_id"] == received[-1]
    rest = read_events(
        base, "/v1/streams/articles", len(written) - len(received), {"Last-Event-ID": received[-1]}
    )
    assert [e["id"] for e in rest] == written[len(received) :]


def test_an_idle_stream_sends_a_heartbeat_comment(base: str) -> None:
    with httpx.stream("GET", f"{base}/v1/streams/updates", headers=SSE, timeout=30) as reply:
        comments = (e["comment"] for e in wait_connected(reply) if "comment" in e)
        assert next(comments) == "heartbeat"  # after 15 s
