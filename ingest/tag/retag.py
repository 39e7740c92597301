"""Re-tagging recent articles after a topic definition changed.

Reads `{prefix}:articles` from a point in time, tags each document with the
current topics, and adds the ones that now match a topic they did not match
when published to that topic's stream — once per (topic, article), however
often it runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from ingest.keys import articles_stream, topic_stream
from ingest.models import TopicMatch
from ingest.streams.publish import RedisStreamSink
from ingest.tag.topics import TopicSet, tag_article

BATCH = 500


@dataclass(frozen=True, slots=True)
class RetagReport:
    articles: int
    added: dict[str, int]  # slug -> articles newly added to its stream

    def to_dict(self) -> dict[str, Any]:
        return {"articles": self.articles, "added": self.added, "added_total": sum(self.added.values())}


def newly_matched(doc: dict[str, Any], matches: tuple[TopicMatch, ...]) -> list[TopicMatch]:
    """Topics that match now and were not given when the document was published."""
    before = {t["slug"] for t in doc.get("topics") or []}
    return [m for m in matches if m.slug not in before]


def iter_documents(client: redis.Redis, stream: str, since_ms: int) -> Iterator[dict[str, Any]]:
    start = f"{since_ms}-0"
    while True:
        batch: Any = client.xrange(stream, min=start, count=BATCH)
        for _, fields in batch:
            if fields and b"data" in fields:
                yield orjson.loads(fields[b"data"])
        if len(batch) < BATCH:
            return
        last = batch[-1][0].decode()
        start = "(" + last


def retag_articles(
    client: redis.Redis, sink: RedisStreamSink, topics: TopicSet, since_ms: int
) -> RetagReport:
    added: Counter[str] = Counter()
    seen = 0
    for doc in iter_documents(client, articles_stream(sink.prefix), since_ms):
        seen += 1
        matches = tag_article(topics, title=doc["title"], text=doc["text"], language=doc.get("language"))
        for match in newly_matched(doc, matches):
            tagged = {**doc, "topics": [*doc.get("topics", []), match.to_dict()]}
            stream = topic_stream(sink.prefix, match.slug)
            if sink.add_once(f"retag:{match.slug}:{doc['id']}", stream, tagged):
                added[match.slug] += 1
    return RetagReport(articles=seen, added=dict(sorted(added.items())))


def parse_duration(text: str) -> int:
    """'90s', '30m', '24h', '7d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = text[:-1], text[-1:].lower()
    if unit not in units or not value.isdigit():
        raise ValueError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return int(value) * units[unit]
