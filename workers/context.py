"""Clients a worker process needs, created once per process (and per thread where not shareable)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import redis
from ingest.tag import TopicSet, TopicsFile

from config.settings import Settings
from ingest.fetch import Fetcher, FetchOptions
from ingest.progress import RedisStats, RedisSweepTracker
from ingest.publish import RedisStreamSink
from ingest.registry import RedisFeedRegistry
from ingest.schedule import RedisSchedule


@dataclass
class WorkerContext:
    settings: Settings

    def __post_init__(self) -> None:
        self._local = threading.local()

    @cached_property
    def redis(self) -> redis.Redis:
        assert self.settings.redis_url is not None  # noqa: S101 - checked when the app was built
        return redis.Redis.from_url(self.settings.redis_url, health_check_interval=30)

    @cached_property
    def registry(self) -> RedisFeedRegistry:
        return RedisFeedRegistry(self.redis, self.settings.prefix)

    @cached_property
    def schedule(self) -> RedisSchedule:
        return RedisSchedule(self.redis, self.settings.prefix)

    @cached_property
    def sink(self) -> RedisStreamSink:
        return RedisStreamSink(self.redis, self.settings.prefix, maxlen=self.settings.stream_maxlen)

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


def fetch_options(settings: Settings) -> FetchOptions:
    return FetchOptions(
        user_agent=settings.user_agent,
        total_timeout=settings.fetch_timeout,
        max_bytes=settings.max_body_bytes,
        allowed_networks=settings.allowed_networks,
    )
