"""One reader per output stream, shared by all its SSE clients: a bounded ring of recent entries.

A `StreamHub` runs one blocking XREAD loop on its stream (one Redis connection, however many
clients follow it) and keeps the newest entries, already framed as SSE events, in a ring
bounded by count and bytes. Every entry after `floor` is in the ring, so a client whose
cursor is at or after `floor` is served from memory; an older cursor is served from Redis
(XRANGE pages) until it reaches the ring. The hub stops when its last client leaves.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from ingest.streams.entries import as_str

log = logging.getLogger("newswire.http.sse")

RING_ENTRIES = 1024  # newest entries each stream's hub keeps in memory
RING_BYTES = 4 * 1024 * 1024  # ... and at most this many bytes of them
READ_COUNT = 500  # entries per XREAD / XRANGE
READ_BLOCK_MS = 5000

IdKey = tuple[int, int]


def id_key(entry_id: str) -> IdKey:
    """`1795771045170-3` -> (1795771045170, 3); a bare `ms` is `ms-0`. ValueError if neither."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def frame(entry_id: str, event: str, data: bytes) -> bytes:
    """One SSE event; data with line breaks (not ours: newswire writes one-line JSON) is split."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    body = b"".join(b"data: " + line + b"\n" for line in lines)
    return b"id: " + entry_id.encode() + b"\nevent: " + event.encode() + b"\n" + body + b"\n"


def data_of(fields: dict[Any, Any]) -> bytes:
    raw = fields.get(b"data", fields.get("data", b""))
    return raw if isinstance(raw, bytes) else str(raw).encode()


@dataclass(frozen=True, slots=True)
class Framed:
    key: IdKey
    entry_id: str
    frame: bytes


def framed_entries(entries: list[Any], event: str) -> list[Framed]:
    out = []
    for raw_id, fields in entries:
        entry_id = as_str(raw_id)
        out.append(Framed(id_key(entry_id), entry_id, frame(entry_id, event, data_of(fields))))
    return out


@dataclass
class StreamHub:
    client: aioredis.Redis
    stream: str
    event: str
    ring: list[Framed] = field(default_factory=list)  # oldest first
    ring_bytes: int = 0
    floor: IdKey = (0, 0)  # every entry after this is in the ring
    head: IdKey = (0, 0)  # the newest entry read
    clients: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        newest = await self.client.xrevrange(self.stream, count=1)
        self.floor = self.head = id_key(as_str(newest[0][0])) if newest else (0, 0)
        self.task = asyncio.create_task(self.follow(), name=f"hub {self.stream}")
        self.ready.set()

    async def follow(self) -> None:
        while True:
            try:
                start = f"{self.head[0]}-{self.head[1]}"
                reply = await self.client.xread({self.stream: start}, count=READ_COUNT, block=READ_BLOCK_MS)
            except redis.RedisError as exc:
                log.warning("stream hub %s: %s; retrying in 1 s", self.stream, exc, extra={"stage": "sse"})
                await asyncio.sleep(1)
                continue
            for _, entries in reply or ():
                self.add(framed_entries(entries, self.event))

    def add(self, entries: list[Framed]) -> None:
        for entry in entries:
            self.ring.append(entry)
            self.ring_bytes += len(entry.frame)
            self.head = entry.key
        drop = 0
        while drop < len(self.ring) and self.is_over(len(self.ring) - drop):
            self.ring_bytes -= len(self.ring[drop].frame)
            drop += 1
        if drop:
            self.floor = self.ring[drop - 1].key
            del self.ring[:drop]
        if entries:
            self.changed.set()
            self.changed = asyncio.Event()

    def is_over(self, entries: int) -> bool:
        return entries > RING_ENTRIES or self.ring_bytes > RING_BYTES

    def covers(self, cursor: IdKey) -> bool:
        return cursor >= self.floor

    def after(self, cursor: IdKey, limit: int = READ_COUNT) -> list[Framed]:
        """Ring entries after `cursor` (which `covers` must have accepted), at most `limit`."""
        start = bisect.bisect_right(self.ring, cursor, key=lambda e: e.key)
        return self.ring[start : start + limit]

    async def wait(self, timeout: float) -> bool:
        """Until a new entry arrives (True) or `timeout` passes (False)."""
        changed = self.changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)
        return changed.is_set()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@dataclass
class Hubs:
    """The running hubs of one HTTP process, by stream; a hub lives while it has clients."""

    client: aioredis.Redis
    hubs: dict[str, StreamHub] = field(default_factory=dict)

    async def join(self, stream: str, event: str) -> StreamHub:
        hub = self.hubs.get(stream)
        if hub is None:
            hub = self.hubs[stream] = StreamHub(self.client, stream, event)
            hub.clients += 1
            try:
                await hub.start()
            except BaseException:
                del self.hubs[stream]
                hub.ready.set()
                raise
            return hub
        hub.clients += 1
        await hub.ready.wait()
        return hub

    async def leave(self, hub: StreamHub) -> None:
        hub.clients -= 1
        if hub.clients == 0 and self.hubs.get(hub.stream) is hub:
            del self.hubs[hub.stream]
            await hub.stop()
