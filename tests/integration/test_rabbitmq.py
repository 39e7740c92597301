"""End to end on RabbitMQ: Celery's broker is AMQP, while state and streams stay in Redis.

Runs when AMQP_TEST_URL is set; `.ci/run` sets it when a RabbitMQ answers
on the standard AMQP port. Each test has its own NEWSWIRE_STREAM_PREFIX, so its queues
(`{prefix}.feeds`, `.articles`, `.extract`) are its own; they and their
exchanges are deleted afterwards, so repeated runs leave nothing on the broker.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import orjson
import pytest
import redis
from kombu import Connection, Producer, Queue

from config.settings import load_settings
from newswire.demo.server import SiteServer
from tests.conftest import run_cli
from workers.app import STAGES, create_app, queue_name

AMQP_URL = os.environ.get("AMQP_TEST_URL", "")
NOT_RUN = (
    "NOT RUN: the RabbitMQ end-to-end test needs AMQP_TEST_URL "
    "(e.g. amqp://guest:guest@127.0.0.1//); .ci/run sets it when RabbitMQ answers on its standard port"
)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not AMQP_URL, reason=NOT_RUN)]
DISTINCT_PAGES = 8  # 9 pages on the test site, one of them a syndicated copy (tests/fixtures/site/README.md)


def stage_queues(prefix: str) -> list[str]:
    return [queue_name(prefix, stage) for stage in STAGES]


def delete_queues(url: str, prefix: str) -> None:
    """The test's queues and exchanges, one channel each (a 404 closes its channel)."""
    with Connection(url, connect_timeout=5) as conn:
        for name in stage_queues(prefix):
            for delete in ("queue_delete", "exchange_delete"):
                channel = conn.channel()
                with contextlib.suppress(*conn.channel_errors):
                    getattr(channel, delete)(name)
                with contextlib.suppress(Exception):
                    channel.close()


def amqp_depth(url: str, name: str) -> int | None:
    """Messages ready in a RabbitMQ queue; None when the queue does not exist."""
    with Connection(url, connect_timeout=5) as conn:
        try:
            return int(conn.channel().queue_declare(name, passive=True).message_count)
        except conn.channel_errors:
            return None


@pytest.fixture
def amqp_env(cli_env: dict[str, str], prefix: str) -> Iterator[dict[str, str]]:
    yield {**cli_env, "NEWSWIRE_BROKER_URL": AMQP_URL}
    delete_queues(AMQP_URL, prefix)
    assert all(amqp_depth(AMQP_URL, q) is None for q in stage_queues(prefix)), "queues left on RabbitMQ"


def last_json(stdout: str) -> dict[str, object]:
    return dict(orjson.loads(stdout.strip().splitlines()[-1]))


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def status(env: dict[str, str]) -> dict[str, object]:
    result = run_cli(["status", "--json"], env, timeout=60)
    assert result.stdout.strip(), result.stderr[-2000:]
    return last_json(result.stdout)


def test_sweep_on_rabbitmq_publishes_every_article_once(
    amqp_env: dict[str, str], redis_client: redis.Redis, prefix: str, site: SiteServer
) -> None:
    result = run_cli(["sweep", "--timeout", "120"], amqp_env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json(result.stdout)
    assert (summary["feeds"], summary["feeds_failed"], summary["entries"]) == (5, 0, 9)
    assert (summary["published"], summary["duplicates"], summary["errors"]) == (DISTINCT_PAGES, 1, 0)

    articles = stream_docs(redis_client, f"{prefix}:articles")
    assert len({a["id"] for a in articles}) == len(articles) == DISTINCT_PAGES
    talks = stream_docs(redis_client, f"{prefix}:topic:ukraine-ceasefire-talks")
    assert len(talks) == 1
    duplicates = stream_docs(redis_client, f"{prefix}:duplicates")
    assert [d["duplicate_of"] for d in duplicates] == [talks[0]["id"]]

    # the tasks travelled through RabbitMQ, not through Redis
    assert all(amqp_depth(AMQP_URL, q) == 0 for q in stage_queues(prefix))
    assert not redis_client.exists(*stage_queues(prefix))
    assert not list(redis_client.scan_iter(f"_kombu.binding.{prefix}.*"))

    args = ["consume", "--topic", "ukraine-ceasefire-talks", "--group", "desk", "--from-beginning"]
    first = run_cli(args, amqp_env)
    assert [orjson.loads(line)["id"] for line in first.stdout.splitlines()] == [talks[0]["id"]]
    assert run_cli(args, amqp_env).stdout.strip() == ""  # acked: not delivered to the group again


def test_status_reports_rabbitmq_queue_depths(amqp_env: dict[str, str], prefix: str) -> None:
    before = status(amqp_env)
    assert before["broker"] == AMQP_URL.replace(":guest@", ":***@")
    assert before["queues"] == dict.fromkeys(stage_queues(prefix), 0)  # not declared yet: nothing waiting

    app = create_app(load_settings(amqp_env))
    extract = queue_name(prefix, "extract")
    for _ in range(2):  # two extractions nobody consumes: no worker runs in this test
        app.send_task("ingest.extract_article", args=[{}, None, None, "test"], queue=extract)
    app.pool.force_close_all()
    report = status(amqp_env)
    queues = report["queues"]
    assert isinstance(queues, dict)
    assert queues[extract] == 2
    assert queues[queue_name(prefix, "feeds")] == 0
    assert report["checks"]["broker"]["ok"]  # type: ignore[index]


HOLDER = """
import sys, time
from kombu import Connection, Queue
with Connection(sys.argv[1]) as conn:
    queue = Queue(sys.argv[2])(conn.default_channel)
    held = [queue.get(no_ack=False) for _ in range(2)]
    print(sum(m is not None for m in held), flush=True)
    time.sleep(120)
"""


def test_unacked_messages_return_as_soon_as_their_consumer_dies(prefix: str) -> None:
    """What RabbitMQ does for a worker killed with SIGKILL: its connection drops, its unacknowledged
    messages are ready again at once (no visibility timeout to wait out), marked redelivered."""
    name = queue_name(prefix, "extract")
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        queue = Queue(name, channel=conn.default_channel)
        queue.declare()
        for n in range(2):
            Producer(conn.default_channel).publish({"n": n}, routing_key=name)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, AMQP_URL, name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "2"  # both taken, neither acked
        assert amqp_depth(AMQP_URL, name) == 0
        holder.kill()
        holder.wait(10)
        deadline = time.monotonic() + 30
        while amqp_depth(AMQP_URL, name) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert amqp_depth(AMQP_URL, name) == 2
        with Connection(AMQP_URL, connect_timeout=5) as conn:
            again = [Queue(name)(conn.default_channel).get(no_ack=True) for _ in range(2)]
        assert sorted(m.payload["n"] for m in again) == [0, 1]
        assert all(m.delivery_info["redelivered"] for m in again)
    finally:
        holder.kill()
        delete_queues(AMQP_URL, prefix)
