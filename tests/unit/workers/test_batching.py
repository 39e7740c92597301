"""Pages go to extraction in batches only while they come fast (ingest/batch.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from ingest.batch import PageBatch
from ingest.fetch.pages import RedisPageStore
from ingest.models import FeedEntry, PageFetch, PageItem


def entry(n: int) -> FeedEntry:
    return FeedEntry(feed_url="https://desk.test/rss", key=f"k{n}", link=f"https://desk.test/{n}", title="T")


def as_sent(sent: list[list[dict[str, Any]]]) -> Callable[[list[PageItem]], None]:
    """The batches as their messages carry them."""
    return lambda pages: sent.append([p.to_dict() for p in pages])


def test_fast_pages_go_in_full_batches_and_the_rest_at_the_end(
    redis_client: redis.Redis, prefix: str
) -> None:
    sent: list[list[dict[str, Any]]] = []
    store = RedisPageStore(redis_client, prefix)
    batch = PageBatch(store, as_sent(sent), size=3)
    for n in range(7):
        batch.add(entry(n), f"a:{n}", PageFetch(f"<p>page {n}</p>", f"https://desk.test/{n}"))
    batch.flush()
    assert [len(b) for b in sent] == [3, 3, 1]
    first = sent[0][0]
    assert store.get(first["page_key"]) == "<p>page 0</p>"  # the page by key, not in the message
    assert (first["item"], first["final_url"], first["error"]) == ("a:0", "https://desk.test/0", None)


def test_a_slow_page_goes_at_once_with_those_before_it(redis_client: redis.Redis, prefix: str) -> None:
    sent: list[list[dict[str, Any]]] = []
    batch = PageBatch(RedisPageStore(redis_client, prefix), as_sent(sent), size=8)
    batch.add(entry(0), "a:0", PageFetch("<p>0</p>", "https://desk.test/0"))
    batch.add(entry(1), "a:1", PageFetch("<p>1</p>", "https://desk.test/1"), urgent=True)
    batch.add(entry(2), "a:2", PageFetch(None, None, "http_404: https://desk.test/2"), urgent=True)
    assert [[p["item"] for p in b] for b in sent] == [["a:0", "a:1"], ["a:2"]]
    assert sent[1][0]["page_key"] is None  # nothing to store: extraction uses the feed's content
    batch.flush()
    assert len(sent) == 2  # nothing left over, nothing sent twice
