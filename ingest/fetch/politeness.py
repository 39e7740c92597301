"""Per-host politeness shared by every worker, kept in Redis.

At most `max_concurrent` requests in flight per host and at least `min_spacing_s`
between the starts of two requests to it, whichever worker or machine sends them.
One Lua script decides and takes a slot atomically, on the Redis server's clock
(so workers on machines with skewed clocks agree). A slot is a lease: a member of
`{prefix}:host:{host}`, scored by its expiry, released when the request ends
(even when it raises) and dropped by the next caller once expired (a worker that
died holding it). Both keys expire by themselves, so idle hosts cost nothing.

`PoliteFetcher` puts this (and robots.txt, for article pages) in front of a
`Fetcher`; a caller that cannot get a slot within its wait gets `HostBusy` and
defers the work instead of counting it as an error.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis

from ingest import keys, lua
from ingest.fetch.http import Fetcher, FetchError, FetchResult
from ingest.fetch.robots import ROBOTS_ACCEPT, RobotsRules
from ingest.models import FetchProfile

BUSY_RETRY_MS = 200  # all slots taken: when to ask again (a slot frees when a request ends)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    max_concurrent: int = 2
    min_spacing_s: float = 1.0
    lease_s: float = 60.0  # longer than any request may take (the fetch timeout plus a margin)


class HostBusy(Exception):  # noqa: N818 - a condition to defer on, not an error
    """No slot for this host within the caller's wait: defer the work, it is not an error."""

    def __init__(self, host: str, wait_s: float) -> None:
        super().__init__(f"{host} busy: next slot in {wait_s:.2f}s")
        self.host = host
        self.wait_s = wait_s


def host_of(url: str) -> str:
    """The politeness key of a URL: its lower-cased host, with the port when it is not the default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


class RedisHostLimiter:
    """Slots per host, shared through Redis by every thread, process and machine."""

    def __init__(self, client: redis.Redis, prefix: str, policy: HostPolicy | None = None) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.policy = policy or HostPolicy()
        self._acquire = lua.register(client, "ingest.fetch", "acquire.lua")

    def keys(self, host: str) -> list[str]:
        return [keys.host_slots(self.prefix, host), keys.host_next(self.prefix, host)]

    def try_acquire(self, host: str, token: str) -> float:
        """0 when the slot is taken for `token`; otherwise seconds to wait before asking again."""
        policy = self.policy
        args: list[str | int] = [
            token, policy.max_concurrent, int(policy.min_spacing_s * 1000), int(policy.lease_s * 1000),
            BUSY_RETRY_MS,
        ]  # fmt: skip
        return int(self._acquire(keys=self.keys(host), args=args)) / 1000

    def acquire(
        self, host: str, token: str, max_wait_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        """Take a slot, waiting up to `max_wait_s`; HostBusy when the next one is further away."""
        deadline = time.monotonic() + max_wait_s
        while True:
            wait = self.try_acquire(host, token)
            if wait == 0:
                return
            if time.monotonic() + wait > deadline:
                raise HostBusy(host, wait)
            sleep(wait + random.uniform(0, 0.02))  # waiting threads do not all wake at once

    def release(self, host: str, token: str) -> None:
        self.client.zrem(self.keys(host)[0], token)

    @contextlib.contextmanager
    def slot(self, url: str, max_wait_s: float = 0.0) -> Iterator[None]:
        """Hold one of the host's slots for the body of the `with`; released however it ends."""
        host, token = host_of(url), uuid.uuid4().hex
        self.acquire(host, token, max_wait_s)
        try:
            yield
        finally:
            self.release(host, token)

    def in_flight(self, host: str) -> int:
        return int(self.client.zcard(self.keys(host)[0]))


class PoliteFetcher:
    """A `Fetcher` behind the host limiter and, for article pages, robots.txt.

    `get` has the `Fetcher.get` signature: raises `HostBusy` when no slot came
    within `max_wait_s`, and `FetchError("robots")` for a page robots.txt forbids.
    `profile` (a source's fetch profile) applies to requests that do not bring their own,
    robots.txt included: a site reached through a proxy is asked through it."""

    def __init__(
        self,
        fetcher: Fetcher,
        limiter: RedisHostLimiter,
        *,
        robots: RobotsRules | None = None,
        max_wait_s: float = 0.0,
        profile: FetchProfile | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.limiter = limiter
        self.robots = robots
        self.max_wait_s = max_wait_s
        self.profile = profile

    @property
    def max_bytes(self) -> int:
        return self.fetcher.max_bytes

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        accept: str | None = None,
        allowed_types: tuple[str, ...] | None = None,
        profile: FetchProfile | None = None,
        unzip: bool = False,
    ) -> FetchResult:
        profile = profile or self.profile
        if self.robots is not None and not self.robots.allows(url, lambda r: self._get_robots(r, profile)):
            raise FetchError("robots", url, "disallowed by robots.txt")
        with self.limiter.slot(url, self.max_wait_s):
            return self.fetcher.get(
                url, headers=headers, accept=accept, allowed_types=allowed_types, profile=profile, unzip=unzip
            )

    def post_form(self, url: str, form: Mapping[str, str]) -> FetchResult:
        with self.limiter.slot(url, self.max_wait_s):
            return self.fetcher.post_form(url, form)

    def _get_robots(self, robots_txt: str, profile: FetchProfile | None) -> FetchResult:
        with self.limiter.slot(robots_txt, self.max_wait_s):
            return self.fetcher.get(
                robots_txt, accept=ROBOTS_ACCEPT, allowed_types=("text/plain",), profile=profile
            )
