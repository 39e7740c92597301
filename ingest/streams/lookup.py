"""Look-ups over the output streams: one article, one story, the recent stories.

`streams/write.lua` records, with every stream write, where the document went
(`{prefix}:ref:{id}`: the `articles` entry of the first revision and the `updates` entry of
the latest), the article in its story (`{prefix}:members:{story_id}`, by first-seen time)
and the story among the recent ones (`{prefix}:stories`). Documents are read back from the
streams themselves, so a document trimmed from its stream (NEWSWIRE_STREAM_MAXLEN, retention)
is no longer found. Every look-up is a few pipelined round trips, whatever the story's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from ingest import keys
from ingest.models import iso_utc
from ingest.streams.entries import as_str, decode_document

MAX_STORY_ARTICLES = 500  # the oldest of a story's articles a look-up returns
SUMMARY_FIELDS = ("id", "url", "source", "title", "summary", "published_at", "language", "topics", "story_id")


@dataclass(frozen=True, slots=True)
class Found:
    """A document as stored: its entry, the stream it is in, when its article was first seen."""

    entry_id: str
    stream: str
    document: dict[str, Any]
    first_seen_ms: int

    def to_dict(self, *, full: bool = True) -> dict[str, Any]:
        doc = self.document if full else {k: self.document.get(k) for k in SUMMARY_FIELDS}
        return {"first_seen": iso_ms(self.first_seen_ms), "entry_id": self.entry_id, "document": doc}


def iso_ms(ms: int) -> str:
    return iso_utc(ms / 1000)


def entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


class RedisLookups:
    """Reads the look-up keys of one deployment (`prefix`); the client is passed in."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix

    def article(self, article_id: str) -> Found | None:
        """The latest revision of one article, or None (unknown, or trimmed from its stream)."""
        return self.articles([article_id]).get(article_id)

    def articles(self, article_ids: Iterable[str]) -> dict[str, Found]:
        """The latest revision of each article still in the streams, by id (two round trips)."""
        wanted = list(dict.fromkeys(article_ids))
        pipe = self.client.pipeline(transaction=False)
        for article_id in wanted:
            pipe.hgetall(keys.article_ref(self.prefix, article_id))
        places = [latest_place(self.prefix, ref) for ref in pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        for place in places:
            if place is not None:
                pipe.xrange(place[1], place[0], place[0], count=1)
        replies = iter(pipe.execute())
        found = {}
        for article_id, place in zip(wanted, places, strict=True):
            if place is not None and (doc := first_document(next(replies))) is not None:
                found[article_id] = Found(place[0], place[1], doc, place[2])
        return found

    def story(self, story_id: str) -> dict[str, Any] | None:
        """The story's articles oldest first, with sources and first-seen times; None if unknown."""
        stories = self.stories([story_id], full=True)
        return stories[0] if stories else None

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The `limit` stories with the newest articles, newest first (summaries, no text)."""
        ids = self.client.zrevrange(keys.recent_stories(self.prefix), 0, max(0, limit - 1))
        return self.stories([as_str(i) for i in ids], full=False)

    def stories(self, story_ids: list[str], *, full: bool) -> list[dict[str, Any]]:
        pipe = self.client.pipeline(transaction=False)
        for story_id in story_ids:
            pipe.zrange(keys.story_members(self.prefix, story_id), 0, MAX_STORY_ARTICLES - 1)
        members = [[as_str(m) for m in reply] for reply in pipe.execute()]
        found = self.articles(m for group in members for m in group)
        out = []
        for story_id, group in zip(story_ids, members, strict=True):
            docs = [found[m] for m in group if m in found]
            if docs:
                out.append(summarize_story(story_id, docs, full=full))
        return out

    def last_entry_id(self, stream: str) -> str:
        """The id of the newest entry of `stream` ("0-0" when it is empty or missing)."""
        newest = self.client.xrevrange(stream, count=1)
        return as_str(newest[0][0]) if newest else "0-0"


def latest_place(prefix: str, ref: dict[Any, Any]) -> tuple[str, str, int] | None:
    """(entry id, stream, first-seen ms) of an article's latest revision, from its ref hash."""
    fields = {as_str(k): as_str(v) for k, v in ref.items()}
    first = fields.get("articles") or fields.get("updates")
    if first is None:
        return None
    if "updates" in fields:
        return fields["updates"], keys.updates_stream(prefix), entry_ms(first)
    return first, keys.articles_stream(prefix), entry_ms(first)


def first_document(reply: list[Any]) -> dict[str, Any] | None:
    return decode_document(reply[0][1]) if reply else None


def summarize_story(story_id: str, docs: list[Found], *, full: bool) -> dict[str, Any]:
    """A story as the desk shows it: latest headline, sources, first seen, count, topics."""
    ordered = sorted(docs, key=lambda f: (f.first_seen_ms, f.entry_id))
    latest = ordered[-1].document
    sources = list(dict.fromkeys(f.document.get("source") or "" for f in ordered if f.document.get("source")))
    return {
        "story_id": story_id, "count": len(ordered), "headline": latest.get("title"),
        "first_seen": iso_ms(ordered[0].first_seen_ms), "last_seen": iso_ms(ordered[-1].first_seen_ms),
        "sources": sources, "topics": merge_topics(f.document for f in ordered),
        "articles": [f.to_dict(full=full) for f in ordered],
    }  # fmt: skip


def merge_topics(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each topic of the story once: its best score and the evidence of every article tagged with it."""
    merged: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for match in doc.get("topics") or ():
            slot = merged.setdefault(match["slug"], {"slug": match["slug"], "score": 0.0, "evidence": []})
            slot["score"] = max(slot["score"], match.get("score", 0.0))
            slot["evidence"].extend(match.get("evidence") or ())
    return sorted(merged.values(), key=lambda t: -t["score"])
