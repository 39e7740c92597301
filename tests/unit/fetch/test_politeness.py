"""Per-host slots in Redis: concurrency, spacing, leases that end however the request ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis

from ingest.fetch.http import Fetcher, FetchError, FetchOptions, parse_allowed_networks
from ingest.fetch.politeness import HostBusy, HostPolicy, PoliteFetcher, RedisHostLimiter, host_of
from ingest.fetch.robots import RedisRobotsCache, RobotsRules
from newswire.demo.server import Reply, SiteServer
from tests.conftest import FIXTURE_SITE


@pytest.fixture
def site() -> Iterator[SiteServer]:
    """The fixture site on one host (the suite's `site` spreads its outlets over four): these tests
    count one host's robots.txt fetches and slots."""
    with SiteServer(FIXTURE_SITE) as server:
        yield server


ROOT = Path(__file__).resolve().parents[3]
LOOPBACK = FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))


class CountingSite(SiteServer):
    """A SiteServer that records the most requests it ever had in flight at once."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.in_flight = 0
        self.peak = 0
        self._count_lock = threading.Lock()

    def answer(self, target: str, request_headers: Mapping[str, str]) -> Reply:
        with self._count_lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            return super().answer(target, request_headers)
        finally:
            with self._count_lock:
                self.in_flight -= 1


@pytest.fixture
def counting_site() -> Iterator[CountingSite]:
    with CountingSite(ROOT / "tests" / "fixtures" / "site") as server:
        yield server


def limiter_for(client: redis.Redis, prefix: str, **policy: float) -> RedisHostLimiter:
    return RedisHostLimiter(client, prefix, HostPolicy(**policy))  # type: ignore[arg-type]


def test_host_key_is_the_host_with_a_non_default_port() -> None:
    assert host_of("https://News.Example.org/a?b") == "news.example.org"
    assert host_of("http://example.org:80/") == "example.org"
    assert host_of("http://127.0.0.1:8080/feed") == "127.0.0.1:8080"


def test_at_most_n_slots_per_host_and_hosts_are_independent(redis_client: redis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix, max_concurrent=2, min_spacing_s=0)
    assert limiter.try_acquire("a.test", "t1") == 0
    assert limiter.try_acquire("a.test", "t2") == 0
    assert limiter.try_acquire("a.test", "t3") > 0
    assert limiter.try_acquire("b.test", "t4") == 0
    limiter.release("a.test", "t1")
    assert limiter.try_acquire("a.test", "t3") == 0
    assert limiter.in_flight("a.test") == 2


def test_requests_to_one_host_are_spaced(redis_client: redis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix, max_concurrent=5, min_spacing_s=0.4)
    limiter.acquire("c.test", "t1", max_wait_s=0)
    with pytest.raises(HostBusy) as busy:
        limiter.acquire("c.test", "t2", max_wait_s=0)
    assert 0 < busy.value.wait_s <= 0.4
    started = time.monotonic()
    limiter.acquire("c.test", "t2", max_wait_s=2)  # waits for its turn instead
    assert time.monotonic() - started >= 0.2


def test_a_slot_is_released_when_the_request_raises(redis_client: redis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix, max_concurrent=1, min_spacing_s=0)
    held: list[int] = []

    def failing_fetch() -> None:
        with limiter.slot("https://d.test/feed"):
            held.append(limiter.in_flight("d.test"))
            raise RuntimeError("the fetch failed")

    with pytest.raises(RuntimeError):
        failing_fetch()
    assert (held, limiter.in_flight("d.test")) == ([1], 0)
    with limiter.slot("https://d.test/feed"):
        pass


def test_a_slot_held_by_a_dead_worker_expires(redis_client: redis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix, max_concurrent=1, min_spacing_s=0, lease_s=0.3)
    limiter.acquire("e.test", "crashed", max_wait_s=0)  # never released
    with pytest.raises(HostBusy):
        limiter.acquire("e.test", "next", max_wait_s=0)
    limiter.acquire("e.test", "next", max_wait_s=2)
    assert limiter.in_flight("e.test") == 1
    time.sleep(0.4)
    assert redis_client.exists(*limiter.keys("e.test")) == 0  # idle hosts leave nothing behind


def test_threads_never_exceed_the_host_concurrency(
    counting_site: CountingSite, redis_client: redis.Redis, prefix: str
) -> None:
    limiter = limiter_for(redis_client, prefix, max_concurrent=2, min_spacing_s=0)
    counting_site.set_route("/news/rss.xml", delay=0.15)
    errors: list[BaseException] = []

    def fetch_three() -> None:
        with Fetcher(LOOPBACK) as fetcher:
            polite = PoliteFetcher(fetcher, limiter, max_wait_s=30)
            try:
                for _ in range(3):
                    assert polite.get(counting_site.url("/news/rss.xml")).status == 200
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

    threads = [threading.Thread(target=fetch_three) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(counting_site.requests_for("/news/rss.xml")) == 18
    assert counting_site.peak == 2


def test_polite_fetcher_defers_when_busy_and_refuses_pages_robots_forbid(
    site: SiteServer, redis_client: redis.Redis, prefix: str
) -> None:
    limiter = limiter_for(redis_client, prefix, max_concurrent=1, min_spacing_s=0)
    site.set_route(
        "/robots.txt", body=b"User-agent: *\nDisallow: /news/\n", headers={"Content-Type": "text/plain"}
    )
    robots = RobotsRules(RedisRobotsCache(redis_client, prefix), "newswire/0.1")
    with Fetcher(LOOPBACK) as fetcher:
        pages = PoliteFetcher(fetcher, limiter, robots=robots)
        with pytest.raises(FetchError, match="robots"):
            pages.get(site.url("/news/city-library-reopens.html"))
        assert pages.get(site.url("/wire/atom.xml")).status == 200
        with limiter.slot(site.url("/")), pytest.raises(HostBusy):
            pages.get(site.url("/wire/atom.xml"))
    assert [r.path for r in site.requests] == ["/robots.txt", "/wire/atom.xml"]
