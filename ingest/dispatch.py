"""Requests through the host queues: a poll's new pages and a busy host's feed poll wait there, and
pages claimed from them are fetched at once, a few together, each holding its host's slot.

No worker waits for politeness: a request whose host may not take it yet waits in Redis
(ingest/fetch/hostqueue.py) and is claimed when the host is ready. A claimed page is fetched
without asking the limiter again (its claim took the slot); its robots.txt, when not cached, takes
that slot instead and the page goes back to the head of its host's queue for the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, wait
from dataclasses import dataclass
from typing import Any

from ingest import pipeline
from ingest.batch import SLOW_FETCH_S, PageBatch, PageOutcome, page_outcome
from ingest.fetch.hostqueue import HostJob, RedisHostQueue
from ingest.fetch.http import Fetcher, FetchResult
from ingest.fetch.politeness import host_of
from ingest.fetch.robots import ROBOTS_ACCEPT, RobotsRules
from ingest.models import FeedEntry, FetchProfile, PageFetch
from ingest.streams.publish import RedisStreamSink

PAGE, FEED = "page", "feed"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A page job's data: the entry, its sweep item, when its poll found it, whether robots.txt applies."""

    entry: FeedEntry
    item: str | None = None
    sweep_id: str | None = None
    first_seen: float | None = None
    robots: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry.to_dict(), "item": self.item, "sweep_id": self.sweep_id,
                "first_seen": self.first_seen, "robots": self.robots}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageRequest:
        return cls(FeedEntry.from_dict(data["entry"]), data.get("item"), data.get("sweep_id"),
                   data.get("first_seen"), bool(data.get("robots", True)))  # fmt: skip


def page_job(request: PageRequest) -> HostJob:
    """The job of one entry's page: once per feed entry (its origin), on the link's host."""
    link = request.entry.link or ""
    return HostJob(pipeline.entry_origin(request.entry), host_of(link), PAGE, request.to_dict())


def feed_job(feed_url: str, poll: dict[str, Any]) -> HostJob:
    """A feed poll that found its host busy: it waits at the head of the host's queue."""
    return HostJob(f"feed:{feed_url}", host_of(feed_url), FEED, poll)


def page_requests(
    entries: Sequence[FeedEntry],
    sweep_id: str | None,
    first_seen: float | None,
    robots: Callable[[str], bool],
) -> list[PageRequest]:
    """The page requests of a poll's new entries (`robots`: whether robots.txt applies to a feed)."""
    items = [f"a:{pipeline.entry_origin(e)}" for e in entries]
    return [
        PageRequest(e, i, sweep_id, first_seen, robots(e.feed_url))
        for e, i in zip(entries, items, strict=True)
    ]


def queue_pages(
    requests: Sequence[PageRequest], queue: RedisHostQueue, sink: RedisStreamSink, batch: PageBatch
) -> int:
    """Pages to fetch wait in their hosts' queues; the rest (no link, or a URL published already)
    go to extraction at once with the feed's own content. How many were queued."""
    fetching = [needs_fetch(r.entry, sink) for r in requests]
    queued = queue.add([page_job(r) for r, fetch in zip(requests, fetching, strict=True) if fetch])
    for request, fetch in zip(requests, fetching, strict=True):
        if not fetch:
            batch.add(request.entry, request.item, unfetched(request.entry),
                      sweep_id=request.sweep_id, first_seen=request.first_seen)  # fmt: skip
    batch.flush()
    return queued


def needs_fetch(entry: FeedEntry, sink: RedisStreamSink) -> bool:
    """An entry's page is fetched unless it has no link or its URL was published already."""
    return bool(entry.link) and not pipeline.is_known_link(entry, sink)


def unfetched(entry: FeedEntry) -> PageFetch:
    """What extraction gets for an entry whose page is not fetched (its feed content is used)."""
    return PageFetch(None, entry.link, pipeline.KNOWN_PAGE if entry.link else "entry has no link")


# --- fetching claimed pages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    job: HostJob
    request: PageRequest
    page: PageFetch | None  # None: the slot went to robots.txt; the page waits for the next one
    seconds: float = 0.0


def fetch_claimed(
    job: HostJob, fetcher: Callable[[], Fetcher], robots: RobotsRules, sink: RedisStreamSink,
    profile_of: Callable[[str], FetchProfile | None] = lambda _: None,
) -> Fetched:  # fmt: skip
    """One claimed page job: robots.txt first if not cached (then the page waits), else the page,
    both with the source's fetch profile (`profile_of` its feed URL)."""
    request = PageRequest.from_dict(job.data)
    entry = request.entry
    if not needs_fetch(entry, sink):
        return Fetched(job, request, unfetched(entry))
    client, profile = fetcher(), profile_of(entry.feed_url)
    if request.robots:
        asked: list[str] = []

        def get_robots(robots_txt: str) -> FetchResult:
            asked.append(robots_txt)
            return client.get(
                robots_txt, accept=ROBOTS_ACCEPT, allowed_types=("text/plain",), profile=profile
            )

        allowed = robots.allows(entry.link or "", get_robots)
        if asked:
            return Fetched(job, request, None)
        if not allowed:
            return Fetched(
                job, request, PageFetch(None, None, f"robots: {entry.link} disallowed by robots.txt")
            )
    started = time.monotonic()
    page = pipeline.fetch_page(entry, client, profile)
    return Fetched(job, request, page, time.monotonic() - started)


@dataclass(frozen=True, slots=True)
class ClaimedReport:
    pages: tuple[PageOutcome, ...]


def alone_batch(batch: PageBatch) -> PageBatch:
    """A batch of its own for one page, sent the same way."""
    return PageBatch(batch.store, batch.send, 1)


def fetch_jobs(
    jobs: Sequence[HostJob], fetch: Callable[[HostJob], Fetched], pool: Executor, batch: PageBatch,
    queue: RedisHostQueue,
) -> ClaimedReport:  # fmt: skip
    """Fetch claimed page jobs all at once (`pool`) and hand the pages on in rounds of `SLOW_FETCH_S`:
    the fast pages of a round go to extraction together, a page that took longer goes alone (a paced
    or slow site's page never waits for others, nor others for it). Then end the jobs: a page handed
    on is `fetched`, one whose slot went to its robots.txt goes `again`."""
    outcomes: list[PageOutcome] = []
    ended: list[tuple[HostJob, str]] = []
    pending = {pool.submit(fetch, job) for job in jobs}
    while pending:
        done, pending = wait(pending, timeout=SLOW_FETCH_S)
        for future in done:
            one = future.result()
            ended.append((one.job, "again" if one.page is None else "fetched"))
            if one.page is None:
                outcomes.append(PageOutcome(one.request.entry.link, "deferred"))
                continue
            slow = one.seconds >= SLOW_FETCH_S
            alone = alone_batch(batch) if slow else batch
            request = one.request
            alone.add(request.entry, request.item, one.page, urgent=slow, sweep_id=request.sweep_id,
                      first_seen=request.first_seen)  # fmt: skip
            outcomes.append(PageOutcome(one.request.entry.link, page_outcome(one.page)))
        batch.flush()  # every page is with extraction before its job ends
    queue.finish(ended)
    return ClaimedReport(tuple(outcomes))
