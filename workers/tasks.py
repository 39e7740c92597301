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

from ingest import keys, pipeline
from ingest.feeds import poll
from ingest.fetch.pages import RedisPageStore
from ingest.fetch.politeness import HostBusy, PoliteFetcher
from ingest.models import Document, Feed, FeedEntry, PageFetch
from ingest.tag import retag
from workers import signals
from workers.app import EXTRACT_BATCH  # pages per extraction task: its messaging is paid once per batch
from workers.batching import PageBatch
from workers.beat import run_tick
from workers.context import WorkerContext
from workers.delivery import DeliveryLimitError, RedisDeliveryCounter, counter_ttl, limit_message
from workers.timelimit import ItemTimeLimitError, time_limit

log = logging.getLogger("newswire.tasks")
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, ConnectionError)
FETCH_BATCH = 8  # entries per page-fetch task (one poll's, so mostly one site: fetched in turn)
SLOW_FETCH_S = 0.25  # a page that took this long (a slow or paced site) goes on to extraction at once
BATCH_TASKS = ("ingest.fetch_articles", "ingest.extract_articles")
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
            if self.split_batch(args, kwargs):
                counter.finish(task_id)
                return {"outcome": "split", "pages": [], "articles": []}  # nothing of its own to count
            raise DeliveryLimitError(limit_message(deliveries, settings.max_deliveries))
        try:
            return super().__call__(*args, **kwargs)
        finally:
            counter.finish(task_id)

    def split_batch(self, args: Any, kwargs: dict[str, Any]) -> bool:
        """A batch whose worker keeps dying goes on as batches of one, so only the item that kills
        its worker ends in the dead-letter stream (after its own `max_deliveries`)."""
        batch = batch_of(self.name, args) or []
        if len(batch) < 2:
            return False
        items = kwargs.get("items") or [None] * len(batch)
        for n, (one, item) in enumerate(zip(batch, items, strict=True)):
            extra = {"items": [item] if item else None} if self.name == "ingest.fetch_articles" else {}
            # ids derived from the batch's: a batch delivered twice at once (a visibility timeout
            # during its run) splits into the same singles, counted and dead-lettered once each
            self.apply_async(([one],), {**kwargs, **extra}, task_id=f"{self.request.id}.{n}")
        log.warning("a batch of %d kept killing its worker: each item goes on alone", len(batch),
                    extra={"stage": self.name, "outcome": "split"})  # fmt: skip
        return True

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        failed = failed_items(self.name, task_id, list(args), kwargs)
        for key, item_args, item_kwargs, sweep_item in failed:
            CTX.sink.dead_letter(
                key, {"task": self.name, "args": item_args, "kwargs": item_kwargs, "reason": reason}
            )
            if kwargs.get("sweep_id") and sweep_item:
                CTX.tracker(kwargs["sweep_id"]).done(sweep_item, "error_dead_lettered")
        CTX.stats.count(self.name, "dead_lettered", len(failed))
        fields = {"stage": self.name, "outcome": "dead_lettered", **signals.item_fields(self.name, args)}
        log.error("gave up on %s (%d item(s)): %s", self.name, len(failed), exc, extra=fields)


def batch_of(name: str, args: Any) -> list[Any] | None:
    """The items of a batch task's delivery (None for any other task, or odd arguments)."""
    return args[0] if name in BATCH_TASKS and args and isinstance(args[0], list) else None


def failed_items(
    name: str, task_id: str, args: list[Any], kwargs: dict[str, Any]
) -> list[tuple[str, list[Any], dict[str, Any], str | None]]:
    """What a failed task dead-letters: each item of a batch on its own (replayable as a batch of
    one), else the task's arguments; with the key that makes each entry once, and its sweep item."""
    batch = batch_of(name, args)
    if batch is None:
        return [(f"{name}:{task_id}", args, kwargs, kwargs.get("item"))]
    if name == "ingest.fetch_articles":
        items = kwargs.get("items") or [None] * len(batch)
        return [
            (f"{name}:{task_id}:{n}", [[entry]], {**kwargs, "items": [item] if item else None}, item)
            for n, (entry, item) in enumerate(zip(batch, items, strict=True))
        ]
    return [(f"{name}:{task_id}:{n}", [[page]], kwargs, page.get("item")) for n, page in enumerate(batch)]


@shared_task(name="ingest.tick", base=IngestTask, acks_late=False)
def tick() -> int:
    """Beat's one entry: hand out the feeds that are due."""
    return run_tick(CTX, poll_feed.delay)


@shared_task(name="ingest.poll_feed", base=IngestTask)
def poll_feed(feed_url: str, sweep_id: str | None = None, item: str | None = None) -> dict[str, Any]:
    feed = CTX.registry.get(feed_url) or Feed(url=feed_url)
    fetcher = CTX.polite_fetcher(max_wait_s=SWEEP_WAIT_S if sweep_id else FEED_WAIT_S)
    report = poll.poll_feed(feed, fetcher, CTX.registry, options=CTX.poll_options)
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
    """Hand a poll's new entries to the I/O stage, `FETCH_BATCH` to a task."""
    items = [f"a:{pipeline.entry_origin(e)}" for e in entries]
    if sweep_id:
        CTX.tracker(sweep_id).expect(items)
    first_seen = time.time()  # end-to-end latency is measured from here (workers/signals.py)
    data = [e.to_dict() for e in entries]
    for start in range(0, len(data), FETCH_BATCH):
        send_fetches(
            data[start : start + FETCH_BATCH], items[start : start + FETCH_BATCH], sweep_id, first_seen
        )


def send_fetches(
    entries: list[dict[str, Any]], items: list[str], sweep_id: str | None, first_seen: float | None
) -> None:
    kwargs = {"sweep_id": sweep_id, "items": items, "first_seen": first_seen}
    fetch_articles.apply_async((entries,), kwargs, argsrepr=signals.fetches_argsrepr(entries))


@shared_task(name="ingest.fetch_articles", base=IngestTask)
def fetch_articles(
    entries: list[dict[str, Any]], sweep_id: str | None = None, items: list[str] | None = None,
    first_seen: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """I/O stage: the article pages of a few entries of one poll (usually one site), one after the
    other as the site's politeness allows, each unless its URL was published already. Pages go on
    to extraction in batches of up to `EXTRACT_BATCH` when they come fast; when a page took long
    (a real site paced at one page a second), it and those before it go on at once."""
    items = items or [f"a:{pipeline.entry_origin(FeedEntry.from_dict(e))}" for e in entries]
    batch = PageBatch(
        page_store(), lambda pages: send_extractions(pages, sweep_id, first_seen), EXTRACT_BATCH
    )
    outcomes: list[dict[str, Any]] = []
    for n, (entry, item) in enumerate(zip(entries, items, strict=True)):
        started = time.monotonic()
        try:
            page = fetch_one(FeedEntry.from_dict(entry))
        except HostBusy:  # the site is busy with our other requests: the rest go back to the queue
            send_fetches(entries[n:], items[n:], sweep_id, first_seen)
            outcomes += [{"outcome": "deferred", "link": e.get("link")} for e in entries[n:]]
            break
        batch.add(entry, item, page, urgent=time.monotonic() - started >= SLOW_FETCH_S)
        outcomes.append({"outcome": signals.page_outcome(page.html, page.error), "link": entry.get("link")})
    batch.flush()
    return {"outcome": "batch", "pages": outcomes}


def fetch_one(entry: FeedEntry) -> PageFetch:
    if pipeline.is_known_link(entry, CTX.sink):
        return PageFetch(None, entry.link, signals.KNOWN_PAGE)
    return pipeline.fetch_page(entry, page_fetcher(entry))


def send_extractions(pages: list[dict[str, Any]], sweep_id: str | None, first_seen: float | None) -> None:
    kwargs = {"sweep_id": sweep_id, "first_seen": first_seen}
    extract_articles.apply_async((pages,), kwargs, argsrepr=signals.extractions_argsrepr(pages))


def page_store() -> RedisPageStore:
    return RedisPageStore(CTX.redis, CTX.settings.prefix)


def page_fetcher(entry: FeedEntry) -> PoliteFetcher:
    """Article pages wait a little for a host slot and honour robots.txt unless the feed says not to."""
    feed = CTX.registry.get(entry.feed_url)
    profile = feed.fetch if feed else None  # the source's headers, user agent, cookies, proxy
    return CTX.polite_fetcher(max_wait_s=PAGE_WAIT_S, robots=feed is None or feed.robots, profile=profile)


@shared_task(name="ingest.extract_articles", base=IngestTask)
def extract_articles(
    pages: list[dict[str, Any]], sweep_id: str | None = None, first_seen: float | None = None
) -> dict[str, Any]:
    """CPU stage: extract and tag each page, then publish the batch once (two round trips).

    A page whose extraction fails in its own way is dead-lettered alone; the others go on."""
    htmls = page_store().get_many([p.get("page_key") for p in pages])  # None once expired: feed content
    built: list[tuple[dict[str, Any], Document, FeedEntry]] = []
    ended: list[tuple[str, str]] = []
    for page, stored in zip(pages, htmls, strict=True):
        html = stored if page.get("page_key") else page.get("html")  # older messages carry the HTML
        fetched = PageFetch(html, page.get("final_url"), page.get("error"))
        try:
            entry = FeedEntry.from_dict(page["entry"])
            built.append((page, build_one(entry, fetched), entry))
        except RETRYABLE:
            raise
        except Exception as exc:  # noqa: BLE001 (this page's own fault: dead-letter it, keep the batch)
            dead_letter_item("ingest.extract_articles", page, exc)
            ended.append((page.get("item") or "", "error_dead_lettered"))
    results = pipeline.publish_documents([(doc, entry) for _, doc, entry in built], CTX.sink)
    page_store().drop(*[p["page_key"] for p in pages if p.get("page_key")])
    ended += [(page.get("item") or "", o.status) for (page, _, _), (o, _) in zip(built, results, strict=True)]
    CTX.stats.count_many("article", [o.status for o, _ in results])
    if sweep_id:
        CTX.tracker(sweep_id).done_many([(item, outcome) for item, outcome in ended if item])
    articles = [
        {**signals.article_result(o.status, doc), "page": bool(page.get("page_key") or page.get("html"))}
        for (page, _, _), (o, doc) in zip(built, results, strict=True)
    ]
    return {"outcome": "batch", "articles": articles, "dead_lettered": len(pages) - len(built)}


def build_one(entry: FeedEntry, page: PageFetch) -> Document:
    """The document of one page, extracted within its own time limit (else from the feed's content)."""
    try:
        with time_limit(CTX.settings.extract_time_limit):
            feed = CTX.registry.get(entry.feed_url) if entry.feed_url else None
            article = pipeline.extract_page(page, feed.extract if feed else None)  # extract.selector/remove
            return pipeline.build_document(entry, page, article, CTX.topics(), time.time())
    except (SoftTimeLimitExceeded, ItemTimeLimitError):
        log.warning("extraction over its time limit: %s", page.final_url, extra={"stage": "extract"})
        CTX.stats.count("extract", "timeout")
        return pipeline.build_document(entry, page, None, CTX.topics(), time.time())


def dead_letter_item(task: str, item: dict[str, Any], exc: BaseException) -> None:
    """Give up on one item of a batch: its own dead-letter entry, replayable as a batch of one."""
    reason = f"{type(exc).__name__}: {exc}"
    entry = item.get("entry") or {}
    key = f"{task}:{item.get('item') or entry.get('link')}"
    CTX.sink.dead_letter(key, {"task": task, "args": [[item]], "kwargs": {}, "reason": reason})
    CTX.stats.count(task, "dead_lettered")
    fields = {
        "stage": task,
        "outcome": "dead_lettered",
        "feed_url": entry.get("feed_url"),
        "url": entry.get("link"),
    }
    log.error("gave up on %s: %s", entry.get("link"), reason, extra=fields)


# --- tasks queued by earlier versions (one article each); new code sends the batch tasks above ---


@shared_task(name="ingest.fetch_article", base=IngestTask)
def fetch_article(
    entry: dict[str, Any], sweep_id: str | None = None, item: str | None = None,
    first_seen: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    return fetch_articles([entry], sweep_id, [item] if item else None, first_seen)


@shared_task(name="ingest.extract_article", base=IngestTask)
def extract_article(
    entry: dict[str, Any], html: str | None, final_url: str | None, error: str | None,
    sweep_id: str | None = None, item: str | None = None, first_seen: float | None = None,
    page_key: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    page = {
        "entry": entry,
        "item": item,
        "html": html,
        "final_url": final_url,
        "error": error,
        "page_key": page_key,
    }
    return extract_articles([page], sweep_id, first_seen)


@shared_task(name="ingest.retag_articles", base=IngestTask)
def retag_articles(since_ms: int, sweep_id: str | None = None, item: str | None = None) -> dict[str, Any]:
    """Re-tag articles published since `since_ms` with the current topics; add new matches once."""
    report = retag.retag_articles(CTX.redis, CTX.sink, CTX.topics(), since_ms).to_dict()
    if sweep_id and item:
        CTX.redis.set(keys.retag_report(CTX.settings.prefix, sweep_id), orjson.dumps(report), ex=86400)
        CTX.tracker(sweep_id).done(item, "ok")
    return report
