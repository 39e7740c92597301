"""The article stages over batches of typed items: fetch a few entries' pages, extract and publish a
few pages, each item's outcome reported on its own.

A Celery task costs ~2.5 ms of messaging against ~15 ms to extract a page, so pages go from fetch
to extraction a few at a time when they come fast (`PageBatch`), and one extraction task publishes
its pages in two round trips. Failure stays per item: a page that fails in its own way is
dead-lettered alone (replayable as a batch of one) and the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest import pipeline
from ingest.dedup.decide import PublishOutcome
from ingest.fetch.pages import RedisPageStore
from ingest.models import Document, FeedEntry, PageFetch, PageItem
from ingest.ops.progress import RedisStats, RedisSweepTracker
from ingest.streams.publish import RedisStreamSink

log = logging.getLogger("newswire.batch")
FLUSH_AFTER_S = 1.0  # a fetched page waits at most about this long for others
SLOW_FETCH_S = 0.25  # a page that took this long (a slow or paced site) goes on to extraction at once
Send = Callable[[list[PageItem]], None]
Build = Callable[[FeedEntry, PageFetch], Document]


class PageBatch:
    """Fetched pages on their way to extraction, a few to a task.

    It never holds a page for long: a batch goes when it is full, when its oldest page has waited
    `FLUSH_AFTER_S`, or at once after a page the caller marks urgent (one that took long to fetch:
    a real site paced at a page a second, where waiting for a batch to fill would only add
    latency). The page itself goes by key (`ingest/fetch/pages.py`)."""

    def __init__(self, store: RedisPageStore, send: Send, size: int) -> None:
        self.store, self.send, self.size = store, send, size
        self.pages: list[PageItem] = []
        self.oldest = 0.0

    def add(
        self, entry: FeedEntry, item: str | None, page: PageFetch, *, urgent: bool = False,
        sweep_id: str | None = None, first_seen: float | None = None,
    ) -> None:  # fmt: skip
        key = None if page.html is None else self.store.put(pipeline.entry_origin(entry), page.html)
        if not self.pages:
            self.oldest = time.monotonic()
        self.pages.append(PageItem(entry, item, page.final_url, page.error, key, None, sweep_id, first_seen))
        if urgent or len(self.pages) >= self.size or time.monotonic() - self.oldest >= FLUSH_AFTER_S:
            self.flush()

    def flush(self) -> None:
        if self.pages:
            self.send(self.pages)
            self.pages = []


# --- fetch ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageOutcome:
    link: str | None
    outcome: str  # ok | error | known (published already: not fetched) | deferred (host busy)


def page_outcome(page: PageFetch) -> str:
    if page.error == pipeline.KNOWN_PAGE:
        return "known"
    return "ok" if page.html is not None else "error"


# --- extract and publish ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Published:
    page: PageItem
    outcome: PublishOutcome
    doc: Document  # as published: its story, and `duplicate_of` for a copy


@dataclass(frozen=True, slots=True)
class ExtractReport:
    published: tuple[Published, ...]
    dead_lettered: int


@dataclass(frozen=True, slots=True)
class Ledger:
    """Where a batch's outcomes go: the streams, the page store, the counters, the sweep (if any)."""

    sink: RedisStreamSink
    store: RedisPageStore
    stats: RedisStats
    tracker: Callable[[str], RedisSweepTracker]  # a sweep's tracker, by its id
    sweep_id: str | None = None  # the batch's sweep, for pages that do not name their own
    task: str = ""  # the name a dead-lettered page is replayed under


def extract_pages(pages: Sequence[dict[str, Any]], build: Build, ledger: Ledger) -> ExtractReport:
    """Extract and tag each page (`build`), then publish the batch once (two round trips); a page
    whose own fault stops it is dead-lettered alone. Infrastructure errors propagate (retried)."""
    htmls = ledger.store.get_many([p.get("page_key") for p in pages])  # None once expired: feed content
    built: list[tuple[PageItem, Document]] = []
    ended: list[tuple[str | None, str, str]] = []  # (sweep, item, outcome)
    for raw, stored in zip(pages, htmls, strict=True):
        try:
            page = PageItem.from_dict(raw)
            html = stored if page.page_key else page.html
            built.append((page, build(page.entry, PageFetch(html, page.final_url, page.error))))
        except pipeline.INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 (this page's own fault: dead-letter it, keep the batch)
            dead_letter_page(raw, exc, ledger)
            ended.append(
                (raw.get("sweep_id") or ledger.sweep_id, raw.get("item") or "", "error_dead_lettered")
            )
    results = pipeline.publish_documents([(doc, page.entry) for page, doc in built], ledger.sink)
    ledger.store.drop(*[p["page_key"] for p in pages if p.get("page_key")])
    published = tuple(Published(page, o, doc) for (page, _), (o, doc) in zip(built, results, strict=True))
    ended += [(p.page.sweep_id or ledger.sweep_id, p.page.item or "", p.outcome.status) for p in published]
    ledger.stats.count_many("article", [p.outcome.status for p in published])
    track(ended, ledger.tracker)
    return ExtractReport(published, len(pages) - len(built))


def track(ended: list[tuple[str | None, str, str]], tracker: Callable[[str], RedisSweepTracker]) -> None:
    """Each item's outcome to its sweep (one round trip per sweep: usually one, or none)."""
    sweeps: dict[str, list[tuple[str, str]]] = {}
    for sweep_id, item, outcome in ended:
        if sweep_id and item:
            sweeps.setdefault(sweep_id, []).append((item, outcome))
    for sweep_id, outcomes in sweeps.items():
        tracker(sweep_id).done_many(outcomes)


def dead_letter_page(raw: dict[str, Any], exc: BaseException, ledger: Ledger) -> None:
    """Give up on one page of a batch: its own dead-letter entry, replayable as a batch of one."""
    reason = f"{type(exc).__name__}: {exc}"
    found = raw.get("entry")
    entry: dict[str, Any] = found if isinstance(found, dict) else {}
    key = f"{ledger.task}:{raw.get('item') or entry.get('link')}"
    ledger.sink.dead_letter(key, {"task": ledger.task, "args": [[raw]], "kwargs": {}, "reason": reason})
    ledger.stats.count(ledger.task, "dead_lettered")
    fields = {"stage": ledger.task, "outcome": "dead_lettered", "feed_url": entry.get("feed_url"),
              "url": entry.get("link")}  # fmt: skip
    log.error("gave up on %s: %s", entry.get("link"), reason, extra=fields)
