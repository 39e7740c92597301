"""`newswire up` on embedded defaults: starts Redis, workers, beat and Flower; SIGTERM stops all in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from newswire.demo.server import SiteServer
from newswire.redisd import free_port, pid_alive
from tests.conftest import FIXTURE_SITE, NEWSWIRE, ROOT

pytestmark = pytest.mark.slow


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.3)
    return False


def test_up_runs_the_service_and_stops_cleanly(site: SiteServer, tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text((FIXTURE_SITE / "feeds.toml").read_text().replace("{{BASE}}", site.base_url))
    flower_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_FEEDS=str(feeds), NEWSWIRE_DATA_DIR=str(tmp_path / "var"),
        NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8", NEWSWIRE_FLOWER_PORT=str(flower_port),
        NEWSWIRE_METRICS_PORT=str(free_port()), NEWSWIRE_HTTP_PORT=str(http_port),
        NEWSWIRE_TICK_SECONDS="1", NEWSWIRE_CONCURRENCY="1",
        NEWSWIRE_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
    )  # fmt: skip
    proc = subprocess.Popen(
        [*NEWSWIRE, "up"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    server_info = tmp_path / "var" / "redis" / "server.json"
    try:
        assert wait_for(server_info.exists, 30), "embedded Redis did not start"
        info = json.loads(server_info.read_text())
        client = redis.Redis.from_url(info["url"])
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        published = lambda: client.exists("newswire:articles") and client.xlen("newswire:articles") >= 8  # noqa: E731
        assert wait_for(published, 90)
        doc = orjson.loads(client.xrange("newswire:articles", count=1)[0][1][b"data"])
        assert doc["schema_version"] == 1

        flower = f"http://127.0.0.1:{flower_port}/api"

        def flower_sees_both_workers() -> bool:
            try:
                reply = httpx.get(f"{flower}/workers", params={"status": 1, "refresh": 1}, timeout=5)
            except httpx.HTTPError:
                return False
            return reply.status_code == 200 and sum(reply.json().values()) == 2

        assert wait_for(flower_sees_both_workers, 60), "Flower's API did not see both workers online"
        assert httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5).json()["status"] == "ok"
        tasks = httpx.get(f"{flower}/tasks", params={"limit": 200}, timeout=5).json()
        assert {"ingest.poll_feed", "ingest.fetch_articles", "ingest.extract_articles"} <= {
            t["name"] for t in tasks.values()
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    assert not pid_alive(info["pid"]), "embedded Redis still running after shutdown"
    assert not server_info.exists()
    assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()  # AOF persistence under the data dir
