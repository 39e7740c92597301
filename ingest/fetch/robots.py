"""robots.txt for article pages: fetched once per site, cached in Redis, read with urllib.robotparser.

What a fetch of robots.txt means follows RFC 9309: a 2xx gives the rules; a
4xx (other than 429) means there are none, so everything is allowed; a 5xx, a
429 or a failed fetch means the site is unreachable, so everything is disallowed
for a short while and asked again. The cache holds one short string per site:
`A` (allow all), `D` (disallow all) or `T` + the rule lines (comments, sitemaps
and blank lines dropped), expiring after a day (ten minutes for `D`).
Feeds themselves are not subject to robots.txt: a feed is published to be polled.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import redis

from ingest import keys
from ingest.fetch.http import FetchError, FetchResult

log = logging.getLogger("newswire.robots")

ROBOTS_ACCEPT = "text/plain, */*;q=0.5"
RULES_TTL_S = 86400
UNREACHABLE_TTL_S = 600
MAX_RULES_CHARS = 64 * 1024
RULE_FIELDS = ("user-agent", "allow", "disallow", "crawl-delay")
ALLOW_ALL, DISALLOW_ALL, RULES = "A", "D", "T"


def robots_url(url: str) -> str:
    """The robots.txt that governs `url`: same scheme, host and port."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))


def rules_from_response(status: int, text: str) -> str:
    """The cached form of one robots.txt answer (see the module docstring)."""
    if 200 <= status < 300:
        return RULES + compact_rules(text)
    if 400 <= status < 500 and status != 429:
        return ALLOW_ALL
    return DISALLOW_ALL


def compact_rules(text: str) -> str:
    """Only the lines robotparser acts on, capped: a big site's robots.txt is mostly sitemaps.

    Within each group, Allow/Disallow lines are put longest path first (Allow first on a
    tie): robotparser applies the first rule that matches, RFC 9309 the most specific one."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    kept = [line for line in lines if field_of(line) in RULE_FIELDS]
    out: list[str] = []
    rules: list[str] = []
    for line in [*kept, "user-agent:"]:  # a sentinel flushes the last group's rules
        if field_of(line) in ("allow", "disallow"):
            rules.append(line)
            continue
        out += sorted(rules, key=rule_order)
        rules = []
        out.append(line)
    return "\n".join(out[:-1])[:MAX_RULES_CHARS]


def field_of(line: str) -> str:
    return line.split(":", 1)[0].strip().lower()


def rule_order(line: str) -> tuple[int, int]:
    path = line.split(":", 1)[1].strip()
    return -len(path), 0 if field_of(line) == "allow" else 1


def cache_ttl(cached: str) -> int:
    return UNREACHABLE_TTL_S if cached == DISALLOW_ALL else RULES_TTL_S


def is_allowed(cached: str, user_agent: str, url: str) -> bool:
    """May `user_agent` fetch `url` under the cached robots.txt answer?"""
    if cached.startswith(ALLOW_ALL):
        return True
    if cached.startswith(DISALLOW_ALL):
        return False
    return parse_rules(cached[1:]).can_fetch(user_agent, url)


@functools.lru_cache(maxsize=256)
def parse_rules(text: str) -> RobotFileParser:
    parser = RobotFileParser()
    parser.parse(text.splitlines())
    return parser


class RedisRobotsCache:
    """One cached answer per site (scheme://host:port), with a TTL."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix

    def key(self, robots_txt: str) -> str:
        parts = urlsplit(robots_txt)
        return keys.robots(self.prefix, f"{parts.scheme}://{parts.netloc.lower()}")

    def get(self, robots_txt: str) -> str | None:
        raw = self.client.get(self.key(robots_txt))
        return raw.decode() if raw is not None else None

    def put(self, robots_txt: str, cached: str) -> None:
        self.client.set(self.key(robots_txt), cached, ex=cache_ttl(cached))


class RobotsRules:
    """Answers "may we fetch this page?", fetching a site's robots.txt when the cache has none."""

    def __init__(self, cache: RedisRobotsCache, user_agent: str) -> None:
        self.cache = cache
        self.user_agent = user_agent

    def allows(self, url: str, fetch: Callable[[str], FetchResult]) -> bool:
        """`fetch` GETs the robots.txt URL it is given (through the host limiter)."""
        robots_txt = robots_url(url)
        cached = self.cache.get(robots_txt)
        if cached is None:
            cached = fetch_rules(robots_txt, fetch)
            self.cache.put(robots_txt, cached)
        return is_allowed(cached, self.user_agent, url)


def fetch_rules(robots_txt: str, fetch: Callable[[str], FetchResult]) -> str:
    try:
        result = fetch(robots_txt)
    except FetchError as exc:
        log.info("robots.txt unreachable: %s", exc, extra={"stage": "robots", "url": robots_txt})
        return DISALLOW_ALL
    return rules_from_response(result.status, result.text() if result.status < 300 else "")
