"""Source discovery: from a site's page to its feed and its sitemaps, for `newswire feeds add SITE_URL`.

A URL that already serves a feed (or a sitemap) is kept as it is. An HTML page is searched for
`<link rel="alternate">` elements whose type is RSS, Atom or JSON Feed; the first one wins,
except that a comments feed gives way to any other. Sitemaps are looked for in the site's
robots.txt (`Sitemap:` lines), else at a few common paths, and told apart by content: a Google
News sitemap (or an index of them), a sitemap index, a plain urlset (`discover_sources`).
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

from ingest.feeds.parse import FeedParseError, parse_feed
from ingest.feeds.sitemap import SITEMAP_ACCEPT, Sitemap, SitemapError, is_sitemap, parse_sitemap
from ingest.fetch.http import Fetcher, FetchError, FetchResult
from ingest.fetch.politeness import PoliteFetcher
from ingest.fetch.robots import ROBOTS_ACCEPT, robots_url

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/feed+json"})
# not application/json: WordPress announces its REST API with it on every page
DISCOVER_ACCEPT = (
    "text/html, application/xhtml+xml, application/rss+xml, application/atom+xml, "
    "application/feed+json;q=0.9, */*;q=0.5"
)
MAX_HTML_CHARS = 1_000_000
COMMON_SITEMAPS = ("/news-sitemap.xml", "/sitemap_news.xml", "/sitemap-news.xml", "/sitemap.xml",
                   "/sitemap_index.xml")  # fmt: skip
MAX_SITEMAP_CANDIDATES = 8
SITEMAP_RANK = {"news sitemap": 0, "news sitemap index": 1, "sitemap index": 2, "sitemap": 3}


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


@dataclass(frozen=True, slots=True)
class FoundSource:
    url: str
    kind: str  # feed | news sitemap | news sitemap index | sitemap index | sitemap


@dataclass(frozen=True, slots=True)
class Sources:
    """What a site offers (`found`) and the sources worth adding (`chosen`): its main feed and
    its news sitemap; without a feed, its best sitemap."""

    found: tuple[FoundSource, ...]
    chosen: tuple[FoundSource, ...]
    title: str | None = None
    feed: Discovery | None = None


def discover_sources(url: str, fetcher: Fetcher | PoliteFetcher) -> Sources:
    """The feed and sitemaps behind `url`; NotAFeedError when there are none, DiscoveryError when
    `url` cannot be fetched."""
    try:
        feed: Discovery | None = discover_feed(url, fetcher)
    except NotAFeedError as exc:
        feed, missing = None, exc
    if feed is not None and feed.is_direct:
        return Sources((FoundSource(url, "feed"),), (FoundSource(url, "feed"),), feed.title, feed)
    direct = sitemap_at(url, fetcher)
    if direct is not None:
        return Sources((direct,), (direct,))
    sitemaps = find_sitemaps(url, fetcher)
    found = ((FoundSource(feed.feed_url, "feed"),) if feed else ()) + sitemaps
    if not found:
        raise missing
    return Sources(found, choose_sources(found), feed.title if feed else None, feed)


def choose_sources(found: tuple[FoundSource, ...]) -> tuple[FoundSource, ...]:
    feeds = [s for s in found if s.kind == "feed"]
    sitemaps = sorted((s for s in found if s.kind != "feed"), key=lambda s: SITEMAP_RANK.get(s.kind, 9))
    news = [s for s in sitemaps if s.kind.startswith("news")]
    if feeds:
        return tuple(feeds[:1] + news[:1])
    return tuple(sitemaps[:1])


def find_sitemaps(url: str, fetcher: Fetcher | PoliteFetcher) -> tuple[FoundSource, ...]:
    """The sitemaps robots.txt lists (else those at common paths), each checked by content."""
    listed = robots_sitemaps(url, fetcher)
    candidates = listed or [urljoin(url, path) for path in COMMON_SITEMAPS]
    found = [sitemap_at(c, fetcher) for c in candidates[:MAX_SITEMAP_CANDIDATES]]
    return tuple(s for s in found if s is not None)


def robots_sitemaps(url: str, fetcher: Fetcher | PoliteFetcher) -> list[str]:
    try:
        result = fetcher.get(robots_url(url), accept=ROBOTS_ACCEPT)
    except FetchError:
        return []
    if result.status != 200:
        return []
    return sitemap_lines(result.text(), result.final_url)


def sitemap_lines(robots_txt: str, base: str) -> list[str]:
    """The `Sitemap:` URLs of a robots.txt, absolute, each once, in order."""
    found: dict[str, None] = {}
    for line in robots_txt.splitlines():
        name, _, value = line.split("#", 1)[0].partition(":")
        if name.strip().lower() == "sitemap" and value.strip():
            found.setdefault(urljoin(base, value.strip()), None)
    return list(found)


def sitemap_at(url: str, fetcher: Fetcher | PoliteFetcher) -> FoundSource | None:
    """`url` as a found sitemap when it serves one (gzipped or not), else None."""
    try:
        result = fetcher.get(url, accept=SITEMAP_ACCEPT, unzip=True)
    except FetchError:
        return None
    if result.status != 200 or not is_sitemap(result.body):
        return None
    try:
        sitemap = parse_sitemap(result.body, result.final_url)
    except SitemapError:
        return None
    return FoundSource(url, sitemap_kind(sitemap))


def sitemap_kind(sitemap: Sitemap) -> str:
    """An index whose children are named as news sitemaps counts as a news sitemap index."""
    if sitemap.children and any("news" in child.loc.lower() for child in sitemap.children):
        return "news sitemap index"
    return sitemap.kind if not sitemap.children else "sitemap index"


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
