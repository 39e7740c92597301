"""`GET /v1/streams/{stream}`: an output stream as Server-Sent Events, resumable by entry id.

`{stream}` is the stream's name without the prefix: `articles`, `duplicates`, `updates` or
`topic:{slug}`. Each event is `id: <entry id>`, `event: article|duplicate|update`, `data: <the
document JSON on one line>`. It starts after `Last-Event-ID` (what a browser's EventSource
sends when it reconnects), else after `?after=ENTRY_ID`, else at `?since=ISO-TIME`, else with
new entries only; a resumed client gets every entry after its id once, in order.

Memory stays bounded whatever the clients do: reads are pages of `READ_COUNT` entries, sent in
chunks of at most `CHUNK_BYTES`, each send waits for the socket (uvicorn's flow control), and
a client is served either from its stream's shared ring (`hub.py`) or from Redis pages. A
client that was following live and falls more than the ring behind is dropped with an event
`dropped` (`{"reason", "last_event_id"}`: reconnect with it to resume from Redis); one whose
socket accepts nothing for `SEND_TIMEOUT_S` is closed. A comment line every `HEARTBEAT_S`
keeps idle connections (and the proxies on the way) open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ingest.streams.entries import event_name, is_stream_name, output_stream, since_id
from ingest.tag.topics import TopicError, TopicsFile
from newswire.http.hub import READ_COUNT, Framed, Hubs, IdKey, StreamHub, framed_entries, id_key

log = logging.getLogger("newswire.http.sse")

HEARTBEAT_S = 15.0
SEND_TIMEOUT_S = 30.0
CHUNK_BYTES = 256 * 1024
RETRY_MS = 3000  # how long a browser waits before reconnecting
ENTRY_ID = re.compile(r"^\d{1,20}(?:-\d{1,20})?$")
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def start_cursor(headers: Any, query: Any) -> IdKey | None:
    """Where the client starts (after this id), or None for new entries only; ValueError if bad."""
    after = headers.get("last-event-id") or query.get("after")
    if after:
        if not ENTRY_ID.match(after.strip()):
            raise ValueError(f"{after!r} is not a stream entry id (e.g. 1795771045170-0)")
        return id_key(after.strip())
    if query.get("since"):
        return id_key(since_id(query["since"]))
    return None


def accepts_event_stream(accept: str) -> bool:
    return not accept or any(t in accept for t in ("text/event-stream", "*/*", "text/*"))


def format_id(key: IdKey) -> str:
    return f"{key[0]}-{key[1]}"


def dropped_frame(reason: str, cursor: IdKey) -> bytes:
    data = orjson.dumps({"reason": reason, "last_event_id": format_id(cursor)})
    return b"event: dropped\ndata: " + data + b"\n\n"


@dataclass
class EventStream:
    """The ASGI response of one SSE client."""

    hubs: Hubs
    client: aioredis.Redis
    stream: str
    event: str
    cursor: IdKey | None
    heartbeat_s: float = HEARTBEAT_S
    gone: bool = False
    live: bool = False
    sent: int = field(default=0)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        hub = await self.hubs.join(self.stream, self.event)
        main = asyncio.current_task()
        listener = asyncio.create_task(self.watch_disconnect(receive, main))
        try:
            await self.serve(hub, send)
        except asyncio.CancelledError:
            if not self.gone:
                raise
        finally:
            listener.cancel()
            await self.hubs.leave(hub)
            log.debug("SSE client of %s left after %d events", self.stream, self.sent)

    async def watch_disconnect(self, receive: Any, main: asyncio.Task[Any] | None) -> None:
        while (await receive())["type"] != "http.disconnect":
            continue
        self.gone = True
        if main is not None:
            main.cancel()

    async def serve(self, hub: StreamHub, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        cursor = hub.head if self.cursor is None else self.cursor
        if not await self.write(send, [f"retry: {RETRY_MS}\n: newswire {self.stream}\n\n".encode()]):
            return
        while True:
            batch = await self.next_batch(hub, cursor)
            if batch is None:
                await self.write(send, [dropped_frame(self.behind_reason(hub, cursor), cursor)])
                return
            if batch:
                if not await self.write(send, [e.frame for e in batch]):
                    return
                cursor, self.sent = batch[-1].key, self.sent + len(batch)
            elif not await hub.wait(self.heartbeat_s) and not await self.write(send, [b": heartbeat\n\n"]):
                return

    async def next_batch(self, hub: StreamHub, cursor: IdKey) -> list[Framed] | None:
        """The next entries after `cursor`; [] when there are none yet; None: too far behind."""
        if hub.covers(cursor):
            self.live = True
            return hub.after(cursor)
        if self.live:
            return None
        entries = await self.client.xrange(self.stream, min=f"({format_id(cursor)}", count=READ_COUNT)
        if entries:
            return framed_entries(entries, self.event)
        return self.skip_to_ring(hub, cursor)

    def skip_to_ring(self, hub: StreamHub, cursor: IdKey) -> list[Framed]:
        """Redis has nothing after `cursor` but the ring does not reach back to it (entries were
        deleted in between): continue from the ring's start."""
        return hub.after(max(cursor, hub.floor))

    def behind_reason(self, hub: StreamHub, cursor: IdKey) -> str:
        return (
            f"too far behind: more than {len(hub.ring)} entries behind the newest of {self.stream}; "
            "reconnect with Last-Event-ID to resume"
        )

    async def write(self, send: Any, frames: list[bytes]) -> bool:
        """Send `frames` in bounded chunks; False when the client is gone or stalled."""
        chunk: list[bytes] = []
        size = 0
        for piece in frames:
            chunk.append(piece)
            size += len(piece)
            if size >= CHUNK_BYTES and not await self.send_chunk(send, b"".join(chunk)):
                return False
            if size >= CHUNK_BYTES:
                chunk, size = [], 0
        return not chunk or await self.send_chunk(send, b"".join(chunk))

    async def send_chunk(self, send: Any, body: bytes) -> bool:
        if self.gone:
            return False
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": body, "more_body": True}),
                                   SEND_TIMEOUT_S)  # fmt: skip
        except TimeoutError:
            log.warning(
                "SSE client of %s accepted nothing for %.0f s: closed", self.stream, SEND_TIMEOUT_S,
                extra={"stage": "sse", "outcome": "stalled"},
            )  # fmt: skip
            return False
        return True


@dataclass
class StreamRoutes:
    """`GET /v1/streams/{stream}` for one HTTP process: its hubs and its async Redis client."""

    prefix: str
    client: aioredis.Redis
    topics: TopicsFile
    hubs: Hubs

    async def endpoint(self, request: Request) -> Response | EventStream:
        name = request.path_params["stream"]
        if not accepts_event_stream(request.headers.get("accept", "")):
            return JSONResponse({"error": "this endpoint serves text/event-stream"}, 406)
        if not is_stream_name(name) or not await self.exists(name):
            return JSONResponse({"error": f"no stream {name!r}"}, 404)
        try:
            cursor = start_cursor(request.headers, request.query_params)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return EventStream(self.hubs, self.client, output_stream(self.prefix, name), event_name(name), cursor)

    async def exists(self, name: str) -> bool:
        if not name.startswith("topic:"):
            return True
        with contextlib.suppress(TopicError):
            if name.removeprefix("topic:") in self.topics.get().slugs:
                return True
        return bool(await self.client.exists(output_stream(self.prefix, name)))  # a retired topic's stream


def stream_routes(ctx: Any) -> list[BaseRoute]:
    assert ctx.settings.redis_url is not None  # noqa: S101 - the CLI found the Redis first
    # socket_timeout above the hubs' XREAD BLOCK (redis-py's default of 5 s would cut it short)
    client = aioredis.Redis.from_url(ctx.settings.redis_url, health_check_interval=30, socket_timeout=30)
    routes = StreamRoutes(ctx.settings.prefix, client, TopicsFile(ctx.settings.topics_path), Hubs(client))
    return [Route("/v1/streams/{stream}", routes.endpoint)]
