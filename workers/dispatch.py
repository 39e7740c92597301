"""The dispatcher: hands out requests from the host queues as their hosts become ready.

One thread in each I/O worker (a worker of the feeds or articles queue on a thread pool: the
prefork pool forks its children from the main process, where no extra thread should run).
It claims what the hosts may take now (`RedisHostQueue.claim`: atomic, under the same global
limits as every other fetcher), sends claimed pages as `ingest.fetch_articles` tasks (a few to a
task) and claimed feed polls as `ingest.poll_feed`, then sleeps until the next host is due or
a request is queued or finished anywhere. Every few seconds it reaps leases of jobs whose worker
died (back to their host's queue; dead-lettered after `NEWSWIRE_MAX_DELIVERIES` lost leases).
Any number of dispatchers may run, on any machines: each claim is one Redis script.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown

from ingest.dispatch import FEED, PAGE, PageRequest
from ingest.fetch.hostqueue import HostJob
from workers import names
from workers.app import queue_name
from workers.context import WorkerContext, worker_context
from workers.messages import FetchArticles, PollFeed

log = logging.getLogger("newswire.dispatch")
CLAIM_LIMIT = 64  # jobs per claim (one script call)
FETCH_BATCH = 8  # claimed pages per fetch task: fetched at once, their messaging paid once
IDLE_S = 1.0  # longest sleep: a wake-up (a job queued or finished) or the next due host ends it sooner
REAP_EVERY_S = 5.0


class Dispatcher:
    """Claims the kinds of request its worker runs: feed polls (feeds queue), pages (articles queue)."""

    def __init__(self, ctx: WorkerContext, app: Any, kinds: tuple[str, ...]) -> None:
        self.ctx, self.app, self.kinds = ctx, app, kinds
        self.stopping = threading.Event()
        self.next_reap = 0.0
        self.thread = threading.Thread(target=self.run, name="dispatcher", daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except redis.RedisError as exc:  # Redis restarting: the jobs wait in it meanwhile
                log.warning("dispatcher: %s", exc, extra={"stage": "dispatch"})
                self.stopping.wait(IDLE_S)

    def step(self) -> None:
        if time.monotonic() >= self.next_reap:
            self.reap()
            self.next_reap = time.monotonic() + REAP_EVERY_S
        claims = [self.ctx.host_queue.claim(CLAIM_LIMIT, kind) for kind in self.kinds]  # feed polls first
        jobs = tuple(job for claim in claims for job in claim.jobs)
        if jobs:
            self.send(jobs)
            return
        waits = [claim.wait_s for claim in claims if claim.wait_s is not None]
        self.ctx.host_queue.wait(min([IDLE_S, *waits]))

    def send(self, jobs: tuple[HostJob, ...]) -> None:
        pages = [job for job in jobs if job.kind != FEED]
        with self.app.producer_or_acquire() as producer:
            for job in jobs:
                if job.kind == FEED:
                    poll = PollFeed.from_dict(job.data)
                    self.app.send_task(
                        names.POLL_FEED, *poll.call(), producer=producer, queue=self.queue("feeds")
                    )
            for start in range(0, len(pages), FETCH_BATCH):
                part = [job.to_dict() for job in pages[start : start + FETCH_BATCH]]
                args, kwargs = FetchArticles(jobs=tuple(part)).call()
                links = [p["data"].get("entry", {}).get("link") for p in part]
                self.app.send_task(names.FETCH_ARTICLES, args, kwargs, producer=producer,
                                   queue=self.queue("articles"), argsrepr=repr((links,)))  # fmt: skip

    def queue(self, stage: str) -> str:
        return queue_name(self.ctx.settings.prefix, stage)

    def reap(self) -> None:
        requeued, given_up = self.ctx.host_queue.reap(self.ctx.settings.max_deliveries)
        if requeued:
            log.warning("%d requests whose worker died went back to their host's queue", requeued,
                        extra={"stage": "dispatch"})  # fmt: skip
        for job in given_up:
            self.dead_letter(job)

    def dead_letter(self, job: HostJob) -> None:
        """A request whose worker died during each of its last leases: replayable as its task."""
        reason = f"its worker died during each of {self.ctx.settings.max_deliveries} leases"
        if job.kind == FEED:
            poll = PollFeed.from_dict(job.data)
            task, (args, kwargs), sweep, item = names.POLL_FEED, poll.call(), poll.sweep_id, poll.item
        else:
            page = PageRequest.from_dict(job.data)
            replay = FetchArticles((page.entry.to_dict(),), page.sweep_id, (page.item,), page.first_seen)
            task, (args, kwargs), sweep, item = names.FETCH_ARTICLES, replay.call(), page.sweep_id, page.item
        self.ctx.sink.dead_letter(f"{task}:{job.id}", {"task": task, "args": args, "kwargs": kwargs,
                                                       "reason": reason})  # fmt: skip
        self.ctx.stats.count(task, "dead_lettered")
        if sweep and item:
            self.ctx.tracker(sweep).done(item, "error_dead_lettered")
        log.error("gave up on %s: %s", job.id, reason, extra={"stage": task, "outcome": "dead_lettered"})


DISPATCHERS: list[Dispatcher] = []


@worker_ready.connect
def start_dispatching(sender: Any, **_: Any) -> None:
    """In a thread-pool worker that consumes the feeds or articles queue: start the dispatcher."""
    app, pool = sender.app, getattr(sender.controller, "pool_cls", None)
    prefix, consumed = app.conf.newswire_settings.prefix, set(app.amqp.queues.consume_from)
    kinds = tuple(
        k for k, stage in ((FEED, "feeds"), (PAGE, "articles")) if queue_name(prefix, stage) in consumed
    )
    if getattr(pool, "__module__", "").endswith(".prefork") or not kinds:
        return
    dispatcher = Dispatcher(worker_context(), app, kinds)
    DISPATCHERS.append(dispatcher)
    dispatcher.thread.start()
    log.info("dispatching requests from the host queues", extra={"stage": "dispatch"})


@worker_shutdown.connect
def stop_dispatching(**_: Any) -> None:
    for dispatcher in DISPATCHERS:
        dispatcher.stopping.set()
    for dispatcher in DISPATCHERS:
        dispatcher.thread.join(IDLE_S * 3)
