"""Counting work in flight: the sweep tracker and the service-wide outcome counters.

A sweep registers every item it expects (feeds, then the articles each feed
yields) before the work is handed out, and each item reports its outcome once.
Both operations are idempotent per item, so a redelivered task neither
finishes a sweep early nor counts twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from ingest import keys, lua

SWEEP_TTL_S = 86400


class RedisSweepTracker:
    """Pending items and their outcomes for one sweep."""

    def __init__(self, client: redis.Redis, prefix: str, sweep_id: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.sweep_id = sweep_id
        self.pending_key = keys.sweep_pending(prefix, sweep_id)
        self.outcomes_key = keys.sweep_outcomes(prefix, sweep_id)
        self._done = lua.register(client, "ingest.ops", "done.lua")

    def expect(self, items: list[str]) -> None:
        if not items:
            return
        pipe = self.client.pipeline()
        pipe.sadd(self.pending_key, *items)
        pipe.expire(self.pending_key, SWEEP_TTL_S)
        pipe.execute()

    def done(self, item: str, outcome: str) -> bool:
        return bool(self._done(keys=[self.pending_key, self.outcomes_key], args=[item, outcome, SWEEP_TTL_S]))

    def done_many(self, outcomes: list[tuple[str, str]]) -> None:
        """`done` for a batch of items, in one round trip."""
        if not outcomes:
            return
        pipe = lua.ScriptPipeline(self.client)  # loads the script again if a restarted Redis lost it
        names = [self.pending_key, self.outcomes_key]
        for item, outcome in outcomes:
            pipe.add(self._done, names, [item, outcome, SWEEP_TTL_S])
        pipe.execute()

    def pending(self) -> int:
        return int(self.client.scard(self.pending_key))

    def outcomes(self) -> Counter[str]:
        raw = self.client.hgetall(self.outcomes_key)
        return Counter((k.decode()[:1] + ":" + v.decode()) for k, v in raw.items())


def summarize_outcomes(outcomes: Counter[str], pending: int) -> dict[str, Any]:
    """The sweep summary (CONTRACT §2a) from per-item outcomes `f:<outcome>` / `a:<outcome>`."""
    feeds = {k[2:]: n for k, n in outcomes.items() if k.startswith("f:")}
    articles = {k[2:]: n for k, n in outcomes.items() if k.startswith("a:")}
    # "already": an earlier delivery of this very item published it (its worker died before it could
    # report), so for the sweep it is a published article, not a copy
    published = articles.get("published", 0) + articles.get("already", 0)
    duplicates = articles.get("duplicate", 0)
    errors = sum(n for k, n in articles.items() if k.startswith("error"))
    return {
        "feeds": sum(feeds.values()),
        "feeds_failed": sum(n for k, n in feeds.items() if k not in {"ok", "not_modified"}),
        "entries": sum(articles.values()),
        "articles": published + duplicates,
        "published": published,
        "duplicates": duplicates,
        "errors": errors,
        "pending": pending,
        "feed_outcomes": dict(sorted(feeds.items())),
        "article_outcomes": dict(sorted(articles.items())),
    }


class RedisStats:
    """Service-wide counters by stage and outcome (for `status` and metrics)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client
        self.key = keys.stats(prefix)

    def count(self, stage: str, outcome: str, n: int = 1) -> None:
        self.client.hincrby(self.key, f"{stage}:{outcome}", n)

    def count_many(self, stage: str, outcomes: list[str]) -> None:
        """One count per outcome in the list, in one round trip."""
        if not outcomes:
            return
        pipe = self.client.pipeline(transaction=False)
        for outcome in set(outcomes):
            pipe.hincrby(self.key, f"{stage}:{outcome}", outcomes.count(outcome))
        pipe.execute()

    def all(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.key).items()}
