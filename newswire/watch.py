"""What a person watching `newswire up` on a terminal sees: a banner, then one summary line a minute.

The banner says where everything is (Redis and its data, Flower, metrics, the HTTP service, the
feeds and topics loaded) and how to stop. The summary line counts, from the service's own counters
in Redis (`{prefix}:stats`), what the last minute and the run so far did: feeds polled and how many
of those polls failed, articles published, duplicates, and how many feeds are failing now. Nothing
is printed when stdout is not a terminal (logs, on stderr, say it all there).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import redis

from config.settings import Settings, mask_url
from ingest.feeds.feedsfile import FeedsFileError, load_feeds_file
from ingest.ops.progress import RedisStats
from ingest.tag.topics import TopicError, load_topics
from newswire import redisd
from newswire.health import FeedOverview, queue_depths, read_feeds, record_depths
from newswire.tables import is_terminal

log = logging.getLogger("newswire.watch")
EVERY_S = 60.0
NOT_POLLED = frozenset({"deferred"})  # politeness put the poll off: nothing was fetched
POLL_OK = frozenset({"ok", "not_modified"})


@dataclass(frozen=True, slots=True)
class Totals:
    polled: int = 0
    poll_failed: int = 0
    published: int = 0
    duplicates: int = 0

    def minus(self, other: Totals) -> Totals:
        return Totals(
            self.polled - other.polled, self.poll_failed - other.poll_failed,
            self.published - other.published, self.duplicates - other.duplicates,
        )  # fmt: skip


def totals_of(counters: dict[str, int]) -> Totals:
    """The summary's counts from `stage:outcome` counters (pure)."""
    polls = {k[5:]: n for k, n in counters.items() if k.startswith("poll:") and k[5:] not in NOT_POLLED}
    return Totals(
        polled=sum(polls.values()),
        poll_failed=sum(n for outcome, n in polls.items() if outcome not in POLL_OK),
        published=counters.get("article:published", 0),
        duplicates=counters.get("article:duplicate", 0),
    )


def summary_line(minute: Totals, run: Totals, feeds: FeedOverview | None, at: float) -> str:
    """`23:14 UTC · last minute: polled 14 (14 failed) · published 0 · duplicates 0 · since start: …`."""
    stamp = time.strftime("%H:%M UTC", time.gmtime(at))
    failing = "feeds not read"
    if feeds is not None:
        bad = feeds.counts["failing"] + feeds.counts["disabled"]
        failing = f"{bad} of {feeds.counts['registered']} feeds failing"
    return f"{stamp} · last minute: {counts(minute)} · since start: {counts(run)} · {failing}"


def counts(totals: Totals) -> str:
    failed = f" ({totals.poll_failed:,} failed)" if totals.poll_failed else ""
    return (
        f"polled {totals.polled:,}{failed} · published {totals.published:,} · "
        f"duplicates {totals.duplicates:,}"
    )


def banner_lines(settings: Settings, *, flower: bool) -> list[str]:
    """The few lines that say where everything is and how to stop."""
    lines = ["newswire is up; Ctrl-C stops it (workers first, then beat and Flower, then Redis)"]
    lines.append(f"  redis    {redis_where(settings)}")
    if flower:
        lines.append(f"  flower   http://127.0.0.1:{settings.flower_port}/")
    if settings.metrics_port:
        lines.append(f"  metrics  http://127.0.0.1:{settings.metrics_port}/metrics")
    if settings.http_port:
        lines.append(f"  http     http://{settings.http_address}:{settings.http_port}/")
    lines.append(f"  feeds    {count_feeds(settings.feeds_path)}")
    lines.append(f"  topics   {count_topics(settings.topics_path)}")
    lines.append("  look     newswire status · newswire feeds list · a summary line every minute below")
    return lines


def redis_where(settings: Settings) -> str:
    data = settings.data_dir / "redis"
    running = redisd.find_running(data)
    if running is not None and running.url == settings.redis_url:
        return f"{running.url} (embedded, data in {data})"
    return f"{mask_url(settings.redis_url)} (NEWSWIRE_REDIS_URL)"


def count_feeds(path: Path) -> str:
    try:
        feeds = load_feeds_file(path)
    except FeedsFileError as exc:
        return f"not loaded: {exc}"
    enabled = sum(1 for f in feeds if f.enabled)
    return f"{len(feeds)} in {path}" + (f" ({enabled} enabled)" if enabled != len(feeds) else "")


def count_topics(path: Path) -> str:
    try:
        return f"{len(load_topics(path).topics)} in {path}"
    except TopicError as exc:
        return f"not loaded: {exc}"


def show_banner(settings: Settings, *, flower: bool) -> None:
    if is_terminal():
        click.echo("\n".join(banner_lines(settings, flower=flower)))


@contextlib.contextmanager
def summary_lines(settings: Settings, every_s: float = EVERY_S) -> Iterator[None]:
    """While the block runs, one summary line every `every_s` on a terminal (a daemon thread)."""
    stop = threading.Event()
    thread = None
    if is_terminal():
        thread = threading.Thread(target=print_summaries, args=(settings, every_s, stop), daemon=True)
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(5)


def print_summaries(settings: Settings, every_s: float, stop: threading.Event) -> None:
    assert settings.redis_url is not None  # noqa: S101 - `newswire up` has started or found Redis
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10)
    start = last = read_totals(client, settings) or Totals()
    while not stop.wait(every_s):
        now = read_totals(client, settings)
        if now is None:
            continue  # Redis is restarting or stopping: the next minute tells
        feeds = read_overview(client, settings)
        click.echo(summary_line(now.minus(last), now.minus(start), feeds, time.time()))
        last = now


def read_totals(client: redis.Redis, settings: Settings) -> Totals | None:
    try:
        return totals_of(RedisStats(client, settings.prefix).all())
    except redis.RedisError:
        return None


def read_overview(client: redis.Redis, settings: Settings) -> FeedOverview | None:
    """The feeds' health, and a queue-depth sample for `newswire status`'s backlog check."""
    try:
        now = time.time()
        record_depths(client, settings.prefix, queue_depths(settings, reachable=True), now)
        return read_feeds(client, settings.prefix, now)
    except (redis.RedisError, OSError):
        return None
