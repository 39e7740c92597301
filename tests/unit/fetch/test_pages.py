"""The page store between the I/O and extraction workers, on a real Redis."""

from __future__ import annotations

import redis

from ingest.fetch.pages import RedisPageStore

PAGE = "<html><body><p>Ceasefire talks resume in Geneva — «déjà vu» for the envoys.</p></body></html>"


def test_a_page_comes_back_as_stored_until_dropped(redis_client: redis.Redis, prefix: str) -> None:
    store = RedisPageStore(redis_client, prefix)
    key = store.put("origin1", PAGE)
    assert key == f"{prefix}:page:origin1"
    assert store.get(key) == PAGE
    store.drop(key)
    assert store.get(key) is None


def test_a_stored_page_expires(redis_client: redis.Redis, prefix: str) -> None:
    key = RedisPageStore(redis_client, prefix, ttl_s=60).put("origin2", PAGE)
    assert 0 < redis_client.ttl(key) <= 60


def test_a_redelivered_fetch_overwrites_the_same_key(redis_client: redis.Redis, prefix: str) -> None:
    store = RedisPageStore(redis_client, prefix)
    first = store.put("origin3", "<p>first</p>")
    second = store.put("origin3", PAGE)
    assert first == second
    assert store.get(second) == PAGE


def test_text_python_can_hold_but_utf8_cannot_survives(redis_client: redis.Redis, prefix: str) -> None:
    odd = "<p>lone surrogate \udcff kept</p>"  # a decoder's escape, not valid UTF-8
    store = RedisPageStore(redis_client, prefix)
    assert store.get(store.put("origin4", odd)) == odd


def test_pages_of_a_batch_come_in_one_call(redis_client: redis.Redis, prefix: str) -> None:
    store = RedisPageStore(redis_client, prefix)
    first, second = store.put("o1", "<p>één</p>"), store.put("o2", "<p>two</p>")
    assert store.get_many([first, None, store.key("gone"), second]) == [
        "<p>één</p>",
        None,
        None,
        "<p>two</p>",
    ]
    store.drop(first, second)
    assert store.get_many([first, second]) == [None, None]
