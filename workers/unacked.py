"""kombu's unacked index in the broker's Redis, with who holds each message (docs/faults.md).

kombu's Redis transport emulates acks: a message taken off its queue is kept in the hash
`unacked` (tag -> [message, exchange, routing key]) and the sorted set `unacked_index` (tag -> time
taken) until it is acked, and any message older than the visibility timeout is put back. That
timeout has to be longer than the longest task (an hour by default), so the work of a worker
killed with SIGKILL came back only an hour later.

Here each broker channel of a worker is a *holder* with a heartbeat in `{prefix}:broker:workers`;
taking a message also records its holder (`{prefix}:broker:owners`, `{prefix}:broker:held:{holder}`),
in the same script as kombu's own record. A holder whose heartbeat expired is dead: its messages
are put back at once (`restore`, one script per message, so two reapers restore a message once),
and the visibility timeout stays as the backstop for anything this misses.

Acks only drop the record while the acking channel still holds the message: a worker that was
taken for dead and carries on must not drop the record of the copy another worker runs now.

**Taking.** kombu pops a message with BRPOP and records it only once it reads the reply; while
every pool process is busy it leaves that reply unread in the socket ("paused", kombu 5.7) for as
long as a task runs. A worker killed then lost the message: nothing in Redis knew of it (1 article
of 200 in about half of the crash scenarios, tests/faults). So a channel consuming one queue takes
with BLMOVE into its own list `{prefix}:broker:taking:{holder}` (`workers/broker.py`), the hold
script moves it from there into the index, and a dead holder's taken messages go back to their
queue (`untake`) like the ones it held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from redis.commands.core import Script

from ingest import keys, lua

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's names (Channel.unacked_key, ...)
MAX_DEAD = 100  # dead holders per reap


@dataclass(frozen=True, slots=True)
class Restore:
    """Where a restored message goes: its new body (marked redelivered), the side, the lists."""

    payload: str
    left: bool
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadHolder:
    holder: str
    tags: tuple[bytes, ...]  # the delivery tags it still held


class UnackedIndex:
    """The holder-aware unacked index of one deployment prefix; each call takes the client to use
    (kombu hands out a new client per operation, over one connection pool)."""

    def __init__(
        self, prefix: str, ttl_ms: int, unacked: str = UNACKED, unacked_index: str = UNACKED_INDEX
    ) -> None:
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.unacked, self.unacked_index = unacked, unacked_index
        self.workers_key = keys.broker_workers(prefix)
        self.owners_key = keys.broker_owners(prefix)
        self.held_part = keys.broker_held(prefix, "")
        self._scripts: dict[str, Script] = {}

    def script(self, client: Any, name: str) -> Script:
        """`unacked_{name}.lua` (or `heartbeat.lua`), bound to the first client, called with any."""
        if name not in self._scripts:
            filename = "heartbeat.lua" if name == "heartbeat" else f"unacked_{name}.lua"
            self._scripts[name] = lua.register(client, "workers", filename)
        return self._scripts[name]

    def held_key(self, holder: str) -> str:
        return keys.broker_held(self.prefix, holder)

    def taking_key(self, holder: str) -> str:
        return keys.broker_taking(self.prefix, holder)

    def hold(self, client: Any, tag: str, record: str, holder: str, taken: bytes | None = None) -> None:
        """Record a message just taken: kombu's unacked entry and its holder, in one script (and out
        of the holder's taking list, when BLMOVE put it there: `taken` is the message as taken)."""
        names = [self.unacked_index, self.unacked, self.owners_key, self.held_key(holder), self.workers_key]
        args: list[Any] = [tag, record, time.time(), holder, self.held_part, self.ttl_ms]
        if taken is not None:
            names.append(self.taking_key(holder))
            args.append(taken)
        self.script(client, "hold")(keys=names, args=args, client=client)

    def taken(self, client: Any, holder: str) -> list[bytes]:
        """Messages a channel took off its queue and has not recorded (one at most, normally none)."""
        return list(client.lrange(self.taking_key(holder), 0, -1))

    def untake(self, client: Any, holder: str, taken: bytes, step: Restore) -> bool:
        """Put back one message `holder` took and never recorded, once (see `Restore` for `step`)."""
        if not step.queues:  # kombu could not route it: leave it where it is, for an operator
            return False
        names = [self.taking_key(holder), *step.queues]
        return bool(self.script(client, "untake")(keys=names, args=[taken, step.payload], client=client))

    def release(self, client: Any, tag: str, holder: str) -> bool:
        """An ack: drop the record, unless another holder has the message now."""
        names = [self.unacked_index, self.unacked, self.owners_key, self.held_key(holder)]
        return bool(self.script(client, "release")(keys=names, args=[tag, holder], client=client))

    def restore(self, client: Any, tag: Any, holder: str | None, plan: Callable[[bytes], Restore]) -> bool:
        """Put one message back on its queue, if it is still unacked (and still `holder`'s, if given).

        `plan` turns kombu's record into where the message goes (read outside the script: the
        exchange's bindings are kombu's to look up); a record that changes meanwhile is read again."""
        for _ in range(3):
            record = client.hget(self.unacked, tag)
            if record is None:
                self.drop_owner(client, tag, holder)
                return False
            step = plan(record)
            if not step.queues:  # kombu could not route it: leave it to the visibility timeout
                return False
            args = [self.held_part, holder or "", tag, record, step.payload, "l" if step.left else "r"]
            names = [self.unacked_index, self.unacked, self.owners_key]
            done = int(self.script(client, "restore")(keys=names, args=[*args, *step.queues], client=client))
            if done >= 0:
                return done == 1
        return False

    def drop_owner(self, client: Any, tag: Any, holder: str | None) -> None:
        """No record left (acked, or restored by the visibility timeout): forget who held it."""
        if holder:
            self.release(client, tag, holder)

    def beat(self, client: Any, holders: list[str]) -> None:
        if holders:
            args = [self.ttl_ms, *holders]
            self.script(client, "heartbeat")(keys=[self.workers_key], args=args, client=client)

    def dead(self, client: Any) -> list[DeadHolder]:
        """Holders whose heartbeat expired, with what they still hold."""
        flat = self.script(client, "dead")(
            keys=[self.workers_key], args=[self.held_part, MAX_DEAD], client=client
        )
        return list(parse_dead(iter(flat)))

    def forget(self, client: Any, holder: str) -> bool:
        names = [self.workers_key, self.held_key(holder), self.taking_key(holder)]
        return bool(self.script(client, "forget")(keys=names, args=[holder], client=client))


def parse_dead(flat: Iterator[Any]) -> Iterator[DeadHolder]:
    for holder in flat:
        tags = tuple(next(flat) for _ in range(int(next(flat))))
        yield DeadHolder(holder.decode() if isinstance(holder, bytes) else str(holder), tags)
