"""`newswire sweep`: poll every enabled feed once, through the real workers, and wait for all of it."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from config.settings import Settings
from ingest.feeds.feedsfile import load_feeds_file
from ingest.feeds.poll import register_feeds
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import RedisSchedule
from ingest.ops.progress import RedisSweepTracker, summarize_outcomes
from newswire.service import Supervisor, ensure_redis, worker_children
from workers import names
from workers.app import create_app, queue_name

log = logging.getLogger("newswire.sweep")


@dataclass(frozen=True, slots=True)
class SweepResult:
    summary: dict[str, Any]
    complete: bool


def run_sweep(settings: Settings, *, timeout: float, start_workers: bool = True) -> SweepResult:
    """Start Redis (if embedded) and workers, enqueue every enabled feed, wait until done."""
    settings, server = ensure_redis(settings)
    supervisor = Supervisor(
        settings,
        workers=worker_children(settings, label=f"-sweep{os.getpid()}") if start_workers else [],
        redis=server,
    )
    supervisor.start()
    try:
        return enqueue_and_wait(settings, timeout, supervisor.failed)
    finally:
        supervisor.stop()


def enqueue_and_wait(settings: Settings, timeout: float, failed: Callable[[], list[str]]) -> SweepResult:
    assert settings.redis_url is not None  # noqa: S101 - ensure_redis set it
    client = redis.Redis.from_url(settings.redis_url)
    registry = RedisFeedRegistry(client, settings.prefix)
    schedule = RedisSchedule(client, settings.prefix)
    feeds = load_feeds_file(settings.feeds_path)
    register_feeds(feeds, registry, schedule)
    urls = [f.url for f in feeds if f.enabled and not registry.state(f.url).get("disabled")]
    tracker = RedisSweepTracker(client, settings.prefix, uuid.uuid4().hex[:12])
    started = time.monotonic()
    enqueue_feeds(settings, tracker, urls)
    complete = wait_until_done(tracker, len(urls), started + timeout, failed)
    summary = summarize_outcomes(tracker.outcomes(), tracker.pending())
    summary["elapsed_s"] = round(time.monotonic() - started, 2)
    summary["complete"] = complete
    return SweepResult(summary, complete)


def enqueue_feeds(settings: Settings, tracker: RedisSweepTracker, urls: list[str]) -> None:
    app = create_app(settings)
    items = [f"f:{url}" for url in urls]
    tracker.expect(items)
    with app.producer_or_acquire() as producer:
        for url, item in zip(urls, items, strict=True):
            app.send_task(
                names.POLL_FEED, args=[url], kwargs={"sweep_id": tracker.sweep_id, "item": item},
                queue=queue_name(settings.prefix, "feeds"), producer=producer,
            )  # fmt: skip


def wait_until_done(
    tracker: RedisSweepTracker, feeds: int, deadline: float, failed: Callable[[], list[str]]
) -> bool:
    with SweepBars(feeds) as bars:
        while True:
            pending = tracker.pending()
            bars.show(tracker.outcomes(), pending)
            if pending == 0:
                return True
            if time.monotonic() > deadline or failed():
                log.error("sweep stopped with %d items pending (%s)", pending, failed() or "timeout")
                return False
            time.sleep(0.2)


@dataclass(frozen=True, slots=True)
class SweepProgress:
    feeds_done: int
    feeds_total: int
    articles_done: int
    articles_total: int  # grows as polled feeds hand out their new entries
    summary: str


def sweep_progress(outcomes: Counter[str], pending: int, feeds: int) -> SweepProgress:
    """Feeds polled and articles processed so far, from the tracker's per-item outcomes (pure)."""
    feeds_done = sum(n for k, n in outcomes.items() if k.startswith("f:"))
    articles_done = sum(n for k, n in outcomes.items() if k.startswith("a:"))
    articles_pending = max(0, pending - max(0, feeds - feeds_done))
    counts = summarize_outcomes(outcomes, pending)
    summary = f"{counts['published']} published · {counts['duplicates']} dup · {counts['errors']} errors"
    return SweepProgress(feeds_done, feeds, articles_done, articles_done + articles_pending, summary)


class SweepBars:
    """Two live bars on a terminal (stderr): feeds polled, articles processed; nothing otherwise."""

    def __init__(self, feeds: int) -> None:
        self.feeds = feeds
        self.progress: Progress | None = None
        if sys.stderr.isatty():
            self.progress = Progress(
                TextColumn("[bold]{task.description:<9}[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=Console(stderr=True),
            )  # fmt: skip
            self.feed_bar = self.progress.add_task("feeds", total=feeds, note="polled")
            self.article_bar = self.progress.add_task("articles", total=0, note="")

    def __enter__(self) -> SweepBars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *args: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def show(self, outcomes: Counter[str], pending: int) -> None:
        if self.progress is None:
            return
        now = sweep_progress(outcomes, pending, self.feeds)
        self.progress.update(self.feed_bar, completed=now.feeds_done)
        self.progress.update(
            self.article_bar, completed=now.articles_done, total=now.articles_total, note=now.summary
        )
