"""Queue-depth samples in Redis: written by every reader of the queues, kept for an hour."""

from __future__ import annotations

import redis

from ingest.ops.backlog import KEEP_S, DepthSample, RedisQueueHistory
from newswire.health import record_depths

NOW = 1_800_000_000.0


def test_samples_come_back_in_time_order_and_old_ones_are_dropped(
    redis_client: redis.Redis, prefix: str
) -> None:
    history = RedisQueueHistory(redis_client, prefix)
    history.record(NOW - KEEP_S - 10, {"q": 1})
    history.record(NOW - 600, {"q": 5, "r": 0})
    history.record(NOW - 300, {"q": 50, "r": 0})
    history.record(NOW, {"q": 500, "r": 2})
    assert history.since(NOW - 2 * KEEP_S) == [
        DepthSample(NOW - 600, {"q": 5, "r": 0}),
        DepthSample(NOW - 300, {"q": 50, "r": 0}),
        DepthSample(NOW, {"q": 500, "r": 2}),
    ]
    assert [s.at for s in history.since(NOW - 300)] == [NOW - 300, NOW]


def test_unknown_depths_are_not_recorded(redis_client: redis.Redis, prefix: str) -> None:
    record_depths(redis_client, prefix, {"q": None}, NOW)
    record_depths(redis_client, prefix, {"q": 3, "r": None}, NOW + 1)
    assert RedisQueueHistory(redis_client, prefix).since(0) == [DepthSample(NOW + 1, {"q": 3})]
