"""The normalized types passed between pipeline stages.

Third-party shapes (feedparser dicts, trafilatura documents, httpx responses)
stop at the module that talks to them; everything downstream sees these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1


def iso_utc(stamp: float) -> str:
    """A Unix time as the ISO 8601 UTC form used in every document: 2026-11-27T09:00:00Z."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mask_secret_url(url: str) -> str:
    """A URL with its password (a proxy's credentials, say) replaced by ***."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


@dataclass(frozen=True, slots=True, repr=False)
class FetchProfile:
    """How one source wants to be fetched (the feeds file's headers, user_agent, cookies, proxy).

    Its repr (and `masked`) never shows cookie values or proxy credentials."""

    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str | None = None
    cookies: tuple[tuple[str, str], ...] = ()
    proxy: str | None = None  # http://, https://, socks5://, socks5h:// (user:password@ allowed)

    def __bool__(self) -> bool:
        return bool(self.headers or self.user_agent or self.cookies or self.proxy)

    def masked(self) -> dict[str, object]:
        """For logs and status: header names and values, cookie names only, the proxy without its password."""
        shown: dict[str, object] = {}
        if self.headers:
            shown["headers"] = dict(self.headers)
        if self.user_agent:
            shown["user_agent"] = self.user_agent
        if self.cookies:
            shown["cookies"] = {name: "***" for name, _ in self.cookies}
        if self.proxy:
            shown["proxy"] = mask_secret_url(self.proxy)
        return shown

    def __repr__(self) -> str:
        return f"FetchProfile({self.masked()!r})"


@dataclass(frozen=True, slots=True)
class ExtractRules:
    """The feeds file's extract.selector (CSS for the body, overrides trafilatura when it matches)
    and extract.remove (CSS selectors dropped from the page first)."""

    selector: str | None = None
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.selector or self.remove)


@dataclass(frozen=True, slots=True)
class Feed:
    """One registered source (a feed or a sitemap), as configured by the user."""

    url: str
    name: str | None = None
    interval: int | None = None  # seconds; None = adaptive
    enabled: bool = True
    robots: bool = True  # honour robots.txt for this feed's article pages
    kind: str | None = None  # "feed" | "sitemap"; None = recognised from the content
    fetch: FetchProfile = field(default_factory=FetchProfile)
    extract: ExtractRules = field(default_factory=ExtractRules)


@dataclass(frozen=True, slots=True)
class Enclosure:
    """A podcast, video or image attached to an entry (RSS enclosure, Atom rel=enclosure, JSON Feed
    attachment)."""

    url: str
    type: str | None = None
    length: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"url": self.url, "type": self.type, "length": self.length}


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One item of a feed, whatever the feed format."""

    feed_url: str
    key: str  # stable identity within the feed (GUID, link, or title+summary)
    link: str | None
    title: str
    summary: str = ""
    content_html: str = ""  # content:encoded / atom:content / JSON Feed content_html
    authors: tuple[str, ...] = ()
    published_at: str | None = None  # ISO 8601 UTC
    guid: str | None = None
    source: str | None = None  # the feed's title
    enclosures: tuple[Enclosure, ...] = ()
    language: str | None = None  # what the source says (a news sitemap's news:language)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.enclosures:
            del data["enclosures"]  # most entries have none: messages stay as they were
        if self.language is None:
            del data["language"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedEntry:
        values = dict(data)
        values["authors"] = tuple(values.get("authors") or ())
        values["enclosures"] = tuple(Enclosure(**e) for e in values.get("enclosures") or ())
        return cls(**values)


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A parsed feed document: its entries and the publisher's hints."""

    title: str | None
    entries: tuple[FeedEntry, ...]
    ttl_s: int | None = None  # <ttl> or sy:updatePeriod/Frequency, in seconds
    bozo: str | None = None  # why the XML was not well-formed, if it was not
    hub: str | None = None  # a WebSub hub the feed advertises (<link rel="hub">)
    self_url: str | None = None  # the feed's own URL as it says (<link rel="self">): the WebSub topic


@dataclass(frozen=True, slots=True)
class PageFetch:
    """An article page as fetched (or why it could not be): what fetch hands to extraction."""

    html: str | None
    final_url: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PageItem:
    """A page on its way from fetch to extraction: its entry, its sweep item, where its HTML is."""

    entry: FeedEntry
    item: str | None = None  # the sweep's item for this entry (`a:<entry origin>`), if in a sweep
    final_url: str | None = None
    error: str | None = None  # why there is no page (the feed's own content is used)
    page_key: str | None = None  # the HTML in the page store (ingest/fetch/pages.py)
    html: str | None = None  # the HTML itself: messages queued by earlier versions carry it
    sweep_id: str | None = None  # the page's own sweep and poll time (else the message's)
    first_seen: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "entry": self.entry.to_dict(), "item": self.item, "final_url": self.final_url,
            "error": self.error, "page_key": self.page_key,
        }  # fmt: skip
        optional = {"html": self.html, "sweep_id": self.sweep_id, "first_seen": self.first_seen}
        return data | {k: v for k, v in optional.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageItem:
        return cls(
            FeedEntry.from_dict(data["entry"]), data.get("item"), data.get("final_url"), data.get("error"),
            data.get("page_key"), data.get("html"), data.get("sweep_id"), data.get("first_seen"),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Article:
    """What extraction found on one article page (or in the feed's own content)."""

    text: str
    title: str | None = None
    authors: tuple[str, ...] = ()
    published_at: str | None = None  # ISO 8601 UTC
    language: str | None = None  # ISO 639-1
    site_name: str | None = None
    image: str | None = None
    canonical_url: str | None = None  # <link rel=canonical> or og:url
    description: str | None = None
    extraction: str = "trafilatura"  # "trafilatura" | "feed"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One matched term and where it was found."""

    term: str
    field: str  # "title" | "text"
    snippet: str  # the sentence it came from

    def to_dict(self) -> dict[str, str]:
        return {"term": self.term, "field": self.field, "snippet": self.snippet}


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """A topic given to an article, with the score and why."""

    slug: str
    score: float
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "score": round(self.score, 3),
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class Document:
    """The article document of the output streams (CONTRACT §5, schema_version 1)."""

    id: str
    url: str
    canonical_url: str
    feed_url: str | None
    source: str | None
    title: str
    text: str
    summary: str
    authors: tuple[str, ...]
    published_at: str | None
    fetched_at: str
    language: str | None
    topics: tuple[TopicMatch, ...]
    story_id: str
    duplicate_of: str | None
    content_hash: str
    extraction: str
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    enclosures: tuple[Enclosure, ...] = ()  # optional in the document: only written when there are some

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "canonical_url": self.canonical_url,
            "feed_url": self.feed_url,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "summary": self.summary,
            "authors": list(self.authors),
            "published_at": self.published_at,
            "fetched_at": self.fetched_at,
            "language": self.language,
            "topics": [t.to_dict() for t in self.topics],
            "story_id": self.story_id,
            "duplicate_of": self.duplicate_of,
            "content_hash": self.content_hash,
            "extraction": self.extraction,
            "schema_version": self.schema_version,
            **({"enclosures": [e.to_dict() for e in self.enclosures]} if self.enclosures else {}),
            **self.extra,
        }
