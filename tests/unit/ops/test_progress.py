from collections import Counter

import redis

from ingest.ops.progress import RedisStats, RedisSweepTracker, summarize_outcomes


def test_a_redelivered_item_that_was_published_counts_as_published_not_as_a_copy() -> None:
    outcomes = Counter({"f:ok": 2, "f:http_500": 1, "a:published": 7, "a:already": 1, "a:duplicate": 2})
    outcomes["a:error_dead_lettered"] = 1
    summary = summarize_outcomes(outcomes, pending=0)
    assert (summary["feeds"], summary["feeds_failed"]) == (3, 1)
    assert (summary["entries"], summary["articles"]) == (11, 10)
    assert (summary["published"], summary["duplicates"], summary["errors"]) == (8, 2, 1)


def test_a_batch_ends_its_items_and_counts_them_in_one_call(redis_client: redis.Redis, prefix: str) -> None:
    tracker = RedisSweepTracker(redis_client, prefix, "s1")
    tracker.expect(["a:1", "a:2", "a:3"])
    tracker.done_many([("a:1", "published"), ("a:2", "duplicate")])
    assert tracker.pending() == 1
    assert tracker.outcomes() == Counter({"a:published": 1, "a:duplicate": 1})
    stats = RedisStats(redis_client, prefix)
    stats.count_many("article", ["published", "published", "duplicate"])
    assert stats.all() == {"article:published": 2, "article:duplicate": 1}
