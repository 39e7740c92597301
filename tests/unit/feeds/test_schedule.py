import random

import redis

from ingest.feeds.schedule import (
    MAX_BACKOFF_S,
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    PollTiming,
    RedisSchedule,
    next_delay,
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


def test_jitter_never_brings_a_poll_before_retry_after() -> None:
    rng = random.Random(3)
    delays = [next_delay(PollTiming(retry_after_s=1800), rng) for _ in range(200)]
    assert min(delays) >= 1800
    assert max(delays) <= 1980
    assert (
        min(next_delay(PollTiming(explicit_s=1000), rng) for _ in range(200)) < 1000
    )  # others spread both ways


def test_a_feed_removed_while_in_flight_is_not_put_back(redis_client: redis.Redis, prefix: str) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    schedule.add_many(["https://feeds.test/kept", "https://feeds.test/removed"], at=1)
    assert len(schedule.claim_due(now=2)) == 2
    schedule.remove("https://feeds.test/removed")  # the feeds file dropped it meanwhile
    assert schedule.finish("https://feeds.test/kept", next_at=50)
    assert not schedule.finish("https://feeds.test/removed", next_at=50)
    assert schedule.claim_due(now=100) == ["https://feeds.test/kept"]


def test_add_many_skips_scheduled_and_in_flight_feeds(redis_client: redis.Redis, prefix: str) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    schedule.add("https://feeds.test/a", at=5)
    schedule.add("https://feeds.test/b", at=1)
    assert schedule.claim_due(now=2) == ["https://feeds.test/b"]
    urls = [f"https://feeds.test/{c}" for c in "abc"]
    assert schedule.add_many(urls, at=1) == 1  # only c is new; a keeps its time, b is in flight
    assert schedule.next_poll("https://feeds.test/a") == 5


def test_a_moved_feed_changes_its_schedule_entry(redis_client: redis.Redis, prefix: str) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    schedule.add("https://feeds.test/old", at=1)
    assert schedule.claim_due(now=2) == ["https://feeds.test/old"]
    schedule.move("https://feeds.test/old", "https://feeds.test/new", next_at=10)
    assert schedule.counts(now=20) == {"scheduled": 1, "due": 1, "in_flight": 0}
    assert schedule.claim_due(now=20) == ["https://feeds.test/new"]


def test_claims_larger_than_one_script_batch(redis_client: redis.Redis, prefix: str) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    urls = [f"https://feeds.test/{i}" for i in range(1200)]
    assert schedule.add_many(urls, at=1) == 1200
    assert sorted(schedule.claim_due(now=2, limit=5000)) == sorted(urls)
    assert schedule.counts(now=2) == {"scheduled": 0, "due": 0, "in_flight": 1200}


def test_claims_stop_when_too_many_feeds_are_in_flight(redis_client: redis.Redis, prefix: str) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    schedule.add_many([f"https://feeds.test/{i}" for i in range(10)], at=1)
    assert len(schedule.claim_due(now=2, max_in_flight=4)) == 4
    assert schedule.claim_due(now=2, max_in_flight=4) == []  # workers are behind: the rest wait, late
    schedule.finish("https://feeds.test/0", next_at=100)
    assert len(schedule.claim_due(now=2, max_in_flight=4)) == 1
    assert len(schedule.claim_due(now=2, max_in_flight=0)) == 5  # 0 = no cap
