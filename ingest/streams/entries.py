"""Stream entries as consumers see them: ids and starts, decoding, the dead-letter verdict.

Pure helpers under `consume.py` (the consumer-group reader) and `webhook.py` (webhook
delivery): where a new group starts (`group_start`, `since_id`), an entry's document
(`decode_document`), whether to hand an entry out or bury it (`judge`), the dead-letter
record (`dead_letter_item`), and the shapes of XCLAIM and XREADGROUP replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from ingest import keys
from ingest.models import iso_utc

MAX_SEQ = 2**64 - 1
STREAM_NAME = re.compile(r"^(?:articles|duplicates|updates|topic:[a-z0-9][a-z0-9-]{0,99})$")
EVENTS = {"articles": "article", "duplicates": "duplicate", "updates": "update"}

Fields = dict[Any, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    stream: str
    entry_id: str
    document: dict[str, Any]
    deliveries: int = 1  # times the group has handed this entry out, this one included


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    fields: Fields | None  # None: trimmed from the stream while pending
    deliveries: int


@dataclass(frozen=True, slots=True)
class Burial:
    """Why an entry goes to the dead-letter stream instead of the handler."""

    reason: str
    document: dict[str, Any] | None = None


def group_start(*, from_beginning: bool = False, since: str | datetime | None = None) -> str:
    """The id a new group starts after: everything, entries at/after `since`, or only new ones."""
    if from_beginning:
        return "0"
    if since is not None:
        return since_id(since)
    return "$"


def since_id(since: str | datetime) -> str:
    """The largest id before `since` (stream ids are millisecond timestamps)."""
    stamp = parse_since(since) if isinstance(since, str) else since
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    ms = int(stamp.timestamp() * 1000)
    return "0" if ms <= 0 else f"{ms - 1}-{MAX_SEQ}"


def parse_since(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-27T09:00:00Z)") from exc


def as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def data_field(fields: Fields) -> Any:
    return fields.get(b"data", fields.get("data"))


def decode_document(fields: Fields) -> dict[str, Any] | None:
    """The document in an entry's `data` field; None when there is none or it is not a JSON object."""
    raw = data_field(fields)
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def judge(
    entry: Entry, doc: dict[str, Any] | None, max_deliveries: int, last_error: str | None
) -> Burial | None:
    """None to hand the entry out; a Burial to dead-letter it."""
    if doc is None:
        return Burial("undecodable: the data field is missing or not a JSON object")
    if entry.deliveries > max_deliveries:
        why = f"delivered {entry.deliveries} times without an ack (max_deliveries={max_deliveries})"
        return Burial(why + (f"; last error: {last_error}" if last_error else ""), doc)
    return None


def dead_letter_item(
    stream: str, group: str, consumer: str, entry: Entry, burial: Burial, now: float
) -> dict[str, Any]:
    """A dead-letter record with enough to replay: XADD `stream` * data <document>."""
    item = {
        "reason": burial.reason, "stream": stream, "group": group, "consumer": consumer,
        "entry_id": entry.entry_id, "deliveries": entry.deliveries, "document": burial.document,
        "dead_lettered_at": iso_utc(now),
    }  # fmt: skip
    if burial.document is None:
        raw = data_field(entry.fields or {})
        item["data"] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return item


def claim_outcome(reply: list[Any]) -> str:
    """XCLAIM of one id: "claimed", "trimmed" (nil entry: Redis 6.2) or "gone" (empty reply)."""
    if not reply:
        return "gone"  # another consumer took it first, or Redis >= 7 dropped it as deleted
    entry_id, fields = reply[0][0], reply[0][1]
    return "trimmed" if entry_id is None or not fields else "claimed"


def stream_entries(reply: Any) -> list[tuple[Any, Fields]]:
    """The entries of an XREADGROUP reply for one stream (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0])
    return list(reply[0][1])


def ensure_group(client: redis.Redis, stream: str, group: str, *, start: str = "$") -> bool:
    """Create the group (starting after `start`) if needed; True when it was created now."""
    try:
        client.xgroup_create(stream, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


def is_stream_name(name: str) -> bool:
    """`articles`, `duplicates`, `updates` or `topic:{slug}`: an output stream without the prefix."""
    return bool(STREAM_NAME.match(name))


def output_stream(prefix: str, name: str) -> str:
    """The Redis key of the output stream `name` (which `is_stream_name` accepted)."""
    if name.startswith("topic:"):
        return keys.topic_stream(prefix, name.removeprefix("topic:"))
    builders = {"articles": keys.articles_stream, "duplicates": keys.duplicates_stream}
    return builders.get(name, keys.updates_stream)(prefix)


def event_name(name: str) -> str:
    """What an entry of the stream `name` is: `article` (articles, topics), `duplicate`, `update`."""
    return EVENTS.get(name, "article")
