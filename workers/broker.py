"""kombu's Redis transport, fixed for workers that die and a Redis that dies and comes back.

**Dead workers** (docs/faults.md). kombu keeps every message a worker has taken in its unacked
index until the ack, and puts back only what is older than the visibility timeout (an hour, so
that no running task is handed out twice): the work of a worker killed with SIGKILL waited an
hour. Here each consuming channel is a *holder* with a heartbeat (`workers/liveness.py`) and its
messages are recorded with it (`workers/unacked.py`); the messages of a holder whose heartbeat
expired go back to their queues within seconds, each exactly once, by whichever worker sees it
first (`Channel.reap_dead`). The visibility timeout stays as the backstop.

**Redis restarts.** kombu 5.7 / Celery 5.7: when a worker's broker connection breaks, Celery
closes the kombu connection (its transport) and opens a new one. Anything that later touches the
old channel - closing it (which returns its unacknowledged messages to their queues) or acking a
task that was running across the outage - builds a new Redis client from the transport, which is
gone: `AttributeError: 'NoneType' object has no attribute 'hostname'`, "Unrecoverable error", and
the worker process exits (found by tests/faults; under `newswire up` it stopped the whole service).
Here a channel whose transport is gone raises the connection error it is, which Celery already
handles ("Couldn't ack"), and returning messages on close is best effort: the closed channel's
heartbeat stops, so its messages come back like those of a dead worker.

And kombu takes a message off its queue (BRPOP) and only then records it as unacked (not
retried): Redis dying in between lost the message (3 articles of 200 over 6 Redis restarts).
Here that write waits for Redis to come back, like every other Redis call of the workers.

Importing this module makes every `redis://` and `rediss://` broker of the process use this
transport (kombu picks transports by URL scheme from `TRANSPORT_ALIASES`), so URLs still read
`redis://` for Flower and in logs; `workers/app.py` has every worker and beat import it.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from workers import liveness
from workers.unacked import Restore, UnackedIndex

log = logging.getLogger("newswire.broker")
APPEND_RETRY = Retry(ExponentialBackoff(cap=2.0, base=0.1), 30)  # about 50 s, as in workers/context.py
PREFIX_OPTION, TTL_OPTION = "newswire_prefix", "newswire_worker_ttl"  # broker_transport_options


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    """kombu's ack emulation, with every message recorded as held by this channel."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holder = liveness.channel_holder()

    def is_live(self) -> bool:
        """Beaten while its channel is open: a closed channel's messages are left to the reapers."""
        return not self.channel.closed and self.channel.connection is not None

    def append(self, message: Any, delivery_tag: Any) -> None:
        """Record a message just taken off its queue as held, waiting out a Redis restart."""
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        liveness.register(self)
        APPEND_RETRY.call_with_retry(lambda: self.hold(delivery_tag, record), note_retry)
        virtual.QoS.append(self, message, delivery_tag)

    def hold(self, tag: Any, record: str) -> None:
        with self.channel.conn_or_acquire() as client:
            self.channel.index.hold(client, tag, record, self.holder)

    def ack(self, delivery_tag: Any) -> None:
        with self.channel.conn_or_acquire() as client:
            self.channel.index.release(client, delivery_tag, self.holder)
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if requeue:
            self.channel.restore_message(delivery_tag, holder=self.holder, left=True)
        else:
            with self.channel.conn_or_acquire() as client:
                self.channel.index.release(client, delivery_tag, self.holder)
        virtual.QoS.ack(self, delivery_tag)

    def restore_unacked(self, client: Any = None) -> None:
        """On close: this channel's messages back to their queues (those it still holds)."""
        try:
            with self.channel.conn_or_acquire(client) as conn:
                for tag in self._delivered:
                    self.channel.restore_message(tag, conn, holder=self.holder)
        except redis.ConnectionError as exc:
            log.warning(
                "broker connection lost: %d unacknowledged messages will be redelivered once this "
                "channel's heartbeat expires (%s)", len(self._delivered), exc,
            )  # fmt: skip
        self._delivered.clear()

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        """kombu's visibility timeout (`restore_visible`): whoever holds the message."""
        self.channel.restore_message(tag, client, holder=None, left=leftmost)


def note_retry(exc: Exception) -> None:
    log.warning("broker unreachable while taking a message: retrying (%s)", exc)


class PushRecorder:
    """Stands in for the pipeline kombu's `_do_restore_message` pushes to: records where to."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.payload = ""

    def lpush(self, queue: str, payload: str) -> None:
        self.queues.append(queue)
        self.payload = payload

    rpush = lpush


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    QoS = QoS

    def _get_pool(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        return super()._get_pool(asynchronous=asynchronous)

    @cached_property
    def index(self) -> UnackedIndex:
        options = self.connection.client.transport_options
        ttl_ms = int(float(options.get(TTL_OPTION, liveness.DEFAULT_TTL_S)) * 1000)
        prefix = str(options.get(PREFIX_OPTION, "newswire"))
        return UnackedIndex(prefix, ttl_ms, self.unacked_key, self.unacked_index_key)

    def plan_restore(self, record: bytes, left: bool) -> Restore:
        """Where kombu itself would put the message back (its bindings, priorities, redelivered flag)."""
        message, exchange, routing_key = loads(bytes_to_str(record))
        recorder = PushRecorder()
        self._do_restore_message(message, exchange, routing_key, recorder, left)
        return Restore(recorder.payload, left, tuple(recorder.queues))

    def restore_message(
        self, tag: Any, client: Any = None, *, holder: str | None, left: bool = False
    ) -> bool:
        with self.conn_or_acquire(client) as conn:
            return self.index.restore(conn, tag, holder, lambda record: self.plan_restore(record, left))

    def reap_dead(self) -> int:
        """Put back every message held by a channel whose heartbeat expired; returns how many."""
        restored = 0
        with self.conn_or_acquire() as client:
            for dead in self.index.dead(client):
                mine = sum(self.restore_message(tag, client, holder=dead.holder) for tag in dead.tags)
                self.index.forget(client, dead.holder)
                if mine:
                    log.warning(
                        "worker channel %s stopped its heartbeat: %d unacknowledged messages put back",
                        dead.holder, mine, extra={"stage": "recovery", "outcome": "restored"},
                    )  # fmt: skip
                restored += mine
        return restored


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


for _scheme in ("redis", "rediss"):
    TRANSPORT_ALIASES[_scheme] = f"{__name__}:Transport"
