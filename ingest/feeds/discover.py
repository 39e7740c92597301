"""Feed discovery: from a site's page to its feed, for `newswire feeds add SITE_URL`.

A URL that already serves a feed is kept as it is. An HTML page is searched for
`<link rel="alternate">` elements whose type is RSS, Atom or JSON Feed; the first
one wins, except that a comments feed gives way to any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

from ingest.feeds.parse import FeedParseError, parse_feed
from ingest.fetch.http import Fetcher, FetchError, FetchResult
from ingest.fetch.politeness import PoliteFetcher

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/feed+json"})
# not application/json: WordPress announces its REST API with it on every page
DISCOVER_ACCEPT = (
    "text/html, application/xhtml+xml, application/rss+xml, application/atom+xml, "
    "application/feed+json;q=0.9, */*;q=0.5"
)
MAX_HTML_CHARS = 1_000_000


class DiscoveryError(Exception):
    """The URL could not be checked (fetch failed or not a 200); the message says why."""


class NotAFeedError(DiscoveryError):
    """The URL answered with a page that is not a feed and announces none."""


@dataclass(frozen=True, slots=True)
class FeedLink:
    url: str
    title: str | None = None
    type: str = ""


@dataclass(frozen=True, slots=True)
class Discovery:
    """The feed a URL leads to; `candidates` lists every feed the page announced."""

    feed_url: str
    title: str | None
    is_direct: bool  # the URL was a feed itself
    candidates: tuple[FeedLink, ...] = ()


def discover_feed(url: str, fetcher: Fetcher | PoliteFetcher) -> Discovery:
    """The feed behind `url`: the URL itself if it is a feed, else the page's announced feed."""
    try:
        result = fetcher.get(url, accept=DISCOVER_ACCEPT)
    except FetchError as exc:
        raise DiscoveryError(f"could not fetch {url}: {exc.kind}: {exc.reason}") from exc
    if result.status != 200:
        raise DiscoveryError(f"{url} answered HTTP {result.status}")
    direct = as_feed(url, result)
    if direct is not None:
        return direct
    links = feed_links(result.text()[:MAX_HTML_CHARS], result.final_url)
    if not links:
        raise NotAFeedError(f"{url} is not a feed and its page announces none (<link rel=alternate>)")
    best = pick_feed(links)
    return Discovery(best.url, best.title, is_direct=False, candidates=links)


def as_feed(url: str, result: FetchResult) -> Discovery | None:
    """A Discovery of `url` itself when the body parses as a feed (HTML never does here)."""
    content_type = result.headers.get("content-type", "").lower()
    if "html" in content_type or result.body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return None
    try:
        page = parse_feed(result.body, result.final_url, content_type)
    except FeedParseError:
        return None
    return Discovery(url, page.title, is_direct=True)


def pick_feed(links: tuple[FeedLink, ...]) -> FeedLink:
    """The first announced feed, unless it is a comments feed and another one exists."""
    main = [link for link in links if "comment" not in (link.title or "").lower()]
    return (main or list(links))[0]


def feed_links(html: str, base_url: str) -> tuple[FeedLink, ...]:
    """Every `<link rel="alternate" type="<feed type>" href>` of a page, absolute, in page order."""
    parser = AlternateLinks()
    parser.feed(html)
    parser.close()
    base = urljoin(base_url, parser.base) if parser.base else base_url
    seen: dict[str, FeedLink] = {}
    for href, title, kind in parser.found:
        absolute = urljoin(base, href)
        seen.setdefault(absolute, FeedLink(absolute, title, kind))
    return tuple(seen.values())


class AlternateLinks(HTMLParser):
    """Collects feed `<link>`s (and `<base href>`) from an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str | None, str]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and values.get("href") and self.base is None:
            self.base = values["href"]
        if tag != "link" or "alternate" not in values.get("rel", "").lower().split():
            return
        kind = values.get("type", "").split(";")[0].strip().lower()
        if kind in FEED_TYPES and values.get("href", "").strip():
            self.found.append((values["href"].strip(), values.get("title") or None, kind))
