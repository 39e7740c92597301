"""Sitemaps as sources: a `urlset`, a `sitemapindex` walked lazily, Google News sitemaps, `.xml.gz`.

A source is a sitemap when the feeds file says `kind = "sitemap"` or its document's root element
is `urlset` or `sitemapindex` (`is_sitemap`). It is polled like a feed (`poll.py`: conditional
GET, politeness, the address guard, the size cap); what differs is what its entries are:

- each `<url>` is an entry whose identity is its URL (so a page listed again is the same item to
  the publish step: nothing, or an update); it is new when its URL or its date changed (the news
  publication date, else `lastmod`): a page re-listed with a later `lastmod` is fetched again
  and the publish step decides whether its text changed (`{prefix}:updates`) or not (dropped);
- only entries dated inside the window (`NEWSWIRE_SITEMAP_WINDOW_DAYS`, 2 days) are taken; an
  undated URL is taken when it appears after the source's first poll (its age is unknown: the
  first poll only remembers the undated URLs it lists, so an archive is not fetched at once);
- a `sitemapindex` is walked lazily: only children whose `lastmod` is later than the newest
  child walked before (on the first walk: inside the window), newest first, at most
  `MAX_CHILDREN` a poll, and children without `lastmod`. Children are fetched through the same
  politeness, guard and size caps, gzipped or not; an index inside an index is followed once.

The XML is read by lxml with entities left unresolved, no network and no DTD; a document that
declares entities is refused (sitemaps have no use for them).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from lxml import etree

from ingest.fetch.http import FetchError, FetchResult
from ingest.models import FeedEntry, FetchProfile, iso_utc

log = logging.getLogger("newswire.sitemap")

SITEMAP_ACCEPT = "application/xml, text/xml;q=0.9, application/x-gzip;q=0.8, */*;q=0.5"
MAX_URLS = 50_000  # the sitemap protocol's own limit per document
MAX_CHILDREN = 20  # children of an index fetched in one poll
MAX_DEPTH = 2  # an index inside an index is followed, no deeper
ROOT_NAME = re.compile(rb"<(?:[\w.-]+:)?(urlset|sitemapindex)[\s>]")
FEED_ROOT = re.compile(rb"<(?:[\w.-]+:)?(rss|feed|RDF)[\s>]")
ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True,
    remove_comments=True, remove_pis=True,
)  # fmt: skip
LANGUAGE = re.compile(r"^([a-z]{2})(?:[-_].*)?$")


class SitemapError(ValueError):
    """Not a sitemap we can read; the message says why."""


class Getter(Protocol):
    def get(
        self, url: str, *, accept: str | None = ..., profile: FetchProfile | None = ..., unzip: bool = ...
    ) -> FetchResult: ...


@dataclass(frozen=True, slots=True)
class SitemapUrl:
    """One `<url>` of a urlset, with what a Google News sitemap adds."""

    loc: str
    lastmod: float | None = None
    news_title: str = ""
    news_date: float | None = None
    news_language: str | None = None
    news_name: str | None = None

    @property
    def date(self) -> float | None:
        return self.news_date or self.lastmod


@dataclass(frozen=True, slots=True)
class SitemapChild:
    loc: str
    lastmod: float | None = None


@dataclass(frozen=True, slots=True)
class Sitemap:
    urls: tuple[SitemapUrl, ...] = ()
    children: tuple[SitemapChild, ...] = ()  # a sitemapindex
    is_news: bool = False

    @property
    def kind(self) -> str:
        if self.children:
            return "sitemap index"
        return "news sitemap" if self.is_news else "sitemap"


@dataclass(frozen=True, slots=True)
class Selection:
    """What one poll of a sitemap source takes: entries to consider (with the keys that tell
    whether each is new), and keys only to remember."""

    entries: tuple[FeedEntry, ...]
    seen_keys: tuple[str, ...]  # one per entry: its URL and date
    quiet_keys: tuple[str, ...] = ()  # undated URLs of a first poll: remembered, not handed on


def is_sitemap(body: bytes) -> bool:
    """The document's root element is `urlset` or `sitemapindex` (read from its first 4 KB)."""
    head = body[:4096]
    found = ROOT_NAME.search(head)
    if found is None:
        return False
    feed = FEED_ROOT.search(head)
    return feed is None or feed.start() > found.start()


def parse_sitemap(body: bytes, url: str) -> Sitemap:
    """A urlset or sitemapindex document (or a plain-text list of URLs) into `Sitemap`."""
    if not ROOT_NAME.search(body[:4096]):
        urls = plain_text_urls(body)
        if not urls:
            raise SitemapError("not a sitemap: no urlset or sitemapindex root, and no URL lines")
        return Sitemap(urls=urls)
    if ENTITY.search(body, 0, 65536):
        raise SitemapError("unsafe XML: sitemaps may not declare entities")
    try:
        root = etree.fromstring(body, parser=PARSER, base_url=url)
    except etree.XMLSyntaxError as exc:
        raise SitemapError(f"not well-formed XML ({exc})") from exc
    if root is None:
        raise SitemapError("not well-formed XML (no root element)")
    if local(root) == "sitemapindex":
        return Sitemap(children=tuple(read_children(root)))
    urls = tuple(read_urls(root))
    return Sitemap(urls=urls, is_news=any(u.news_date or u.news_title for u in urls))


def plain_text_urls(body: bytes) -> tuple[SitemapUrl, ...]:
    lines = body[: 8 * 1024 * 1024].decode("utf-8", "replace").splitlines()
    found = [line.strip() for line in lines if line.strip().startswith(("http://", "https://"))]
    return tuple(SitemapUrl(loc) for loc in found[:MAX_URLS])


def local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def children_named(element: etree._Element) -> dict[str, etree._Element]:
    return {local(child): child for child in element}


def text_of(element: etree._Element | None) -> str:
    return " ".join((element.text or "").split()) if element is not None else ""


def read_children(root: etree._Element) -> Iterator[SitemapChild]:
    for n, element in enumerate(e for e in root if local(e) == "sitemap"):
        if n >= MAX_URLS:
            return
        parts = children_named(element)
        loc = text_of(parts.get("loc"))
        if loc.startswith(("http://", "https://")):
            yield SitemapChild(loc, parse_w3c_date(text_of(parts.get("lastmod"))))


def read_urls(root: etree._Element) -> Iterator[SitemapUrl]:
    for n, element in enumerate(e for e in root if local(e) == "url"):
        if n >= MAX_URLS:
            return
        parts = children_named(element)
        loc = text_of(parts.get("loc"))
        if not loc.startswith(("http://", "https://")):
            continue
        lastmod = parse_w3c_date(text_of(parts.get("lastmod")))
        news = parts.get("news")
        yield news_url(loc, lastmod, news) if news is not None else SitemapUrl(loc, lastmod)


def news_url(loc: str, lastmod: float | None, news: etree._Element) -> SitemapUrl:
    parts = children_named(news)
    publication = children_named(parts["publication"]) if "publication" in parts else {}
    language = LANGUAGE.match(text_of(publication.get("language")).lower())
    return SitemapUrl(
        loc, lastmod, news_title=text_of(parts.get("title")),
        news_date=parse_w3c_date(text_of(parts.get("publication_date"))),
        news_language=language.group(1) if language else None,
        news_name=text_of(publication.get("name")) or None,
    )  # fmt: skip


def parse_w3c_date(value: str) -> float | None:
    """W3C Datetime (YYYY, YYYY-MM, YYYY-MM-DD, with time and zone) as a Unix time; UTC when no zone."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if re.fullmatch(r"\d{4}(-\d{2})?", text):
        text += "-01" * (2 - text.count("-"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# --- what one poll takes ---------------------------------------------------------------------------


def digest(basis: str) -> str:
    return hashlib.sha1(basis.encode(), usedforsecurity=False).hexdigest()[:20]


def entry_of(url: SitemapUrl, feed_url: str) -> FeedEntry:
    """A sitemap URL as a feed entry, its identity its URL (`l:` like a feed entry's link)."""
    date = url.date
    return FeedEntry(
        feed_url=feed_url, key=digest(f"l:{url.loc}"), link=url.loc, title=url.news_title,
        published_at=iso_utc(date) if date else None, source=url.news_name, language=url.news_language,
    )  # fmt: skip


def seen_key(url: SitemapUrl) -> str:
    """What tells a URL as listed now from the same URL listed before: the URL and its date."""
    return digest(f"l:{url.loc}|d:{int(url.date or 0)}")


def select_urls(
    urls: list[SitemapUrl], feed_url: str, now: float, window_s: float, first_poll: bool
) -> Selection:
    """The entries inside the window, newest first, then the undated ones (quietly remembered
    on a first poll); each URL once."""
    unique = list({u.loc: u for u in reversed(urls)}.values())  # the first listing of a URL wins
    dated = sorted((u for u in unique if u.date is not None and u.date >= now - window_s),
                   key=lambda u: -(u.date or 0.0))  # fmt: skip
    undated = [u for u in unique if u.date is None]
    quiet = tuple(seen_key(u) for u in undated) if first_poll else ()
    taken = dated if first_poll else dated + undated
    return Selection(tuple(entry_of(u, feed_url) for u in taken), tuple(map(seen_key, taken)), quiet)


def children_to_walk(
    children: tuple[SitemapChild, ...], mark: float | None, now: float, window_s: float
) -> list[SitemapChild]:
    """Children changed since the last walk (first walk: inside the window), newest first, and
    those without lastmod; at most MAX_CHILDREN."""
    since = mark if mark is not None else now - window_s
    changed = sorted((c for c in children if c.lastmod is not None and c.lastmod > since),
                     key=lambda c: -(c.lastmod or 0.0))  # fmt: skip
    undated = [c for c in children if c.lastmod is None]
    return (changed + undated)[:MAX_CHILDREN]


def walk_index(
    index: Sitemap, fetch: Callable[[str], Sitemap], mark: float | None, now: float, window_s: float,
    depth: int = 1,
) -> tuple[list[SitemapUrl], float | None, int]:  # fmt: skip
    """The URLs of the children worth reading now, the new mark, and how many children failed.

    A failed child leaves the mark where it was, so the next poll walks it again."""
    urls: list[SitemapUrl] = []
    failed = 0
    chosen = children_to_walk(index.children, mark, now, window_s)
    for child in chosen:
        try:
            sitemap = fetch(child.loc)
        except (FetchError, SitemapError) as exc:
            log.warning("sitemap child skipped: %s (%s)", child.loc, exc, extra={"stage": "poll"})
            failed += 1
            continue
        if sitemap.children and depth < MAX_DEPTH:
            inner, _, inner_failed = walk_index(sitemap, fetch, None, now, window_s, depth + 1)
            urls += inner
            failed += inner_failed
        urls += sitemap.urls
    walked = [c.lastmod for c in chosen if c.lastmod is not None]
    new_mark = mark if failed or not walked else max([*walked, mark or 0.0])
    return urls, new_mark, failed


def fetch_child(getter: Getter, profile: FetchProfile, url: str) -> Sitemap:
    """One child sitemap (gzipped or not); FetchError or SitemapError when it cannot be read."""
    result = getter.get(url, accept=SITEMAP_ACCEPT, profile=profile, unzip=True)
    if result.status != 200:
        raise SitemapError(f"HTTP {result.status}")
    return parse_sitemap(result.body, result.final_url)


def read_source(
    result: FetchResult, feed_url: str, getter: Getter | None, profile: FetchProfile, state: dict[str, str],
    now: float, window_s: float,
) -> tuple[Selection, dict[str, object]]:  # fmt: skip
    """One poll's selection from a fetched sitemap document, and the state fields to keep
    (`sm_kind`, `sm_mark`: the newest child lastmod walked). SitemapError when unreadable."""
    sitemap = parse_sitemap(result.body, result.final_url)
    mark = float(state["sm_mark"]) if state.get("sm_mark") else None
    urls, failed = list(sitemap.urls), 0
    if sitemap.children and getter is not None:
        inner, mark, failed = walk_index(
            sitemap, lambda url: fetch_child(getter, profile, url), mark, now, window_s
        )
        urls += inner
    first_poll = not state.get("last_success")
    selection = select_urls(urls, feed_url, now, window_s, first_poll)
    kind = sitemap.kind if not sitemap.children else f"sitemap index ({len(sitemap.children)})"
    fields: dict[str, object] = {"sm_kind": kind, "sm_mark": int(mark) if mark else None,
                                 "sm_failed": failed or None}  # fmt: skip
    return selection, fields
