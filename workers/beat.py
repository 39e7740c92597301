"""The beat tick: reap expired leases, pick up feeds-file edits, hand out due feeds, and the WebSub
subscriptions that need a request (new hub, renewal, retry, a feed removed).

Beat itself has one entry (`ingest.tick`); which feeds are due lives in Redis.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import current_app

from ingest import keys
from ingest.feeds.feedsfile import FeedsFileError, load_feeds_file
from ingest.feeds.poll import register_feeds
from ingest.streams.retention import maintain_streams, retention_policy
from workers import names
from workers.context import WorkerContext

log = logging.getLogger("newswire.beat")
CLAIM_LIMIT = 5000
DIGESTS: dict[Path, tuple[tuple[int, int], str]] = {}  # per process: path -> ((mtime_ns, size), sha256)


def run_tick(ctx: WorkerContext, enqueue: Callable[[str], Any], now: float | None = None) -> int:
    now = now or time.time()
    reaped = ctx.schedule.reap(now)
    if reaped:
        log.warning("re-scheduled %d feeds whose poll lease expired", reaped, extra={"stage": "tick"})
    sync_if_changed(ctx, now)
    due = ctx.schedule.claim_due(now, limit=CLAIM_LIMIT)
    for url in due:
        enqueue(url)
    hand_out_websub(ctx, now)
    policy = retention_policy(ctx.settings.stream_maxlen, ctx.settings.stream_retention_days)
    maintain_streams(ctx.redis, ctx.settings.prefix, policy)  # rate-limited in Redis; never raises
    return len(due)


def hand_out_websub(ctx: WorkerContext, now: float) -> int:
    """One `ingest.websub_request` per feed whose subscription needs a request (off without a public URL:
    what was queued for it is dropped)."""
    if not ctx.settings.public_url:
        ctx.redis.delete(keys.websub_todo(ctx.settings.prefix))
        return 0
    urls = ctx.websub.due_feeds(now)
    for url in urls:
        current_app.send_task(names.WEBSUB_REQUEST, args=[url])
    return len(urls)


def file_digest(path: Path) -> str | None:
    """The content hash of the feeds file, re-read only when this machine sees its mtime or size change.

    The content (not the mtime) is compared across machines, so copies of the same file on several
    nodes do not make every tick re-sync.
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    local = (stat.st_mtime_ns, stat.st_size)
    cached = DIGESTS.get(path)
    if cached is None or cached[0] != local:
        cached = (local, hashlib.sha256(path.read_bytes()).hexdigest())
        DIGESTS[path] = cached
    return cached[1]


def sync_if_changed(ctx: WorkerContext, now: float) -> None:
    """Re-read the feeds file when its content changed since the last sync (by any node)."""
    path = ctx.settings.feeds_path
    stamp = file_digest(path)
    if stamp is None:
        return
    key = keys.feeds_file(ctx.settings.prefix)
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
