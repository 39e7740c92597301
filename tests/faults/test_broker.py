"""workers/broker.py: a kombu channel that outlives its broker connection fails like a lost connection.

Celery, on losing Redis, closes the kombu connection (its transport is dropped, the channel's pools
disconnected) and opens a new one; tasks still running later ack on the old channel, and the old
channel hands its unacked messages back when closed. With kombu's own transport both raised
AttributeError and the worker exited (the traceback is in workers/broker.py); this test puts a
channel in that state directly, since the fault scenarios only reach it by chance.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

import workers.broker
from newswire import redisd


def test_a_channel_outliving_its_broker_connection_fails_like_a_lost_connection(
    tmp_path: Path, prefix: str
) -> None:
    server = redisd.start(tmp_path / "redis", persistent=False)
    try:
        conn = Connection(server.url)
        assert isinstance(conn.transport, workers.broker.Transport)  # `redis://` now means this transport
        channel = conn.channel()
        queue = Queue(f"{prefix}.q", Exchange(f"{prefix}.q"), routing_key=f"{prefix}.q")
        Producer(channel).publish(
            {"n": 1}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue]
        )
        message = queue(channel).get(no_ack=False)
        assert message is not None  # taken, unacknowledged
    finally:
        server.kill()
    conn.collect()  # what Celery does first: closes the channels, drops the transport
    channel._pool = None  # the disconnected pools of a closed channel, as in the traceback
    with pytest.raises(redis.ConnectionError):  # Celery logs "Couldn't ack" and carries on
        message.ack()
    channel.qos._delivered[message.delivery_tag] = message  # still held when it closes
    channel.qos.restore_unacked()  # best effort: left in Redis' unacked index for the visibility timeout
    assert not channel.qos._delivered


def test_a_message_taken_off_its_queue_is_recorded_once_redis_is_back(tmp_path: Path, prefix: str) -> None:
    """kombu pops a message (BRPOP), then records it as unacked: that write now waits out a restart."""
    server = redisd.start(tmp_path / "redis", persistent=True)
    restarted: list[redisd.EmbeddedRedis] = []
    try:
        conn = Connection(server.url)
        channel = conn.channel()
        queue = Queue(f"{prefix}.q", Exchange(f"{prefix}.q"), routing_key=f"{prefix}.q")
        Producer(channel).publish(
            {"n": 1}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue]
        )
        message = queue(channel).get(no_ack=False)
        assert message is not None
        server.kill()  # dies just after handing out the next message
        back = threading.Timer(1.0, lambda: restarted.append(redisd.start(server.data_dir, port=server.port)))
        back.start()
        channel.qos.append(message, "taken-during-the-outage")  # kombu's own transport: ConnectionError
        back.join()
        assert redis.Redis.from_url(server.url).hexists("unacked", "taken-during-the-outage")
        conn.release()  # hands both messages back while the server is up
    finally:
        for again in restarted:
            again.stop()
