"""robots.txt for article pages: RFC 9309 status rules, per-agent groups, one fetch per site per day."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from ingest.fetch.http import Fetcher, FetchError, FetchOptions, FetchResult, parse_allowed_networks
from ingest.fetch.robots import (
    RULES_TTL_S,
    UNREACHABLE_TTL_S,
    RedisRobotsCache,
    RobotsRules,
    compact_rules,
    is_allowed,
    robots_url,
    rules_from_response,
)
from newswire.demo.server import SiteServer
from tests.conftest import FIXTURE_SITE


@pytest.fixture
def site() -> Iterator[SiteServer]:
    """The fixture site on one host (the suite's `site` spreads its outlets over four): these tests
    count one host's robots.txt fetches and slots."""
    with SiteServer(FIXTURE_SITE) as server:
        yield server


AGENT = "newswire/0.1 (+https://example.test/contact)"
ROBOTS = """# our robots
User-agent: newswire
Disallow: /private/
Allow: /private/press/

User-agent: *
Disallow: /
Sitemap: https://site.test/sitemap.xml
"""


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "T"), (404, "A"), (403, "A"), (429, "D"), (500, "D"), (503, "D")]
)
def test_robots_status_means_what_rfc_9309_says(status: int, expected: str) -> None:
    assert rules_from_response(status, ROBOTS)[0] == expected


def test_our_group_applies_to_us_and_the_star_group_to_others() -> None:
    cached = rules_from_response(200, ROBOTS)
    assert "Sitemap" not in cached
    assert "#" not in cached
    assert is_allowed(cached, AGENT, "https://site.test/news/a.html")
    assert not is_allowed(cached, AGENT, "https://site.test/private/x.html")
    assert is_allowed(cached, AGENT, "https://site.test/private/press/x.html")
    assert not is_allowed(cached, "otherbot/2.0", "https://site.test/news/a.html")
    assert is_allowed("A", AGENT, "https://site.test/anything")
    assert not is_allowed("D", AGENT, "https://site.test/anything")


def test_compact_rules_keep_only_what_the_parser_reads() -> None:
    assert compact_rules("Sitemap: x\n# hi\nUser-agent: *  # all\nCrawl-delay: 5\n\nDisallow: /a\n") == (
        "User-agent: *\nCrawl-delay: 5\nDisallow: /a"
    )
    assert robots_url("https://site.test:8443/a/b?c#d") == "https://site.test:8443/robots.txt"


def test_robots_txt_is_fetched_once_per_site_and_cached_with_a_ttl(
    site: SiteServer, redis_client: redis.Redis, prefix: str
) -> None:
    site.set_route(
        "/robots.txt", body=b"User-agent: *\nDisallow: /news/\n", headers={"Content-Type": "text/plain"}
    )
    cache = RedisRobotsCache(redis_client, prefix)
    rules = RobotsRules(cache, AGENT)
    options = FetchOptions(user_agent=AGENT, allowed_networks=parse_allowed_networks("127.0.0.0/8"))
    with Fetcher(options) as fetcher:

        def fetch(url: str) -> FetchResult:
            return fetcher.get(url)

        assert not rules.allows(site.url("/news/city-library-reopens.html"), fetch)
        assert rules.allows(site.url("/wire/atom.xml"), fetch)
    requests = site.requests_for("/robots.txt")
    assert len(requests) == 1
    assert requests[0].headers["User-Agent"] == AGENT
    ttl = redis_client.ttl(cache.key(site.url("/robots.txt")))
    assert RULES_TTL_S - 5 < ttl <= RULES_TTL_S


def test_an_unreachable_robots_txt_disallows_for_a_short_while(
    site: SiteServer, redis_client: redis.Redis, prefix: str
) -> None:
    cache = RedisRobotsCache(redis_client, prefix)
    rules = RobotsRules(cache, AGENT)

    def unreachable(url: str) -> FetchResult:
        raise FetchError("timeout", url, "timed out")

    assert not rules.allows("https://down.test/page.html", unreachable)
    assert cache.get("https://down.test/robots.txt") == "D"
    assert 0 < redis_client.ttl(cache.key("https://down.test/robots.txt")) <= UNREACHABLE_TTL_S
