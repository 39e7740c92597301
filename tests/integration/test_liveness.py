"""Who holds what, until when: kombu channels and feed polls tied to heartbeats, on a real Redis.

The broker side uses kombu's own Redis transport as the workers do (`workers/broker.py`), with a
heartbeat TTL of half a second so a channel that stops beating is dead within the test; the
production default (`NEWSWIRE_WORKER_TTL`, 10 s) is used by the fault scenarios.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

import workers.broker
from config.settings import load_settings
from ingest import keys
from ingest.feeds.schedule import RedisSchedule
from newswire import redisd
from workers import liveness

TTL_S = 0.5


@pytest.fixture
def connect(redis_server: redisd.EmbeddedRedis, prefix: str) -> Iterator[Any]:
    opened: list[Connection] = []

    def make(**options: Any) -> Any:
        conn = Connection(
            redis_server.url,
            transport_options={"newswire_prefix": prefix, "newswire_worker_ttl": TTL_S, **options},
        )
        opened.append(conn)
        return conn.channel()

    yield make
    for conn in opened:
        conn.release()


def publish(channel: Any, queue: Queue, n: int) -> None:
    for i in range(n):
        Producer(channel).publish(
            {"n": i}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue]
        )


def queue_for(prefix: str) -> Queue:
    return Queue(f"{prefix}.q", Exchange(f"{prefix}.q"), routing_key=f"{prefix}.q")


def take(channel: Any, queue: Queue, n: int) -> list[Any]:
    return [queue(channel).get(no_ack=False) for _ in range(n)]


def reap_at_once(connect: Any, n: int) -> tuple[list[Any], int]:
    """`n` channels reap dead holders at the same time; how many messages they put back in all."""
    reapers = [connect() for _ in range(n)]
    restored: list[int] = []
    threads = [threading.Thread(target=lambda r=r: restored.append(r.reap_dead())) for r in reapers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reapers, sum(restored)


def test_a_dead_channels_messages_go_back_once_however_many_reap(
    connect: Any, redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(prefix)
    holder = connect()
    assert isinstance(holder, workers.broker.Channel)
    publish(holder, queue, 4)
    messages = take(holder, queue, 3)
    messages[0].ack()
    assert redis_client.llen(queue.name) == 1
    owners = redis_client.hgetall(keys.broker_owners(prefix))
    assert set(owners.values()) == {holder.qos.holder.encode()}
    assert len(owners) == 2  # the acked one is no longer held

    time.sleep(TTL_S + 0.2)  # no heartbeat: the channel's holder has expired
    reapers, restored = reap_at_once(connect, 4)
    assert restored == 2  # four reapers at once: each message restored by exactly one of them
    assert redis_client.llen(queue.name) == 3
    assert redis_client.hlen("unacked") == redis_client.zcard("unacked_index") == 0
    assert not redis_client.exists(keys.broker_owners(prefix), keys.broker_held(prefix, holder.qos.holder))
    assert not redis_client.zscore(keys.broker_workers(prefix), holder.qos.holder)
    again = take(reapers[0], queue, 3)
    assert sorted(m.payload["n"] for m in again) == [1, 2, 3]  # the unacked two and the one never taken
    assert sum(bool(m.delivery_info.get("redelivered")) for m in again) == 2


def test_a_message_taken_but_never_read_goes_back_when_its_channel_dies(
    connect: Any, redis_client: redis.Redis, prefix: str
) -> None:
    """kombu leaves a popped message unread in the socket while the worker's prefetch is full; a
    worker killed then lost it. BLMOVE keeps it in the channel's taking list for the reapers."""
    queue = queue_for(prefix)
    taker = connect()
    publish(taker, queue, 2)
    Consumer(taker, [queue], callbacks=[lambda body, message: None], no_ack=False).consume()
    assert taker.taking_queue() == queue.name
    taker.connection.cycle._register_BRPOP(taker)  # the take is sent; its reply is never read: it dies now
    taking = keys.broker_taking(prefix, taker.qos.holder)
    deadline = time.monotonic() + 5
    while redis_client.llen(taking) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert redis_client.llen(queue.name) == 1
    assert redis_client.llen(taking) == 1
    taker.client.connection.disconnect()

    time.sleep(TTL_S + 0.2)  # its heartbeat has expired
    reapers, restored = reap_at_once(connect, 3)
    assert restored == 1  # put back once, however many reap
    assert not redis_client.exists(taking)
    assert not redis_client.zscore(keys.broker_workers(prefix), taker.qos.holder)
    again = take(reapers[0], queue, 2)
    assert sorted(m.payload["n"] for m in again) == [0, 1]  # the one taken, next out again; and the other


@pytest.fixture
def consume(redis_server: redisd.EmbeddedRedis, prefix: str) -> Iterator[Any]:
    """`consume(n)`: a channel's first `n` messages of the test queue as a worker takes them (the
    transport's event loop: BLMOVE), unacked; returns them and the channel."""
    conn = Connection(
        redis_server.url, transport_options={"newswire_prefix": prefix, "newswire_worker_ttl": 30}
    )
    channel = conn.channel()

    def take_n(n: int) -> tuple[list[Any], Any]:
        got: list[Any] = []
        with Consumer(channel, [queue_for(prefix)], callbacks=[lambda body, message: got.append(message)]):
            while len(got) < n:
                conn.drain_events(timeout=2)
        return got, channel

    yield take_n
    conn.release()


def test_a_consumer_takes_with_blmove_and_records_each_message_once(
    consume: Any, connect: Any, redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(prefix)
    publish(connect(), queue, 3)
    got, channel = consume(3)
    assert [m.payload["n"] for m in got] == [0, 1, 2]
    assert redis_client.hlen("unacked") == 3
    assert redis_client.llen(keys.broker_taking(prefix, channel.qos.holder)) == 0
    assert redis_client.scard(keys.broker_held(prefix, channel.qos.holder)) == 3
    for message in got:
        message.ack()
    assert redis_client.hlen("unacked") == 0
    assert redis_client.llen(queue.name) == 0


def test_a_taken_message_that_is_not_kombus_json_is_dropped_once_not_looped(
    consume: Any, connect: Any, redis_client: redis.Redis, prefix: str, caplog: Any
) -> None:
    queue = queue_for(prefix)
    publish(connect(), queue, 1)
    redis_client.rpush(queue.name, b"\xff not json")  # next out: before the good message
    got, channel = consume(1)
    assert [m.payload["n"] for m in got] == [0]
    assert redis_client.llen(queue.name) == 0
    assert redis_client.llen(keys.broker_taking(prefix, channel.qos.holder)) == 0
    assert "not kombu's JSON was dropped" in caplog.text


def test_a_live_channel_keeps_its_messages(connect: Any, redis_client: redis.Redis, prefix: str) -> None:
    queue = queue_for(prefix)
    holder = connect(newswire_worker_ttl=30)
    publish(holder, queue, 2)
    take(holder, queue, 2)
    with holder.conn_or_acquire() as client:
        holder.index.beat(client, [holder.qos.holder])
    assert connect().reap_dead() == 0
    assert redis_client.hlen("unacked") == 2


def test_an_ack_from_a_channel_taken_for_dead_keeps_the_new_holders_record(
    connect: Any, redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(prefix)
    stalled = connect()
    publish(stalled, queue, 1)
    (first,) = take(stalled, queue, 1)
    time.sleep(TTL_S + 0.2)
    successor = connect(newswire_worker_ttl=30)
    assert successor.reap_dead() == 1
    (copy,) = take(successor, queue, 1)
    assert copy.delivery_tag == first.delivery_tag  # kombu keeps the tag across a restore
    first.ack()  # the stalled worker finishes late: the successor's copy must stay unacked
    assert redis_client.hexists("unacked", copy.delivery_tag)
    copy.ack()
    assert redis_client.hlen("unacked") == 0
    assert redis_client.hlen(keys.broker_owners(prefix)) == 0


def test_the_visibility_timeout_stays_the_backstop(
    connect: Any, redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(prefix)
    holder = connect(newswire_worker_ttl=30, visibility_timeout=1)
    publish(holder, queue, 1)
    take(holder, queue, 1)
    with holder.conn_or_acquire() as client:
        holder.index.beat(client, [holder.qos.holder])  # alive, but its task has run past the timeout
    time.sleep(1.2)
    holder.qos.restore_visible(num=10, interval=1)
    assert redis_client.llen(queue.name) == 1
    assert redis_client.hlen(keys.broker_owners(prefix)) == 0
    assert not redis_client.exists(keys.broker_held(prefix, holder.qos.holder))


def test_a_rejected_message_goes_back_to_its_queue(
    connect: Any, redis_client: redis.Redis, prefix: str
) -> None:
    queue = queue_for(prefix)
    channel = connect()
    publish(channel, queue, 3)
    (first,) = take(channel, queue, 1)
    first.reject(requeue=True)  # as kombu does: behind the messages already waiting
    assert [m.payload["n"] for m in take(channel, queue, 3)] == [1, 2, 0]
    assert redis_client.hlen(keys.broker_owners(prefix)) == 3


def test_a_poll_of_a_dead_worker_is_back_in_the_schedule_at_once(
    redis_client: redis.Redis, prefix: str
) -> None:
    schedule = RedisSchedule(redis_client, prefix)
    now = time.time()
    urls = ["https://a.example/rss", "https://b.example/rss", "https://c.example/rss"]
    schedule.add_many(urls, now - 1)
    assert sorted(schedule.claim_due(now)) == urls  # in flight, each with a 300 s lease
    schedule.hold_poll(urls[0], "dead:1:x", ttl_ms=300)
    schedule.hold_poll(urls[1], "alive:2:y", ttl_ms=60_000)
    assert schedule.reap_pollers() == 0  # nobody has expired yet
    time.sleep(0.4)
    assert schedule.reap_pollers() == 1
    assert schedule.next_poll(urls[0]) == pytest.approx(time.time(), abs=5)  # due now, not in 300 s
    assert schedule.counts(time.time())["in_flight"] == 2  # the live worker's poll and the queued feed
    assert redis_client.hkeys(keys.pollers(prefix)) == [urls[1].encode()]
    assert redis_client.zrange(keys.workers(prefix), 0, -1) == [b"alive:2:y"]
    assert not schedule.release_poll(urls[1], "someone-else")
    assert schedule.release_poll(urls[1], "alive:2:y")
    assert schedule.finish(urls[1], time.time() + 900)


def test_the_heartbeat_thread_keeps_a_worker_alive_and_clears_it_at_a_clean_stop(
    redis_server: redisd.EmbeddedRedis, redis_client: redis.Redis, prefix: str
) -> None:
    settings = load_settings({"NEWSWIRE_REDIS_URL": redis_server.url, "NEWSWIRE_STREAM_PREFIX": prefix})
    side = liveness.StateSide(redis_server.url, prefix, ttl_s=2.0)
    beat = liveness.Heartbeat([side], ttl_s=2.0)
    beat.start()
    try:
        key = keys.workers(prefix)
        deadline = time.monotonic() + 10
        while not redis_client.zscore(key, liveness.process_holder()) and time.monotonic() < deadline:
            time.sleep(0.05)
        first = redis_client.zscore(key, liveness.process_holder())
        assert first
        time.sleep(1.0)  # two beats later the expiry has moved on
        assert (redis_client.zscore(key, liveness.process_holder()) or 0) > first
    finally:
        beat.stop()
    assert redis_client.zscore(keys.workers(prefix), liveness.process_holder()) == 0  # expired at once
    assert settings.worker_ttl == 10.0  # the default the workers use
