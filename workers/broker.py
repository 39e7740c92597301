"""kombu's Redis transport, with two fixes for a Redis that dies and comes back (tests/faults found both).

kombu 5.7 / Celery 5.7: when a worker's broker connection breaks, Celery closes the kombu
connection (its transport) and opens a new one. Anything that later touches the old channel -
closing it (which returns its unacknowledged messages to their queues) or acking a task that
was running across the outage - builds a new Redis client from the transport, which is gone:
`AttributeError: 'NoneType' object has no attribute 'hostname'` (or `'client'`),
"Unrecoverable error", and the worker process exits. Found by tests/faults (Redis killed while
workers held tasks); under `newswire up` it stopped the whole service.

Here a channel whose transport is gone raises the connection error it is, which Celery already
handles (it logs "Couldn't ack" and carries on), and returning messages on close is best effort.
Either way the messages stay in Redis' unacked index and are redelivered after the visibility
timeout, exactly like those of a worker killed with SIGKILL.

Second, kombu takes a message off its queue (BRPOP) and only then records it as unacked (ZADD +
HSET, not retried). Redis dying in between left the message nowhere but in the worker's memory,
and the worker dropped it when the write failed: 3 articles of 200 lost over 6 Redis restarts.
Here that write waits for Redis to come back, like every other Redis call of the workers.

Importing this module makes every `redis://` and `rediss://` broker of the process use this
transport (kombu picks transports by URL scheme from `TRANSPORT_ALIASES`), so URLs still read
`redis://` for Flower and in logs; `workers/app.py` has every worker and beat import it.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger("newswire.broker")
APPEND_RETRY = Retry(ExponentialBackoff(cap=2.0, base=0.1), 30)  # about 50 s, as in workers/context.py


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    def append(self, message: Any, delivery_tag: Any) -> None:
        """Record a message just taken off its queue as unacked, waiting out a Redis restart."""
        APPEND_RETRY.call_with_retry(lambda: super(QoS, self).append(message, delivery_tag), note_retry)

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except redis.ConnectionError as exc:
            log.warning(
                "broker connection lost: %d unacknowledged messages will be redelivered after the "
                "visibility timeout (%s)", len(self._delivered), exc,
            )  # fmt: skip
            self._delivered.clear()


def note_retry(exc: Exception) -> None:
    log.warning("broker unreachable while taking a message: retrying (%s)", exc)


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    QoS = QoS

    def _get_pool(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        return super()._get_pool(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


for _scheme in ("redis", "rediss"):
    TRANSPORT_ALIASES[_scheme] = f"{__name__}:Transport"
