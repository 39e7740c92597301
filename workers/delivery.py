"""Counting the deliveries of a task whose worker keeps dying, so it is dead-lettered instead of looping.

With late acks and `task_reject_on_worker_lost`, a task that kills the process running
it (a page that exhausts memory, a crash in a C extension, the OOM killer) goes back to
the queue at once and kills the next worker too, forever. So each delivery INCRs a
counter keyed by the task id (the same on every redelivery of one message) when it
starts, and a delivery that ends in any ordinary way (success, error, retry) deletes
it: the counter only grows while workers die mid-task. The delivery after
`max_deliveries` of those is not run but dead-lettered (`IngestTask.__call__`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from ingest import keys
from workers.messages import Call, Message

log = logging.getLogger("newswire.delivery")
MIN_TTL_S = 86400
SPLIT_MARK = 1_000_000  # a batch's count once it was split: later copies of it send nothing again


class DeliveryLimitError(Exception):
    """This task's worker died during each of its last deliveries."""


def counter_ttl(visibility_timeout: int, max_deliveries: int) -> int:
    """Long enough to see every redelivery: after a dead worker each takes up to a visibility timeout."""
    return max(MIN_TTL_S, visibility_timeout * (max_deliveries + 1))


def limit_message(deliveries: int, max_deliveries: int) -> str:
    return (
        f"delivered {deliveries} times: its worker died during the previous {deliveries - 1} "
        f"(NEWSWIRE_MAX_DELIVERIES={max_deliveries}); not run again"
    )


class RedisDeliveryCounter:
    """`{prefix}:deliveries:{task_id}`: deliveries of one task that have not finished."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, task_id: str) -> str:
        return keys.deliveries(self.prefix, task_id)

    def start(self, task_id: str) -> int:
        """Count this delivery: how many deliveries of the task have not finished, this one included."""
        pipe = self.client.pipeline()
        pipe.incr(self.key(task_id))
        pipe.expire(self.key(task_id), self.ttl_s)
        return int(pipe.execute()[0])

    def mark_split(self, task_id: str) -> None:
        """The batch went on as batches of one: a copy of it delivered later (the broker hands a
        long-held message out again after its visibility timeout) must not send them again."""
        self.client.set(self.key(task_id), SPLIT_MARK, ex=self.ttl_s)

    def finish(self, task_id: str) -> None:
        """The delivery ended without its worker dying. A failure here only leaves a count to expire."""
        try:
            self.client.delete(self.key(task_id))
        except redis.RedisError as exc:
            log.warning("delivery count of task %s not cleared: %s", task_id, exc)


# --- splitting a batch that keeps killing its worker, and dead-lettering what failed ----------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: str  # one dead-letter entry per key: a task that fails twice is given up on once
    call: Call  # enough to replay it (args, kwargs)
    tracked: tuple[str, str] | None  # (sweep id, item) that a sweep waits for


def split_batch(message: Message, send: Callable[[Call, str], None], task_id: str) -> bool:
    """A batch whose worker keeps dying goes on as batches of one (`send(call, task_id)`), so only
    the item that kills its worker ends in the dead-letter stream, after its own deliveries. The
    ids derive from the batch's: a batch delivered twice at once splits into the same singles."""
    parts = message.parts() if message.batch else []
    if len(parts) < 2:
        return False
    for n, part in enumerate(parts):
        send(part.call(), f"{task_id}.{n}")
    return True


def dead_letters(name: str, task_id: str, message: Message) -> list[DeadLetter]:
    """What a failed task dead-letters: each item of a batch on its own (replayable as a batch of
    one), else the message; each with the key that makes its entry once, and its sweep item."""
    if not message.batch:
        return [DeadLetter(f"{name}:{task_id}", message.call(), message.tracked)]
    return [DeadLetter(f"{name}:{task_id}:{n}", part.call(), part.tracked)
            for n, part in enumerate(message.parts())]  # fmt: skip
