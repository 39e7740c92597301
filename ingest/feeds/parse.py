"""Feed documents (RSS 0.9x/1.0/2.0, Atom, JSON Feed) into `FeedPage`.

feedparser's dicts stop here: the rest of the pipeline sees `FeedEntry`.
feedparser does not read JSON Feed, so a small adapter maps it to the same model.

Feeds are written by strangers, so before feedparser sees an XML document:
- entity declarations are screened (`check_entities`). feedparser drops entities that
  refer to other entities (the classic billion laughs), but keeps any other literal one,
  and expands it in both its parsers: a 900 KB feed declaring one 5,000-character entity
  and using it 300,000 times took 47 s and 4.4 GB. Only character references and short
  literals (which cannot amplify a document by more than a few times) are accepted;
  anything else, external and parameter entities included, fails with a clear reason.
- a document with more than MAX_ENTRIES entries is cut after the last one kept and
  closed again (`cut_entries`): parsing 60,000 items cost 15 s of CPU for 500 kept.
Both work on the UTF-8 text feedparser itself would parse (`to_utf8`), so no encoding
(UTF-16, UTF-7, EBCDIC, ...) hides a declaration from them.
"""

from __future__ import annotations

import calendar
import hashlib
import itertools
import re
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import orjson
from feedparser.encodings import convert_to_utf8

from ingest.models import Enclosure, FeedEntry, FeedPage

MAX_ENTRIES = 500  # a feed with more items than this is cut, newest first as served
MAX_ENCLOSURES = 10  # per entry
JSON_FEED_VERSIONS = ("https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1")
SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}
MAX_ENTITY_TEXT = 16  # longest literal entity value accepted: `&x;` (3 bytes) grows at most ~5x
MAX_SUBSET_BYTES = 64 * 1024  # a DOCTYPE internal subset longer than this is refused
QUOTED_OR_NOT = rb"""(?:"[^"]*"|'[^']*'|[^"'>])*"""
ENTITY_MARK = re.compile(rb"<!ENTITY", re.IGNORECASE)
ENTITY_DECL = re.compile(rb"<!ENTITY" + QUOTED_OR_NOT + rb">", re.IGNORECASE)
ENTITY_PARTS = re.compile(rb"""<!ENTITY\s+(%\s+)?([^\s"'>%]+)\s+(?:"([^"]*)"|'([^']*)')?""", re.IGNORECASE)
CHAR_REF = re.compile(rb"&#(?:[0-9]{1,7}|x[0-9a-fA-F]{1,6});")
PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
DOCTYPE_OPEN = re.compile(rb"""<!DOCTYPE(?:"[^"]*"|'[^']*'|[^"'\[>])*\[""", re.IGNORECASE)
SUBSET_ITEM = re.compile(
    rb"\s+|<!--.*?-->|<\?.*?\?>|%[^;\s]*;|<!(?:ENTITY|ELEMENT|ATTLIST|NOTATION)\b" + QUOTED_OR_NOT + rb">",
    re.DOTALL | re.IGNORECASE,
)
ELEMENT_START = re.compile(rb"<\w")
ENTRY_START = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s/>]", re.IGNORECASE)
ENTRY_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>", re.IGNORECASE)
TAG = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<[?!][^>]*>|<(/?)([^\s/>]+)[^>]*?(/?)>", re.DOTALL)


class FeedParseError(ValueError):
    """The document is not a feed we can read (and has no recoverable entries)."""


def parse_feed(body: bytes, url: str, content_type: str = "") -> FeedPage:
    """Parse one feed document fetched from `url`."""
    if is_json_feed(body, content_type):
        return parse_json_feed(body, url)
    return parse_xml_feed(body, url, content_type)


def is_json_feed(body: bytes, content_type: str) -> bool:
    if "json" in content_type.lower():
        return True
    return body.lstrip()[:1] == b"{"


def parse_xml_feed(body: bytes, url: str, content_type: str = "") -> FeedPage:
    data, encoding_note = to_utf8(body, url, content_type)
    check_entities(data)
    headers = {"content-location": url, "content-type": "application/xml; charset=utf-8"}
    parsed = feedparser.parse(cut_entries(data, MAX_ENTRIES), response_headers=headers)
    entries = parsed.get("entries") or []
    bozo = str(parsed.get("bozo_exception") or "") or encoding_note
    if not entries and not parsed.get("version"):
        raise FeedParseError(f"not a feed: {bozo or 'no RSS/Atom/JSON Feed root element'}")
    feed = parsed.get("feed") or {}
    title = clean(feed.get("title")) or None
    raw = [xml_entry_fields(e, url) for e in entries[:MAX_ENTRIES]]
    hub, self_url = feed_link(feed, "hub", url), feed_link(feed, "self", url)
    return FeedPage(
        title=title, entries=build_entries(raw, url, title), ttl_s=ttl_hint(feed), bozo=bozo, hub=hub,
        self_url=self_url,
    )  # fmt: skip


def feed_link(feed: Mapping[str, Any], rel: str, base: str) -> str | None:
    """The first `<link rel=...>` (Atom, or atom:link in RSS) of the feed itself, absolute."""
    for link in feed.get("links") or []:
        if str(link.get("rel", "")).lower() == rel and link.get("href"):
            return urljoin(base, str(link["href"]).strip())
    return None


def to_utf8(body: bytes, url: str, content_type: str) -> tuple[bytes, str | None]:
    """The document as feedparser decodes it (UTF-8, declaration rewritten), and any note on its encoding.

    Without a Content-Type feedparser would assume ISO-8859-1; XML's own default is UTF-8."""
    result: dict[str, Any] = {}
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    data = convert_to_utf8(headers, body, result)
    return data, str(result.get("bozo_exception") or "") or None


def check_entities(data: bytes) -> None:
    """FeedParseError unless every entity the document declares is harmless (see the module docstring).

    Declarations count wherever either of feedparser's parsers would honour them: in the
    prolog's DOCTYPE internal subset, and before the first element (where feedparser looks)."""
    if ENTITY_MARK.search(data) is None:
        return
    end = max(internal_subset_end(data), first_element(data))
    declared = ENTITY_DECL.findall(data, 0, end)
    if len(declared) != len(ENTITY_MARK.findall(data, 0, end)):
        raise FeedParseError("unsafe XML: unreadable entity declaration")
    for declaration in declared:
        problem = entity_problem(declaration)
        if problem:
            raise FeedParseError(f"unsafe XML: {problem} (entity expansion is limited)")


def entity_problem(declaration: bytes) -> str | None:
    """Why one `<!ENTITY ...>` declaration could expand the document, or None when it cannot."""
    parts = ENTITY_PARTS.match(declaration)
    if parts is None:
        return "unreadable entity declaration"
    name = parts.group(2).decode("utf-8", "replace")[:20]
    value = parts.group(3) if parts.group(3) is not None else parts.group(4)
    if parts.group(1):
        return f"parameter entity '{name}'"
    if value is None:
        return f"external entity '{name}'"
    if CHAR_REF.fullmatch(value) or (len(value) <= MAX_ENTITY_TEXT and not re.search(rb"[&<%]", value)):
        return None
    if b"&" in value or b"%" in value:
        return f"entity '{name}' refers to other entities"
    return f"entity '{name}' has a {len(value):,}-byte value"


def internal_subset_end(data: bytes) -> int:
    """Where the prolog's DOCTYPE internal subset ends (0 without one); FeedParseError if unreadable."""
    pos = 0
    while (item := PROLOG_ITEM.match(data, pos)) is not None and item.end() > pos:
        pos = item.end()
    doctype = DOCTYPE_OPEN.match(data, pos)
    if doctype is None:
        return 0
    pos = doctype.end()
    while pos - doctype.start() <= MAX_SUBSET_BYTES:
        if data[pos : pos + 1] == b"]":
            return pos
        item = SUBSET_ITEM.match(data, pos)
        if item is None:
            raise FeedParseError("unsafe XML: unreadable DOCTYPE internal subset")
        if item.group().startswith(b"%"):
            raise FeedParseError("unsafe XML: parameter entity reference in the DOCTYPE")
        pos = item.end()
    raise FeedParseError(f"unsafe XML: DOCTYPE internal subset over {MAX_SUBSET_BYTES // 1024} KiB")


def first_element(data: bytes) -> int:
    match = ELEMENT_START.search(data)
    return len(data) if match is None else match.start()


def cut_entries(data: bytes, limit: int) -> bytes:
    """The document without its entries after the `limit`-th, its open elements closed again."""
    kept = list(itertools.islice(ENTRY_END.finditer(data), limit))
    if len(kept) < limit or ENTRY_END.search(data, kept[-1].end()) is None:
        return data
    cut = kept[-1].end()
    start = ENTRY_START.search(data)
    closing = open_elements(data[: start.start()]) if start is not None else None
    if closing is None:
        return data[:cut]  # feedparser's lenient parser reads the cut document
    return data[:cut] + b"".join(b"</" + name + b">" for name in reversed(closing))


def open_elements(head: bytes) -> list[bytes] | None:
    """Names of the elements still open at the end of `head`; None when its tags do not nest."""
    stack: list[bytes] = []
    for tag in TAG.finditer(head):
        closing, name, empty = tag.groups()
        if name is None or empty:
            continue
        if not closing:
            stack.append(name)
        elif stack and stack[-1] == name:
            stack.pop()
        else:
            return None
    return stack


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
        "enclosures": xml_enclosures(entry, base),
    }


def xml_enclosures(entry: Mapping[str, Any], base: str) -> tuple[Enclosure, ...]:
    """RSS <enclosure>, Atom rel=enclosure links and Media RSS <media:content>, each URL once."""
    found = [(e.get("href"), e.get("type"), e.get("length")) for e in entry.get("enclosures") or []]
    found += [(m.get("url"), m.get("type"), m.get("filesize")) for m in entry.get("media_content") or []]
    return unique_enclosures(found, base)


def unique_enclosures(found: list[tuple[Any, Any, Any]], base: str) -> tuple[Enclosure, ...]:
    seen: dict[str, Enclosure] = {}
    for href, kind, length in found:
        if not isinstance(href, str) or not href.strip():
            continue
        url = urljoin(base, href.strip())
        if url.startswith(("http://", "https://")) and len(seen) < MAX_ENCLOSURES:
            seen.setdefault(url, Enclosure(url, clean(kind) or None, as_length(length)))
    return tuple(seen.values())


def as_length(value: object) -> int | None:
    """A byte count as feeds write it ("12345", 12345, "" or junk): a non-negative int or None."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and len(text) < 19 else None


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
    self_url = data.get("feed_url") if isinstance(data.get("feed_url"), str) else None
    entries = build_entries(raw, url, title)
    return FeedPage(title=title, entries=entries, hub=json_hub(data), self_url=self_url)


def json_hub(data: Mapping[str, Any]) -> str | None:
    """JSON Feed's `hubs`: the first of type WebSub."""
    hubs = data.get("hubs")
    for hub in hubs if isinstance(hubs, list) else []:
        if isinstance(hub, dict) and str(hub.get("type", "")).lower() == "websub" and hub.get("url"):
            return str(hub["url"])
    return None


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
        "enclosures": json_attachments(item, base),
    }


def json_attachments(item: Mapping[str, Any], base: str) -> tuple[Enclosure, ...]:
    attachments = item.get("attachments")
    found = [
        (a.get("url"), a.get("mime_type"), a.get("size_in_bytes"))
        for a in (attachments if isinstance(attachments, list) else [])
        if isinstance(a, dict)
    ]
    return unique_enclosures(found, base)


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
