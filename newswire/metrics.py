"""`newswire metrics`: the one process that serves the deployment's Prometheus metrics.

Counters and histograms come from Redis (`ingest.ops.metrics`), where every worker
process adds to them, so prefork children are counted correctly; gauges (queue
depth, workers per queue, feeds by health, overdue feeds, stream length,
consumer-group lag) are read at scrape time (`newswire.health`). Run one
exporter per deployment: every exporter would report the same totals.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

import redis
from celery import Celery
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from config.settings import Settings
from ingest.ops.metrics import COUNTERS, HISTOGRAMS, HistogramData, Labels, RedisMetrics
from newswire.health import Snapshot, resolve_redis_url, take_snapshot
from workers.app import create_app

log = logging.getLogger("newswire.metrics")
Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


class NewswireCollector(Collector):
    """Reads Redis on every scrape; never raises (a down Redis shows as newswire_redis_up 0)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Family]:
        url = resolve_redis_url(self.settings)
        app = control_app(self.settings.with_redis(url)) if url else None
        snapshot = take_snapshot(self.settings, app)
        yield from health_families(snapshot)
        if snapshot.redis_url is None or snapshot.redis_error is not None:
            return
        stored = RedisMetrics(client_for(snapshot.redis_url), self.settings.prefix)
        yield from counter_families(stored.counters())
        yield from histogram_families(stored.histograms())
        yield from gauge_families(snapshot)


@cache
def control_app(settings: Settings) -> Celery:
    return create_app(settings)


@cache
def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)


def values_of(names: tuple[str, ...], labels: Labels) -> list[str]:
    found = dict(labels)
    return [found.get(name, "") for name in names]


def counter_families(counters: dict[str, dict[Labels, int]]) -> Iterator[CounterMetricFamily]:
    for spec in COUNTERS.values():
        family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
        for labels, value in sorted(counters.get(spec.name, {}).items()):
            family.add_metric(values_of(spec.labels, labels), value)
        yield family


def histogram_families(histograms: list[HistogramData]) -> Iterator[HistogramMetricFamily]:
    for spec in HISTOGRAMS.values():
        family = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
        for data in (h for h in histograms if h.name == spec.name):
            family.add_metric(values_of(spec.labels, data.labels), list(data.buckets), data.sum)
        yield family


def gauge(name: str, help_text: str, labels: tuple[str, ...], rows: dict[tuple[str, ...], float]) -> Any:
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    for values, value in rows.items():
        family.add_metric(list(values), value)
    return family


def health_families(snapshot: Snapshot) -> Iterator[GaugeMetricFamily]:
    yield gauge("newswire_redis_up", "1 when Redis answers", (), {(): int(snapshot.redis_error is None)})
    yield gauge(
        "newswire_broker_up", "1 when the broker answers", (), {(): int(snapshot.broker_error is None)}
    )


def gauge_families(snapshot: Snapshot) -> Iterator[GaugeMetricFamily]:
    yield from queue_families(snapshot)
    yield from feed_families(snapshot)
    yield from stream_families(snapshot)


def queue_families(snapshot: Snapshot) -> Iterator[GaugeMetricFamily]:
    depths = {(q,): float(n) for q, n in snapshot.queues.items() if n is not None}
    yield gauge("newswire_queue_depth", "Messages waiting in each queue", ("queue",), depths)
    if snapshot.workers is not None:
        consumers = {(q,): float(len(snapshot.consumers(q))) for q in snapshot.queues}
        yield gauge("newswire_queue_workers", "Workers consuming each queue", ("queue",), consumers)


def feed_families(snapshot: Snapshot) -> Iterator[GaugeMetricFamily]:
    feeds = snapshot.feeds
    if feeds is None:
        return
    by_health = {(h,): float(n) for h, n in feeds.counts.items() if h != "registered"}
    yield gauge("newswire_feeds", "Registered feeds by health: ok, failing, disabled, new, off", ("health",),
                by_health)  # fmt: skip
    yield gauge("newswire_feeds_overdue", "Feeds more than 60 s past their due time without a poll", (),
                {(): float(feeds.overdue)})  # fmt: skip
    yield gauge("newswire_schedule_lateness_seconds", "How late the latest feed is (0 = all on time)", (),
                {(): feeds.max_lateness_s})  # fmt: skip


def stream_families(snapshot: Snapshot) -> Iterator[GaugeMetricFamily]:
    lengths = {(name,): float(info["length"]) for name, info in snapshot.streams.items()}
    yield gauge("newswire_stream_length", "Entries in each output stream", ("stream",), lengths)
    for key, help_text in (("lag", "Entries not yet delivered"), ("pending", "Delivered, not yet acked")):
        rows = {
            (name, group): float(value[key])
            for name, info in snapshot.streams.items()
            for group, value in info["groups"].items()
            if value.get(key) is not None
        }
        yield gauge(
            f"newswire_stream_group_{key}", f"{help_text}, per consumer group", ("stream", "group"), rows
        )


def serve(settings: Settings, address: str, port: int) -> None:
    """Serve /metrics until SIGTERM or Ctrl-C."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NewswireCollector(settings))
    try:
        server, _thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise SystemExit(f"newswire metrics: cannot listen on {address}:{port}: {exc}") from exc
    log.info("Prometheus metrics at http://%s:%d/metrics", address, port)
    wait_for_stop()
    server.shutdown()


def wait_for_stop() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
