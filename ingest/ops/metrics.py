"""Service metrics kept in Redis: counters and fixed-bucket histograms that every process adds to.

Celery's prefork children cannot each serve their own Prometheus registry to one
scrape, so every worker process writes its counts into two Redis hashes (HINCRBY,
one round trip per finished task) and one exporter process reads them back and
serves them (`newswire metrics`). The catalogue below is the one list of series:
writers and the exporter both use it, so a name cannot drift between them.

Hash fields are `name|label=value|...` (labels sorted); a histogram adds
`#le=<bound>` per bucket (non-cumulative), `#sum` and `#count`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from ingest import keys

Labels = tuple[tuple[str, str], ...]

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
EXTRACT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
LATENCY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
DELAY_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0, 172800.0, 604800.0)


@dataclass(frozen=True, slots=True)
class CounterSpec:
    name: str  # without `_total`: the exporter adds it
    help: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistogramSpec:
    name: str
    help: str
    bounds: tuple[float, ...]
    labels: tuple[str, ...] = ()


COUNTERS = {
    spec.name: spec
    for spec in (
        CounterSpec(
            "newswire_feed_polls",
            "Feed polls by outcome: ok (200), not_modified (304), deferred (per-host politeness), "
            "dead_lettered, or the error kind (http_<code>, timeout, connect, parse, rate_limited, ...)",
            ("outcome",),
        ),
        CounterSpec(
            "newswire_articles",
            "Feed entries through the article stages, by outcome: published, duplicate, "
            "already (a redelivery, nothing written), dead_lettered",
            ("outcome",),
        ),
        CounterSpec(
            "newswire_extractions",
            "Article bodies by method: trafilatura, or feed (fallback to the feed's own content)",
            ("method",),
        ),
        CounterSpec(
            "newswire_page_fetches",
            "Article page fetches by outcome: ok, error, deferred (host busy, re-enqueued), "
            "known (published already, not fetched again)",
            ("outcome",),
        ),
        CounterSpec("newswire_topic_published", "Articles published to each topic stream", ("topic",)),
        CounterSpec("newswire_dead_letters", "Items given up on (dead-letter stream), by task", ("task",)),
        CounterSpec("newswire_task_retries", "Retries after an infrastructure error, by task", ("task",)),
        CounterSpec(
            "newswire_child_restarts",
            "Processes of `newswire up` restarted after they died: worker-io, worker-extract, beat, "
            "flower, metrics, http, redis",
            ("child",),
        ),
    )
}

HISTOGRAMS = {
    spec.name: spec
    for spec in (
        HistogramSpec(
            "newswire_fetch_seconds",
            "Time of one fetch task, waiting for a per-host politeness slot included: "
            "kind=feed (conditional GET + parse) or kind=page (article page)",
            FETCH_BUCKETS,
            ("kind",),
        ),
        HistogramSpec(
            "newswire_extract_seconds", "Time of one extraction task (extract, tag, publish)", EXTRACT_BUCKETS
        ),
        HistogramSpec(
            "newswire_end_to_end_seconds",
            "From the poll that first saw an entry to its article in the streams",
            LATENCY_BUCKETS,
        ),
        HistogramSpec(
            "newswire_publication_delay_seconds",
            "From the article's own published_at to its article in the streams (when it has a date)",
            DELAY_BUCKETS,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Count:
    """Add `n` to a counter."""

    name: str
    labels: Labels = ()
    n: int = 1


@dataclass(frozen=True, slots=True)
class Observe:
    """One observation of a histogram."""

    name: str
    value: float
    labels: Labels = ()


Update = Count | Observe


@dataclass(frozen=True, slots=True)
class HistogramData:
    """One histogram series as read back: cumulative buckets (the last is +Inf), sum, count."""

    name: str
    labels: Labels
    buckets: tuple[tuple[str, int], ...]
    sum: float
    count: int


def labels_of(**labels: object) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def clean_label(value: str) -> str:
    return value.replace("|", "_").replace("=", "_").replace("#", "_")[:100]


def encode_series(name: str, labels: Labels) -> str:
    return "|".join([name, *(f"{k}={clean_label(v)}" for k, v in labels)])


def decode_series(field: str) -> tuple[str, Labels]:
    name, *pairs = field.split("|")
    return name, tuple((key, value) for key, _, value in (p.partition("=") for p in pairs))


def format_bound(bound: float) -> str:
    """The `le` label as Prometheus clients write it: 0.5, 1.0, +Inf."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def bucket_of(value: float, bounds: tuple[float, ...]) -> str:
    """The smallest bound the value fits under (non-cumulative bucket)."""
    for bound in bounds:
        if value <= bound:
            return format_bound(bound)
    return "+Inf"


def histogram_fields(update: Observe, bounds: tuple[float, ...]) -> dict[str, float]:
    """The hash increments one observation makes."""
    series = encode_series(update.name, update.labels)
    return {
        f"{series}#le={bucket_of(update.value, bounds)}": 1,
        f"{series}#sum": update.value,
        f"{series}#count": 1,
    }


def fold_counters(raw: Mapping[str, int]) -> dict[str, dict[Labels, int]]:
    """Counter hash fields grouped by metric name."""
    out: dict[str, dict[Labels, int]] = {}
    for field, value in raw.items():
        name, labels = decode_series(field)
        out.setdefault(name, {})[labels] = int(value)
    return out


def fold_histograms(raw: Mapping[str, float]) -> list[HistogramData]:
    """Histogram hash fields as cumulative series, for the names in the catalogue."""
    parts: dict[str, dict[str, float]] = {}
    for field, value in raw.items():
        series, _, part = field.partition("#")
        parts.setdefault(series, {})[part] = value
    result = []
    for series, values in sorted(parts.items()):
        name, labels = decode_series(series)
        spec = HISTOGRAMS.get(name)
        if spec is not None:
            result.append(cumulative(spec, labels, values))
    return result


def cumulative(spec: HistogramSpec, labels: Labels, values: Mapping[str, float]) -> HistogramData:
    running, buckets = 0, []
    for le in [*(format_bound(b) for b in spec.bounds), "+Inf"]:
        running += int(values.get(f"le={le}", 0))
        buckets.append((le, running))
    return HistogramData(spec.name, labels, tuple(buckets), float(values.get("sum", 0.0)), running)


class RedisMetrics:
    """Writes updates in one round trip; reads everything back for the exporter."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.counters_key = keys.metric_counters(prefix)
        self.histograms_key = keys.metric_histograms(prefix)

    def record(self, updates: Iterable[Update]) -> None:
        pipe = self.client.pipeline(transaction=True)
        for update in updates:
            if isinstance(update, Count):
                pipe.hincrby(self.counters_key, encode_series(update.name, update.labels), update.n)
            else:
                self.add_observation(pipe, update)
        if len(pipe):
            pipe.execute()

    def add_observation(self, pipe: Any, update: Observe) -> None:
        for field, amount in histogram_fields(update, HISTOGRAMS[update.name].bounds).items():
            if field.endswith("#sum"):
                pipe.hincrbyfloat(self.histograms_key, field, amount)
            else:
                pipe.hincrby(self.histograms_key, field, int(amount))

    def counters(self) -> dict[str, dict[Labels, int]]:
        raw = self.client.hgetall(self.counters_key)
        return fold_counters({k.decode(): int(v) for k, v in raw.items()})

    def histograms(self) -> list[HistogramData]:
        raw = self.client.hgetall(self.histograms_key)
        return fold_histograms({k.decode(): float(v) for k, v in raw.items()})
