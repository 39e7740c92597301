"""`newswire up` heals itself: each of its processes SIGKILLed in turn, with no operator at hand.

One run of `newswire up` on its embedded defaults (its own Redis with AOF, data in a temp dir)
against a loopback news site. A worker main process is killed while stories are being processed:
`newswire up` restarts it and everything it held comes back (its heartbeat stops). Then beat,
Flower, the exporter, the HTTP service and the embedded Redis are killed one after the other; each
is restarted, counted (`newswire status`, `newswire_child_restarts`), and a last batch of feeds
goes through the healed service. Every story arrives exactly once.

A child that keeps crashing stops the service with a clear error instead of a restart loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from ingest.keys import articles_stream
from newswire.demo.server import SiteServer
from newswire.redisd import free_port, pid_alive
from tests.conftest import NEWSWIRE, ROOT, run_cli
from tests.faults.harness import delivery_figures, process_children, record_figures, wait_for
from tests.faults.recovery import batch_figures, entry_times, published_all
from tests.faults.sites import DESK_NETWORKS, ArticleSpec, DeskSite, write_feeds_toml, write_news_site

pytestmark = pytest.mark.slow
BATCH_FEEDS, PER_FEED = 2, 8
PAGE_DELAY = 0.4  # each page answers after this long: work is in flight when a worker dies
ROLES = {  # a child of `newswire up` -> a word of its command line that tells it apart
    "redis": "valkey-server",
    "worker-io": "io@",
    "worker-extract": "extract@",
    "beat": " beat ",
    "flower": " flower ",
    "metrics": " metrics ",
    "http": "newswire.cli http",
}


def cmdline(pid: int) -> str:
    try:
        return " " + (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()) + " "
    except OSError:
        return ""


def children_of(up: subprocess.Popen[bytes]) -> dict[str, int]:
    found = {}
    for pid in process_children(up.pid):
        line = cmdline(pid)
        found.update({role: pid for role, word in ROLES.items() if word in line})
    return found


def up_env(tmp_path: Path, feeds: Path, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_FEEDS=str(feeds), NEWSWIRE_DATA_DIR=str(tmp_path / "var"), NEWSWIRE_STREAM_PREFIX=prefix,
        NEWSWIRE_ALLOWED_NETWORKS=DESK_NETWORKS, NEWSWIRE_FLOWER_PORT=str(free_port()),
        NEWSWIRE_METRICS_PORT=str(free_port()), NEWSWIRE_HTTP_PORT=str(free_port()),
        NEWSWIRE_LOG_LEVEL="INFO", PYTHONPATH=str(ROOT), **extra,
    )  # fmt: skip
    return env


class Up:
    """One `newswire up`, its stderr in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen([*NEWSWIRE, "up"], env=env, cwd=ROOT, stdout=log, stderr=log)
        self.server_json = Path(env["NEWSWIRE_DATA_DIR"]) / "redis" / "server.json"

    def client(self) -> redis.Redis:
        assert wait_for(self.server_json.exists, 60), self.log()[-3000:]
        url = json.loads(self.server_json.read_text())["url"]
        return redis.Redis.from_url(url, socket_timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        return children_of(self.process)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@pytest.fixture
def up_factory() -> Iterator[Any]:
    started: list[Up] = []

    def make(env: dict[str, str], log_path: Path) -> Up:
        up = Up(env, log_path)
        started.append(up)
        return up

    yield make
    for up in started:
        up.stop()


def leftovers(prefix: str) -> list[int]:
    """Processes still running with this test's prefix in their environment (none after a stop)."""
    marker = f"NEWSWIRE_STREAM_PREFIX={prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if pid_alive(pid) and pid != os.getpid()]


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code < 500
    except httpx.HTTPError:
        return False


def kill_and_wait_back(up: Up, role: str, timeout: float = 60.0) -> float:
    """SIGKILL one child; returns the seconds until `newswire up` runs a new one."""
    old = up.children()[role]
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    back = wait_for(lambda: up.children().get(role, old) != old, timeout, interval=0.2)
    assert back, f"{role} was not restarted:\n{up.log()[-3000:]}"
    return round(time.monotonic() - killed, 1)


def worker_kill(
    up: Up, client: redis.Redis, prefix: str, role: str, specs: list[ArticleSpec], site: SiteServer
) -> dict[str, Any]:
    """SIGKILL a worker's main process once the batch is under way; the batch must still come out once."""
    expected, stream = {s.doc_id(site) for s in specs}, articles_stream(prefix)
    under_way = lambda: batch_figures(client, stream, expected)["published"] >= 3  # noqa: E731
    assert wait_for(under_way, 120), up.log()[-3000:]
    killed = time.time()
    back_s = kill_and_wait_back(up, role)
    done = wait_for(published_all(client, stream, expected), 120)
    last = max(entry_times(client, stream, expected))
    row = {**batch_figures(client, stream, expected), "complete": done, "restarted_after_s": back_s}
    row["kill_to_last_s"] = round(last - killed, 1)
    record_figures(f"S up: {role} main process killed mid-batch", **row)
    assert done, f"{row}\n{up.log()[-4000:]}"
    return row


def test_up_restarts_every_child_that_dies_and_loses_nothing(
    tmp_path: Path, up_factory: Any, prefix: str
) -> None:
    root = tmp_path / "site"
    batches = [write_news_site(root, BATCH_FEEDS, PER_FEED, first=n * BATCH_FEEDS) for n in range(3)]
    feeds = tmp_path / "feeds.toml"
    with DeskSite(root) as server:
        for spec in batches[0] + batches[1]:
            server.set_route(spec.path, delay=PAGE_DELAY)
        urls = lambda n: sorted({server.url(s.feed) for b in batches[:n] for s in b})  # noqa: E731
        write_feeds_toml(feeds, urls(1))
        env = up_env(tmp_path, feeds, prefix)
        up = up_factory(env, tmp_path / "up.log")
        client = up.client()
        assert wait_for(lambda: set(ROLES) <= set(up.children()), 60), up.log()[-3000:]

        rows = [worker_kill(up, client, prefix, "worker-io", batches[0], server)]
        write_feeds_toml(feeds, urls(2))
        rows.append(worker_kill(up, client, prefix, "worker-extract", batches[1], server))

        back = {role: kill_and_wait_back(up, role) for role in ("beat", "flower", "metrics", "http", "redis")}
        client = up.client()
        port = lambda name: env[f"NEWSWIRE_{name}_PORT"]  # noqa: E731
        assert wait_for(lambda: answers(f"http://127.0.0.1:{port('HTTP')}/healthz"), 60), up.log()[-3000:]
        assert wait_for(lambda: answers(f"http://127.0.0.1:{port('FLOWER')}/healthcheck"), 60)
        write_feeds_toml(feeds, urls(3))  # through the restarted beat, workers and Redis
        expected = {s.doc_id(server) for s in batches[2]}
        assert wait_for(published_all(client, articles_stream(prefix), expected), 120), up.log()[-4000:]

        totals = delivery_figures(client, prefix, [s.doc_id(server) for b in batches for s in b])
        metrics = httpx.get(f"http://127.0.0.1:{port('METRICS')}/metrics", timeout=10).text
        status = run_cli(["status", "--json"], env, timeout=60)
        record_figures("S up: beat, flower, metrics, http, redis killed in turn", **totals,
                       **{f"{role}_back_s": s for role, s in back.items()})  # fmt: skip
    code = up.stop()
    assert code == 0, up.log()[-3000:]
    assert not leftovers(prefix)
    for row in rows:
        assert (row["duplicated"], row["lost"]) == (0, 0), row
    assert (totals["lost"], totals["duplicated"], totals["topic_duplicated"]) == (0, 0, 0), totals
    assert (totals["duplicates_stream"], totals["deadletter"]) == (0, 0), totals
    counters = orjson.loads(status.stdout.splitlines()[-1])["counters"]
    restarted = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("restart:")}
    assert restarted == dict.fromkeys(["worker-io", "worker-extract", *back], 1), (restarted, status.stderr)
    assert 'newswire_child_restarts_total{child="redis"} 1.0' in metrics
    assert "worker-io exited unexpectedly (killed by SIGKILL)" in up.log()


def test_a_child_that_keeps_crashing_stops_the_service_with_a_clear_error(
    tmp_path: Path, up_factory: Any, prefix: str
) -> None:
    feeds = write_feeds_toml(tmp_path / "feeds.toml", [])
    # the HTTP service refuses a public address without API tokens: it exits at once, every time
    env = up_env(tmp_path, feeds, prefix, NEWSWIRE_HTTP_ADDRESS="0.0.0.0")
    up = up_factory(env, tmp_path / "up.log")
    server_json = up.server_json
    assert wait_for(lambda: up.process.poll() is not None, 180), up.log()[-3000:]
    log = up.log()
    assert up.process.returncode != 0
    assert "http exited 5 times within 120s" in log, log[-3000:]
    assert log.count("restarted http") == 4
    assert not server_json.exists()  # the embedded Redis was stopped too, after the workers
    assert not leftovers(prefix)
