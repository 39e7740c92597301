"""Recovery with default settings: every worker process SIGKILLed at one point of the pipeline, then
started again (as an operator, or `newswire up`, would), with the Redis broker and with RabbitMQ.

Nothing here shortens a timeout: the visibility timeout stays 3600 s and the schedule lease 300 s.
What a dead worker held comes back because its heartbeat stops (`NEWSWIRE_WORKER_TTL`, 10 s): its
unacknowledged tasks (Redis broker; RabbitMQ returns them when the connection drops) and its feed
polls. For each point the figures are: expected, published, duplicated (0), lost (0), and the time
from the kill (and from the restart) to the batch's last story out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest.feeds.schedule import RedisSchedule
from ingest.keys import articles_stream, topic_stream
from ingest.ops.progress import RedisStats, RedisSweepTracker
from newswire import redisd
from newswire.demo.server import SiteServer
from tests.faults.conftest import fault_env
from tests.faults.harness import (
    delivery_figures,
    record_figures,
    resilient_client,
    wait_for,
)
from tests.faults.recovery import (
    Service,
    batch_figures,
    entry_times,
    kill_after_first_write,
    last_id,
    polls_in_flight,
    published_all,
    retag_topic,
    wait_active,
    write_topics,
)
from tests.faults.sites import ArticleSpec, DeskSite, write_feeds_toml, write_news_site
from tests.integration.test_rabbitmq import AMQP_URL, NOT_RUN, delete_queues
from workers.app import queue_name

pytestmark = pytest.mark.slow
POINTS = ("poll", "fetch", "extract", "publish")  # each with a batch of new feeds; then a retag of all
BATCH_FEEDS, PER_FEED = 2, 8
FEED_DELAY, PAGE_DELAY = 3.0, 1.0  # polls and page fetches still going on when the workers die
LONG_PAGE = 400  # paragraphs: the extraction batch of the "extract" point takes a few seconds
SETTLE_S = 0.5  # after the point is reached, before the kill: the work is well under way
RECOVERY_TIMEOUT = 150.0
SLUG = "fault-gazette"


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, prefix: str) -> Iterator[str | None]:
    if request.param == "rabbitmq" and not AMQP_URL:
        pytest.skip(NOT_RUN)
    yield AMQP_URL if request.param == "rabbitmq" else None
    if request.param == "rabbitmq":
        delete_queues(AMQP_URL, prefix)


def write_batches(root: Path) -> dict[str, list[ArticleSpec]]:
    return {
        point: write_news_site(root, BATCH_FEEDS, PER_FEED, first=n * BATCH_FEEDS, paragraphs=size)
        for n, point in enumerate(POINTS)
        for size in [LONG_PAGE if point == "extract" else 5]
    }


def slow_down(point: str, server: SiteServer, specs: list[ArticleSpec]) -> None:
    if point == "poll":
        for feed in {s.feed for s in specs}:
            server.set_route(feed, delay=FEED_DELAY)
    if point == "fetch":
        for spec in specs:
            server.set_route(spec.path, delay=PAGE_DELAY)


def kill_at(point: str, service: Service, client: redis.Redis, prefix: str, mark: str) -> float:
    """Wait for `point` of the new batch, then SIGKILL every worker process; returns the kill time."""
    workers = service.workers
    if point == "publish":
        return kill_after_first_write(client, articles_stream(prefix), mark, service.kill_workers)
    worker, task = {
        "poll": (workers.io, "ingest.poll_feed"),
        "fetch": (workers.io, "ingest.fetch_articles"),
        "extract": (workers.extract, "ingest.extract_articles"),
    }[point]
    assert wait_active(workers, worker, task), f"no {task} in flight:\n{service.log_text()[-3000:]}"
    if point != "extract":
        time.sleep(SETTLE_S)
    return service.kill_workers()


def outcome(
    client: redis.Redis, stream: str, expected: set[str], killed: float, restarted: float
) -> dict[str, Any]:
    complete = wait_for(published_all(client, stream, expected), RECOVERY_TIMEOUT, interval=0.2)
    last = max(entry_times(client, stream, expected), default=killed)
    return {
        **batch_figures(client, stream, expected),
        "complete": complete,
        "kill_to_last_s": round(last - killed, 1),
        "restart_to_last_s": round(last - restarted, 1),
    }


def test_every_worker_killed_at_each_point_then_restarted_loses_nothing_and_repeats_nothing(
    broker: str | None, durable_redis: redisd.EmbeddedRedis, make_workers: Any, prefix: str, tmp_path: Path
) -> None:
    root = tmp_path / "site"
    batches = write_batches(root)
    feeds, topics = tmp_path / "feeds.toml", write_topics(tmp_path / "topics.toml")
    write_feeds_toml(feeds, [])
    extra = {"topics": str(topics)} | ({"broker_url": broker} if broker else {})
    env = fault_env(durable_redis.url, prefix, tmp_path, feeds, **extra)
    client = resilient_client(durable_redis.url)
    name = "amqp" if broker else "redis"
    rows: list[dict[str, Any]] = []
    with DeskSite(root) as server:
        service = Service(make_workers(env))
        service.start()
        try:
            listed: list[str] = []
            for point in POINTS:
                specs = batches[point]
                slow_down(point, server, specs)
                mark = last_id(client, articles_stream(prefix))
                reruns = rerun_count(client, prefix)
                listed += sorted({server.url(s.feed) for s in specs})
                write_feeds_toml(feeds, listed)  # beat picks the new feeds up at its next tick
                killed = kill_at(point, service, client, prefix, mark)
                held = polls_in_flight(client, prefix)
                restarted = service.restart_workers()
                row = outcome(client, articles_stream(prefix), {s.doc_id(server) for s in specs},
                              killed, restarted)  # fmt: skip
                row["reruns_after_publish"] = rerun_count(client, prefix) - reruns
                row["polls_held_by_the_dead"] = len(held)
                rows.append(row)
                record_figures(f"R {name}: all workers killed during a {point}", **row)
                assert row["complete"], f"{point}: {row}\n{service.log_text()[-4000:]}"
            rows.append(retag_point(service, client, prefix, topics, name))
            every = [s for specs in batches.values() for s in specs]
            totals = delivery_figures(client, prefix, [s.doc_id(server) for s in every])
            schedule = RedisSchedule(client, prefix)
            in_flight = lambda: schedule.counts(time.time())["in_flight"]  # noqa: E731
            assert wait_for(lambda: in_flight() == 0, 60), in_flight()
            assert not polls_in_flight(client, prefix)
        finally:
            service.stop()
    for row in rows:
        assert (row["duplicated"], row["lost"]) == (0, 0), row
    assert (totals["lost"], totals["duplicated"], totals["topic_duplicated"]) == (0, 0, 0), totals
    assert (totals["duplicates_stream"], totals["deadletter"]) == (0, 0), totals


def rerun_count(client: redis.Redis, prefix: str) -> int:
    """Extractions that found their article published already (a task run again after its publish)."""
    return RedisStats(client, prefix).all().get("article:already", 0)


def retag_point(
    service: Service, client: redis.Redis, prefix: str, topics: Path, name: str
) -> dict[str, Any]:
    """`newswire topics retag` after a new topic, every worker killed once it has added some articles."""
    write_topics(topics, retag_topic(SLUG))
    expected = {str(d) for d in article_ids(client, prefix)}
    tracker = RedisSweepTracker(client, prefix, uuid.uuid4().hex[:12])
    tracker.expect(["r:retag"])
    service.workers.app.send_task(
        "ingest.retag_articles", args=[0], kwargs={"sweep_id": tracker.sweep_id, "item": "r:retag"},
        queue=queue_name(prefix, "extract"),
    )  # fmt: skip
    killed = kill_after_first_write(client, topic_stream(prefix, SLUG), "0-0", service.kill_workers)
    restarted = service.restart_workers()
    row = outcome(client, topic_stream(prefix, SLUG), expected, killed, restarted)
    assert wait_for(lambda: tracker.pending() == 0, RECOVERY_TIMEOUT), service.log_text()[-4000:]
    record_figures(f"R {name}: all workers killed during a retag", **row)
    assert row["complete"], row
    return row


def article_ids(client: redis.Redis, prefix: str) -> list[str]:
    from tests.faults.harness import stream_docs  # noqa: PLC0415

    return [str(d["id"]) for d in stream_docs(client, articles_stream(prefix))]
