"""Shared fixtures: a private Redis server (never the machine's), loopback sites, env for the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest
import redis

from newswire import redisd
from newswire.demo import server as demo
from newswire.demo.server import Reply, SiteServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_SITE = ROOT / "tests" / "fixtures" / "site"
NEWSWIRE = [sys.executable, "-m", "newswire.cli"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redisd.EmbeddedRedis]:
    """Our own Redis-compatible server on a free port, for the whole session."""
    server = redisd.start(tmp_path_factory.mktemp("redis"), persistent=False)
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: redisd.EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test, so tests never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}"


class SpreadSite(SiteServer):
    """The fixture site on a few loopback addresses at one port, one per outlet, as separate sites are:
    `wire`, `json` and `broken` each on an address of its own, the rest on 127.0.0.1 (`base_url`).
    Each host then gets its own politeness (the default: a second between requests), so a sweep
    takes seconds, not the sum of every request's second. `{{BASE}}` becomes the base URL the
    request was sent to; `url(path)` gives the path's own host; routes and the request log are shared."""

    OUTLETS: ClassVar[dict[str, str]] = {"wire": "127.0.0.2", "json": "127.0.0.3", "broken": "127.0.0.4"}

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._asked = threading.local()
        self._extra: list[demo._HTTPServer] = []

    def start(self) -> SpreadSite:
        super().start()
        for address in self.OUTLETS.values():
            httpd = demo._HTTPServer((address, self.port), demo._Handler, site=self)
            threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._extra.append(httpd)
        return self

    def stop(self) -> None:
        for httpd in self._extra:
            httpd.shutdown()
            httpd.server_close()
        self._extra.clear()
        super().stop()

    @property
    def base_url(self) -> str:
        asked = getattr(self._asked, "host", None)
        return f"http://{asked}" if asked else super().base_url

    def url(self, path: str) -> str:
        outlet = path.lstrip("/").split("/", 1)[0]
        address = self.OUTLETS.get(outlet, self.host)
        return f"http://{address}:{self.port}/" + path.lstrip("/")

    def answer(self, target: str, request_headers: Mapping[str, str]) -> Reply:
        self._asked.host = next((v for k, v in request_headers.items() if k.lower() == "host"), None)
        try:
            return super().answer(target, request_headers)
        finally:
            self._asked.host = None


def spread_feeds(text: str, site: SiteServer) -> str:
    """The fixture feeds file with each feed at its outlet's own address."""
    for outlet in SpreadSite.OUTLETS:
        text = text.replace("{{BASE}}/" + outlet + "/", site.url(f"/{outlet}/"))
    return text.replace("{{BASE}}", site.base_url)


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SpreadSite(FIXTURE_SITE) as server:
        yield server


@pytest.fixture
def cli_env(
    redis_server: redisd.EmbeddedRedis, site: SiteServer, prefix: str, tmp_path: Path
) -> dict[str, str]:
    """Environment for running `newswire` against the test site, the test Redis and a fresh prefix."""
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(spread_feeds((FIXTURE_SITE / "feeds.toml").read_text(), site))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_REDIS_URL=redis_server.url,
        NEWSWIRE_FEEDS=str(feeds),
        NEWSWIRE_TOPICS=str(ROOT / "config" / "topics.toml"),
        NEWSWIRE_STREAM_PREFIX=prefix,
        NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8",
        NEWSWIRE_DATA_DIR=str(tmp_path / "var"),
        NEWSWIRE_CONCURRENCY="2",
        NEWSWIRE_IO_CONCURRENCY="8",
        NEWSWIRE_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        NEWSWIRE + args, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


@contextlib.contextmanager
def worker_process(argv: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker started as `newswire up` starts it; warm shutdown (SIGTERM) at the end."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
