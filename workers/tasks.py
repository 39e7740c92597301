"""Thin Celery tasks: deserialize, resolve clients, call one `ingest` function, map errors.

Every task is idempotent by a stable key (feed URL, feed entry), acknowledged
late and redelivered if its worker dies; bounded retries end in the
`{prefix}:deadletter` stream with enough to replay the item.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task, current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from ingest import pipeline, poll
from ingest.models import Feed, FeedEntry
from workers.beat import run_tick
from workers.context import WorkerContext

log = logging.getLogger("newswire.tasks")
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, ConnectionError)
EXTRACT_LIMIT_S = 20.0


class LazyContext:
    """The worker's clients, built on first use from the app's settings."""

    def __getattr__(self, name: str) -> Any:
        ctx = current_app.conf.get("newswire_context")
        if ctx is None:
            ctx = WorkerContext(current_app.conf.newswire_settings)
            current_app.conf.newswire_context = ctx
        return getattr(ctx, name)


CTX: Any = LazyContext()


class IngestTask(Task):  # type: ignore[misc]
    """Retries infrastructure errors a few times, then dead-letters the item."""

    autoretry_for = RETRYABLE
    max_retries = 3
    retry_backoff = True
    retry_jitter = True
    ignore_result = True
    acks_late = True

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        item = {
            "task": self.name,
            "args": list(args),
            "kwargs": kwargs,
            "reason": f"{type(exc).__name__}: {exc}",
        }
        CTX.sink.dead_letter(f"{self.name}:{task_id}", item)
        CTX.stats.count(self.name, "dead_lettered")
        sweep_id, key = kwargs.get("sweep_id"), kwargs.get("item")
        if sweep_id and key:
            CTX.tracker(sweep_id).done(key, "error_dead_lettered")
        log.error("gave up on %s: %s", self.name, exc, extra={"stage": self.name, "outcome": "dead_lettered"})


@shared_task(name="ingest.tick", base=IngestTask, acks_late=False)
def tick() -> int:
    """Beat's one entry: hand out the feeds that are due."""
    return run_tick(CTX, poll_feed.delay)


@shared_task(name="ingest.poll_feed", base=IngestTask)
def poll_feed(feed_url: str, sweep_id: str | None = None, item: str | None = None) -> None:
    feed = CTX.registry.get(feed_url) or Feed(url=feed_url)
    report = poll.poll_feed(feed, CTX.fetcher(), CTX.registry)
    dispatch_entries(report.new_entries, sweep_id)
    poll.commit_poll(report, CTX.registry, CTX.schedule)
    CTX.stats.count("poll", report.outcome)
    if sweep_id and item:
        CTX.tracker(sweep_id).done(item, report.outcome)


def dispatch_entries(entries: tuple[FeedEntry, ...], sweep_id: str | None) -> None:
    items = [f"a:{pipeline.entry_origin(e)}" for e in entries]
    if sweep_id:
        CTX.tracker(sweep_id).expect(items)
    for entry, item in zip(entries, items, strict=True):
        fetch_article.delay(entry.to_dict(), sweep_id=sweep_id, item=item)


@shared_task(name="ingest.fetch_article", base=IngestTask)
def fetch_article(entry: dict[str, Any], sweep_id: str | None = None, item: str | None = None) -> None:
    """I/O stage: the article page, unless this URL was published already."""
    feed_entry = FeedEntry.from_dict(entry)
    if pipeline.is_known_link(feed_entry, CTX.sink):
        page = pipeline.PageFetch(None, feed_entry.link, "already published")
    else:
        page = pipeline.fetch_page(feed_entry, CTX.fetcher())
    extract_article.delay(entry, page.html, page.final_url, page.error, sweep_id=sweep_id, item=item)


@shared_task(name="ingest.extract_article", base=IngestTask)
def extract_article(
    entry: dict[str, Any], html: str | None, final_url: str | None, error: str | None,
    sweep_id: str | None = None, item: str | None = None,
) -> None:  # fmt: skip
    """CPU stage: extract, tag, publish once."""
    feed_entry = FeedEntry.from_dict(entry)
    page = pipeline.PageFetch(html, final_url, error)
    try:
        article = pipeline.extract_page(page)
    except SoftTimeLimitExceeded:
        log.warning("extraction over its time limit: %s", final_url, extra={"stage": "extract"})
        CTX.stats.count("extract", "timeout")
        article = None
    doc = pipeline.build_document(feed_entry, page, article, CTX.topics(), time.time())
    outcome, _ = pipeline.publish_document(doc, CTX.sink, feed_entry)
    CTX.stats.count("article", outcome.status)
    if sweep_id and item:
        CTX.tracker(sweep_id).done(item, outcome.status)
