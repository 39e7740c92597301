"""The gateway's pure parts: SSE framing and start positions, the shared ring, story summaries."""

from __future__ import annotations

import asyncio

import pytest

from ingest.streams.entries import event_name, is_stream_name, output_stream
from ingest.streams.lookup import Found, merge_topics, summarize_story
from newswire.http import hub
from newswire.http.hub import Framed, StreamHub, frame, id_key
from newswire.http.sse import accepts_event_stream, dropped_frame, start_cursor


def test_an_event_is_id_event_and_one_data_line() -> None:
    assert frame("17-0", "article", b'{"id":"a"}') == b'id: 17-0\nevent: article\ndata: {"id":"a"}\n\n'
    assert frame("17-1", "update", b"a\nb") == b"id: 17-1\nevent: update\ndata: a\ndata: b\n\n"
    assert dropped_frame("too far behind", (17, 3)).startswith(b"event: dropped\ndata: {")


def test_stream_names_and_their_events() -> None:
    assert [is_stream_name(n) for n in ("articles", "topic:us-trade-tariffs", "deadletter", "topic:")] == [
        True, True, False, False,
    ]  # fmt: skip
    assert output_stream("nw", "topic:russia-sanctions") == "nw:topic:russia-sanctions"
    assert output_stream("nw", "updates") == "nw:updates"
    assert [event_name(n) for n in ("articles", "topic:x", "duplicates", "updates")] == [
        "article", "article", "duplicate", "update",
    ]  # fmt: skip


def test_where_a_client_starts() -> None:
    assert start_cursor({}, {}) is None  # new entries only
    assert start_cursor({"last-event-id": "17-3"}, {"after": "9-0"}) == (17, 3)  # the header wins
    assert start_cursor({}, {"after": "42"}) == (42, 0)
    assert start_cursor({}, {"since": "1970-01-01T00:00:01Z"}) == (999, 2**64 - 1)
    with pytest.raises(ValueError, match="entry id"):
        start_cursor({}, {"after": "1-2-3"})
    assert accepts_event_stream("text/event-stream")
    assert accepts_event_stream("")
    assert not accepts_event_stream("application/json")


def entries(start: int, count: int, size: int = 10) -> list[Framed]:
    return [Framed((n, 0), f"{n}-0", b"x" * size) for n in range(start, start + count)]


def test_the_ring_keeps_the_newest_entries_and_knows_what_it_covers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "RING_ENTRIES", 5)
    ring = StreamHub(client=None, stream="s", event="article")  # type: ignore[arg-type]
    ring.add(entries(1, 3))
    assert ring.covers((0, 0))
    assert [e.key for e in ring.after((1, 0))] == [(2, 0), (3, 0)]
    ring.add(entries(4, 4))  # 7 entries: 1 and 2 fall out
    assert [e.key[0] for e in ring.ring] == [3, 4, 5, 6, 7]
    assert ring.floor == (2, 0)
    assert not ring.covers((1, 0))  # entry 2 is no longer in memory: read from Redis
    assert ring.covers((2, 0))
    assert [e.key[0] for e in ring.after((5, 0), limit=1)] == [6]
    assert ring.head == (7, 0)


def test_the_ring_is_bounded_by_bytes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "RING_BYTES", 100)
    ring = StreamHub(client=None, stream="s", event="article")  # type: ignore[arg-type]
    ring.add(entries(1, 30, size=20))
    assert ring.ring_bytes <= 100
    assert len(ring.ring) == 5


def test_waiting_wakes_on_new_entries() -> None:
    async def scenario() -> tuple[bool, bool]:
        ring = StreamHub(client=None, stream="s", event="article")  # type: ignore[arg-type]
        idle = await ring.wait(0.01)
        waiter = asyncio.create_task(ring.wait(5))
        await asyncio.sleep(0)
        ring.add(entries(1, 1))
        return idle, await waiter

    assert asyncio.run(scenario()) == (False, True)


def test_ids_order_numerically() -> None:
    assert id_key("9-0") < id_key("10-0") < id_key("10-1")


def found(n: int, ms: int, source: str, topics: list[dict[str, object]]) -> Found:
    return Found(f"{ms}-0", "s", {"id": f"a{n}", "title": f"T{n}", "source": source, "topics": topics}, ms)


def test_a_story_summary_orders_articles_and_merges_their_topics() -> None:
    ev = [{"term": "truce", "field": "title", "snippet": "Truce talks"}]
    talks, other = {"slug": "talks", "score": 6.0, "evidence": ev}, {"slug": "x", "score": 3.0}
    docs = [found(2, 2000, "B", [{"slug": "talks", "score": 4.0, "evidence": ev}]),
            found(1, 1000, "A", [talks, other]), found(3, 3000, "A", [])]  # fmt: skip
    story = summarize_story("s1", docs, full=False)
    assert [a["document"]["id"] for a in story["articles"]] == ["a1", "a2", "a3"]
    assert (story["count"], story["headline"], story["sources"]) == (3, "T3", ["A", "B"])
    assert story["first_seen"] == "1970-01-01T00:00:01Z"
    assert [(t["slug"], t["score"], len(t["evidence"])) for t in story["topics"]] == [
        ("talks", 6.0, 2),
        ("x", 3.0, 0),
    ]
    assert merge_topics([]) == []
