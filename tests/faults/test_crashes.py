"""Crash consistency: processes killed with SIGKILL in the middle of a 200-article sweep.

Real workers (started as `newswire up` starts them), a real embedded Redis with AOF, a loopback news
site. Whatever dies, every article ends up in `{prefix}:articles` exactly once and in each of its topic
streams exactly once. Tasks of a killed pool process come back at once (`task_reject_on_worker_lost`);
tasks held by a killed worker process come back after the broker's visibility timeout (12 s here);
tasks in flight while Redis restarts wait for it (workers/context.py, `task_publish_retry_policy`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest.feeds.parse import entry_key
from ingest.models import FeedEntry
from ingest.ops.progress import RedisStats
from ingest.pipeline import entry_origin
from newswire import redisd
from newswire.demo.server import SiteServer
from tests.faults.conftest import fault_env
from tests.faults.harness import (
    Workers,
    delivery_figures,
    published_count,
    record_figures,
    resilient_client,
    settings_for,
    start_sweep,
    wait_for,
    wait_sweep,
)
from tests.faults.sites import ArticleSpec

pytestmark = pytest.mark.slow
SWEEP_TIMEOUT = 150.0
PAGE_DELAY = 0.1  # each page answers after this long, so fetching is still going on when the I/O worker dies


def slow_pages(server: SiteServer, specs: list[ArticleSpec]) -> None:
    for spec in specs:
        server.set_route(spec.path, delay=PAGE_DELAY)


def active_pid(workers: Workers, task: str, timeout: float = 60.0) -> int | None:
    """A pool process of the extraction worker that is running `task` right now (None: none did)."""
    found: list[int] = []

    def running() -> bool:
        pid = workers.active_task_pid(workers.extract, task)
        found[:] = [pid] if pid else []
        return bool(pid)

    return found[0] if wait_for(running, timeout, interval=0.05) else None


def busy_moment(workers: Workers, worker: Any, timeout: float = 30.0) -> int:
    """How many tasks `worker` runs at the first moment it runs any (0: none within `timeout`)."""
    seen: list[int] = [0]

    def busy() -> bool:
        seen[0] = in_flight(workers, worker)
        return seen[0] > 0

    wait_for(busy, timeout, interval=0.05)
    return seen[0]


def in_flight(workers: Workers, worker: Any) -> int:
    replies = workers.app.control.inspect(destination=[worker.node], timeout=0.5).active() or {}
    return len(replies.get(worker.node, []))


def check_exactly_once(figures: dict[str, int], expected: int) -> None:
    assert (figures["expected"], figures["found"], figures["lost"]) == (expected, expected, 0), figures
    assert (figures["duplicated"], figures["unexpected"], figures["topic_duplicated"]) == (0, 0, 0), figures
    assert figures["topic_entries"] > 0, figures  # one article in ten is about ceasefire talks
    assert (figures["duplicates_stream"], figures["deadletter"]) == (0, 0), figures


def test_workers_killed_mid_sweep_lose_nothing_and_publish_nothing_twice(
    durable_redis: redisd.EmbeddedRedis, news_site: tuple[SiteServer, list[ArticleSpec]], news_feeds: Path,
    make_workers: Any, prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    server, specs = news_site
    slow_pages(server, specs)
    env = fault_env(durable_redis.url, prefix, tmp_path, news_feeds)
    workers: Workers = make_workers(env)
    workers.start()
    client = resilient_client(durable_redis.url)
    started = time.monotonic()
    tracker = start_sweep(settings_for(env))
    kills: list[str] = []

    assert wait_for(lambda: published_count(client, prefix) >= 5, 90)
    busy = busy_moment(workers, workers.io)  # pages wait in their hosts' queues: not always in flight
    assert busy > 0
    workers.io.kill()  # the I/O worker, with polls and page fetches in flight
    kills.append(f"io worker ({busy} tasks in flight)")
    workers.start(workers.io)

    assert wait_for(lambda: published_count(client, prefix) >= 60, 90)
    pid = active_pid(workers, "ingest.extract_articles")
    assert pid is not None, "no extraction in flight"
    os.kill(pid, signal.SIGKILL)  # one pool process, mid-task
    kills.append("extract pool process (mid-task)")

    assert wait_for(lambda: published_count(client, prefix) >= 110, 90)
    assert tracker.pending() > 0
    busy = in_flight(workers, workers.extract)
    workers.extract.kill()  # the extraction worker's main process and its whole pool
    kills.append(f"extract worker + pool ({busy} tasks in flight)")
    workers.start(workers.extract)

    assert wait_for(lambda: published_count(client, prefix) >= 150, 90)
    if tracker.pending():  # warm shutdown, as `newswire up` stops it: running tasks finish, the rest go back
        workers.extract.stop()
        kills.append("extract worker stopped (SIGTERM)")
        workers.start(workers.extract)

    summary = wait_sweep(tracker, SWEEP_TIMEOUT)
    figures = delivery_figures(client, prefix, [s.doc_id(server) for s in specs])
    record_figures(
        "1 workers killed", **figures, kills="; ".join(kills), reruns_after_publish=reruns(client, prefix),
        elapsed_s=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert summary["complete"], explain_pending(client, tracker, specs, server, workers)
    check_exactly_once(figures, len(specs))
    assert summary["published"] == len(specs)
    assert all(w.alive() for w in workers.all())


def restart_redis(server: redisd.EmbeddedRedis, down_s: float) -> tuple[redisd.EmbeddedRedis, float]:
    """SIGKILL the server, keep it down `down_s`, start it again on the same port and data (AOF)."""
    killed = time.monotonic()
    server.kill()
    time.sleep(down_s)  # the outage itself: how long the server stays dead
    again = redisd.start(server.data_dir, port=server.port, persistent=True)
    assert again.url == server.url
    return again, time.monotonic() - killed


def test_redis_killed_mid_sweep_and_restarted_from_its_aof_loses_nothing(
    tmp_path: Path, news_site: tuple[SiteServer, list[ArticleSpec]], news_feeds: Path, make_workers: Any,
    prefix: str,
) -> None:  # fmt: skip
    server, specs = news_site
    slow_pages(server, specs)
    durable = redisd.start(tmp_path / "redis", persistent=True)
    try:
        env = fault_env(durable.url, prefix, tmp_path, news_feeds)
        workers: Workers = make_workers(env)
        workers.start()
        pids = [w.pid for w in workers.all()]
        client = resilient_client(durable.url)
        started = time.monotonic()
        tracker = start_sweep(settings_for(env))
        outages, busy = [], 0
        for threshold in (30, 90, 150):
            assert wait_for(lambda n=threshold: published_count(client, prefix) >= n, 90)
            busy += active_pid(workers, "ingest.extract_articles", timeout=10) is not None  # tasks held
            durable, outage = restart_redis(durable, down_s=2.0)
            outages.append(round(outage, 1))

        summary = wait_sweep(tracker, SWEEP_TIMEOUT)
        figures = delivery_figures(client, prefix, [s.doc_id(server) for s in specs])
        record_figures(
            "2 redis killed", **figures, restarts=len(outages), restarts_with_extraction_in_flight=busy,
            outage_s=outages, reruns_after_publish=reruns(client, prefix),
            elapsed_s=round(time.monotonic() - started, 1),
        )  # fmt: skip
        assert summary["complete"], explain_pending(client, tracker, specs, server, workers)
        check_exactly_once(figures, len(specs))
        assert [w.pid for w in workers.all()] == pids  # the same processes: they reconnected
        assert all(w.alive() for w in workers.all())
        assert wait_for(lambda: len(workers.answering()) == 2, 30)  # remote control works again too
        assert "gave up on" not in workers.io.log_text() + workers.extract.log_text()  # nothing failed
    finally:
        with contextlib.suppress(OSError, redis.RedisError):
            durable.stop()


def reruns(client: redis.Redis, prefix: str) -> int:
    """Extractions that ran again after their article was published (a redelivery: nothing added)."""
    return RedisStats(client, prefix).all().get("article:already", 0)


def explain_pending(
    client: redis.Redis, tracker: Any, specs: list[ArticleSpec], site: SiteServer, workers: Workers
) -> str:
    """For a sweep that did not finish: each missing article, its log lines, and where its task is."""
    pending = {m.decode() for m in client.smembers(tracker.pending_key)}
    logs = workers.io.log_text() + workers.extract.log_text()
    lines = [f"pending: {sorted(pending)}"]
    for spec in specs:
        origin = entry_origin(
            FeedEntry(
                feed_url=site.url(spec.feed), key=entry_key(spec.path, None, "", "", {}), link=None, title=""
            )
        )
        if f"a:{origin}" not in pending:
            continue
        lines.append(f"missing {spec.url(site)}")
        lines += [line[:300] for line in logs.splitlines() if spec.path in line]
        lines.append(f"in unacked: {sum(spec.path.encode() in v for v in client.hvals('unacked'))}")
    return "\n".join(lines)
