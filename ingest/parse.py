"""Feed documents (RSS 0.9x/1.0/2.0, Atom, JSON Feed) into `FeedPage`.

feedparser's dicts stop here: the rest of the pipeline sees `FeedEntry`.
feedparser does not read JSON Feed, so a small adapter maps it to the same model.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import orjson

from ingest.models import FeedEntry, FeedPage

MAX_ENTRIES = 500  # a feed with more items than this is cut, newest first as served
JSON_FEED_VERSIONS = ("https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1")
SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}


class FeedParseError(ValueError):
    """The document is not a feed we can read (and has no recoverable entries)."""


def parse_feed(body: bytes, url: str, content_type: str = "") -> FeedPage:
    """Parse one feed document fetched from `url`."""
    if is_json_feed(body, content_type):
        return parse_json_feed(body, url)
    return parse_xml_feed(body, url)


def is_json_feed(body: bytes, content_type: str) -> bool:
    if "json" in content_type.lower():
        return True
    return body.lstrip()[:1] == b"{"


def parse_xml_feed(body: bytes, url: str) -> FeedPage:
    parsed = feedparser.parse(body, response_headers={"content-location": url})
    entries = parsed.get("entries") or []
    bozo = str(parsed.get("bozo_exception") or "") or None
    if not entries and not parsed.get("version"):
        raise FeedParseError(f"not a feed: {bozo or 'no RSS/Atom/JSON Feed root element'}")
    feed = parsed.get("feed") or {}
    title = clean(feed.get("title")) or None
    raw = [xml_entry_fields(e, url) for e in entries[:MAX_ENTRIES]]
    return FeedPage(title=title, entries=build_entries(raw, url, title), ttl_s=ttl_hint(feed), bozo=bozo)


def xml_entry_fields(entry: Mapping[str, Any], base: str) -> dict[str, Any]:
    contents = entry.get("content") or []
    content_html = next((c.get("value", "") for c in contents if "html" in c.get("type", "")), "")
    if not content_html and contents:
        content_html = contents[0].get("value", "")
    link = entry.get("link") or None
    return {
        "guid": clean(entry.get("id")) or None,
        "link": urljoin(base, link) if link else None,
        "title": clean(entry.get("title")),
        "summary": entry.get("summary") or "",
        "content_html": content_html,
        "authors": tuple(a["name"] for a in entry.get("authors") or [] if a.get("name")),
        "published_at": struct_to_iso(entry.get("published_parsed") or entry.get("updated_parsed")),
    }


def ttl_hint(feed: Mapping[str, Any]) -> int | None:
    """The publisher's own polling hint in seconds: <ttl> (minutes) or sy:updatePeriod/Frequency."""
    ttl = feed.get("ttl")
    if ttl and str(ttl).strip().isdigit():
        return int(str(ttl).strip()) * 60
    period = SY_PERIODS.get(str(feed.get("sy_updateperiod", "")).strip().lower())
    if period is None:
        return None
    frequency = str(feed.get("sy_updatefrequency", "1")).strip()
    return period // max(1, int(frequency)) if frequency.isdigit() else period


def parse_json_feed(body: bytes, url: str) -> FeedPage:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedParseError(f"not a feed: invalid JSON ({exc})") from exc
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(JSON_FEED_VERSIONS[0]):
        raise FeedParseError("not a feed: JSON without a jsonfeed.org version")
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedParseError("not a feed: JSON Feed without an items list")
    title = clean(data.get("title")) or None
    raw = [json_item_fields(i, url) for i in items[:MAX_ENTRIES] if isinstance(i, dict)]
    return FeedPage(title=title, entries=build_entries(raw, url, title))


def json_item_fields(item: Mapping[str, Any], base: str) -> dict[str, Any]:
    link = item.get("url") or item.get("external_url")
    authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
    return {
        "guid": clean(item.get("id")) or None,
        "link": urljoin(base, str(link)) if link else None,
        "title": clean(item.get("title")),
        "summary": str(item.get("summary") or ""),
        "content_html": str(item.get("content_html") or item.get("content_text") or ""),
        "authors": tuple(str(a["name"]) for a in authors if isinstance(a, dict) and a.get("name")),
        "published_at": iso_to_utc(item.get("date_published") or item.get("date_modified")),
    }


def build_entries(raw: list[dict[str, Any]], feed_url: str, source: str | None) -> tuple[FeedEntry, ...]:
    guid_counts = Counter(r["guid"] for r in raw if r["guid"])
    entries = []
    for fields in raw:
        if not (fields["link"] or fields["title"] or fields["summary"]):
            continue
        key = entry_key(fields["guid"], fields["link"], fields["title"], fields["summary"], guid_counts)
        entries.append(FeedEntry(feed_url=feed_url, key=key, source=source, **fields))
    return tuple(entries)


def entry_key(
    guid: str | None, link: str | None, title: str, summary: str, guid_counts: Mapping[str, int]
) -> str:
    """Stable identity: GUID, GUID+link when GUIDs collide, link, then title+summary."""
    if guid and guid_counts.get(guid, 0) > 1:
        basis = f"g:{guid}|l:{link or ''}"
    elif guid:
        basis = f"g:{guid}"
    elif link:
        basis = f"l:{link}"
    else:
        basis = f"t:{title}|s:{summary}"
    return hashlib.sha1(basis.encode(), usedforsecurity=False).hexdigest()[:20]


def struct_to_iso(value: time.struct_time | None) -> str | None:
    if not value:
        return None
    try:
        stamp = calendar.timegm(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_to_utc(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean(value: object) -> str:
    return " ".join(str(value).split()) if value else ""
