"""Publishing article documents to Redis Streams, exactly once per article.

Two Lua scripts, both keyed by the article id. The *decision* (DECIDE_LUA) checks
the article's identity keys (its URL, its exact body, its GUID), then the
near-duplicate index (`neardup.py`), assigns the story (`story.py`), and records
the article under `seen:id:{id}` with the revision to write; atomic, so two
workers racing on two copies of one story decide "published" for one of them
only. The *write* (WRITE_LUA) XADDs the document to its streams unless that
revision was written already, and marks it written. So a redelivered task, a
retried publish or a worker that died between the two steps (its redelivery
decides the same again and writes once) add exactly one entry per stream.

Split in two so that many articles go in two pipelined round trips
(`publish_many`): the decision is the expensive part (near-duplicate bands,
story postings); the write is a few microseconds. docs/dedup.md describes the
outcomes, docs/consumers.md the streams.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
import redis
from redis.commands.core import Script

from ingest.dedup import neardup, story
from ingest.dedup.identity import article_ref
from ingest.models import Document

DEDUP_TTL_S = 30 * 86400  # identity keys (URL, body hash, GUID)
MIN_HASH_WORDS = 50  # shorter bodies (teasers, paywall stubs) are too alike to be matched by hash
HASH_HISTORY = 4  # body hashes remembered per article, newest first: an older one again is stale

DECIDE_MAIN_LUA = """
-- KEYS: 1 seen:id  2 seen:hash|''  3 seen:guid|''
-- ARGV: 1 id  2 identity ttl  3 origin  4 body hash  5 kind (p = page, f = feed)  6 now
--   7 near-dup prefix  8 near-dup blob|''  9 near-dup window  10 capacity  11 ref  12 story prefix
--   13 story terms  14 story window  15 story threshold
-- The record `seen:id:{id}` is "origin|revision|kind|time|story|hashes|w{written revision}"; the
-- write script (WRITE_LUA) adds the document to its streams and sets the last field.
local id, ttl, origin, hash, kind, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local seen_prefix = string.sub(KEYS[1], 1, #KEYS[1] - #id)
local RECORD = '^([^|]*)|(%d+)|(%a)|(%d+)|([^|]*)|([^|]*)'

local function parse(rec)
  local o, r, k, t, s, h = string.match(rec, RECORD .. '$')
  local w = nil
  if not o then
    o, r, k, t, s, h, w = string.match(rec, RECORD .. '|w(%d+)$')
  end
  if not o then return {origin = rec, rev = 1, kind = '', ts = 0, story = '', hashes = '', written = 1} end
  r = tonumber(r)
  return {origin = o, rev = r, kind = k, ts = tonumber(t), story = s, hashes = h, written = tonumber(w or r)}
end

local function record(rev, story, hashes, written)
  return table.concat({origin, rev, kind, math.floor(now), story, hashes, 'w' .. written}, '|')
end

local function story_of(other)
  local rec = redis.call('GET', seen_prefix .. other)
  local story = rec and parse(rec).story or ''
  return story ~= '' and story or other
end

local function index_body()
  if KEYS[2] ~= '' then redis.call('SET', KEYS[2], id, 'EX', ttl) end
  if ARGV[8] ~= '' then
    nd_insert(ARGV[7], now, tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[8], ARGV[11], id)
  end
end

local function update(rec, story)
  local rev, kept = rec.rev + 1, {hash}
  for old in string.gmatch(rec.hashes, '[^,]+') do
    if #kept < $history then kept[#kept + 1] = old end
  end
  redis.call('SET', KEYS[1], record(rev, story, table.concat(kept, ','), rec.written), 'EX', ttl)
  index_body()
  return {'updated', id, story, rev, 'id'}
end

-- The same URL again: a redelivery, a copy from another entry, a stale copy, or an update.
local function known(rec)
  local story = rec.story ~= '' and rec.story or id
  local latest = string.match(rec.hashes, '^[^,]*')
  local same = hash == latest or rec.kind ~= 'p' or kind ~= 'p'
  if same and rec.origin == origin and rec.written < rec.rev then
    -- decided, but its write did not happen (the worker died in between): decide the same again
    return {rec.rev == 1 and 'published' or 'updated', id, story, rec.rev, ''}
  end
  local again = rec.origin == origin and 'already' or 'duplicate'
  if same then return {again, id, story, rec.rev, 'id'} end
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
if ARGV[8] ~= '' then
  local original = nd_find(ARGV[7], now, tonumber(ARGV[9]), ARGV[8], id)
  if original then return {'duplicate', original, story_of(original), 1, 'near'} end
end
local story = id
if ARGV[13] ~= '' then
  story = st_assign(ARGV[12], now, tonumber(ARGV[14]), tonumber(ARGV[15]), ARGV[13], id, ARGV[11])[1]
end
redis.call('SET', KEYS[1], record(1, story, hash, 0), 'EX', ttl)
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], id, 'EX', ttl) end
index_body()
return {'published', id, story, 1, ''}
""".replace("$history", str(HASH_HISTORY))

DECIDE_LUA = neardup.NEARDUP_LUA + story.STORY_LUA + DECIDE_MAIN_LUA

# The idempotent write: each revision of an article enters its streams once, whoever writes it.
WRITE_LUA = """
-- KEYS: 1 seen:id  2.. streams   ARGV: 1 revision  2 maxlen  3 document (JSON)
local rec = redis.call('GET', KEYS[1])
if not rec then return -1 end
local head, written = string.match(rec, '^(.*)|w(%d+)$')
if not head or tonumber(written) >= tonumber(ARGV[1]) then return 0 end
for i = 2, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[3])
end
redis.call('SET', KEYS[1], head .. '|w' .. ARGV[1], 'KEEPTTL')
return 1
"""

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
    """`origin|revision|kind|unix time|story|hash,older hash,...|w{written revision}` (records written
    before the two-step publish have no last field; older ones still hold the origin alone)."""
    parts = raw.split("|")
    if len(parts) not in (6, 7):
        return IdentityRecord(raw, 1, "", 0.0, "", ())
    origin, revision, kind, stamp, story_id, hashes = parts[:6]
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


def encode_decided(doc: Document, outcome: PublishOutcome) -> bytes:
    """The document as written: in the story the decision chose; an update carries its `revision`."""
    data = doc.to_dict()
    data["story_id"] = outcome.story_id or doc.story_id
    if outcome.status == "updated":
        data["revision"] = outcome.revision
    return encode_document(data)


def guid_key(guid: str | None) -> str | None:
    """A GUID identifies a story across feeds only when it is globally unique in form."""
    if not guid or not any(mark in guid for mark in (":", "/", "@")) or len(guid) < 12:
        return None
    return hashlib.sha1(guid.encode(), usedforsecurity=False).hexdigest()[:24]


def as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def is_hashable(doc: Document) -> bool:
    return bool(doc.content_hash) and len(doc.text.split(maxsplit=MIN_HASH_WORDS - 1)) >= MIN_HASH_WORDS


def body_kind(doc: Document) -> str:
    """Only bodies extracted from the page are compared for updates (feed text is a summary)."""
    return "p" if doc.extraction == "trafilatura" else "f"


def near_dup_blob(doc: Document) -> bytes:
    sig = neardup.signature(doc.text)
    return neardup.lookup_blob(sig) if sig is not None else b""


class ScriptPipeline:
    """Script calls sent in one round trip as bare EVALSHAs; the scripts are loaded again (and the
    calls repeated: every script here is idempotent) only when the server has lost them. (A redis-py
    pipeline asks SCRIPT EXISTS before each execute: one more round trip per batch.)"""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[Script, list[Any], list[Any]]] = []

    def __len__(self) -> int:
        return len(self.calls)

    def add(self, script: Script, keys: list[Any], args: list[Any]) -> None:
        self.calls.append((script, keys, args))

    def execute(self) -> list[Any]:
        if not self.calls:
            return []
        try:
            return self.send()
        except redis.exceptions.NoScriptError:
            for script in {call[0] for call in self.calls}:
                self.client.script_load(script.script)
            return self.send()

    def send(self) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for script, keys, args in self.calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(pipe.execute())


WRITTEN = ("published", "updated")  # the decisions that are written to streams


@dataclass(frozen=True, slots=True)
class Submission:
    """One article to publish: the document, the feed entry behind it, its GUID."""

    doc: Document
    origin: str
    guid: str | None = None


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
        self._decide = client.register_script(DECIDE_LUA)
        self._write = client.register_script(WRITE_LUA)
        self._once = client.register_script(ONCE_LUA)

    def publish(
        self, doc: Document, *, origin: str, guid: str | None = None, now: float | None = None
    ) -> PublishOutcome:
        """Publish `doc` unless it, its body, its GUID or a near-copy of it was published before.

        `origin` names the feed entry behind the document: the same origin again
        is a redelivery ("already"), another origin is a copy ("duplicate"), and
        the same URL with a changed page body is an update ("updated").
        """
        return self.publish_many([Submission(doc, origin, guid)], now=now, record_copies=False)[0]

    def publish_many(
        self, items: list[Submission], *, now: float | None = None, record_copies: bool = True
    ) -> list[PublishOutcome]:
        """Decide every item in one pipelined round trip (in order, so a copy later in the batch
        sees the earlier one), then write the published and updated ones (and, with
        `record_copies`, each copy to the duplicates stream) in a second."""
        outcomes = self.decide_many(items, now=now)
        pipe = ScriptPipeline(self.client)
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.status in WRITTEN:
                self.queue_write(pipe, item.doc, outcome)
            elif outcome.status == "duplicate" and record_copies:
                copy = replace(item.doc, duplicate_of=outcome.original_id, story_id=outcome.story_id)
                self.queue_duplicate(pipe, copy, item.origin)
        for reply in pipe.execute():
            if reply == -1:
                raise RuntimeError("an article's decision record vanished before its write")
        return outcomes

    def decide_many(self, items: list[Submission], *, now: float | None = None) -> list[PublishOutcome]:
        """The first step alone (one pipelined round trip): what each item is; nothing written."""
        if not items:
            return []
        stamp = now or time.time()
        pipe = ScriptPipeline(self.client)
        for item in items:
            pipe.add(
                self._decide,
                self.identity_keys(item.doc, item.guid),
                self.decide_args(item.doc, item.origin, stamp),
            )
        return [as_outcome(reply) for reply in pipe.execute()]

    def write_many(self, decided: list[tuple[Document, PublishOutcome]]) -> int:
        """Write decided documents (one pipelined round trip); how many were not written before."""
        pipe = ScriptPipeline(self.client)
        for doc, outcome in decided:
            self.queue_write(pipe, doc, outcome)
        return sum(1 for reply in pipe.execute() if reply == 1)

    def queue_write(self, pipe: ScriptPipeline, doc: Document, outcome: PublishOutcome) -> None:
        keys = [f"{self.prefix}:seen:id:{doc.id}", *self.stream_keys(doc, outcome.status)]
        args = [outcome.revision, self.maxlen, encode_decided(doc, outcome)]
        pipe.add(self._write, keys, args)

    def decide_args(self, doc: Document, origin: str, now: float) -> list[Any]:
        opts = self.options
        return [
            doc.id, opts.identity_ttl_s, origin, doc.content_hash, body_kind(doc), now,
            neardup.index_prefix(self.prefix), near_dup_blob(doc), opts.window_s, opts.capacity,
            article_ref(doc.id),
            story.story_prefix(self.prefix), " ".join(story.story_terms(doc.title, doc.text)),
            opts.story_window_s, opts.story_threshold,
        ]  # fmt: skip

    def stream_keys(self, doc: Document, status: str = "published") -> list[str]:
        """An update goes to the updates stream only; a new article to articles and its topics."""
        if status == "updated":
            return [updates_stream(self.prefix)]
        return [articles_stream(self.prefix), *(topic_stream(self.prefix, t.slug) for t in doc.topics)]

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
        pipe = ScriptPipeline(self.client)
        self.queue_duplicate(pipe, doc, origin)
        return bool(pipe.execute()[0])

    def dead_letter(self, key: str, item: dict[str, Any]) -> bool:
        """Give up on an item: one entry in the dead-letter stream per key."""
        return self.add_once(f"dead:{key}", deadletter_stream(self.prefix), item)

    def add_once(self, marker: str, stream: str, item: dict[str, Any]) -> bool:
        pipe = ScriptPipeline(self.client)
        self.queue_once(pipe, marker, stream, item)
        return bool(pipe.execute()[0])

    def queue_duplicate(self, pipe: ScriptPipeline, doc: Document, origin: str) -> None:
        self.queue_once(pipe, f"dup:{doc.id}:{origin}", duplicates_stream(self.prefix), doc.to_dict())

    def queue_once(self, pipe: ScriptPipeline, marker: str, stream: str, item: dict[str, Any]) -> None:
        marker_key = f"{self.prefix}:once:{marker}"
        args = [self.options.identity_ttl_s, self.maxlen, encode_document(item)]
        pipe.add(self._once, [marker_key, stream], args)


def as_outcome(reply: list[Any]) -> PublishOutcome:
    status, original, story_id, revision, layer = reply
    return PublishOutcome(as_str(status), as_str(original), as_str(story_id), int(revision), as_str(layer))
