import random

import redis

from ingest.schedule import (
    MAX_BACKOFF_S,
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    PollTiming,
    RedisSchedule,
    next_interval,
    with_jitter,
)


def test_explicit_interval_wins_over_hints() -> None:
    assert next_interval(PollTiming(explicit_s=120, hint_s=7200, items_per_day=500)) == 120


def test_adaptive_interval_follows_the_publishing_rate_within_bounds() -> None:
    busy = next_interval(PollTiming(items_per_day=1000))
    quiet = next_interval(PollTiming(items_per_day=2))
    assert busy == MIN_INTERVAL_S
    assert quiet == 43200
    assert next_interval(PollTiming(items_per_day=0.01)) == MAX_INTERVAL_S


def test_publisher_hint_raises_the_interval() -> None:
    assert next_interval(PollTiming(items_per_day=1000, hint_s=3600)) == 3600


def test_retry_after_is_obeyed() -> None:
    assert next_interval(PollTiming(retry_after_s=1800, items_per_day=1000)) == 1800


def test_error_backoff_grows_but_is_capped_so_feeds_are_never_dropped() -> None:
    waits = [next_interval(PollTiming(consecutive_errors=n)) for n in range(1, 30)]
    assert waits == sorted(waits)
    assert waits[0] < waits[3]
    assert max(waits) == MAX_BACKOFF_S


def test_jitter_stays_within_ten_percent() -> None:
    rng = random.Random(7)
    values = [with_jitter(1000, rng) for _ in range(200)]
    assert min(values) >= 900
    assert max(values) <= 1100
    assert len(set(values)) > 100


def test_claims_are_atomic_and_leases_expire_back_into_the_schedule(
    redis_client: redis.Redis, prefix: str
) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    for i in range(5):
        schedule.add(f"https://feeds.test/{i}", at=100 + i)
    schedule.add("https://feeds.test/later", at=10_000)

    first = schedule.claim_due(now=200, lease_s=60)
    assert sorted(first) == [f"https://feeds.test/{i}" for i in range(5)]
    assert schedule.claim_due(now=200) == []  # a second beat gets nothing

    schedule.finish("https://feeds.test/0", next_at=5000)
    assert schedule.reap(now=259) == 0
    assert schedule.reap(now=261) == 4  # the other four leases expired: back in the schedule
    assert len(schedule.claim_due(now=262)) == 4
    assert schedule.counts(now=262) == {"scheduled": 2, "due": 0, "in_flight": 4}


def test_adding_an_in_flight_feed_does_not_double_schedule_it(redis_client: redis.Redis, prefix: str) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    schedule.add("https://feeds.test/a", at=1)
    assert schedule.claim_due(now=2) == ["https://feeds.test/a"]
    schedule.add("https://feeds.test/a", at=1)
    assert schedule.claim_due(now=3) == []
