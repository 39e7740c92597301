"""Clients a worker process needs, created once per process (and per thread where not shareable)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import redis
from celery import current_app
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from config.settings import Settings
from ingest.dedup.decide import DedupOptions
from ingest.feeds.poll import PollOptions
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import RedisSchedule
from ingest.feeds.websub import RedisWebSub
from ingest.fetch.hostqueue import RedisHostQueue
from ingest.fetch.http import Fetcher, FetchOptions
from ingest.fetch.politeness import HostPolicy, PoliteFetcher, RedisHostLimiter
from ingest.fetch.robots import RedisRobotsCache, RobotsRules
from ingest.models import FetchProfile
from ingest.ops.progress import RedisStats, RedisSweepTracker
from ingest.streams.publish import RedisStreamSink
from ingest.tag.topics import TopicSet, TopicsFile

# Every command waits out a Redis restart (reconnecting, and through the AOF load's BusyLoadingError):
# 0.1 s doubling to 2 s, 30 times, about 50 s in all. A task then carries on instead of failing.
REDIS_RETRY = Retry(ExponentialBackoff(cap=2.0, base=0.1), 30)
# pages fetched ahead of extraction, per extraction process: a few batches each, enough that
# extraction never waits for the network, few enough that a sweep's web does not pile up in Redis
PAGES_WAITING_PER_PROCESS = 128


@dataclass
class WorkerContext:
    settings: Settings

    def __post_init__(self) -> None:
        self._local = threading.local()

    @cached_property
    def redis(self) -> redis.Redis:
        assert self.settings.redis_url is not None  # noqa: S101 - checked when the app was built
        return redis.Redis.from_url(
            self.settings.redis_url, health_check_interval=30, socket_connect_timeout=5, retry=REDIS_RETRY,
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )  # fmt: skip

    @cached_property
    def registry(self) -> RedisFeedRegistry:
        return RedisFeedRegistry(self.redis, self.settings.prefix)

    @cached_property
    def schedule(self) -> RedisSchedule:
        return RedisSchedule(self.redis, self.settings.prefix)

    @cached_property
    def websub(self) -> RedisWebSub:
        return RedisWebSub(self.redis, self.settings.prefix)

    @cached_property
    def poll_options(self) -> PollOptions:
        return poll_options(self.settings)

    @cached_property
    def sink(self) -> RedisStreamSink:
        return RedisStreamSink(
            self.redis, self.settings.prefix, maxlen=self.settings.stream_maxlen,
            options=dedup_options(self.settings),
        )  # fmt: skip

    @cached_property
    def stats(self) -> RedisStats:
        return RedisStats(self.redis, self.settings.prefix)

    @cached_property
    def topics_file(self) -> TopicsFile:
        return TopicsFile(self.settings.topics_path)

    def topics(self) -> TopicSet:
        return self.topics_file.get()

    def tracker(self, sweep_id: str) -> RedisSweepTracker:
        return RedisSweepTracker(self.redis, self.settings.prefix, sweep_id)

    def fetcher(self) -> Fetcher:
        """One HTTP client per thread: connections are reused, clients are not shared."""
        fetcher = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = Fetcher(fetch_options(self.settings))
            self._local.fetcher = fetcher
        return fetcher

    @cached_property
    def host_policy(self) -> HostPolicy:
        return HostPolicy(
            max_concurrent=self.settings.host_concurrency,
            min_spacing_s=self.settings.host_spacing,
            lease_s=self.settings.fetch_timeout + 30,
        )

    @cached_property
    def limiter(self) -> RedisHostLimiter:
        """Per-host concurrency and spacing, shared with every other worker through Redis."""
        return RedisHostLimiter(self.redis, self.settings.prefix, self.host_policy)

    @cached_property
    def host_queue(self) -> RedisHostQueue:
        """Requests waiting for their host (the same limits as `limiter`)."""
        leased, waiting = self.settings.fetch_in_flight, PAGES_WAITING_PER_PROCESS * self.settings.concurrency
        return RedisHostQueue(self.redis, self.settings.prefix, self.host_policy, leased, waiting)

    @cached_property
    def fetch_pool(self) -> ThreadPoolExecutor:
        """Threads for the claimed pages of this process's fetch tasks (started as needed)."""
        return ThreadPoolExecutor(self.settings.fetch_in_flight, thread_name_prefix="fetch")

    @cached_property
    def robots(self) -> RobotsRules:
        return RobotsRules(RedisRobotsCache(self.redis, self.settings.prefix), self.settings.user_agent)

    def polite_fetcher(
        self, *, max_wait_s: float, robots: bool = False, profile: FetchProfile | None = None
    ) -> PoliteFetcher:
        """This thread's fetcher behind the host limiter (and robots.txt, for article pages); a
        source's fetch profile (headers, user agent, cookies, proxy) for requests of its own."""
        rules = self.robots if robots else None
        return PoliteFetcher(
            self.fetcher(), self.limiter, robots=rules, max_wait_s=max_wait_s, profile=profile
        )


def fetch_options(settings: Settings) -> FetchOptions:
    return FetchOptions(
        user_agent=settings.user_agent,
        total_timeout=settings.fetch_timeout,
        max_bytes=settings.max_body_bytes,
        allowed_networks=settings.allowed_networks,
    )


def poll_options(settings: Settings) -> PollOptions:
    return PollOptions(
        sitemap_window_s=settings.sitemap_window_days * 86400, max_new=settings.sitemap_max_urls
    )


def dedup_options(settings: Settings) -> DedupOptions:
    return DedupOptions(
        window_s=settings.dedup_window_days * 86400, story_window_s=settings.story_window_hours * 3600
    )


def worker_context() -> WorkerContext:
    """This process's clients, built on first use from the current app's settings."""
    conf = current_app.conf
    ctx = conf.get("newswire_context")
    if ctx is None:
        ctx = WorkerContext(conf.newswire_settings)
        conf.newswire_context = ctx
    assert isinstance(ctx, WorkerContext)  # noqa: S101 - only this function sets it
    return ctx
