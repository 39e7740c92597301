"""Fetched pages on their way to extraction, a few to a task.

A Celery task costs ~2.5 ms of messaging against ~15 ms to extract a page, so the I/O stage hands
pages to extraction in batches when they come fast (a backlog, a sweep). It never holds a page for
long: a batch goes when it is full, when its oldest page has waited `FLUSH_AFTER_S`, or at once
after a page the caller marks urgent (one that took long to fetch: a real site paced at a page a
second, where waiting for a batch to fill would only add latency). The page itself goes by key
(`ingest/fetch/pages.py`); the batch carries what extraction needs to find it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ingest import pipeline
from ingest.fetch.pages import RedisPageStore
from ingest.models import FeedEntry, PageFetch

FLUSH_AFTER_S = 1.0  # a fetched page waits at most about this long for others


class PageBatch:
    def __init__(
        self, store: RedisPageStore, send: Callable[[list[dict[str, Any]]], None], size: int
    ) -> None:
        self.store, self.send, self.size = store, send, size
        self.pages: list[dict[str, Any]] = []
        self.oldest = 0.0

    def add(self, entry: dict[str, Any], item: str, page: PageFetch, *, urgent: bool = False) -> None:
        key = None
        if page.html is not None:
            key = self.store.put(pipeline.entry_origin(FeedEntry.from_dict(entry)), page.html)
        if not self.pages:
            self.oldest = time.monotonic()
        self.pages.append(
            {"entry": entry, "item": item, "final_url": page.final_url, "error": page.error, "page_key": key}
        )
        if urgent or len(self.pages) >= self.size or time.monotonic() - self.oldest >= FLUSH_AFTER_S:
            self.flush()

    def flush(self) -> None:
        if self.pages:
            self.send(self.pages)
            self.pages = []
