"""The dedup decision: is an article new, a copy of one published before, a redelivery, an update?

One Lua script (`decide.lua`, with the near-duplicate and story libraries) per article, atomic
and keyed by the article id. It checks the article's identity keys (its URL, its exact body, its
GUID), then the near-duplicate index (`neardup.py`), assigns the story (`story.py`), and records
the article under `seen:id:{id}` with the revision to write. Writing the document to its streams
is the second step (`ingest/streams/publish.py`). docs/dedup.md describes the outcomes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from ingest import keys, lua
from ingest.dedup import neardup, story
from ingest.dedup.identity import article_ref
from ingest.models import Document

DEDUP_TTL_S = 30 * 86400  # identity keys (URL, body hash, GUID)
MIN_HASH_WORDS = 50  # shorter bodies (teasers, paywall stubs) are too alike to be matched by hash
HASH_HISTORY = 4  # body hashes remembered per article, newest first: an older one again is stale
DECIDE_FILES = ("neardup.lua", "story.lua", "decide.lua")  # the libraries, then the decision


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


@dataclass(frozen=True, slots=True)
class Submission:
    """One article to publish: the document, the feed entry behind it, its GUID."""

    doc: Document
    origin: str
    guid: str | None = None


@dataclass(frozen=True, slots=True)
class DecideInput:
    """What decide.lua is given for one article: one JSON structure, the two binary parts beside it
    (the file's header documents every field)."""

    article_id: str
    origin: str
    content_hash: str
    kind: str
    now: float
    options: DedupOptions
    prefix: str
    story_terms: str
    story_time: float
    blob: bytes
    ref: bytes
    version_ref: bytes

    def args(self) -> list[Any]:
        opts = self.options
        structure = {
            "id": self.article_id, "origin": self.origin, "hash": self.content_hash, "kind": self.kind,
            "now": self.now, "ttl": opts.identity_ttl_s, "history": HASH_HISTORY,
            "neardup": {"prefix": keys.neardup_index(self.prefix), "window": opts.window_s,
                        "capacity": opts.capacity},
            "story": {"prefix": keys.story_index(self.prefix), "terms": self.story_terms,
                      "time": self.story_time, "window": opts.story_window_s,
                      "threshold": opts.story_threshold},
        }  # fmt: skip
        return [orjson.dumps(structure), self.blob, self.ref, self.version_ref]


def decide_input(doc: Document, origin: str, now: float, prefix: str, options: DedupOptions) -> DecideInput:
    """The decision's input for one document (pure but for the signature's arithmetic)."""
    return DecideInput(
        article_id=doc.id, origin=origin, content_hash=doc.content_hash, kind=body_kind(doc), now=now,
        options=options, prefix=prefix, story_terms=" ".join(story.story_terms(doc.title, doc.text)),
        story_time=story.article_time(doc.published_at, now),
        blob=near_dup_blob(doc), ref=article_ref(doc.id),
        version_ref=neardup.version_ref(doc.id, doc.content_hash),
    )  # fmt: skip


def parse_identity(raw: str) -> IdentityRecord:
    """`origin|revision|kind|unix time|story|hash,older hash,...|w{written revision}` (records written
    before the two-step publish have no last field; older ones still hold the origin alone)."""
    parts = raw.split("|")
    if len(parts) not in (6, 7):
        return IdentityRecord(raw, 1, "", 0.0, "", ())
    origin, revision, kind, stamp, story_id, hashes = parts[:6]
    return IdentityRecord(origin, int(revision), kind, float(stamp), story_id, tuple(hashes.split(",")))


def guid_key(guid: str | None) -> str | None:
    """A GUID identifies a story across feeds only when it is globally unique in form."""
    if not guid or not any(mark in guid for mark in (":", "/", "@")) or len(guid) < 12:
        return None
    return hashlib.sha1(guid.encode(), usedforsecurity=False).hexdigest()[:24]


def is_hashable(doc: Document) -> bool:
    return bool(doc.content_hash) and len(doc.text.split(maxsplit=MIN_HASH_WORDS - 1)) >= MIN_HASH_WORDS


def body_kind(doc: Document) -> str:
    """Only bodies extracted from the page are compared for updates (feed text is a summary)."""
    return "p" if doc.extraction == "trafilatura" else "f"


def near_dup_blob(doc: Document) -> bytes:
    sig = neardup.signature(doc.text)
    return neardup.lookup_blob(sig) if sig is not None else b""


def identity_keys(prefix: str, doc: Document, guid: str | None) -> list[str]:
    """decide.lua's KEYS: the article's record, its body hash and its GUID ('' where not used)."""
    gkey = guid_key(guid)
    return [
        keys.seen_id(prefix, doc.id),
        keys.seen_hash(prefix, doc.content_hash) if is_hashable(doc) else "",
        keys.seen_guid(prefix, gkey) if gkey else "",
    ]


def as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def as_outcome(reply: list[Any]) -> PublishOutcome:
    status, original, story_id, revision, layer = reply
    return PublishOutcome(as_str(status), as_str(original), as_str(story_id), int(revision), as_str(layer))


class RedisDedupIndex:
    """The decision over everything published before: identity keys, near-duplicates, stories."""

    def __init__(self, client: redis.Redis, prefix: str, options: DedupOptions | None = None) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.options = options or DedupOptions()
        self.script = lua.register(client, __package__ or "ingest.dedup", *DECIDE_FILES)

    def queue(self, pipe: lua.ScriptPipeline, item: Submission, now: float) -> None:
        data = decide_input(item.doc, item.origin, now, self.prefix, self.options)
        pipe.add(self.script, identity_keys(self.prefix, item.doc, item.guid), data.args())

    def decide_many(self, items: list[Submission], *, now: float | None = None) -> list[PublishOutcome]:
        """Decide every item in one pipelined round trip, in order (a copy later in the batch sees
        the earlier one); records each decision, writes no stream."""
        if not items:
            return []
        stamp = now or time.time()
        pipe = lua.ScriptPipeline(self.client)
        for item in items:
            self.queue(pipe, item, stamp)
        return [as_outcome(reply) for reply in pipe.execute()]

    def identity(self, doc_id: str) -> IdentityRecord | None:
        raw = self.client.get(keys.seen_id(self.prefix, doc_id))
        return parse_identity(as_str(raw)) if raw is not None else None

    def is_known(self, doc_id: str) -> bool:
        return bool(self.client.exists(keys.seen_id(self.prefix, doc_id)))
