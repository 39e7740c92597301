"""Reading the output streams through a consumer group: at least once, with a dead-letter stream.

    for delivery in consume(client, "newswire:articles", group="my-app", consumer="host-1"):
        handle(delivery.document)      # acked once you ask for the next one

    run(client, "newswire:articles", handle, group="my-app", consumer="host-1", follow=True)

Order of work: this consumer's own pending entries (delivered before a crash,
never acked), then entries any consumer left pending longer than `claim_idle_ms`
(it died, or its handler failed), then new ones; `follow` repeats the claim pass
every `claim_idle_ms / 2`. Acks are batched: a handled entry is acked with the
next command sent (one XACK with many ids, pipelined with the next read), so a
crash redelivers at most one batch of handled entries and never loses one.

Pending entries are recovered one at a time with XCLAIM, so only an entry that
is handed out again has its delivery counter (XPENDING's) raised: XAUTOCLAIM
COUNT n raises n counters at once, and one entry that crashes its consumer
would drag its batch-mates to the dead-letter stream with it. An entry
delivered more than `max_deliveries` times, or whose `data` is not a JSON
object, is moved to `{prefix}:deadletter` and acked in one script.

Entries trimmed while pending (XTRIM deletes them from the stream, not from the
group's pending list) come back from XCLAIM as nil on Redis 6.2 (acked here) and
are dropped from the pending list by Redis >= 7 and Valkey; both are counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis

from ingest import keys, lua
from ingest.streams.entries import (
    MAX_SEQ,
    Burial,
    Delivery,
    Entry,
    as_str,
    claim_outcome,
    dead_letter_item,
    decode_document,
    ensure_group,
    group_start,
    judge,
    parse_since,
    since_id,
    stream_entries,
)

log = logging.getLogger("newswire.consume")

MAX_DELIVERIES = 5
DEADLETTER_MAXLEN = 1_000_000
MAX_REMEMBERED_FAILURES = 10_000

__all__ = [
    "MAX_SEQ", "Burial", "ConsumeOptions", "Delivery", "Entry", "RedisStreamConsumer", "as_str",
    "claim_outcome", "consume", "dead_letter_item", "decode_document", "ensure_group", "group_start",
    "judge", "parse_since", "run", "since_id", "stream_entries",
]  # fmt: skip

Handler = Callable[["Delivery"], object]
Steps = Generator["Delivery", None, int]


@dataclass(frozen=True, slots=True)
class ConsumeOptions:
    start: str = "$"  # where a new group starts: "0" (all history), "$" (new entries) or an entry id
    follow: bool = False  # keep waiting for new entries instead of stopping once caught up
    count: int | None = None  # stop after this many documents
    batch: int = 100
    claim_idle_ms: int = 60_000
    block_ms: int = 5000
    max_deliveries: int = MAX_DELIVERIES


class RedisStreamConsumer:
    """One consumer of one group on one stream; see the module docstring for the guarantees."""

    def __init__(
        self, client: redis.Redis, stream: str, *, group: str, consumer: str,
        options: ConsumeOptions | None = None,
    ) -> None:  # fmt: skip
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.stream, self.group, self.consumer = stream, group, consumer
        self.options = options or ConsumeOptions()
        prefix = keys.stream_prefix(stream)
        self.deadletter, self.stats_key = keys.deadletter_stream(prefix), keys.stats(prefix)
        self.acks: list[str] = []
        self.failures: dict[str, str] = {}  # entry id -> the handler's last error (run)
        self.counts: Counter[str] = Counter()
        self.next_claim_at = 0.0
        self.stop: threading.Event | None = None
        self._bury = lua.register(client, __package__ or "ingest.streams", "deadletter.lua")

    def deliveries(self) -> Generator[Delivery, None, None]:
        """Each delivery is acked when the caller asks for the next one (or closes the generator)."""
        try:
            for delivery in self.handout():
                yield delivery
                self.acks.append(delivery.entry_id)
        finally:
            self.flush_quietly()

    def run(self, handler: Handler, *, stop: threading.Event | None = None) -> Counter[str]:
        """Call `handler` on each delivery; ack when it returns, leave pending when it raises."""
        self.stop = stop
        try:
            for delivery in self.handout():
                if self.call(handler, delivery):
                    self.acks.append(delivery.entry_id)
        finally:
            self.flush_quietly()
        return self.counts

    def call(self, handler: Handler, delivery: Delivery) -> bool:
        try:
            handler(delivery)
        except Exception as exc:  # noqa: BLE001 - a failing handler leaves its entry pending for a retry
            self.remember_failure(delivery.entry_id, f"{type(exc).__name__}: {exc}")
            log.warning(
                "handler failed on %s %s (delivery %d): %s", self.stream, delivery.entry_id,
                delivery.deliveries, exc, extra={"stage": "consume", "outcome": "failed"},
            )  # fmt: skip
            return False
        self.failures.pop(delivery.entry_id, None)
        return True

    def remember_failure(self, entry_id: str, error: str) -> None:
        self.counts["failed"] += 1
        if len(self.failures) >= MAX_REMEMBERED_FAILURES:
            self.failures.clear()
        self.failures[entry_id] = error

    def handout(self) -> Iterator[Delivery]:
        """Every deliverable entry: own pending, then abandoned ones, then new ones."""
        ensure_group(self.client, self.stream, self.group, start=self.options.start)
        yield from self.recover(0, self.consumer)
        while not self.is_done() and not self.is_stopped():
            claimed = (yield from self.claim_abandoned()) if self.claim_due() else None
            fresh = yield from self.read_new(block=self.options.follow and not claimed)
            if fresh or claimed or self.options.follow:
                continue
            if claimed == 0:
                return  # a claim pass found nothing and nothing is new: caught up
            self.next_claim_at = 0.0  # one more claim pass before stopping

    def claim_abandoned(self) -> Steps:
        return self.recover(self.options.claim_idle_ms, None)

    def read_new(self, *, block: bool) -> Steps:
        size, block_ms = self.next_size(), self.options.block_ms if block else None
        reply = self.send(
            lambda p: p.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=size, block=block_ms)
        )
        entries = stream_entries(reply)
        for raw_id, fields in entries:
            yield from self.triage(Entry(as_str(raw_id), fields, 1))
        return len(entries)

    def recover(self, idle_ms: int, owner: str | None) -> Steps:
        """Pending entries (`owner`'s, or anyone's idle >= idle_ms), claimed one at a time."""
        found, cursor = 0, "-"
        while not self.is_done():
            size = self.next_size()
            page = self.pending_page(cursor, idle_ms, owner, size)
            for entry_id, times in page:
                entry = self.claim(entry_id, idle_ms, times)
                found += 1
                if entry is not None:
                    yield from self.triage(entry)
                if self.is_done():
                    break
            if len(page) < size:
                break
            cursor = "(" + page[-1][0]
        return found

    def pending_page(self, cursor: str, idle_ms: int, owner: str | None, size: int) -> list[tuple[str, int]]:
        reply = self.send(
            lambda p: p.xpending_range(
                self.stream, self.group, min=cursor, max="+", count=size,
                consumername=owner, idle=idle_ms or None,
            )
        )  # fmt: skip
        return [(as_str(p["message_id"]), int(p["times_delivered"])) for p in reply]

    def claim(self, entry_id: str, idle_ms: int, times: int) -> Entry | None:
        """Take one pending entry (raising its delivery counter), or None if it is not ours to take."""
        reply = self.send(lambda p: p.xclaim(self.stream, self.group, self.consumer, idle_ms, [entry_id]))
        outcome = claim_outcome(reply)
        if outcome == "claimed":
            return Entry(entry_id, reply[0][1], times + 1)
        if outcome == "trimmed" or not self.client.xrange(self.stream, entry_id, entry_id, count=1):
            return Entry(entry_id, None, times + 1)
        return None  # another consumer claimed it first

    def triage(self, entry: Entry) -> Iterator[Delivery]:
        if entry.fields is None:
            self.note_trimmed(entry.entry_id)
            return
        doc = decode_document(entry.fields)
        burial = judge(entry, doc, self.options.max_deliveries, self.failures.get(entry.entry_id))
        if burial is not None or doc is None:
            self.bury(entry, burial or Burial("undecodable"))
            return
        self.counts["delivered"] += 1
        yield Delivery(self.stream, entry.entry_id, doc, entry.deliveries)

    def bury(self, entry: Entry, burial: Burial) -> None:
        item = dead_letter_item(self.stream, self.group, self.consumer, entry, burial, time.time())
        names = [self.stream, self.deadletter, self.stats_key]
        args: list[str | bytes | int] = [self.group, entry.entry_id, orjson.dumps(item), DEADLETTER_MAXLEN]
        self.send(lambda p: self._bury(keys=names, args=args, client=p))
        self.failures.pop(entry.entry_id, None)
        self.counts["dead_lettered"] += 1
        log.warning(
            "dead-lettered %s %s: %s", self.stream, entry.entry_id, burial.reason,
            extra={"stage": "consume", "outcome": "dead_lettered"},
        )  # fmt: skip

    def note_trimmed(self, entry_id: str) -> None:
        self.acks.append(entry_id)  # Redis 6.2 keeps it pending; >= 7 dropped it already
        self.counts["trimmed"] += 1
        self.send(lambda p: p.hincrby(self.stats_key, "consume:trimmed", 1))
        log.warning(
            "entry %s of %s was trimmed before group %s acked it", entry_id, self.stream, self.group,
            extra={"stage": "consume", "outcome": "trimmed"},
        )  # fmt: skip

    def send(self, command: Callable[[Any], object]) -> Any:
        """Run one command, with the acks due so far in the same round trip."""
        pipe = self.client.pipeline(transaction=False)
        sent = len(self.acks)
        if sent:
            pipe.xack(self.stream, self.group, *self.acks)
        command(pipe)
        results = pipe.execute()
        del self.acks[:sent]
        return results[-1]

    def flush_quietly(self) -> None:
        if not self.acks:
            return
        try:
            self.client.xack(self.stream, self.group, *self.acks)
            self.acks.clear()
        except redis.RedisError as exc:  # the entries stay pending and are delivered again
            log.warning("could not ack %d entries: %s", len(self.acks), exc, extra={"stage": "consume"})

    def claim_due(self) -> bool:
        now = time.monotonic()
        if now < self.next_claim_at:
            return False
        self.next_claim_at = now + self.options.claim_idle_ms / 2000
        return True

    def next_size(self) -> int:
        batch, count = self.options.batch, self.options.count
        return batch if count is None else max(1, min(batch, count - self.delivered))

    @property
    def delivered(self) -> int:
        return self.counts["delivered"]

    def is_done(self) -> bool:
        return self.options.count is not None and self.delivered >= self.options.count

    def is_stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def consume(
    client: redis.Redis, stream: str, *, group: str, consumer: str, from_beginning: bool = False,
    since: str | datetime | None = None, **options: Any,
) -> Generator[Delivery, None, None]:  # fmt: skip
    """Yield documents; each is acked when the caller asks for the next one (ConsumeOptions: options)."""
    start = group_start(from_beginning=from_beginning, since=since)
    opts = ConsumeOptions(start=start, **options)
    return RedisStreamConsumer(client, stream, group=group, consumer=consumer, options=opts).deliveries()


def run(
    client: redis.Redis, stream: str, handler: Handler, *, group: str, consumer: str,
    from_beginning: bool = False, since: str | datetime | None = None,
    stop: threading.Event | None = None, **options: Any,
) -> Counter[str]:  # fmt: skip
    """Call `handler(delivery)` on each document; returns the counts (delivered, failed, ...)."""
    opts = ConsumeOptions(start=group_start(from_beginning=from_beginning, since=since), **options)
    reader = RedisStreamConsumer(client, stream, group=group, consumer=consumer, options=opts)
    return reader.run(handler, stop=stop)
