"""Thin Celery tasks: deserialize, resolve clients, call one `ingest` function, map errors.

Every task is idempotent by a stable key (feed URL, feed entry), acknowledged
late and redelivered if its worker dies; bounded retries end in the
`{prefix}:deadletter` stream with enough to replay the item. Each task reads its
arguments as one typed message (workers/messages.py); how a batch is split and
dead-lettered is the message's business (workers/delivery.py), never the task name's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from ingest import batch, dispatch, keys, pipeline
from ingest.feeds import poll
from ingest.fetch.hostqueue import HostJob
from ingest.fetch.pages import RedisPageStore
from ingest.models import Document, Feed, FeedEntry, FetchProfile, PageFetch, PageItem
from ingest.tag import retag
from workers import names, signals
from workers.beat import run_tick
from workers.context import WorkerContext, worker_context
from workers.delivery import (
    SPLIT_MARK,
    DeliveryLimitError,
    RedisDeliveryCounter,
    counter_ttl,
    dead_letters,
    limit_message,
    split_batch,
)
from workers.messages import (
    Call,
    ExtractArticle,
    ExtractArticles,
    FetchArticle,
    FetchArticles,
    Message,
    PollFeed,
    RetagArticles,
    Tick,
)
from workers.timelimit import ItemTimeLimitError, time_limit

log = logging.getLogger("newswire.tasks")
RETRYABLE = pipeline.INFRASTRUCTURE_ERRORS
EXTRACT_BATCH = 8  # pages per extraction task at most: its messaging is paid once per batch


class IngestTask(Task):  # type: ignore[misc]
    """Retries infrastructure errors a few times, then dead-letters the item; so is a task whose
    worker died during each of its last `max_deliveries` deliveries (workers/delivery.py)."""

    autoretry_for = RETRYABLE
    max_retries = 3
    retry_backoff = True
    retry_jitter = True
    ignore_result = True
    acks_late = True
    message: type[Message] = Tick  # each task's own, given to @shared_task

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if not (self.acks_late and task_id) or self.request.called_directly:
            return super().__call__(*args, **kwargs)
        ctx = worker_context()
        ttl = counter_ttl(ctx.settings.visibility_timeout, ctx.settings.max_deliveries)
        counter = RedisDeliveryCounter(ctx.redis, ctx.settings.prefix, ttl)
        deliveries = counter.start(task_id)
        split = {"outcome": "split", "pages": [], "articles": []}  # nothing of its own to count
        if deliveries > SPLIT_MARK:  # another copy of this batch (a redelivery) was split already
            return split
        if deliveries > ctx.settings.max_deliveries:
            message = self.read(args, kwargs)
            if message is not None and split_batch(message, self.send_part, task_id):
                counter.mark_split(task_id)
                log.warning("a batch kept killing its worker: each item goes on alone",
                            extra={"stage": self.name, "outcome": "split"})  # fmt: skip
                return split
            raise DeliveryLimitError(limit_message(deliveries, ctx.settings.max_deliveries))
        try:
            return super().__call__(*args, **kwargs)
        finally:
            counter.finish(task_id)

    def read(self, args: Any, kwargs: dict[str, Any]) -> Message | None:
        """The delivery's message; None for arguments no message of this task has."""
        try:
            return self.message.from_call(list(args), dict(kwargs))
        except (TypeError, ValueError):
            return None

    def send_part(self, call: Call, task_id: str) -> None:
        self.apply_async(*call, task_id=task_id)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        ctx, reason = worker_context(), f"{type(exc).__name__}: {exc}"
        message = self.read(args, kwargs)
        failed = dead_letters(self.name, task_id, message) if message else []
        for letter in failed:
            payload = {"task": self.name, "args": letter.call[0], "kwargs": letter.call[1], "reason": reason}
            ctx.sink.dead_letter(letter.key, payload)
            if letter.tracked:
                ctx.tracker(letter.tracked[0]).done(letter.tracked[1], "error_dead_lettered")
        if message is None:  # arguments nothing can read: kept as they came, for whoever replays them
            payload = {"task": self.name, "args": list(args), "kwargs": kwargs, "reason": reason}
            ctx.sink.dead_letter(f"{self.name}:{task_id}", payload)
        ctx.stats.count(self.name, "dead_lettered", max(1, len(failed)))
        fields = {"stage": self.name, "outcome": "dead_lettered", **signals.item_fields(self.name, args)}
        log.error("gave up on %s (%d item(s)): %s", self.name, max(1, len(failed)), exc, extra=fields)


@shared_task(name=names.TICK, base=IngestTask, acks_late=False, message=Tick)
def tick() -> int:
    """Beat's one entry: hand out the feeds that are due."""
    return run_tick(worker_context(), poll_feed.delay)


@shared_task(name=names.POLL_FEED, base=IngestTask, message=PollFeed)
def poll_feed(
    feed_url: str, sweep_id: str | None = None, item: str | None = None, claimed: bool = False
) -> dict[str, Any]:
    """Poll a feed now if its host may take a request, else it waits in the host's queue (at its
    head) and the dispatcher sends it again, `claimed`, holding the host's slot."""
    msg, ctx = PollFeed(feed_url, sweep_id, item, claimed), worker_context()
    feed = ctx.registry.get(msg.feed_url) or Feed(url=msg.feed_url)
    fetcher = ctx.fetcher() if msg.claimed else ctx.polite_fetcher(max_wait_s=0)
    report = poll.poll_feed(feed, fetcher, ctx.registry, options=ctx.poll_options)
    if report.outcome == "deferred":
        job = dispatch.feed_job(msg.feed_url, replace(msg, claimed=True).to_dict())
        ctx.host_queue.add([job], front=True)
        return {"outcome": report.outcome, "new_entries": 0}
    hand_on_entries(ctx, feed, report.new_entries, msg.sweep_id)
    poll.commit_poll(report, ctx.registry, ctx.schedule, feeds_path=ctx.settings.feeds_path)
    if msg.claimed:
        ctx.host_queue.finish([(dispatch.feed_job(msg.feed_url, {}), "done")])
    ctx.stats.count("poll", report.outcome)
    if msg.sweep_id and msg.item:
        ctx.tracker(msg.sweep_id).done(msg.item, report.outcome)
    return {"outcome": report.outcome, "new_entries": len(report.new_entries)}  # for workers/signals.py


def hand_on_entries(
    ctx: WorkerContext, feed: Feed, entries: tuple[FeedEntry, ...], sweep_id: str | None
) -> None:
    """A poll's new entries: their items expected by the sweep, then into the host queues."""
    requests = dispatch.page_requests(entries, sweep_id, time.time(), lambda _: feed.robots)
    if sweep_id:
        ctx.tracker(sweep_id).expect([r.item for r in requests if r.item])
    dispatch.queue_pages(requests, ctx.host_queue, ctx.sink, new_batch(ctx))


def new_batch(ctx: WorkerContext) -> batch.PageBatch:
    return batch.PageBatch(page_store(ctx), send_extractions, EXTRACT_BATCH)


@shared_task(name=names.FETCH_ARTICLES, base=IngestTask, message=FetchArticles)
def fetch_articles(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """I/O stage: pages claimed from their hosts' queues, fetched at once, each holding its host's
    slot (ingest/dispatch.py). Entries sent by earlier versions go into the host queues."""
    msg, ctx = FetchArticles.from_call(args, kwargs), worker_context()
    if msg.entries:  # first_seen: when the poll found them (end-to-end latency)
        entries = [FeedEntry.from_dict(e) for e in msg.entries]
        requests = dispatch.page_requests(
            entries, msg.sweep_id, msg.first_seen, lambda url: robots_of(ctx, url)
        )
        dispatch.queue_pages(requests, ctx.host_queue, ctx.sink, new_batch(ctx))
    jobs = [HostJob.from_dict(job) for job in msg.jobs]
    fetch = lambda job: dispatch.fetch_claimed(job, ctx.fetcher, ctx.robots, ctx.sink, profile_of(ctx))  # noqa: E731
    report = dispatch.fetch_jobs(jobs, fetch, ctx.fetch_pool, new_batch(ctx), ctx.host_queue)
    return {"outcome": "batch", "pages": [{"outcome": p.outcome, "link": p.link} for p in report.pages]}


def profile_of(ctx: WorkerContext) -> Callable[[str], FetchProfile | None]:
    """A page's source's fetch profile (headers, user agent, cookies, proxy), by its feed URL."""

    def lookup(feed_url: str) -> FetchProfile | None:
        feed = ctx.registry.get(feed_url)
        return feed.fetch if feed else None

    return lookup


def robots_of(ctx: WorkerContext, feed_url: str) -> bool:
    feed = ctx.registry.get(feed_url)
    return feed is None or feed.robots


def send_extractions(pages: list[PageItem]) -> None:
    msg = ExtractArticles(tuple(p.to_dict() for p in pages))
    extract_articles.apply_async(*msg.call(), argsrepr=signals.extractions_argsrepr(list(msg.pages)))


def page_store(ctx: WorkerContext) -> RedisPageStore:
    return RedisPageStore(ctx.redis, ctx.settings.prefix)


@shared_task(name=names.EXTRACT_ARTICLES, base=IngestTask, message=ExtractArticles)
def extract_articles(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """CPU stage: extract and tag each page, then publish the batch once (two round trips).

    A page whose extraction fails in its own way is dead-lettered alone; the others go on."""
    msg, ctx = ExtractArticles.from_call(args, kwargs), worker_context()
    ledger = batch.Ledger(
        ctx.sink, page_store(ctx), ctx.stats, ctx.tracker, msg.sweep_id, names.EXTRACT_ARTICLES
    )
    report = batch.extract_pages(msg.pages, lambda entry, page: build_one(ctx, entry, page), ledger)
    articles = [
        {
            **signals.article_result(p.outcome.status, p.doc),
            "page": bool(p.page.page_key or p.page.html),
            "first_seen": p.page.first_seen,
        }
        for p in report.published
    ]
    return {"outcome": "batch", "articles": articles, "dead_lettered": report.dead_lettered}


def build_one(ctx: WorkerContext, entry: FeedEntry, page: PageFetch) -> Document:
    """The document of one page, extracted within its own time limit (else from the feed's content)."""
    try:
        with time_limit(ctx.settings.extract_time_limit):
            feed = ctx.registry.get(entry.feed_url) if entry.feed_url else None
            article = pipeline.extract_page(page, feed.extract if feed else None)  # extract.selector/remove
            return pipeline.build_document(entry, page, article, ctx.topics(), time.time())
    except (SoftTimeLimitExceeded, ItemTimeLimitError):
        log.warning("extraction over its time limit: %s", page.final_url, extra={"stage": "extract"})
        ctx.stats.count("extract", "timeout")
        return pipeline.build_document(entry, page, None, ctx.topics(), time.time())


@shared_task(name=names.RETAG_ARTICLES, base=IngestTask, message=RetagArticles)
def retag_articles(since_ms: int, sweep_id: str | None = None, item: str | None = None) -> dict[str, Any]:
    """Re-tag articles published since `since_ms` with the current topics; add new matches once."""
    msg, ctx = RetagArticles(since_ms, sweep_id, item), worker_context()
    report = retag.retag_articles(ctx.redis, ctx.sink, ctx.topics(), msg.since_ms).to_dict()
    if msg.sweep_id and msg.item:
        ctx.redis.set(keys.retag_report(ctx.settings.prefix, msg.sweep_id), orjson.dumps(report), ex=86400)
        ctx.tracker(msg.sweep_id).done(msg.item, "ok")
    return report


# --- one-article tasks queued by earlier versions: read as batches of one ------------------------


@shared_task(name=names.FETCH_ARTICLE, base=IngestTask, message=FetchArticle)
def fetch_article(*args: Any, **kwargs: Any) -> dict[str, Any]:
    call = FetchArticle.from_call(args, kwargs).as_batch().call()
    return fetch_articles(*call[0], **call[1])


@shared_task(name=names.EXTRACT_ARTICLE, base=IngestTask, message=ExtractArticle)
def extract_article(*args: Any, **kwargs: Any) -> dict[str, Any]:
    call = ExtractArticle.from_call(args, kwargs).as_batch().call()
    return extract_articles(*call[0], **call[1])
