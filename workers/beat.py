"""The beat tick: reap expired leases, pick up feeds-file edits, hand out due feeds.

Beat itself has one entry (`ingest.tick`); which feeds are due lives in Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ingest.poll import register_feeds
from ingest.registry import FeedsFileError, load_feeds_file
from workers.context import WorkerContext

log = logging.getLogger("newswire.beat")
CLAIM_LIMIT = 5000


def run_tick(ctx: WorkerContext, enqueue: Callable[[str], Any], now: float | None = None) -> int:
    now = now or time.time()
    reaped = ctx.schedule.reap(now)
    if reaped:
        log.warning("re-scheduled %d feeds whose poll lease expired", reaped, extra={"stage": "tick"})
    sync_if_changed(ctx, now)
    due = ctx.schedule.claim_due(now, limit=CLAIM_LIMIT)
    for url in due:
        enqueue(url)
    return len(due)


def sync_if_changed(ctx: WorkerContext, now: float) -> None:
    """Re-read the feeds file when its size or mtime changed since the last sync."""
    path = ctx.settings.feeds_path
    try:
        stat = path.stat()
    except OSError:
        return
    stamp = f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"
    key = f"{ctx.settings.prefix}:feeds_file"
    if ctx.redis.get(key) == stamp.encode():
        return
    try:
        feeds = load_feeds_file(path)
    except FeedsFileError as exc:
        log.error("feeds file not reloaded: %s", exc, extra={"stage": "tick"})  # noqa: TRY400 - the message says it all
        return
    result = register_feeds(feeds, ctx.registry, ctx.schedule, now)
    ctx.redis.set(key, stamp)
    log.info("feeds file synced: %d added, %d removed", len(result.added), len(result.removed))
