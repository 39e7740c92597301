"""The article stages wired together: fetch a page, extract, build the document, publish once.

Each function takes its clients as arguments and returns what happened, so the
Celery tasks stay thin and the same code runs in `newswire extract` without Redis.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from dataclasses import replace
from datetime import datetime

import redis

from ingest.dedup.decide import PublishOutcome, Submission
from ingest.dedup.identity import article_id, canonical_url, content_hash, same_site
from ingest.extract.article import ExtractionError, choose_article, extract_article
from ingest.extract.profile import apply_rules
from ingest.fetch.http import Fetcher, FetchError
from ingest.fetch.politeness import PoliteFetcher
from ingest.models import Article, Document, ExtractRules, FeedEntry, FetchProfile, PageFetch, iso_utc
from ingest.streams.publish import RedisStreamSink
from ingest.tag.topics import TopicSet, tag_article

log = logging.getLogger("newswire.pipeline")

PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
TAG_RE = re.compile(r"<[^>]+>")
KNOWN_PAGE = "already published"  # the error of a page not fetched: its URL was published already
# what a worker retries (Redis or the network of the machine itself), never an item's own fault
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, ConnectionError,
)  # fmt: skip


def fetch_new_page(entry: FeedEntry, fetcher: Fetcher | PoliteFetcher, sink: RedisStreamSink) -> PageFetch:
    """The entry's page, unless its URL was published already (`KNOWN_PAGE`: not fetched)."""
    if is_known_link(entry, sink):
        return PageFetch(None, entry.link, KNOWN_PAGE)
    return fetch_page(entry, fetcher)


def fetch_page(
    entry: FeedEntry, fetcher: Fetcher | PoliteFetcher, profile: FetchProfile | None = None
) -> PageFetch:
    """The article page of an entry; never raises for the page's own faults.

    Behind a `PoliteFetcher`, a page robots.txt forbids comes back as an error (the
    feed's own content is used) and `HostBusy` propagates: the caller defers the page."""
    if not entry.link:
        return PageFetch(None, None, "entry has no link")
    page = fetch_url(entry.link, fetcher, profile)
    if page.html is None:
        log.info("page fetch failed: %s", page.error, extra={"feed_url": entry.feed_url, "stage": "fetch"})
    return page


def fetch_url(url: str, fetcher: Fetcher | PoliteFetcher, profile: FetchProfile | None = None) -> PageFetch:
    """One page by URL (with a source's fetch profile): its HTML, or why there is none
    (`HostBusy` propagates)."""
    try:
        result = fetcher.get(url, accept=PAGE_ACCEPT, allowed_types=PAGE_TYPES, profile=profile)
    except FetchError as exc:
        return PageFetch(None, None, str(exc))
    if result.status != 200:
        return PageFetch(None, result.final_url, f"http_{result.status}: {url}")
    return PageFetch(result.text(), result.final_url)


def extract_page(page: PageFetch, rules: ExtractRules | None = None) -> Article | None:
    """The article on a page; a source's `extract.remove` and `extract.selector` first
    (`ingest/extract/profile.py`): a matching selector's text is the body."""
    if page.html is None or page.final_url is None:
        return None
    html, selected = apply_rules(page.html, rules) if rules else (page.html, None)
    try:
        article = extract_article(html, page.final_url)
    except ExtractionError as exc:
        if selected:
            return Article(text=selected)
        log.info("extraction found no body: %s", exc, extra={"stage": "extract"})
        return None
    return replace(article, text=selected) if selected else article


def build_document(
    entry: FeedEntry, page: PageFetch, article: Article | None, topics: TopicSet, fetched_at: float
) -> Document:
    """The article document: chosen body, identity, hash and topics."""
    chosen = choose_article(article, entry)
    url = page.final_url or entry.link or entry.feed_url
    canonical = pick_canonical(url, chosen.canonical_url)
    doc_id = article_id(canonical)
    title = chosen.title or entry.title
    matches = tag_article(topics, title=title, text=chosen.text, language=chosen.language)
    return Document(
        id=doc_id, url=entry.link or url, canonical_url=canonical, feed_url=entry.feed_url,
        source=chosen.site_name or entry.source, title=title, text=chosen.text,
        summary=summarize(entry, chosen), authors=chosen.authors or entry.authors,
        published_at=chosen.published_at or entry.published_at, fetched_at=iso_utc(fetched_at),
        language=chosen.language or entry.language, topics=matches, story_id=doc_id, duplicate_of=None,
        content_hash=content_hash(chosen.text), extraction=chosen.extraction, enclosures=entry.enclosures,
    )  # fmt: skip


def pick_canonical(url: str, page_canonical: str | None) -> str:
    """The page's own canonical URL when it is on the same site, else the cleaned fetched URL."""
    if page_canonical and same_site(url, page_canonical):
        return canonical_url(page_canonical)
    return canonical_url(url)


def summarize(entry: FeedEntry, article: Article, limit: int = 400) -> str:
    text = strip_tags(entry.summary) or (article.description or "") or article.text
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def strip_tags(markup: str) -> str:
    return html.unescape(TAG_RE.sub(" ", markup or "")).strip()


def entry_origin(entry: FeedEntry) -> str:
    """Which feed entry a document came from: tells a redelivery from a copy."""
    return hashlib.sha1(f"{entry.feed_url}|{entry.key}".encode(), usedforsecurity=False).hexdigest()[:20]


def publish_document(
    doc: Document, sink: RedisStreamSink, entry: FeedEntry
) -> tuple[PublishOutcome, Document]:
    """Publish once, in the story the script chose; a copy of an earlier article goes to the
    duplicates stream instead, a changed page at a known URL to the updates stream."""
    return publish_documents([(doc, entry)], sink)[0]


def publish_documents(
    items: list[tuple[Document, FeedEntry]], sink: RedisStreamSink
) -> list[tuple[PublishOutcome, Document]]:
    """`publish_document` for a batch, in two round trips; each document as published (its story,
    and `duplicate_of` for a copy)."""
    submissions = [Submission(doc, entry_origin(entry), entry.guid) for doc, entry in items]
    outcomes = sink.publish_many(submissions)
    return [(outcome, as_published(doc, outcome)) for (doc, _), outcome in zip(items, outcomes, strict=True)]


def as_published(doc: Document, outcome: PublishOutcome) -> Document:
    duplicate_of = outcome.original_id if outcome.status == "duplicate" else None
    return replace(doc, story_id=outcome.story_id or doc.story_id, duplicate_of=duplicate_of)


def is_known_link(entry: FeedEntry, sink: RedisStreamSink) -> bool:
    """Cheapest dedup layer: the entry's link was published already and the entry claims no
    later date than that, so its page need not be fetched (a newer date may be an update)."""
    if not entry.link:
        return False
    record = sink.identity(article_id(canonical_url(entry.link)))
    return record is not None and not is_dated_after(entry.published_at, record.published_ts)


def is_dated_after(published_at: str | None, stamp: float) -> bool:
    """True when an ISO 8601 date is later than a Unix time (False when either is unknown)."""
    if not published_at or not stamp:
        return False
    try:
        return datetime.fromisoformat(published_at.replace("Z", "+00:00")).timestamp() > stamp
    except ValueError:
        return False
