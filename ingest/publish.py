"""Publishing article documents to Redis Streams, exactly once per article.

The check against everything already published and the XADDs happen in one
Lua script, so a redelivered task, a retried publish or two workers racing on
two copies of one story add exactly one entry to each stream.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from ingest.models import Document

DEDUP_TTL_S = 30 * 86400
MIN_HASH_WORDS = 50  # shorter bodies (teasers, paywall stubs) are too alike to be matched by hash

PUBLISH_LUA = """
local ttl = tonumber(ARGV[2])
local origin = redis.call('GET', KEYS[1])
if origin then
  if origin == ARGV[5] then return {'already', ARGV[1]} end
  return {'duplicate', ARGV[1]}
end
for i = 2, 3 do
  if KEYS[i] ~= '' then
    local seen = redis.call('GET', KEYS[i])
    if seen then return {'duplicate', seen} end
  end
end
redis.call('SET', KEYS[1], ARGV[5], 'EX', ttl)
for i = 2, 3 do
  if KEYS[i] ~= '' then redis.call('SET', KEYS[i], ARGV[1], 'EX', ttl) end
end
for i = 4, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[3], '*', 'data', ARGV[4])
end
return {'published', ARGV[1]}
"""

ONCE_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    status: str  # "published" | "duplicate" | "already" (this very article was published before)
    original_id: str


def articles_stream(prefix: str) -> str:
    return f"{prefix}:articles"


def topic_stream(prefix: str, slug: str) -> str:
    return f"{prefix}:topic:{slug}"


def duplicates_stream(prefix: str) -> str:
    return f"{prefix}:duplicates"


def deadletter_stream(prefix: str) -> str:
    return f"{prefix}:deadletter"


def encode_document(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def guid_key(guid: str | None) -> str | None:
    """A GUID identifies a story across feeds only when it is globally unique in form."""
    if not guid or not any(mark in guid for mark in (":", "/", "@")) or len(guid) < 12:
        return None
    return hashlib.sha1(guid.encode(), usedforsecurity=False).hexdigest()[:24]


def as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def is_hashable(doc: Document) -> bool:
    return bool(doc.content_hash) and len(doc.text.split()) >= MIN_HASH_WORDS


class RedisStreamSink:
    """Publishes documents to `{prefix}:articles` and `{prefix}:topic:{slug}`."""

    def __init__(self, client: redis.Redis, prefix: str, *, maxlen: int = 1_000_000) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.maxlen = maxlen
        self._publish = client.register_script(PUBLISH_LUA)
        self._once = client.register_script(ONCE_LUA)

    def publish(self, doc: Document, *, origin: str, guid: str | None = None) -> PublishOutcome:
        """Publish `doc` unless it, its body or its GUID was published before.

        `origin` names the feed entry behind the document: the same origin again
        is a redelivery ("already"), another origin is a copy ("duplicate").
        """
        keys = self.identity_keys(doc, guid)
        streams = [articles_stream(self.prefix)] + [topic_stream(self.prefix, t.slug) for t in doc.topics]
        payload = encode_document(doc.to_dict())
        args: list[str | int | bytes] = [doc.id, DEDUP_TTL_S, self.maxlen, payload, origin]
        status, original = self._publish(keys=keys + streams, args=args)
        return PublishOutcome(status=as_str(status), original_id=as_str(original))

    def is_published(self, doc_id: str) -> bool:
        return bool(self.client.exists(f"{self.prefix}:seen:id:{doc_id}"))

    def identity_keys(self, doc: Document, guid: str | None) -> list[str]:
        gkey = guid_key(guid)
        return [
            f"{self.prefix}:seen:id:{doc.id}",
            f"{self.prefix}:seen:hash:{doc.content_hash}" if is_hashable(doc) else "",
            f"{self.prefix}:seen:guid:{gkey}" if gkey else "",
        ]

    def record_duplicate(self, doc: Document, origin: str) -> bool:
        """Add `doc` (with duplicate_of set) to the duplicates stream once per origin."""
        return self.add_once(f"dup:{doc.id}:{origin}", duplicates_stream(self.prefix), doc.to_dict())

    def dead_letter(self, key: str, item: dict[str, Any]) -> bool:
        """Give up on an item: one entry in the dead-letter stream per key."""
        return self.add_once(f"dead:{key}", deadletter_stream(self.prefix), item)

    def add_once(self, marker: str, stream: str, item: dict[str, Any]) -> bool:
        marker_key = f"{self.prefix}:once:{marker}"
        added = self._once(keys=[marker_key, stream], args=[DEDUP_TTL_S, self.maxlen, encode_document(item)])
        return bool(added)
