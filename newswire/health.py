"""Is newswire working? One snapshot read by `newswire health`, `newswire status` and the exporter.

`take_snapshot` reads Redis, the broker, the workers, the queues, the streams
and the feeds with short timeouts; it never raises for a service that is down,
it records why (and it leaves one queue-depth sample for `newswire status`'s
backlog check). `evaluate` turns a snapshot into the pass/fail checks of
`newswire health` (pure): the processes and Redis. What the service achieves
(feeds, backlog, consumer lag) is judged by `newswire.verdict`.
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from celery import Celery
from kombu import Connection

from config.settings import Settings
from ingest import keys
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import RedisSchedule
from ingest.keys import articles_stream, deadletter_stream, duplicates_stream
from ingest.models import Feed
from ingest.ops.backlog import RedisQueueHistory
from ingest.ops.progress import RedisStats
from newswire import redisd
from workers.app import STAGES, create_app, queue_name

TIMEOUT_S = 2.0
OVERDUE_GRACE_S = 60.0  # a feed polled later than this after its due time counts as overdue
DEFAULT_MAX_OVERDUE_S = 900.0
OVERDUE_SHARE = 0.1  # health fails when more than this share of feeds is late beyond the threshold
CHUNK = 1000
REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class FeedRow:
    url: str
    name: str
    health: str  # ok | failing | disabled | new | off
    lateness_s: float  # how long past its due time the feed is still unpolled (0 = on time)
    errors: int = 0
    last_status: str = ""
    last_error: str = ""
    last_success: str = ""
    websub: str = ""  # the WebSub subscription's state: live | pending | denied | failed | ""


@dataclass(frozen=True, slots=True)
class FeedOverview:
    counts: dict[str, int]  # registered, ok, failing, disabled, new, off
    lateness: tuple[float, ...]  # of every feed that is late at all, largest first
    top_failing: tuple[FeedRow, ...]
    websub: dict[str, int] = field(default_factory=dict)  # subscriptions by state

    @property
    def overdue(self) -> int:
        return late_beyond(self.lateness, OVERDUE_GRACE_S)

    @property
    def max_lateness_s(self) -> float:
        return self.lateness[0] if self.lateness else 0.0

    @property
    def schedulable(self) -> int:
        return sum(self.counts.get(h, 0) for h in ("ok", "failing", "new"))


@dataclass(frozen=True, slots=True)
class Snapshot:
    redis_url: str | None
    redis_error: str | None = None
    broker_error: str | None = None
    workers: dict[str, list[str]] | None = None  # worker -> this deployment's queues it consumes
    queues: dict[str, int | None] = field(default_factory=dict)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    feeds: FeedOverview | None = None
    schedule: dict[str, int] = field(default_factory=dict)  # scheduled, due, in_flight
    counters: dict[str, int] = field(default_factory=dict)  # `{prefix}:stats`, by stage:outcome

    def consumers(self, queue: str) -> list[str]:
        return sorted(w for w, queues in (self.workers or {}).items() if queue in queues)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def late_beyond(lateness: tuple[float, ...], seconds: float) -> int:
    return sum(1 for late in lateness if late > seconds)


def feed_health(feed: Feed, state: dict[str, str]) -> str:
    if not feed.enabled:
        return "off"
    if state.get("disabled"):
        return "disabled"
    if not state.get("last_status"):
        return "new"
    return "failing" if int(state.get("consecutive_errors") or 0) else "ok"


def feed_lateness(state: dict[str, str], due_score: float | None, now: float) -> float:
    """Seconds a feed is past its due time without a poll: from the poll's own plan, else the schedule.

    Scheduled in the future (or not scheduled at all) is on time; claimed or queued is late
    from the time it was due, however often its lease was renewed.
    """
    if due_score is not None and due_score > now:
        return 0.0
    planned = parse_iso(state.get("next_poll", "")) or due_score
    return max(0.0, now - planned) if planned is not None else 0.0


def parse_iso(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


def feed_row(feed: Feed, state: dict[str, str], due_score: float | None, now: float) -> FeedRow:
    health = feed_health(feed, state)
    schedulable = health in {"ok", "failing", "new"}
    return FeedRow(
        url=feed.url, name=feed.name or state.get("title", ""), health=health,
        lateness_s=feed_lateness(state, due_score, now) if schedulable else 0.0,
        errors=int(state.get("consecutive_errors") or 0), last_status=state.get("last_status", ""),
        last_error=state.get("disabled_reason") or state.get("last_error", ""),
        last_success=state.get("last_success", ""), websub=state.get("websub", ""),
    )  # fmt: skip


def summarize_feeds(rows: list[FeedRow], top: int = 5) -> FeedOverview:
    counts = {"registered": len(rows), "ok": 0, "failing": 0, "disabled": 0, "new": 0, "off": 0}
    for row in rows:
        counts[row.health] += 1
    lateness = tuple(sorted((r.lateness_s for r in rows if r.lateness_s > 0), reverse=True))
    failing = sorted((r for r in rows if r.health in {"failing", "disabled"}), key=lambda r: -r.errors)
    websub: dict[str, int] = {}
    for row in rows:
        if row.websub:
            websub[row.websub] = websub.get(row.websub, 0) + 1
    return FeedOverview(counts, lateness, tuple(failing[:top]), dict(sorted(websub.items())))


def evaluate(snapshot: Snapshot, max_overdue_s: float, worker: str | None = None) -> list[Check]:
    """Pass/fail per check. With `worker`, only that worker's own health (for its container)."""
    checks = [
        Check("redis", snapshot.redis_error is None, snapshot.redis_error or "answers"),
        Check("broker", snapshot.broker_error is None, snapshot.broker_error or "answers"),
    ]
    if snapshot.workers is None:
        return [*checks, Check("workers", False, "not asked: the broker is unreachable")]
    if worker is not None:
        return [*checks, worker_check(snapshot, worker)]
    return [*checks, queues_check(snapshot), schedule_check(snapshot.feeds, max_overdue_s)]


def worker_check(snapshot: Snapshot, worker: str) -> Check:
    queues = (snapshot.workers or {}).get(worker)
    if queues is None:
        return Check("workers", False, f"{worker} does not answer")
    return Check("workers", True, f"{worker} consumes {', '.join(queues) or 'no queue of this prefix'}")


def queues_check(snapshot: Snapshot) -> Check:
    idle = [q for q in snapshot.queues if not snapshot.consumers(q)]
    if not snapshot.workers:
        return Check("workers", False, "no worker answers")
    if idle:
        return Check("workers", False, f"no worker consumes {', '.join(idle)}")
    return Check("workers", True, f"{len(snapshot.workers)} answering; every queue has a consumer")


def schedule_check(feeds: FeedOverview | None, max_overdue_s: float) -> Check:
    if feeds is None:
        return Check("schedule", False, "feeds not read: Redis is unreachable")
    late = late_beyond(feeds.lateness, max_overdue_s)
    allowed = math.floor(OVERDUE_SHARE * feeds.schedulable)
    detail = f"{late} of {feeds.schedulable} feeds overdue by more than {max_overdue_s:.0f}s"
    if late > allowed:
        return Check("schedule", False, f"{detail} (most: {feeds.max_lateness_s:.0f}s)")
    return Check("schedule", True, detail)


def take_snapshot(settings: Settings, app: Celery | None = None, *, ask_workers: bool = True) -> Snapshot:
    """Everything `status`, `health` and the exporter show, read with short timeouts."""
    url = resolve_redis_url(settings)
    redis_error = ping_redis(url) if url else "no NEWSWIRE_REDIS_URL and no embedded Redis running"
    broker_url = settings.broker_url or url
    broker_error = ping_broker(broker_url) if broker_url else "no broker URL"
    if url is None or redis_error is not None:
        return Snapshot(url, redis_error, broker_error)
    settings = settings.with_redis(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=10)
    now = time.time()
    workers = None
    if broker_error is None and ask_workers:
        workers = read_workers(app or create_app(settings), settings.prefix)
    queues = queue_depths(settings, broker_error is None)
    record_depths(client, settings.prefix, queues, now)
    return Snapshot(
        url, None, broker_error, workers,
        queues=queues,
        streams=read_streams(client, settings.prefix),
        feeds=read_feeds(client, settings.prefix, now),
        schedule=RedisSchedule(client, settings.prefix).counts(now),
        counters=RedisStats(client, settings.prefix).all(),
    )  # fmt: skip


def record_depths(client: redis.Redis, prefix: str, queues: dict[str, int | None], now: float) -> None:
    """One sample for the growing-backlog check of `newswire status` (ingest/ops/backlog.py)."""
    depths = {q: n for q, n in queues.items() if n is not None}
    if not depths:
        return
    with contextlib.suppress(redis.RedisError):  # a read-only replica: the check just has no history
        RedisQueueHistory(client, prefix).record(now, depths)


def resolve_redis_url(settings: Settings) -> str | None:
    """The configured Redis, or the embedded one if it is running (never starts one)."""
    if settings.redis_url:
        return settings.redis_url
    running = redisd.find_running(settings.data_dir / "redis")
    return running.url if running else None


def ping_redis(url: str) -> str | None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S).ping()
    except (redis.RedisError, OSError) as exc:
        return f"unreachable: {exc}"
    return None


def ping_broker(url: str) -> str | None:
    if url.startswith(REDIS_SCHEMES):
        return ping_redis(url)
    try:
        with Connection(url, connect_timeout=TIMEOUT_S) as conn:
            conn.connect()
    except Exception as exc:  # noqa: BLE001 - any transport error means "unreachable" here
        return f"unreachable: {exc}"
    return None


def read_workers(app: Celery, prefix: str) -> dict[str, list[str]]:
    """Workers that consume at least one of this deployment's queues, with those queues."""
    ours = {queue_name(prefix, stage) for stage in STAGES}
    try:
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:  # noqa: BLE001 - a broker that fails mid-call reads as "no worker answers"
        return {}
    consuming = {name: sorted(q["name"] for q in qs if q["name"] in ours) for name, qs in replies.items()}
    return {name: queues for name, queues in sorted(consuming.items()) if queues}


def queue_depths(settings: Settings, reachable: bool) -> dict[str, int | None]:
    names = [queue_name(settings.prefix, stage) for stage in STAGES]
    url = settings.effective_broker_url
    if not reachable:
        return dict.fromkeys(names)
    if url.startswith(REDIS_SCHEMES):
        broker = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S)
        return {q: int(broker.llen(q)) for q in names}
    return amqp_depths(url, names)


def amqp_depths(url: str, names: list[str]) -> dict[str, int | None]:
    depths: dict[str, int | None] = dict.fromkeys(names)
    try:
        with Connection(url, connect_timeout=TIMEOUT_S) as conn:
            for name in names:
                depths[name] = amqp_depth(conn, name)
    except Exception:  # noqa: BLE001 - a broker that fails mid-call leaves the rest unknown
        return depths
    return depths


def amqp_depth(conn: Connection, name: str) -> int:
    """Messages ready in one RabbitMQ queue (passive declare, one channel per queue: a 404 closes it).

    A queue not declared yet holds nothing (publishing declares it), like a missing Redis list."""
    channel = conn.channel()
    try:
        return int(channel.queue_declare(name, passive=True).message_count)
    except conn.channel_errors:
        return 0
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def read_streams(client: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    names = [articles_stream(prefix), duplicates_stream(prefix), deadletter_stream(prefix)]
    names += sorted(k.decode() for k in client.scan_iter(keys.topic_stream(prefix, "*"), count=1000))
    streams = {}
    for name in names:
        length = int(client.xlen(name)) if client.exists(name) else 0
        streams[name] = {"length": length, "groups": group_lag(client, name) if length else {}}
    return streams


def group_lag(client: redis.Redis, stream: str) -> dict[str, Any]:
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError:
        return {}
    return {as_text(g["name"]): {"pending": g.get("pending"), "lag": g.get("lag")} for g in groups}


def read_feeds(client: redis.Redis, prefix: str, now: float) -> FeedOverview:
    registry = RedisFeedRegistry(client, prefix)
    feeds = registry.all()
    rows = []
    for chunk in chunks(feeds, CHUNK):
        states, scores = read_chunk(client, registry, RedisSchedule(client, prefix).due_key, chunk)
        rows += [feed_row(f, s, d, now) for f, s, d in zip(chunk, states, scores, strict=True)]
    return summarize_feeds(rows)


def read_chunk(
    client: redis.Redis, registry: RedisFeedRegistry, due_key: str, feeds: list[Feed]
) -> tuple[list[dict[str, str]], list[float | None]]:
    pipe: Any = client.pipeline(transaction=False)
    for feed in feeds:
        pipe.hgetall(registry.state_key(feed.url))
    pipe.zmscore(due_key, [f.url for f in feeds])
    *raw, scores = pipe.execute()
    states = [{as_text(k): as_text(v) for k, v in r.items()} for r in raw]
    return states, [None if s is None else float(s) for s in scores]


def chunks(items: list[Feed], size: int) -> Iterator[list[Feed]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def local_worker_name(name: str, node_name: str | None = None) -> str:
    """`extract` -> `extract@<this node>`: a container's healthcheck names its own worker."""
    return name if "@" in name else f"{name}@{node_name or socket.gethostname()}"
