"""Shared fixtures: a private Redis server (never the machine's), loopback sites, env for the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from newswire import redisd
from newswire.demo.server import SiteServer

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


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(FIXTURE_SITE) as server:
        yield server


@pytest.fixture
def cli_env(
    redis_server: redisd.EmbeddedRedis, site: SiteServer, prefix: str, tmp_path: Path
) -> dict[str, str]:
    """Environment for running `newswire` against the test site, the test Redis and a fresh prefix."""
    feeds = tmp_path / "feeds.toml"
    feeds.write_text((FIXTURE_SITE / "feeds.toml").read_text().replace("{{BASE}}", site.base_url))
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
        NEWSWIRE_HOST_SPACING="0.05",  # every test site is one loopback host; politeness tests set their own
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
