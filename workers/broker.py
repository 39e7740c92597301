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

**Taken, not yet recorded.** Worse, kombu 5.7 sends the next BRPOP as soon as it can and, when the
worker's prefetch is full, leaves the reply - a message already popped from Redis - unread in the
socket until a task finishes. A worker killed then took that message with it (one article in 200,
in about half the crash scenarios of tests/faults). Here a channel that consumes one queue takes
with BLMOVE into its own list `{prefix}:broker:taking:{holder}` instead (`Channel._brpop_start`);
recording the message moves it from there into the unacked index, in one script, and a dead
channel's taken messages go back to their queue with the ones it held (`Channel.reap_dead`). A
channel consuming several queues (the I/O worker: feed polls and page fetches) keeps BRPOP, whose
work has its own leases (a poll's in the schedule, a page's in its host queue). The transport has
one priority level (`priority_steps = (0,)`): newswire sends no priorities, and BLMOVE reads one list.

Importing this module makes every `redis://` and `rediss://` broker of the process use this
transport (kombu picks transports by URL scheme from `TRANSPORT_ALIASES`), so URLs still read
`redis://` for Flower and in logs; `workers/app.py` has every worker and beat import it.
"""

from __future__ import annotations

import logging
from functools import cached_property
from queue import Empty
from time import monotonic
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
        """Record a message just taken off its queue as held (and no longer only taken), waiting
        out a Redis restart."""
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        liveness.register(self)
        taken = self.channel.taken
        APPEND_RETRY.call_with_retry(lambda: self.hold(delivery_tag, record, taken), note_retry)
        self.channel.taken = None
        virtual.QoS.append(self, message, delivery_tag)

    def hold(self, tag: Any, record: str, taken: bytes | None) -> None:
        with self.channel.conn_or_acquire() as client:
            self.channel.index.hold(client, tag, record, self.holder, taken)

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
                self.channel.untake_all(conn, self.holder)
        except redis.ConnectionError as exc:
            log.warning(
                "broker connection lost: %d unacknowledged messages will be redelivered once this "
                "channel's heartbeat expires (%s)", len(self._delivered), exc,
            )  # fmt: skip
        self._delivered.clear()

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        """kombu's visibility timeout (`restore_visible`): whoever holds the message."""
        self.channel.restore_message(tag, client, holder=None, left=leftmost)


def decode_taken(item: bytes) -> dict[str, Any] | None:
    """A message as taken off its queue, or None when it is not kombu's JSON."""
    try:
        payload = loads(bytes_to_str(item))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


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
    priority_steps = (0,)  # one list per queue, for BLMOVE (a transport option may still say otherwise)
    taken: bytes | None = None  # the message being delivered, until QoS.append records it
    _taking: str | None = None  # the queue of the BLMOVE in flight
    _check_taking = True  # before the next take: heartbeat on, anything taken and unread put back

    @cached_property
    def no_ack_queues(self) -> set[str]:
        return set()

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        (self.no_ack_queues.add if no_ack else self.no_ack_queues.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def taking_queue(self) -> str | None:
        """The queue this channel takes from with BLMOVE: its only one, acknowledged, on one list;
        None: several queues (or no acks, priorities, a global key prefix): kombu's BRPOP."""
        queues = self.active_queues
        if len(queues) != 1 or self.global_keyprefix or len(self.priority_steps) != 1:
            return None
        (queue,) = queues
        return None if queue in self.no_ack_queues else str(queue)

    def _brpop_start(self, timeout: Any = None) -> None:
        queue = self.taking_queue()
        if queue is None:
            self._taking = None
            return super()._brpop_start(timeout)
        if self._check_taking:
            self.prepare_taking()
        self._taking = queue
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        wait = self.brpop_timeout if timeout is None else timeout
        taking = self.index.taking_key(self.qos.holder)
        self.client.connection.send_command("BLMOVE", queue, taking, "RIGHT", "LEFT", wait or 0)
        return None

    def _brpop_read(self, **options: Any) -> Any:
        queue, self._taking = self._taking, None
        if queue is None:
            return super()._brpop_read(**options)
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                self._check_taking = True  # whatever the broken reply held is in the taking list
                raise
            if item is None:
                raise Empty()
            self.deliver_taken(queue, item)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def prepare_taking(self) -> None:
        """Before the first take (and after a broken connection): this channel beats, so a reaper
        finds what it takes should it die, and a message it took but never read goes back."""
        liveness.register(self.qos)
        with self.conn_or_acquire() as client:
            self.index.beat(client, [self.qos.holder])
            self.untake_all(client, self.qos.holder)
        self._check_taking = False

    def deliver_taken(self, queue: str, item: bytes) -> None:
        """Hand a taken message to its consumer, whose QoS.append records it; one nobody recorded
        (its consumer was cancelled meanwhile, or recording failed) goes back to its queue."""
        payload = decode_taken(item)
        consumer = payload is not None and queue in self.connection._callbacks
        self.taken = item if consumer else None
        try:
            if consumer:
                self.connection._deliver(payload, queue)
        finally:
            unrecorded = not consumer or self.taken is not None
            self.taken = None
            if unrecorded:
                with self.conn_or_acquire() as client:
                    self.untake(client, self.qos.holder, item)

    def plan_untake(self, payload: dict[str, Any], taken: bytes) -> Restore:
        """Where a taken message goes back: its queue by its exchange and routing key, as it was."""
        info = payload.get("properties", {}).get("delivery_info", {})
        queues = self._lookup(info.get("exchange"), info.get("routing_key"))
        priority = self._get_message_priority(payload, reverse=False)
        return Restore(bytes_to_str(taken), False, tuple(self._q_for_pri(q, priority) for q in queues))

    def untake(self, client: Any, holder: str, taken: bytes) -> bool:
        """Put back a message `holder` took and never recorded; one that is not a kombu message at
        all is dropped, logged (kombu's BRPOP dropped it too), so it cannot come back forever."""
        payload = decode_taken(taken)
        if payload is None:
            log.error("a message that is not kombu's JSON was dropped from %s: %.200r", holder, taken)
            client.lrem(self.index.taking_key(holder), 1, taken)
            return False
        return self.index.untake(client, holder, taken, self.plan_untake(payload, taken))

    def untake_all(self, client: Any, holder: str) -> int:
        return sum(self.untake(client, holder, taken) for taken in self.index.taken(client, holder))

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
                mine += self.untake_all(client, dead.holder)
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
