"""Is the service doing anything useful? The checks `newswire status` adds to `newswire health`'s.

`health` answers "are the processes and Redis up" (its exit code drives the compose healthchecks).
A service can pass all of that and still deliver nothing: every feed failing, a stage falling
further behind every minute, a consumer group about to lose entries to retention. Each check here
is a pure function of what was read, with a short reason; `read_signals` reads what the snapshot
does not have.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from config.settings import Settings
from ingest.ops.backlog import DepthSample, RedisQueueHistory
from ingest.streams.retention import group_backlogs, lag_warnings, retention_policy, server_now
from newswire.health import Check, FeedOverview, Snapshot

FAILING_SHARE = 0.5  # more than half of the feeds polled failing: the service delivers little or nothing
BACKLOG_MIN = 100  # a queue with fewer messages waiting is never called a backlog
BACKLOG_STEP_S = 300.0  # growth is judged over two steps of five minutes: a burst is not a backlog
HISTORY_S = 4 * BACKLOG_STEP_S
NAMES_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Signals:
    now: float
    history: tuple[DepthSample, ...] = ()  # queue depths, oldest first
    lag_warnings: tuple[str, ...] = ()  # consumer groups near or past the streams' retention


def read_signals(settings: Settings, snapshot: Snapshot) -> Signals | None:
    """Depth history and consumer-group backlogs (None when Redis cannot be read)."""
    if snapshot.redis_url is None or snapshot.redis_error is not None:
        return None
    client = redis.Redis.from_url(snapshot.redis_url, socket_connect_timeout=2, socket_timeout=10)
    now = time.time()
    try:
        history = RedisQueueHistory(client, settings.prefix).since(now - HISTORY_S)
        warnings = group_warnings(client, settings, snapshot)
    except redis.RedisError:
        return Signals(now)
    return Signals(now, tuple(history), warnings)


def group_warnings(client: redis.Redis, settings: Settings, snapshot: Snapshot) -> tuple[str, ...]:
    policy = retention_policy(settings.stream_maxlen, settings.stream_retention_days)
    now = server_now(client)
    with_groups = [name for name, info in snapshot.streams.items() if info.get("groups")]
    backlogs = [b for name in with_groups for b in group_backlogs(client, name)]
    return tuple(w for backlog in backlogs for w in lag_warnings(backlog, policy, now))


def service_checks(snapshot: Snapshot, signals: Signals) -> list[Check]:
    checks = [backlog_check(snapshot.queues, signals.history, signals.now), retention_check(signals)]
    return ([feeds_check(snapshot.feeds)] if snapshot.feeds is not None else []) + checks


def feeds_check(feeds: FeedOverview) -> Check:
    counts = feeds.counts
    polled = counts["ok"] + counts["failing"] + counts["disabled"]
    bad = counts["failing"] + counts["disabled"]
    if not counts["registered"]:
        return Check(
            "feeds", False,
            "no feed registered (beat registers the feeds file's feeds at its first tick; "
            "`newswire feeds add URL` adds one)",
        )  # fmt: skip
    if not polled:
        if counts["new"]:
            return Check("feeds", True, f"{counts['new']} feeds not polled yet")
        return Check("feeds", False, "every feed is switched off (enabled = false)")
    detail = f"{bad} of {polled} polled feeds failing"
    if bad > FAILING_SHARE * polled:
        return Check("feeds", False, f"{detail}: {failing_names(feeds, bad)}")
    return Check("feeds", True, detail)


def failing_names(feeds: FeedOverview, total: int) -> str:
    """`A, B, C and 11 more (last error of A: …)`: which feeds, and why the worst one fails."""
    rows = feeds.top_failing[:NAMES_SHOWN]
    names = ", ".join(row.name or row.url for row in rows)
    more = f" and {total - len(rows)} more" if total > len(rows) else ""
    worst = rows[0] if rows else None
    why = (
        f" (last error of {worst.name or worst.url}: {worst.last_error})"
        if worst and worst.last_error
        else ""
    )
    return f"{names}{more}{why}; all of them: `newswire feeds list`"


def backlog_check(queues: dict[str, int | None], history: tuple[DepthSample, ...], now: float) -> Check:
    """A queue of at least BACKLOG_MIN that grew over each of the last two five-minute steps."""
    middle = sample_before(history, now - BACKLOG_STEP_S)
    first = sample_before(history, middle.at - BACKLOG_STEP_S) if middle else None
    if middle is None or first is None:
        return Check("backlog", True, "not enough history yet to see a trend (10 minutes of samples)")
    minutes = (now - first.at) / 60
    growing = [
        f"{short(q)} {first.depths[q]:,} → {middle.depths[q]:,} → {depth:,} in {minutes:.0f} min"
        for q, depth in queues.items()
        if depth is not None and is_growing(depth, middle.depths.get(q), first.depths.get(q))
    ]
    if growing:
        return Check("backlog", False, "growing: " + "; ".join(growing))
    return Check("backlog", True, "no queue growing")


def is_growing(now: int, middle: int | None, first: int | None) -> bool:
    return middle is not None and first is not None and now >= BACKLOG_MIN and now > middle > first


def sample_before(history: tuple[DepthSample, ...], at: float) -> DepthSample | None:
    """The newest sample taken at or before `at`."""
    older = [s for s in history if s.at <= at]
    return max(older, key=lambda s: s.at) if older else None


def retention_check(signals: Signals) -> Check:
    warnings = signals.lag_warnings
    if not warnings:
        return Check("retention", True, "no consumer group near the streams' retention limits")
    more = f"; and {len(warnings) - 2} more" if len(warnings) > 2 else ""
    return Check("retention", False, "; ".join(warnings[:2]) + more)


def short(queue: str) -> str:
    return queue.rsplit(".", 1)[-1]
