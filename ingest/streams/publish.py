"""Publishing article documents to Redis Streams, exactly once per article.

Two steps, both keyed by the article id: the *decision* (`ingest/dedup/decide.py`) says what
the article is and records the revision to write; the *write* (`write.lua`) XADDs the document
to its streams unless that revision was written already, and marks it written. So a
redelivered task, a retried publish or a worker that died between the two steps (its
redelivery decides the same again and writes once) add exactly one entry per stream.

Many articles go in two pipelined round trips (`publish_many`): the decision is the expensive
part (near-duplicate bands, story postings); the write is a few microseconds.
docs/consumers.md describes the streams.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import redis

from ingest import keys, lua
from ingest.dedup.decide import (
    DedupOptions,
    IdentityRecord,
    PublishOutcome,
    RedisDedupIndex,
    Submission,
)
from ingest.models import Document

WRITTEN = ("published", "updated")  # the decisions that are written to streams
RECENT_STORIES = 10_000  # stories kept in `{prefix}:stories` for the look-ups and the desk


def encode_document(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def encode_decided(doc: Document, outcome: PublishOutcome) -> bytes:
    """The document as written: in the story the decision chose; an update carries its `revision`."""
    data = doc.to_dict()
    data["story_id"] = outcome.story_id or doc.story_id
    if outcome.status == "updated":
        data["revision"] = outcome.revision
    return encode_document(data)


class RedisStreamSink:
    """Publishes documents to `{prefix}:articles` and `{prefix}:topic:{slug}`, once each."""

    def __init__(
        self, client: redis.Redis, prefix: str, *, maxlen: int = 1_000_000,
        options: DedupOptions | None = None,
    ) -> None:  # fmt: skip
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.maxlen = maxlen
        self.index = RedisDedupIndex(client, prefix, options)
        self.options = self.index.options
        self._write = lua.register(client, __package__ or "ingest.streams", "write.lua")
        self._once = lua.register(client, __package__ or "ingest.streams", "once.lua")

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
        pipe = lua.ScriptPipeline(self.client)
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
        return self.index.decide_many(items, now=now)

    def write_many(self, decided: list[tuple[Document, PublishOutcome]]) -> int:
        """Write decided documents (one pipelined round trip); how many were not written before."""
        pipe = lua.ScriptPipeline(self.client)
        for doc, outcome in decided:
            self.queue_write(pipe, doc, outcome)
        return sum(1 for reply in pipe.execute() if reply == 1)

    def queue_write(self, pipe: lua.ScriptPipeline, doc: Document, outcome: PublishOutcome) -> None:
        story = outcome.story_id or doc.story_id
        script_keys = [
            keys.seen_id(self.prefix, doc.id), keys.article_ref(self.prefix, doc.id),
            keys.story_members(self.prefix, story), keys.recent_stories(self.prefix),
            *self.stream_keys(doc, outcome.status),
        ]  # fmt: skip
        ref_field = "updates" if outcome.status == "updated" else "articles"
        args = [outcome.revision, self.maxlen, encode_decided(doc, outcome), ref_field, doc.id, story]
        pipe.add(self._write, script_keys, [*args, self.options.identity_ttl_s, RECENT_STORIES])

    def stream_keys(self, doc: Document, status: str = "published") -> list[str]:
        """An update goes to the updates stream only; a new article to articles and its topics."""
        if status == "updated":
            return [keys.updates_stream(self.prefix)]
        return [
            keys.articles_stream(self.prefix),
            *(keys.topic_stream(self.prefix, t.slug) for t in doc.topics),
        ]

    def is_published(self, doc_id: str) -> bool:
        return self.index.is_known(doc_id)

    def identity(self, doc_id: str) -> IdentityRecord | None:
        return self.index.identity(doc_id)

    def record_duplicate(self, doc: Document, origin: str) -> bool:
        """Add `doc` (with duplicate_of set) to the duplicates stream once per origin."""
        pipe = lua.ScriptPipeline(self.client)
        self.queue_duplicate(pipe, doc, origin)
        return bool(pipe.execute()[0])

    def dead_letter(self, key: str, item: dict[str, Any]) -> bool:
        """Give up on an item: one entry in the dead-letter stream per key."""
        return self.add_once(f"dead:{key}", keys.deadletter_stream(self.prefix), item)

    def add_once(self, marker: str, stream: str, item: dict[str, Any]) -> bool:
        pipe = lua.ScriptPipeline(self.client)
        self.queue_once(pipe, marker, stream, item)
        return bool(pipe.execute()[0])

    def queue_duplicate(self, pipe: lua.ScriptPipeline, doc: Document, origin: str) -> None:
        self.queue_once(pipe, f"dup:{doc.id}:{origin}", keys.duplicates_stream(self.prefix), doc.to_dict())

    def queue_once(self, pipe: lua.ScriptPipeline, marker: str, stream: str, item: dict[str, Any]) -> None:
        args = [self.options.identity_ttl_s, self.maxlen, encode_document(item)]
        pipe.add(self._once, [keys.once(self.prefix, marker), stream], args)
