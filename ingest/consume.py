"""Reading the output streams through a consumer group (at least once).

    for doc in consume(client, "newswire:articles", group="my-app", consumer="host-1"):
        handle(doc)            # acked after this returns

A consumer first re-reads its own pending entries (delivered before a crash,
never acked), then new ones. Entries a dead consumer left pending are claimed
after `claim_idle_ms`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis


@dataclass(frozen=True, slots=True)
class Delivery:
    stream: str
    entry_id: str
    document: dict[str, Any]


def ensure_group(client: redis.Redis, stream: str, group: str, *, from_beginning: bool) -> bool:
    """Create the group if needed; True when it was created now."""
    try:
        client.xgroup_create(stream, group, id="0" if from_beginning else "$", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


def decode_entry(fields: dict[bytes, bytes] | None) -> dict[str, Any] | None:
    if not fields or b"data" not in fields:
        return None
    doc = orjson.loads(fields[b"data"])
    return doc if isinstance(doc, dict) else None


def read_batch(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    start: str,
    count: int,
    block_ms: int | None,
) -> list[tuple[str, dict[bytes, bytes] | None]]:
    reply: Any = client.xreadgroup(group, consumer, {stream: start}, count=count, block=block_ms)
    if not reply:
        return []
    entries = reply[0][1]
    return [(eid.decode(), fields) for eid, fields in entries]


def claim_abandoned(
    client: redis.Redis, stream: str, group: str, consumer: str, *, idle_ms: int, count: int
) -> list[tuple[str, dict[bytes, bytes] | None]]:
    """Entries other consumers left pending longer than `idle_ms` (they died)."""
    reply: Any = client.xautoclaim(
        stream, group, consumer, min_idle_time=idle_ms, start_id="0-0", count=count
    )
    claimed = reply[1] if len(reply) > 1 else []
    return [(eid.decode(), fields) for eid, fields in claimed if eid]


def consume(
    client: redis.Redis,
    stream: str,
    *,
    group: str,
    consumer: str,
    from_beginning: bool = False,
    follow: bool = False,
    count: int | None = None,
    batch: int = 100,
    claim_idle_ms: int = 60_000,
    block_ms: int = 5000,
) -> Iterator[Delivery]:
    """Yield documents; each is acked when the caller asks for the next one."""
    ensure_group(client, stream, group, from_beginning=from_beginning)
    delivered = 0
    for start in ("0", "claim", ">"):
        while count is None or delivered < count:
            size = batch if count is None else min(batch, count - delivered)
            entries = fetch(client, stream, group, consumer, start, size, claim_idle_ms, block_ms, follow)
            if not entries:
                break
            for entry_id, fields in entries:
                doc = decode_entry(fields)
                if doc is not None:
                    yield Delivery(stream, entry_id, doc)
                    delivered += 1
                client.xack(stream, group, entry_id)
                if count is not None and delivered >= count:
                    return


def fetch(
    client: redis.Redis, stream: str, group: str, consumer: str, start: str,
    size: int, claim_idle_ms: int, block_ms: int, follow: bool,
) -> list[tuple[str, dict[bytes, bytes] | None]]:  # fmt: skip
    if start == "claim":
        return claim_abandoned(client, stream, group, consumer, idle_ms=claim_idle_ms, count=size)
    if start == "0":
        return read_batch(client, stream, group, consumer, start="0", count=size, block_ms=None)
    while True:
        entries = read_batch(
            client, stream, group, consumer, start=">", count=size, block_ms=block_ms if follow else None
        )
        if entries or not follow:
            return entries
