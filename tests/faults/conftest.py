"""Fixtures for the fault scenarios: a Redis of their own with AOF persistence on, a generated news
site on loopback, the service's workers, and the figures table printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newswire import redisd
from newswire.demo.server import SiteServer
from tests.conftest import ROOT
from tests.faults.harness import FIGURES, Workers
from tests.faults.sites import DESK_NETWORKS, ArticleSpec, DeskSite, write_feeds_toml, write_news_site

FEEDS, PER_FEED = 10, 20  # 200 articles


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[redisd.EmbeddedRedis]:
    """A real embedded Redis with AOF (appendfsync everysec), data in this test's tmp dir."""
    server = redisd.start(tmp_path / "redis", persistent=True)
    yield server
    server.stop()


def fault_env(redis_url: str, prefix: str, tmp_path: Path, feeds: Path, **extra: str) -> dict[str, str]:
    """Settings for the workers: the production defaults (visibility timeout, worker TTL, leases,
    politeness, time-outs), with each desk of the site on a loopback address of its own (`DeskSite`)."""
    env = {
        "NEWSWIRE_REDIS_URL": redis_url,
        "NEWSWIRE_FEEDS": str(feeds),
        "NEWSWIRE_TOPICS": str(ROOT / "config" / "topics.toml"),
        "NEWSWIRE_STREAM_PREFIX": prefix,
        "NEWSWIRE_ALLOWED_NETWORKS": DESK_NETWORKS,
        "NEWSWIRE_DATA_DIR": str(tmp_path / "var"),
        "NEWSWIRE_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    env.update({f"NEWSWIRE_{k.upper()}": v for k, v in extra.items()})
    return env


@pytest.fixture
def news_site(tmp_path: Path) -> Iterator[tuple[SiteServer, list[ArticleSpec]]]:
    """10 feeds of 20 distinct articles each, served on loopback."""
    root = tmp_path / "site"
    specs = write_news_site(root, FEEDS, PER_FEED)
    with DeskSite(root) as server:
        yield server, specs


@pytest.fixture
def news_feeds(news_site: tuple[SiteServer, list[ArticleSpec]], tmp_path: Path) -> Path:
    server, specs = news_site
    return write_feeds_toml(tmp_path / "feeds.toml", sorted({server.url(s.feed) for s in specs}))


@pytest.fixture
def make_workers(tmp_path: Path) -> Iterator[Any]:
    started: list[Workers] = []

    def make(env: dict[str, str]) -> Workers:
        workers = Workers(env, tmp_path)
        started.append(workers)
        return workers

    yield make
    for workers in started:
        workers.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault scenarios: figures")
    for row in FIGURES:
        rest = ", ".join(f"{k}={v}" for k, v in row.items() if k != "scenario")
        terminalreporter.write_line(f"{row['scenario']}: {rest}")
