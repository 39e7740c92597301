"""Fetched pages on their way from the I/O worker to the extraction worker, kept in Redis.

The extraction task's message carries the page's key, not its HTML. A 170 KB page inside a
Celery message is JSON-escaped, base64-encoded by the transport, JSON-encoded again in its
envelope, copied into the transport's unacked hash, decoded in the pool's parent and pickled
once more to the pool process: about a third of a sweep's Celery overhead on the benchmark
web (docs/performance.md). Here it is one SET of the page's UTF-8 bytes and one GET.

A key is the page's feed entry (`ingest.pipeline.entry_origin`), so a redelivered fetch
overwrites the same key. It is dropped once the article is published and expires after
`ttl_s` otherwise (a task dead-lettered before it ran); a task that finds its page gone
falls back to the feed's own content, as for a page that could not be fetched.

`{prefix}:pages` indexes the stored pages by time, so the dispatcher can see how many wait for
extraction and claim more pages only while few do (`hostq_claim.lua`): fetching runs just ahead of
extraction instead of filling Redis with a sweep's whole web. A page stays in that index for
`WAITING_WINDOW_S` at most (its extraction task may have been dead-lettered).
"""

from __future__ import annotations

import time
from typing import Any

import redis

from ingest import keys

PAGE_TTL_S = 86400  # longer than any queue of extraction tasks is expected to last
WAITING_WINDOW_S = 300  # the index forgets a page after this: one whose task died keeps nothing waiting


class RedisPageStore:
    """Page HTML by key, with an expiry."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int = PAGE_TTL_S) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, origin: str) -> str:
        return keys.page(self.prefix, origin)

    def put(self, origin: str, html: str) -> str:
        """Store a page; returns its key, for the extraction task's message."""
        key = self.key(origin)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, html.encode("utf-8", "surrogatepass"), ex=self.ttl_s)
        pipe.zadd(keys.pages_waiting(self.prefix), {key: time.time()})
        pipe.zremrangebyscore(keys.pages_waiting(self.prefix), "-inf", time.time() - WAITING_WINDOW_S)
        pipe.execute()
        return key

    def get(self, key: str) -> str | None:
        return self.decode(self.client.get(key))

    def get_many(self, keys: list[str | None]) -> list[str | None]:
        """`get` for a batch in one round trip (None for a missing key or no key)."""
        wanted = [k for k in keys if k]
        found = dict(zip(wanted, self.client.mget(wanted), strict=True)) if wanted else {}
        return [self.decode(found[k]) if k else None for k in keys]

    @staticmethod
    def decode(raw: bytes | None) -> str | None:
        return None if raw is None else bytes(raw).decode("utf-8", "surrogatepass")

    def drop(self, *names: str) -> None:
        if names:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(*names)
            pipe.zrem(keys.pages_waiting(self.prefix), *names)
            pipe.lpush(keys.hostq_wake(self.prefix), "1")  # room for more pages: wake a dispatcher
            pipe.ltrim(keys.hostq_wake(self.prefix), 0, 0)
            pipe.execute()
