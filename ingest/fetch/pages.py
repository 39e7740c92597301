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
"""

from __future__ import annotations

from typing import Any

import redis

from ingest import keys

PAGE_TTL_S = 86400  # longer than any queue of extraction tasks is expected to last


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
        self.client.set(key, html.encode("utf-8", "surrogatepass"), ex=self.ttl_s)
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

    def drop(self, *keys: str) -> None:
        if keys:
            self.client.delete(*keys)
