"""Keeping the output streams bounded, and saying so before a consumer group loses entries.

Two limits: a length cap (`MAXLEN ~`, applied by the publish script at every
XADD) and an optional age (`XTRIM MINID ~`, applied here at most once per
`check_every_s` across all beats; the keyspace is scanned for streams at most
hourly). Trimming never waits for consumer groups, so each check also measures
every group's backlog and warns (log and the `retention:lag_warning` counter)
when it passes `warn_fraction` of either limit. Works on Redis >= 6.2 (MINID)
and Valkey; the entry-count check needs the `lag` of XINFO GROUPS (Redis >= 7),
the age check works on all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from ingest import keys
from ingest.keys import articles_stream, deadletter_stream, duplicates_stream
from ingest.ops.progress import RedisStats

log = logging.getLogger("newswire.retention")

StreamId = tuple[int, int]
DISCOVER_EVERY_S = 3600  # a full SCAN for streams (topic streams appear as topics are first used)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    maxlen: int  # the approximate cap the publish script applies to every stream
    max_age_s: float | None = None  # None: no age-based trimming
    check_every_s: float = 60.0
    warn_fraction: float = 0.8


@dataclass(frozen=True, slots=True)
class GroupBacklog:
    """How far one consumer group is behind on one stream."""

    stream: str
    group: str
    behind: int | None  # undelivered + unacked entries (None: Redis < 7 does not say)
    oldest_needed: str | None  # id of the oldest entry the group has not acked (None: caught up)
    first_id: str | None  # the oldest entry still in the stream


@dataclass(frozen=True, slots=True)
class RetentionReport:
    trimmed: dict[str, int]
    warnings: tuple[str, ...]


def retention_policy(maxlen: int, retention_days: float) -> RetentionPolicy:
    """The policy of the settings NEWSWIRE_STREAM_MAXLEN and NEWSWIRE_STREAM_RETENTION_DAYS (0 = off)."""
    return RetentionPolicy(maxlen=maxlen, max_age_s=retention_days * 86400 if retention_days > 0 else None)


def parse_id(entry_id: str) -> StreamId:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def minid_for(now: float, max_age_s: float) -> str:
    """Entries older than this id are past the age limit."""
    return f"{max(0, int((now - max_age_s) * 1000))}-0"


def lag_warnings(backlog: GroupBacklog, policy: RetentionPolicy, now: float) -> list[str]:
    """Why this group is at risk of losing entries to retention (empty when it is not)."""
    name = f"group {backlog.group!r} on {backlog.stream}"
    if backlog.oldest_needed is None:
        return []
    if backlog.first_id is not None and parse_id(backlog.oldest_needed) < parse_id(backlog.first_id):
        return [f"{name} has lost entries: the oldest it has not acked was trimmed already"]
    warnings = []
    if backlog.behind is not None and backlog.behind > policy.warn_fraction * policy.maxlen:
        warnings.append(f"{name} is {backlog.behind} entries behind; streams are capped at ~{policy.maxlen}")
    if policy.max_age_s:
        age_s = now - parse_id(backlog.oldest_needed)[0] / 1000
        if age_s > policy.warn_fraction * policy.max_age_s:
            warnings.append(
                f"{name}: its oldest unacked entry is {age_s / 3600:.1f} h old; "
                f"entries are kept {policy.max_age_s / 3600:.1f} h"
            )
    return warnings


def output_streams(client: redis.Redis, prefix: str) -> list[str]:
    """The fixed streams plus every stream found under the prefix (topic streams and any other)."""
    fixed = {articles_stream(prefix), duplicates_stream(prefix), deadletter_stream(prefix)}
    known_key = keys.retention_streams(prefix)
    if client.set(keys.retention_discovered(prefix), "1", nx=True, ex=DISCOVER_EVERY_S):
        found = [as_str(k) for k in client.scan_iter(match=f"{prefix}:*", count=1000, _type="stream")]
        pipe = client.pipeline()
        pipe.delete(known_key)
        if found:
            pipe.sadd(known_key, *found)
        pipe.execute()
    known: Any = client.smembers(known_key)
    return sorted(fixed | {as_str(k) for k in known})


def as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def trim_by_age(client: redis.Redis, stream: str, minid: str) -> int:
    """XTRIM MINID ~ (whole macro-nodes only, so cheap); the number of entries removed."""
    return int(client.xtrim(stream, minid=minid, approximate=True))


def group_backlogs(client: redis.Redis, stream: str) -> list[GroupBacklog]:
    cli: Any = client  # redis-py's reply types are too loose to check usefully
    try:
        groups = cli.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream
        return []
    first = cli.xrange(stream, "-", "+", count=1)
    first_id = as_str(first[0][0]) if first else None
    return [backlog_of(cli, stream, g, first_id) for g in groups]


def backlog_of(client: Any, stream: str, info: dict[Any, Any], first_id: str | None) -> GroupBacklog:
    group = as_str(info["name"])
    pending = int(info.get("pending") or 0)
    oldest_pending = as_str(client.xpending(stream, group)["min"]) if pending else None
    following = client.xrange(stream, "(" + as_str(info["last-delivered-id"]), "+", count=1)
    next_undelivered = as_str(following[0][0]) if following else None
    lag = info.get("lag")
    behind = None if lag is None else int(lag) + pending
    candidates = [i for i in (oldest_pending, next_undelivered) if i is not None]
    oldest = min(candidates, key=parse_id) if candidates else None
    return GroupBacklog(stream, group, behind, oldest, first_id)


def is_due(client: redis.Redis, prefix: str, policy: RetentionPolicy) -> bool:
    """At most one check per `check_every_s`, however many beats tick."""
    ttl_ms = max(1, int(policy.check_every_s * 1000))
    return bool(client.set(keys.retention_checked(prefix), "1", nx=True, px=ttl_ms))


def server_now(client: redis.Redis) -> float:
    """The server's clock: it is the one that stamped the entry ids."""
    seconds, micros = client.time()
    return float(seconds) + micros / 1e6


def check_streams(
    client: redis.Redis, prefix: str, policy: RetentionPolicy, now: float | None = None
) -> RetentionReport:
    """Trim by age (if configured) and measure every group's backlog; record what was found."""
    now = server_now(client) if now is None else now
    streams = output_streams(client, prefix)
    trimmed: dict[str, int] = {}
    if policy.max_age_s:
        minid = minid_for(now, policy.max_age_s)
        trimmed = {s: n for s in streams if (n := trim_by_age(client, s, minid))}
    backlogs = [backlog for s in streams for backlog in group_backlogs(client, s)]
    warnings = tuple(w for backlog in backlogs for w in lag_warnings(backlog, policy, now))
    record(RedisStats(client, prefix), trimmed, warnings)
    return RetentionReport(trimmed, warnings)


def record(stats: RedisStats, trimmed: dict[str, int], warnings: tuple[str, ...]) -> None:
    if trimmed:
        stats.count("retention", "trimmed", sum(trimmed.values()))
        log.info("trimmed %d entries older than the retention age", sum(trimmed.values()))
    for warning in warnings:
        stats.count("retention", "lag_warning")
        log.warning("consumer lag near retention: %s", warning, extra={"stage": "retention"})


def maintain_streams(client: redis.Redis, prefix: str, policy: RetentionPolicy) -> RetentionReport | None:
    """The beat's call: a check when one is due; never raises (retention must not stop the tick)."""
    try:
        return check_streams(client, prefix, policy) if is_due(client, prefix, policy) else None
    except redis.RedisError as exc:
        log.warning("stream retention check failed: %s", exc, extra={"stage": "retention"})
        return None
