"""When each feed is polled next: pure decisions plus the Redis sorted-set schedule.

The schedule is one sorted set of next-poll times. A tick claims the due feeds
atomically (Lua), moving them to an in-flight set with a lease; a poll that
finishes puts its feed back with the next time; a lease that expires is reaped
back into the schedule. No ETA/countdown tasks anywhere.

The lease (`LEASE_S`) covers the time a claimed feed waits in the queue, where the broker
answers for it. Once a worker starts polling the feed, the poll is tied to that worker
process (`hold_poll`): when the process's heartbeat expires (it died), `reap_pollers` puts
the feed back at once instead of after the lease (workers/liveness.py, docs/faults.md).

Every script touches only the members it moves, so the cost of a tick grows with
the number of due feeds, not with the number registered (bench/scheduler.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import redis

from ingest import keys, lua

MIN_INTERVAL_S = 300
MAX_INTERVAL_S = 86400
DEFAULT_INTERVAL_S = 900
MAX_BACKOFF_S = 6 * 3600
MIN_RETRY_AFTER_S = 60
BACKLOG_S = 60  # a source with more new entries than one poll takes comes back this soon
BACKSTOP_S = 6 * 3600  # a feed a WebSub hub pushes is still polled this often, as a backstop
LEASE_S = 300
MAX_IN_FLIGHT = 5000  # claimed but not yet finished (queued or polling), across all workers
BATCH = 500  # members per ZADD/ZREM call inside a script (Lua's unpack has a stack limit)


@dataclass(frozen=True, slots=True)
class PollTiming:
    """What one poll told us about when to come back."""

    explicit_s: int | None = None  # the user's `interval`
    hint_s: int | None = None  # <ttl>, sy:updatePeriod, Cache-Control max-age, Expires
    retry_after_s: int | None = None  # 429/503 Retry-After
    consecutive_errors: int = 0
    items_per_day: float | None = None
    backlog: bool = False  # more new entries than one poll takes: the rest soon
    pushed: bool = False  # a live WebSub subscription delivers new entries: poll as a backstop only


def next_interval(timing: PollTiming) -> int:
    """Seconds until the next poll (before jitter)."""
    if timing.retry_after_s is not None:
        return max(MIN_RETRY_AFTER_S, min(timing.retry_after_s, MAX_INTERVAL_S))
    if timing.consecutive_errors:
        return error_backoff(timing.consecutive_errors, timing.explicit_s or DEFAULT_INTERVAL_S)
    if timing.backlog:
        return BACKLOG_S
    if timing.explicit_s:
        return timing.explicit_s
    base = adaptive_interval(timing.items_per_day)
    if timing.hint_s:
        base = max(base, timing.hint_s)
    if timing.pushed:
        base = max(base, BACKSTOP_S)
    return clamp(base)


def next_delay(timing: PollTiming, rng: random.Random | None = None) -> float:
    """Seconds until the next poll, jittered; never earlier than a server's Retry-After."""
    interval = next_interval(timing)
    if timing.retry_after_s is not None:
        return interval * (rng or random).uniform(1.0, 1.1)
    return with_jitter(interval, rng)


def adaptive_interval(items_per_day: float | None) -> int:
    """About one new item per poll: busy feeds often, quiet feeds rarely."""
    if not items_per_day or items_per_day <= 0:
        return DEFAULT_INTERVAL_S
    return clamp(int(86400 / items_per_day))


def error_backoff(errors: int, base: int) -> int:
    """Grows with consecutive errors, capped: a failing feed is never given up on."""
    return int(min(base * 2 ** min(errors - 1, 10), max(base, MAX_BACKOFF_S)))


def clamp(seconds: int) -> int:
    return max(MIN_INTERVAL_S, min(seconds, MAX_INTERVAL_S))


def with_jitter(seconds: float, rng: random.Random | None = None) -> float:
    """Spread polls of feeds added together by up to ±10%."""
    return seconds * (rng or random).uniform(0.9, 1.1)


class RedisSchedule:
    """The sorted set of next-poll times and the in-flight leases."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.due_key = keys.schedule(prefix)
        self.inflight_key = keys.inflight(prefix)
        self._claim = lua.register(client, "ingest.feeds", "claim.lua")
        self._reap = lua.register(client, "ingest.feeds", "reap.lua")
        self._add = lua.register(client, "ingest.feeds", "add.lua")
        self._finish = lua.register(client, "ingest.feeds", "finish.lua")
        self.pollers_key = keys.pollers(prefix)
        self.workers_key = keys.workers(prefix)
        self._hold = lua.register(client, "ingest.feeds", "hold.lua")
        self._release = lua.register(client, "ingest.feeds", "release.lua")
        self._reap_pollers = lua.register(client, "ingest.feeds", "reap_pollers.lua")

    def add(self, url: str, at: float, *, only_new: bool = True) -> None:
        if only_new:
            self.add_many([url], at)
        else:
            self.client.zadd(self.due_key, {url: at})

    def add_many(self, urls: list[str], at: float) -> int:
        """Schedule feeds not yet scheduled nor in flight, due at `at`; returns how many were added."""
        added = 0
        for i in range(0, len(urls), BATCH):
            chunk = urls[i : i + BATCH]
            added += int(self._add(keys=[self.due_key, self.inflight_key], args=[at, *chunk]))
        return added

    def remove(self, url: str) -> None:
        pipe = self.client.pipeline()
        pipe.zrem(self.due_key, url)
        pipe.zrem(self.inflight_key, url)
        pipe.execute()

    def claim_due(
        self, now: float, limit: int = 1000, lease_s: int = LEASE_S, max_in_flight: int = MAX_IN_FLIGHT
    ) -> list[str]:
        """Move up to `limit` due feeds in flight, leaving at most `max_in_flight` in flight (0: no cap).

        The cap keeps the queue short enough to drain well within a lease: when workers fall
        behind, feeds wait (late) in the schedule instead of expiring in the queue and being
        handed out twice."""
        args = [now, limit, lease_s, BATCH, max_in_flight]
        due = self._claim(keys=[self.due_key, self.inflight_key], args=args)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in due]

    def finish(self, url: str, next_at: float) -> bool:
        """Put a polled feed back with its next time; a feed removed meanwhile stays removed."""
        names = [self.due_key, self.inflight_key]
        return bool(self._finish(keys=names, args=[url, next_at]))

    def move(self, old: str, new: str, next_at: float) -> None:
        """A feed that moved: its old URL leaves the schedule, its new one is due at `next_at`."""
        pipe = self.client.pipeline()
        pipe.zrem(self.due_key, old)
        pipe.zrem(self.inflight_key, old)
        pipe.zadd(self.due_key, {new: next_at})
        pipe.execute()

    def reap(self, now: float, limit: int = 1000) -> int:
        return int(self._reap(keys=[self.inflight_key, self.due_key], args=[now, limit]))

    def hold_poll(self, url: str, holder: str, ttl_ms: int) -> None:
        """A poll of `url` starts in worker process `holder` (alive while its heartbeat is)."""
        self._hold(keys=[self.pollers_key, self.workers_key], args=[url, holder, ttl_ms])

    def release_poll(self, url: str, holder: str) -> bool:
        return bool(self._release(keys=[self.pollers_key], args=[url, holder]))

    def reap_pollers(self) -> int:
        """Feeds being polled by a worker process whose heartbeat expired: back in the schedule, due now."""
        names = [self.pollers_key, self.workers_key, self.inflight_key, self.due_key]
        return int(self._reap_pollers(keys=names, args=[]))

    def next_poll(self, url: str) -> float | None:
        score = self.client.zscore(self.due_key, url)
        return None if score is None else float(score)

    def counts(self, now: float) -> dict[str, int]:
        return {
            "scheduled": int(self.client.zcard(self.due_key)),
            "due": int(self.client.zcount(self.due_key, "-inf", now)),
            "in_flight": int(self.client.zcard(self.inflight_key)),
        }
