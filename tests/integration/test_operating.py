"""Operating newswire through the CLI: metrics after a real sweep, status and health with real workers."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from config.settings import load_settings
from newswire import redisd
from newswire.demo.server import SiteServer
from newswire.health import take_snapshot
from newswire.service import Supervisor, worker_children
from tests.conftest import NEWSWIRE, ROOT, run_cli
from workers.app import create_app, queue_name

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def sweep(env: dict[str, str]) -> dict[str, object]:
    result = run_cli(["sweep", "--timeout", "120"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(orjson.loads(result.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def exporter(env: dict[str, str]) -> Iterator[str]:
    port = redisd.free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = subprocess.Popen([*NEWSWIRE, "metrics", "--port", str(port)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=10).raise_for_status()
                break
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(15)


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.slow
def test_metrics_endpoint_counts_a_sweep(
    cli_env: dict[str, str], site: SiteServer, redis_client: redis.Redis, prefix: str
) -> None:
    site.set_route("/empty/rss.xml", status=500, body=b"down for maintenance")
    broken = [{"not": "a feed entry"}, None, None, None]  # fails at once: dead-lettered, never retried
    create_app(load_settings(cli_env)).send_task(
        "ingest.extract_article", args=broken, queue=queue_name(prefix, "extract")
    )
    summary = sweep(cli_env)
    assert (summary["published"], summary["duplicates"], summary["feeds_failed"]) == (8, 1, 1)
    assert redis_client.xlen(f"{prefix}:deadletter") == 1
    articles = f"{prefix}:articles"
    redis_client.xgroup_create(articles, "desk", id="0")
    redis_client.xreadgroup("desk", "reader", {articles: ">"}, count=3)

    with exporter(cli_env) as url:
        samples = scrape(url)

    assert value(samples, "newswire_feed_polls_total", outcome="ok") == 4
    assert value(samples, "newswire_feed_polls_total", outcome="http_500") == 1
    assert value(samples, "newswire_articles_total", outcome="published") == 8
    assert value(samples, "newswire_articles_total", outcome="duplicate") == 1
    assert value(samples, "newswire_articles_total", outcome="dead_lettered") == 1
    assert value(samples, "newswire_dead_letters_total", task="ingest.extract_article") == 1
    methods = [value(samples, "newswire_extractions_total", method=m) for m in ("trafilatura", "feed")]
    assert sum(methods) == 9  # every page was fetched and extracted; the rest fell back to the feed
    assert value(samples, "newswire_page_fetches_total", outcome="ok") == 9

    topics = sorted(k.decode() for k in redis_client.scan_iter(f"{prefix}:topic:*"))
    assert f"{prefix}:topic:ukraine-ceasefire-talks" in topics
    for stream in topics:
        slug = stream.rsplit(":", 1)[1]
        assert value(samples, "newswire_topic_published_total", topic=slug) == redis_client.xlen(stream)
        assert value(samples, "newswire_stream_length", stream=stream) == redis_client.xlen(stream)
    assert value(samples, "newswire_topic_published_total", topic="ukraine-ceasefire-talks") == 1

    assert value(samples, "newswire_fetch_seconds_count", kind="feed") == 5
    assert value(samples, "newswire_fetch_seconds_count", kind="page") == 9
    assert value(samples, "newswire_extract_seconds_count") == 9
    assert value(samples, "newswire_end_to_end_seconds_count") == 8  # published only
    assert value(samples, "newswire_end_to_end_seconds_bucket", le="+Inf") == 8
    assert value(samples, "newswire_end_to_end_seconds_sum") > 0

    assert value(samples, "newswire_queue_depth", queue=queue_name(prefix, "extract")) == 0
    assert value(samples, "newswire_feeds", health="ok") == 4
    assert value(samples, "newswire_feeds", health="failing") == 1
    assert ("newswire_feeds_overdue", ()) in samples
    assert value(samples, "newswire_stream_length", stream=articles) == 8
    assert value(samples, "newswire_stream_length", stream=f"{prefix}:duplicates") == 1
    assert value(samples, "newswire_stream_length", stream=f"{prefix}:deadletter") == 1
    assert value(samples, "newswire_stream_group_lag", stream=articles, group="desk") == 5
    assert value(samples, "newswire_stream_group_pending", stream=articles, group="desk") == 3


def status_json(env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(["status", "--json"], env)
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(orjson.loads(result.stdout))


def wait_for_workers(env: dict[str, str], names: set[str], timeout: float = 60) -> None:
    settings = load_settings(env)
    deadline = time.monotonic() + timeout
    while not names <= set(take_snapshot(settings).workers or {}):
        assert time.monotonic() < deadline, f"workers {names} never answered"
        time.sleep(0.5)


@pytest.mark.slow
def test_status_and_health_follow_a_failing_feed_and_a_stopped_worker(
    cli_env: dict[str, str], site: SiteServer, prefix: str, tmp_path: Path
) -> None:
    failing_url = f"{site.base_url}/news/rss.xml"
    site.set_route("/news/rss.xml", status=500, body=b"oops")
    feeds = tmp_path / "two-feeds.toml"
    feeds.write_text(f'[[feed]]\nurl = "{failing_url}"\n\n[[feed]]\nurl = "{site.base_url}/empty/rss.xml"\n')
    env = {**cli_env, "NEWSWIRE_FEEDS": str(feeds)}
    assert sweep(env)["feeds_failed"] == 1

    settings = load_settings(env)
    supervisor = Supervisor(settings, workers=worker_children(settings, concurrency=1, label=f"-{prefix}"))
    io_name, extract_name = (f"{kind}-{prefix}@{socket.gethostname()}" for kind in ("io", "extract"))
    supervisor.start()
    try:
        wait_for_workers(env, {io_name, extract_name})
        report = status_json(env)
        assert {io_name, extract_name} <= set(report["workers"])
        assert report["ok"] is True, report["problems"]
        feeds_report = report["feeds"]
        assert (feeds_report["failing"], feeds_report["ok"]) == (1, 1)
        worst = feeds_report["top_failing"][0]
        assert worst["url"] == failing_url
        assert "500" in worst["error"]
        assert run_cli(["health"], env).returncode == 0

        supervisor.workers[1].signal(signal.SIGTERM)  # the extraction worker shuts down
        supervisor.workers[1].wait(60)
        report = status_json(env)
        extract_queue = queue_name(prefix, "extract")
        assert extract_name not in report["workers"]
        assert io_name in report["workers"]
        assert report["queue_consumers"][extract_queue] == []
        assert report["ok"] is False
        assert any(extract_queue in p for p in report["problems"])
        down = run_cli(["health"], env)
        assert down.returncode == 1
        assert "FAIL  workers" in down.stdout
    finally:
        supervisor.stop(timeout=30)


def test_health_fails_when_redis_is_down(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "NEWSWIRE_REDIS_URL": f"redis://127.0.0.1:{redisd.free_port()}/0"}
    result = run_cli(["health"], env, timeout=60)
    assert result.returncode == 1
    assert "FAIL  redis" in result.stdout
    status = status_json(env)
    assert status["ok"] is False
    assert any(p.startswith("redis:") for p in status["problems"])
