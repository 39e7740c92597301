"""Requests waiting in Redis for their host (ingest/fetch/hostqueue.py), on the suite's real Redis.

Default politeness here (NEWSWIRE_HOST_SPACING's default, 1 s) unless a test says otherwise:
claims are checked against the host's own limits, never by sleeping through them.
"""

from __future__ import annotations

import time

import redis

from ingest.fetch.hostqueue import HostJob, RedisHostQueue
from ingest.fetch.pages import RedisPageStore
from ingest.fetch.politeness import HostPolicy, RedisHostLimiter


def job(n: int, host: str = "a.test", kind: str = "page") -> HostJob:
    return HostJob(f"{host}-{n}", host, kind, {"n": n})


def queue_for(client: redis.Redis, prefix: str, **policy: float) -> RedisHostQueue:
    return RedisHostQueue(client, prefix, HostPolicy(**policy), max_leased=100)  # type: ignore[arg-type]


def test_one_request_per_host_per_spacing_and_hosts_do_not_wait_for_each_other(
    redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(redis_client, prefix)  # defaults: 2 in flight, 1 s apart
    queue.add([job(n) for n in range(3)] + [job(n, "b.test") for n in range(2)])
    first = queue.claim(10, "page")
    assert sorted(j.id for j in first.jobs) == ["a.test-0", "b.test-0"]  # one of each host, in order
    assert first.wait_s is not None
    assert 0.9 <= first.wait_s <= 1.0  # both hosts: again in a second
    assert queue.claim(10, "page").jobs == ()  # nothing may start before then
    queue.finish([(j, "fetched") for j in first.jobs])
    assert queue.claim(10, "page").jobs == ()  # a finished request frees a slot, not the spacing
    assert queue.waiting() == 3


def test_spacing_is_shared_with_the_limiter_that_feed_polls_use(
    redis_client: redis.Redis, prefix: str
) -> None:
    policy = HostPolicy(max_concurrent=2, min_spacing_s=1.0)
    queue = RedisHostQueue(redis_client, prefix, policy)
    limiter = RedisHostLimiter(redis_client, prefix, policy)
    assert limiter.try_acquire("a.test", "poll") == 0  # a feed poll took the host's slot just now
    queue.add([job(0)])
    claim = queue.claim(10, "page")
    assert claim.jobs == ()
    assert claim.wait_s is not None
    assert claim.wait_s > 0.8


def test_with_no_spacing_a_host_gets_as_many_as_its_slots_and_a_finish_frees_one(
    redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(redis_client, prefix, max_concurrent=2, min_spacing_s=0)
    queue.add([job(n) for n in range(4)])
    claimed = queue.claim(10, "page").jobs
    assert [j.id for j in claimed] == ["a.test-0", "a.test-1"]
    assert queue.claim(10, "page").jobs == ()  # both slots held
    queue.finish([(claimed[0], "fetched")])
    assert [j.id for j in queue.claim(10, "page").jobs] == ["a.test-2"]


def test_a_job_is_queued_once_and_a_fetched_page_is_not_queued_again(
    redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(redis_client, prefix, min_spacing_s=0)
    assert queue.add([job(0), job(0)]) == 1
    [claimed] = queue.claim(10, "page").jobs
    assert queue.add([job(0)]) == 0  # leased: still the same job
    queue.finish([(claimed, "fetched")])
    assert queue.add([job(0)]) == 0  # fetched within the day: a redone poll does not fetch it again
    assert queue.waiting() == 0


def test_again_puts_a_job_back_at_the_head_and_front_jobs_go_first(
    redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(redis_client, prefix, max_concurrent=1, min_spacing_s=0)
    queue.add([job(0), job(1)])
    [first] = queue.claim(10, "page").jobs
    queue.finish([(first, "again")])  # its robots.txt took the slot: the page waits for the next one
    queue.add([job(9), job(8, kind="feed")], front=True)
    order = []
    for _ in range(3):
        [one] = queue.claim(10, "page").jobs
        order.append(one.id)
        queue.finish([(one, "done")])
    assert order == ["a.test-9", "a.test-0", "a.test-1"]
    assert [j.id for j in queue.claim(10, "page").jobs] == []  # a worker claims only the kinds it runs
    assert [j.id for j in queue.claim(10, "feed").jobs] == ["a.test-8"]


def test_leases_of_a_dead_worker_come_back_and_a_job_is_given_up_after_max_tries(
    redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(redis_client, prefix, max_concurrent=4, min_spacing_s=0, lease_s=0.05)
    queue.add([job(0), job(1)])
    for attempt in (1, 2):
        assert len(queue.claim(10, "page").jobs) == 2  # claimed, then the worker dies: nobody finishes them
        time.sleep(0.08)
        requeued, given_up = queue.reap(max_tries=3)
        assert (requeued, given_up) == (2, []), attempt
    assert len(queue.claim(10, "page").jobs) == 2
    time.sleep(0.08)
    requeued, given_up = queue.reap(max_tries=3)
    assert requeued == 0
    assert sorted(j.id for j in given_up) == ["a.test-0", "a.test-1"]
    assert given_up[0].data in ({"n": 0}, {"n": 1})  # enough to dead-letter and replay it
    assert (queue.waiting(), queue.leased()) == (0, 0)


def test_the_leased_cap_bounds_requests_in_flight_across_hosts(
    redis_client: redis.Redis, prefix: str
) -> None:
    queue = RedisHostQueue(redis_client, prefix, HostPolicy(min_spacing_s=0), max_leased=3)
    queue.add([job(0, f"h{n}.test") for n in range(5)])
    claimed = queue.claim(10, "page").jobs
    assert len(claimed) == 3
    assert queue.claim(10, "page").jobs == ()
    queue.finish([(claimed[0], "fetched")])
    assert len(queue.claim(10, "page").jobs) == 1


def test_pages_are_claimed_only_while_few_fetched_pages_wait_for_extraction(
    redis_client: redis.Redis, prefix: str
) -> None:
    store = RedisPageStore(redis_client, prefix)
    queue = RedisHostQueue(redis_client, prefix, HostPolicy(min_spacing_s=0), max_pages_waiting=2)
    queue.add([job(0, f"h{n}.test") for n in range(4)] + [job(1, "feeds.test", kind="feed")])
    keys = [store.put(f"origin{n}", "<p>page</p>") for n in range(2)]  # two pages wait for extraction
    assert queue.claim(10, "page").jobs == ()
    assert len(queue.claim(10, "feed").jobs) == 1  # feed polls are not held back
    store.drop(keys[0])  # one was extracted
    assert len(queue.claim(10, "page").jobs) == 1
