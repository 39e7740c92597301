"""When each feed is polled next: pure decisions plus the Redis sorted-set schedule.

The schedule is one sorted set of next-poll times. A tick claims the due feeds
atomically (Lua), moving them to an in-flight set with a lease; a poll that
finishes puts its feed back with the next time; a lease that expires (a worker
died) is reaped back into the schedule. No ETA/countdown tasks anywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import redis

MIN_INTERVAL_S = 300
MAX_INTERVAL_S = 86400
DEFAULT_INTERVAL_S = 900
MAX_BACKOFF_S = 6 * 3600
LEASE_S = 300

CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[3]), member)
end
return due
"""

REAP_LUA = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], 'NX', tonumber(ARGV[1]), member)
end
return #expired
"""


@dataclass(frozen=True, slots=True)
class PollTiming:
    """What one poll told us about when to come back."""

    explicit_s: int | None = None  # the user's `interval`
    hint_s: int | None = None  # <ttl>, sy:updatePeriod, Cache-Control max-age
    retry_after_s: int | None = None  # 429/503 Retry-After
    consecutive_errors: int = 0
    items_per_day: float | None = None


def next_interval(timing: PollTiming) -> int:
    """Seconds until the next poll (before jitter)."""
    if timing.retry_after_s is not None:
        return max(60, min(timing.retry_after_s, MAX_INTERVAL_S))
    if timing.consecutive_errors:
        return error_backoff(timing.consecutive_errors, timing.explicit_s or DEFAULT_INTERVAL_S)
    if timing.explicit_s:
        return timing.explicit_s
    base = adaptive_interval(timing.items_per_day)
    if timing.hint_s:
        base = max(base, timing.hint_s)
    return clamp(base)


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
        self.due_key = f"{prefix}:schedule"
        self.inflight_key = f"{prefix}:inflight"
        self._claim = client.register_script(CLAIM_LUA)
        self._reap = client.register_script(REAP_LUA)

    def add(self, url: str, at: float, *, only_new: bool = True) -> None:
        if only_new and self.client.zscore(self.inflight_key, url) is not None:
            return
        self.client.zadd(self.due_key, {url: at}, nx=only_new)

    def remove(self, url: str) -> None:
        pipe = self.client.pipeline()
        pipe.zrem(self.due_key, url)
        pipe.zrem(self.inflight_key, url)
        pipe.execute()

    def claim_due(self, now: float, limit: int = 1000, lease_s: int = LEASE_S) -> list[str]:
        due = self._claim(keys=[self.due_key, self.inflight_key], args=[now, limit, lease_s])
        return [m.decode() if isinstance(m, bytes) else str(m) for m in due]

    def finish(self, url: str, next_at: float) -> None:
        pipe = self.client.pipeline()
        pipe.zrem(self.inflight_key, url)
        pipe.zadd(self.due_key, {url: next_at})
        pipe.execute()

    def reap(self, now: float, limit: int = 1000) -> int:
        return int(self._reap(keys=[self.inflight_key, self.due_key], args=[now, limit]))

    def next_poll(self, url: str) -> float | None:
        score = self.client.zscore(self.due_key, url)
        return None if score is None else float(score)

    def counts(self, now: float) -> dict[str, int]:
        return {
            "scheduled": int(self.client.zcard(self.due_key)),
            "due": int(self.client.zcount(self.due_key, "-inf", now)),
            "in_flight": int(self.client.zcard(self.inflight_key)),
        }
