"""Thin Celery tasks: deserialize, resolve clients, call one `ingest` function, map errors.

Every task is idempotent by a stable key (feed URL, feed entry), acknowledged
late and redelivered if its worker dies; bounded retries end in the
`{prefix}:deadletter` stream with enough to replay the item.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import redis
from celery import Task, current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from ingest import pipeline, poll, retag
from ingest.models import Feed, FeedEntry
from ingest.pages import RedisPageStore
from ingest.politeness import HostBusy, PoliteFetcher
from workers import signals
from workers.beat import run_tick
from workers.context import WorkerContext
from workers.delivery import DeliveryLimitError, RedisDeliveryCounter, counter_ttl, limit_message

log = logging.getLogger("newswire.tasks")
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, ConnectionError)
EXTRACT_LIMIT_S = 20.0
FEED_WAIT_S = 2.0  # a feed poll waits this long for a host slot, then goes back to the schedule
SWEEP_WAIT_S = 30.0  # a sweep's poll waits longer (then is re-enqueued): no beat hands it out again
PAGE_WAIT_S = 10.0  # an article page waits this long for a host slot, then is re-enqueued


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
    """Retries infrastructure errors a few times, then dead-letters the item; so is a task whose
    worker died during each of its last `max_deliveries` deliveries (workers/delivery.py)."""

    autoretry_for = RETRYABLE
    max_retries = 3
    retry_backoff = True
    retry_jitter = True
    ignore_result = True
    acks_late = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if not (self.acks_late and task_id) or self.request.called_directly:
            return super().__call__(*args, **kwargs)
        settings = CTX.settings
        counter = RedisDeliveryCounter(
            CTX.redis, settings.prefix, counter_ttl(settings.visibility_timeout, settings.max_deliveries)
        )
        deliveries = counter.start(task_id)
        if deliveries > settings.max_deliveries:
            raise DeliveryLimitError(limit_message(deliveries, settings.max_deliveries))
        try:
            return super().__call__(*args, **kwargs)
        finally:
            counter.finish(task_id)

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
        fields = {"stage": self.name, "outcome": "dead_lettered", **signals.item_fields(self.name, args)}
        log.error("gave up on %s: %s", self.name, exc, extra=fields)


@shared_task(name="ingest.tick", base=IngestTask, acks_late=False)
def tick() -> int:
    """Beat's one entry: hand out the feeds that are due."""
    return run_tick(CTX, poll_feed.delay)


@shared_task(name="ingest.poll_feed", base=IngestTask)
def poll_feed(feed_url: str, sweep_id: str | None = None, item: str | None = None) -> dict[str, Any]:
    feed = CTX.registry.get(feed_url) or Feed(url=feed_url)
    fetcher = CTX.polite_fetcher(max_wait_s=SWEEP_WAIT_S if sweep_id else FEED_WAIT_S)
    report = poll.poll_feed(feed, fetcher, CTX.registry)
    if report.outcome == "deferred" and sweep_id:  # no beat hands a sweep's feed out again: re-enqueue it
        poll_feed.apply_async((feed_url,), {"sweep_id": sweep_id, "item": item})
        return {"outcome": report.outcome, "new_entries": 0}
    dispatch_entries(report.new_entries, sweep_id)
    poll.commit_poll(report, CTX.registry, CTX.schedule, feeds_path=CTX.settings.feeds_path)
    CTX.stats.count("poll", report.outcome)
    if sweep_id and item:
        CTX.tracker(sweep_id).done(item, report.outcome)
    return {"outcome": report.outcome, "new_entries": len(report.new_entries)}  # for workers/signals.py


def dispatch_entries(entries: tuple[FeedEntry, ...], sweep_id: str | None) -> None:
    items = [f"a:{pipeline.entry_origin(e)}" for e in entries]
    if sweep_id:
        CTX.tracker(sweep_id).expect(items)
    first_seen = time.time()  # end-to-end latency is measured from here (workers/signals.py)
    for entry, item in zip(entries, items, strict=True):
        data = entry.to_dict()
        fetch_article.apply_async(
            (data,), {"sweep_id": sweep_id, "item": item, "first_seen": first_seen},
            argsrepr=signals.fetch_argsrepr(data),
        )  # fmt: skip


@shared_task(name="ingest.fetch_article", base=IngestTask)
def fetch_article(
    entry: dict[str, Any], sweep_id: str | None = None, item: str | None = None,
    first_seen: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """I/O stage: the article page, unless this URL was published already."""
    feed_entry = FeedEntry.from_dict(entry)
    if pipeline.is_known_link(feed_entry, CTX.sink):
        page = pipeline.PageFetch(None, feed_entry.link, "already published")
    else:
        try:
            page = pipeline.fetch_page(feed_entry, page_fetcher(feed_entry))
        except HostBusy:  # the site is busy with our other requests: back of the queue, not an error
            kwargs = {"sweep_id": sweep_id, "item": item, "first_seen": first_seen}
            fetch_article.apply_async((entry,), kwargs, argsrepr=signals.fetch_argsrepr(entry))
            return {"outcome": "deferred"}
    # the page goes by key, not in the message ("" keeps args[1] "a page was fetched" for signals.py)
    page_key = None if page.html is None else page_store().put(pipeline.entry_origin(feed_entry), page.html)
    extract_article.apply_async(
        (entry, "" if page_key else page.html, page.final_url, page.error),
        {"sweep_id": sweep_id, "item": item, "first_seen": first_seen, "page_key": page_key},
        argsrepr=signals.extract_argsrepr(entry, page.html, page.final_url, page.error),
    )
    return {"outcome": signals.page_outcome(page.html, page.error)}


def page_store() -> RedisPageStore:
    return RedisPageStore(CTX.redis, CTX.settings.prefix)


def page_fetcher(entry: FeedEntry) -> PoliteFetcher:
    """Article pages wait a little for a host slot and honour robots.txt unless the feed says not to."""
    feed = CTX.registry.get(entry.feed_url)
    return CTX.polite_fetcher(max_wait_s=PAGE_WAIT_S, robots=feed is None or feed.robots)


@shared_task(name="ingest.extract_article", base=IngestTask)
def extract_article(
    entry: dict[str, Any], html: str | None, final_url: str | None, error: str | None,
    sweep_id: str | None = None, item: str | None = None, first_seen: float | None = None,
    page_key: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """CPU stage: extract, tag, publish once. The page comes by `page_key` (ingest/pages.py)."""
    feed_entry = FeedEntry.from_dict(entry)
    if page_key:
        html = page_store().get(page_key)  # None once expired: the feed's own content is used
    page = pipeline.PageFetch(html, final_url, error)
    try:
        article = pipeline.extract_page(page)
        doc = pipeline.build_document(feed_entry, page, article, CTX.topics(), time.time())
    except SoftTimeLimitExceeded:  # the page took too long: the feed's own content is used instead
        log.warning("extraction over its time limit: %s", final_url, extra={"stage": "extract"})
        CTX.stats.count("extract", "timeout")
        doc = pipeline.build_document(feed_entry, page, None, CTX.topics(), time.time())
    outcome, doc = pipeline.publish_document(doc, CTX.sink, feed_entry)
    if page_key:
        page_store().drop(page_key)
    CTX.stats.count("article", outcome.status)
    if sweep_id and item:
        CTX.tracker(sweep_id).done(item, outcome.status)
    return signals.article_result(outcome.status, doc)


@shared_task(name="ingest.retag_articles", base=IngestTask)
def retag_articles(since_ms: int, sweep_id: str | None = None, item: str | None = None) -> dict[str, Any]:
    """Re-tag articles published since `since_ms` with the current topics; add new matches once."""
    report = retag.retag_articles(CTX.redis, CTX.sink, CTX.topics(), since_ms).to_dict()
    if sweep_id and item:
        CTX.redis.set(f"{CTX.settings.prefix}:retag:{sweep_id}", orjson.dumps(report), ex=86400)
        CTX.tracker(sweep_id).done(item, "ok")
    return report
