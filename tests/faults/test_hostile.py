"""Hostile input: one sweep over well-behaved feeds and every kind of abusive feed server at once.

The I/O worker stays up (same process, never restarted) and within bounded memory, nothing ever
connects to the private address the hostile redirects point at, each failure is recorded on its
feed with its reason (`newswire feeds list --json`) and logged once with its URL, and every article
of the well-behaved feeds is published exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.dedup.identity import article_id, canonical_url
from ingest.feeds.registry import RedisFeedRegistry
from newswire import redisd
from tests.conftest import run_cli
from tests.faults.conftest import fault_env
from tests.faults.harness import (
    Workers,
    delivery_figures,
    record_figures,
    resilient_client,
    settings_for,
    start_sweep,
    status_kib,
    wait_sweep,
)
from tests.faults.hostile import AUTH, HostileServer, Tripwire, brotli_bomb, gzip_bomb
from tests.faults.sites import DeskSite, write_feeds_toml, write_news_site

pytestmark = pytest.mark.slow
FETCH_TIMEOUT = 3.0
PEAK_RSS_LIMIT_MIB = 700  # unscreened, the quadratic-blowup feed alone took 4.4 GB to parse

# path on the hostile server -> (outcome counted on the feed, what its last_error says)
HOSTILE = {
    "/garbage.xml": ("parse", "not a feed"),
    "/laughs.xml": ("parse", "unsafe XML: entity 'lol1' refers to other entities"),
    "/quadratic.xml": ("parse", "unsafe XML: entity 'a' has a 5,000-byte value"),
    "/xxe.xml": ("parse", "unsafe XML: external entity 'x'"),
    "/gzip-bomb.xml": ("too_large", "after decompression"),
    "/br-bomb.xml": ("too_large", "after decompression"),
    "/huge.xml": ("too_large", "after decompression"),
    "/huge-declared.xml": ("too_large", "declares Content-Length"),
    "/trickle.xml": ("timeout", f"exceeded total_timeout={FETCH_TIMEOUT}s"),
    "/slow-headers.xml": ("timeout", f"exceeded total_timeout={FETCH_TIMEOUT}s"),
    "/loop.xml": ("too_many_redirects", "redirect loop"),
    "/to-private.xml": ("blocked_address", "127.0.0.2 (loopback)"),
    "/to-file.xml": ("bad_scheme", "file"),
}


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


@pytest.fixture
def hostile(tripwire: Tripwire) -> Iterator[HostileServer]:
    server = HostileServer(tripwire)
    yield server
    server.close()


def private_feed_url(hostile: HostileServer) -> str:
    user, password = AUTH
    return hostile.base_url.replace("http://", f"http://{user}:{password}@") + "/private.xml"


def feed_states(client: Any, prefix: str, urls: list[str]) -> dict[str, dict[str, str]]:
    registry = RedisFeedRegistry(client, prefix)
    return {url: registry.state(url) for url in urls}


def shown_error(outcome: str, reason: str) -> str:
    """How `last_error` (cut to 64 characters) starts: the parse error itself, or the fetch error's kind."""
    return reason[:40] if outcome == "parse" else f"{outcome}: "


def error_lines(log: str, url: str) -> list[str]:
    return [line for line in log.splitlines() if url in line and '"level":"warning"' in line]


def test_hostile_feeds_are_refused_one_by_one_while_good_feeds_are_ingested(
    durable_redis: redisd.EmbeddedRedis, hostile: HostileServer, tripwire: Tripwire, make_workers: Any,
    prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    specs = write_news_site(tmp_path / "site", feeds=3, per_feed=5, seed=3)
    with DeskSite(tmp_path / "site") as good:
        hostile_urls = {hostile.base_url + path: expected for path, expected in HOSTILE.items()}
        hostile_urls[tripwire.base_url + "/direct.xml"] = ("blocked_address", "127.0.0.2 (loopback)")
        good_urls = [
            *sorted({good.url(s.feed) for s in specs}), hostile.base_url + "/truncated.xml",
            private_feed_url(hostile),
        ]  # fmt: skip
        feeds = write_feeds_toml(tmp_path / "feeds.toml", good_urls + list(hostile_urls))
        env = fault_env(durable_redis.url, prefix, tmp_path, feeds, fetch_timeout=str(FETCH_TIMEOUT))
        gzip_bomb(), brotli_bomb()  # built now (seconds of CPU on a busy machine), not on the first request
        workers: Workers = make_workers(env)
        workers.start()
        io_pid, baseline_kib = workers.io.pid, status_kib(workers.io.pid, "VmRSS")
        tracker = start_sweep(settings_for(env))
        summary = wait_sweep(tracker, 120)

        client = resilient_client(durable_redis.url)
        # 15 articles, 2 recovered from the truncated feed, 1 from the feed behind basic auth
        recovered = [hostile.base_url + p for p in ("/pages/t1.html", "/pages/t2.html", "/pages/p1.html")]
        expected_ids = [s.doc_id(good) for s in specs] + [article_id(canonical_url(u)) for u in recovered]
        figures = delivery_figures(client, prefix, expected_ids)
        peak = workers.io.peak_rss_mib()
        record_figures(
            "3 hostile feeds", **figures, hostile_feeds=len(hostile_urls), good_feeds=len(good_urls),
            tripwire_connections=tripwire.connections, io_worker_peak_rss_mib=peak,
            io_worker_rss_mib_at_start=round(baseline_kib / 1024, 1),
            extract_worker_peak_rss_mib=workers.extract.peak_rss_mib(),
        )  # fmt: skip

        assert summary["complete"], summary
        assert tripwire.connections == 0  # the private address was never contacted
        assert workers.io.alive()
        assert (workers.io.pid, workers.io.starts) == (io_pid, 1)  # never died, never restarted
        assert peak < PEAK_RSS_LIMIT_MIB, peak

        states = feed_states(client, prefix, list(hostile_urls) + good_urls)
        log = workers.io.log_text()
        for url, (outcome, reason) in hostile_urls.items():
            state = states[url]
            assert state.get("last_status") == outcome, (url, state)
            assert state.get(f"n_{outcome}") == "1", (url, state)  # counted once, by its reason
            assert state.get("last_error", "").startswith(shown_error(outcome, reason)), (url, state)
            lines = error_lines(log, url)
            assert len(lines) == 1, (url, lines)  # one clear line, with the URL and the whole reason
            assert reason in lines[0], (url, lines)
        assert all(states[url].get("last_status") == "ok" for url in good_urls), states

        exactly_once = (figures["found"], figures["lost"], figures["duplicated"], figures["unexpected"])
        assert exactly_once == (len(specs) + 3, 0, 0, 0), figures
        assert summary["feeds_failed"] == len(hostile_urls)

        listed = run_cli(["feeds", "list", "--json"], env)
        assert listed.returncode == 0, listed.stderr[-2000:]
        rows = {row["url"]: row for row in map(orjson.loads, listed.stdout.splitlines())}
        for url, (outcome, reason) in hostile_urls.items():
            assert rows[url]["last_status"] == outcome, rows[url]
            assert rows[url]["last_error"].startswith(shown_error(outcome, reason)), rows[url]


def test_no_secret_reaches_a_log_line(
    durable_redis: redisd.EmbeddedRedis, hostile: HostileServer, tripwire: Tripwire, make_workers: Any,
    prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    feeds = write_feeds_toml(
        tmp_path / "feeds.toml", [private_feed_url(hostile), hostile.base_url + "/loop.xml"]
    )
    env = fault_env(durable_redis.url, prefix, tmp_path, feeds, fetch_timeout=str(FETCH_TIMEOUT))
    workers: Workers = make_workers(env)
    workers.start()
    assert wait_sweep(start_sweep(settings_for(env)), 60)["complete"]
    status = run_cli(["status", "--json"], env)
    logs = workers.io.log_text() + workers.extract.log_text() + status.stdout + status.stderr
    leaks = [line[:200] for line in logs.splitlines() if re.search(re.escape(AUTH[1]), line)]
    assert not leaks, leaks
