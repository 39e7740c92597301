"""Publishing article documents to Redis Streams, exactly once per article.

One Lua script decides and writes: it checks the article's identity keys (its
URL, its exact body, its GUID), then the near-duplicate index (`neardup.py`),
then assigns the story (`story.py`), and only then sets the keys, indexes the
body and XADDs. So a redelivered task, a retried publish or two workers racing
on two copies of one story add exactly one entry to each stream, and the
whole decision costs one round trip. docs/dedup.md describes the outcomes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from ingest import neardup, story
from ingest.dedup import article_ref
from ingest.models import Document

DEDUP_TTL_S = 30 * 86400  # identity keys (URL, body hash, GUID)
MIN_HASH_WORDS = 50  # shorter bodies (teasers, paywall stubs) are too alike to be matched by hash
HASH_HISTORY = 4  # body hashes remembered per article, newest first: an older one again is stale

PUBLISH_MAIN_LUA = """
-- KEYS: 1 seen:id  2 seen:hash|''  3 seen:guid|''  4 updates stream  5.. articles and topic streams
-- ARGV: 1 id  2 identity ttl  3 maxlen  4 payload (JSON object without story_id)  5 origin
--   6 body hash  7 kind (p = page, f = feed)  8 now  9 near-dup prefix  10 near-dup blob|''
--   11 near-dup window  12 capacity  13 ref  14 story prefix  15 story terms  16 story window
--   17 story threshold
local id, ttl, origin, hash, kind, now = ARGV[1], ARGV[2], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local seen_prefix = string.sub(KEYS[1], 1, #KEYS[1] - #id)

local function parse(rec)
  local o, r, k, t, s, h = string.match(rec, '^([^|]*)|(%d+)|(%a)|(%d+)|([^|]*)|([^|]*)$')
  if not o then return {origin = rec, rev = 1, kind = '', ts = 0, story = '', hashes = ''} end
  return {origin = o, rev = tonumber(r), kind = k, ts = tonumber(t), story = s, hashes = h}
end

local function record(rev, story, hashes)
  return table.concat({origin, rev, kind, math.floor(now), story, hashes}, '|')
end

local function story_of(other)
  local rec = redis.call('GET', seen_prefix .. other)
  local story = rec and parse(rec).story or ''
  return story ~= '' and story or other
end

local function with_story(story, revision)
  local tail = ',"story_id":"' .. story .. '"'
  if revision then tail = tail .. ',"revision":' .. revision end
  return string.sub(ARGV[4], 1, -2) .. tail .. '}'
end

local function index_body(story)
  if KEYS[2] ~= '' then redis.call('SET', KEYS[2], id, 'EX', ttl) end
  if ARGV[10] ~= '' then
    nd_insert(ARGV[9], now, tonumber(ARGV[11]), tonumber(ARGV[12]), ARGV[10], ARGV[13], id)
  end
end

local function update(rec, story)
  local rev, kept = rec.rev + 1, {hash}
  for old in string.gmatch(rec.hashes, '[^,]+') do
    if #kept < $history then kept[#kept + 1] = old end
  end
  redis.call('SET', KEYS[1], record(rev, story, table.concat(kept, ',')), 'EX', ttl)
  index_body(story)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'data', with_story(story, rev))
  return {'updated', id, story, rev, 'id'}
end

-- The same URL again: a redelivery, a copy from another entry, a stale copy, or an update.
local function known(rec)
  local story = rec.story ~= '' and rec.story or id
  local latest = string.match(rec.hashes, '^[^,]*')
  local again = rec.origin == origin and 'already' or 'duplicate'
  if hash == latest or rec.kind ~= 'p' or kind ~= 'p' then return {again, id, story, rec.rev, 'id'} end
  if string.find(',' .. rec.hashes .. ',', ',' .. hash .. ',', 1, true) then
    return {'already', id, story, rec.rev, 'id'}
  end
  return update(rec, story)
end

local rec = redis.call('GET', KEYS[1])
if rec then return known(parse(rec)) end
for i = 2, 3 do
  if KEYS[i] ~= '' then
    local seen = redis.call('GET', KEYS[i])
    if seen then return {'duplicate', seen, story_of(seen), 1, i == 2 and 'hash' or 'guid'} end
  end
end
if ARGV[10] ~= '' then
  local original = nd_find(ARGV[9], now, tonumber(ARGV[11]), ARGV[10], id)
  if original then return {'duplicate', original, story_of(original), 1, 'near'} end
end
local story = id
if ARGV[15] ~= '' then
  story = st_assign(ARGV[14], now, tonumber(ARGV[16]), tonumber(ARGV[17]), ARGV[15], id, ARGV[13])[1]
end
redis.call('SET', KEYS[1], record(1, story, hash), 'EX', ttl)
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], id, 'EX', ttl) end
index_body(story)
local payload = with_story(story, nil)
for i = 5, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[3], '*', 'data', payload)
end
return {'published', id, story, 1, ''}
""".replace("$history", str(HASH_HISTORY))

PUBLISH_LUA = neardup.NEARDUP_LUA + story.STORY_LUA + PUBLISH_MAIN_LUA

ONCE_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class DedupOptions:
    """How long each layer remembers, and the story threshold (settings feed these)."""

    window_s: float = neardup.DEFAULT_WINDOW_S  # near-duplicate index
    story_window_s: float = story.DEFAULT_WINDOW_S
    story_threshold: float = story.THRESHOLD
    capacity: int = neardup.DEFAULT_CAPACITY  # articles per slice assumed before there is history
    identity_ttl_s: int = DEDUP_TTL_S


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    status: str  # "published" | "duplicate" | "already" (a redelivery or stale copy) | "updated"
    original_id: str
    story_id: str = ""
    revision: int = 1
    layer: str = ""  # what recognised it: "id", "hash", "guid", "near"; "" when published


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """What `seen:id:{id}` remembers about a published article."""

    origin: str
    revision: int
    kind: str  # "p": body from the page, "f": from the feed
    published_ts: float
    story_id: str
    hashes: tuple[str, ...]


def parse_identity(raw: str) -> IdentityRecord:
    """`origin|revision|kind|unix time|story|hash,older hash,...` (older records: the origin alone)."""
    parts = raw.split("|")
    if len(parts) != 6:
        return IdentityRecord(raw, 1, "", 0.0, "", ())
    origin, revision, kind, stamp, story_id, hashes = parts
    return IdentityRecord(origin, int(revision), kind, float(stamp), story_id, tuple(hashes.split(",")))


def articles_stream(prefix: str) -> str:
    return f"{prefix}:articles"


def topic_stream(prefix: str, slug: str) -> str:
    return f"{prefix}:topic:{slug}"


def duplicates_stream(prefix: str) -> str:
    return f"{prefix}:duplicates"


def updates_stream(prefix: str) -> str:
    return f"{prefix}:updates"


def deadletter_stream(prefix: str) -> str:
    return f"{prefix}:deadletter"


def encode_document(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def encode_without_story(doc: Document) -> bytes:
    """The document as JSON without `story_id`, which the publish script appends once decided."""
    data = doc.to_dict()
    del data["story_id"]
    return encode_document(data)


def guid_key(guid: str | None) -> str | None:
    """A GUID identifies a story across feeds only when it is globally unique in form."""
    if not guid or not any(mark in guid for mark in (":", "/", "@")) or len(guid) < 12:
        return None
    return hashlib.sha1(guid.encode(), usedforsecurity=False).hexdigest()[:24]


def as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def is_hashable(doc: Document) -> bool:
    return bool(doc.content_hash) and len(doc.text.split()) >= MIN_HASH_WORDS


def body_kind(doc: Document) -> str:
    """Only bodies extracted from the page are compared for updates (feed text is a summary)."""
    return "p" if doc.extraction == "trafilatura" else "f"


def near_dup_blob(doc: Document) -> bytes:
    sig = neardup.signature(doc.text)
    return neardup.lookup_blob(sig) if sig is not None else b""


class RedisStreamSink:
    """Publishes documents to `{prefix}:articles` and `{prefix}:topic:{slug}`."""

    def __init__(
        self, client: redis.Redis, prefix: str, *, maxlen: int = 1_000_000,
        options: DedupOptions | None = None,
    ) -> None:  # fmt: skip
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.maxlen = maxlen
        self.options = options or DedupOptions()
        self._publish = client.register_script(PUBLISH_LUA)
        self._once = client.register_script(ONCE_LUA)

    def publish(
        self, doc: Document, *, origin: str, guid: str | None = None, now: float | None = None
    ) -> PublishOutcome:
        """Publish `doc` unless it, its body, its GUID or a near-copy of it was published before.

        `origin` names the feed entry behind the document: the same origin again
        is a redelivery ("already"), another origin is a copy ("duplicate"), and
        the same URL with a changed page body is an update ("updated").
        """
        keys = self.identity_keys(doc, guid) + self.stream_keys(doc)
        status, original, story_id, revision, layer = self._publish(
            keys=keys, args=self.publish_args(doc, origin, now or time.time())
        )
        return PublishOutcome(
            as_str(status), as_str(original), as_str(story_id), int(revision), as_str(layer)
        )

    def publish_args(self, doc: Document, origin: str, now: float) -> list[Any]:
        opts = self.options
        return [
            doc.id, opts.identity_ttl_s, self.maxlen, encode_without_story(doc), origin,
            doc.content_hash, body_kind(doc), now,
            neardup.index_prefix(self.prefix), near_dup_blob(doc), opts.window_s, opts.capacity,
            article_ref(doc.id),
            story.story_prefix(self.prefix), " ".join(story.story_terms(doc.title, doc.text)),
            opts.story_window_s, opts.story_threshold,
        ]  # fmt: skip

    def stream_keys(self, doc: Document) -> list[str]:
        topics = [topic_stream(self.prefix, t.slug) for t in doc.topics]
        return [updates_stream(self.prefix), articles_stream(self.prefix), *topics]

    def is_published(self, doc_id: str) -> bool:
        return bool(self.client.exists(f"{self.prefix}:seen:id:{doc_id}"))

    def identity(self, doc_id: str) -> IdentityRecord | None:
        raw = self.client.get(f"{self.prefix}:seen:id:{doc_id}")
        return parse_identity(as_str(raw)) if raw is not None else None

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
        ttl = self.options.identity_ttl_s
        added = self._once(keys=[marker_key, stream], args=[ttl, self.maxlen, encode_document(item)])
        return bool(added)
