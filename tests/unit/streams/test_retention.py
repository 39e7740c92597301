import logging
from pathlib import Path

import orjson
import pytest
import redis

from config.settings import Settings, load_settings
from ingest.streams.consume import consume
from ingest.streams.retention import (
    GroupBacklog,
    RetentionPolicy,
    check_streams,
    lag_warnings,
    maintain_streams,
    minid_for,
    retention_policy,
    server_now,
)
from newswire.redisd import EmbeddedRedis
from workers.beat import run_tick
from workers.context import WorkerContext

DAY = 86400.0
NOW = 1_800_000_000.0


def add_old(client: redis.Redis, stream: str, n: int, age_s: float) -> None:
    """`n` entries stamped `age_s` ago (by the server's clock), before any newer one."""
    first_ms = int((server_now(client) - age_s) * 1000)
    pipe = client.pipeline()
    for i in range(n):
        pipe.xadd(stream, {"data": orjson.dumps({"id": f"old{i}"})}, id=f"{first_ms + i}-0")
    pipe.execute()


def add_new(client: redis.Redis, stream: str, n: int) -> None:
    for i in range(n):
        client.xadd(stream, {"data": orjson.dumps({"id": f"new{i}"})})


def backlog(behind: int | None, oldest_s: float | None, first_s: float | None = 0) -> GroupBacklog:
    def as_id(seconds: float | None) -> str | None:
        return None if seconds is None else f"{int(seconds * 1000)}-0"

    return GroupBacklog("p:articles", "desk", behind, as_id(oldest_s), as_id(first_s))


def test_policy_from_settings_and_minid() -> None:
    assert retention_policy(1000, 0).max_age_s is None
    assert retention_policy(1000, 2).max_age_s == 2 * DAY
    assert minid_for(NOW, DAY) == f"{int((NOW - DAY) * 1000)}-0"
    settings = load_settings({"NEWSWIRE_STREAM_RETENTION_DAYS": "7.5"})
    assert settings.stream_retention_days == 7.5
    assert load_settings({}).stream_retention_days == 0


def test_lag_warnings_near_either_limit() -> None:
    policy = RetentionPolicy(maxlen=1000, max_age_s=DAY)
    assert lag_warnings(backlog(0, None), policy, NOW) == []  # caught up
    assert lag_warnings(backlog(500, NOW - 3600), policy, NOW) == []
    (by_count,) = lag_warnings(backlog(900, NOW - 3600), policy, NOW)
    assert "900 entries behind" in by_count
    (by_age,) = lag_warnings(backlog(10, NOW - 0.9 * DAY), policy, NOW)
    assert "21.6 h old" in by_age
    assert lag_warnings(backlog(None, NOW - 3600), policy, NOW) == []  # Redis 6.2: no lag figure
    (lost,) = lag_warnings(backlog(10, NOW - 7200, first_s=NOW - 3600), policy, NOW)
    assert "lost entries" in lost


def test_age_trimming_keeps_new_entries_and_every_output_stream_is_covered(
    redis_client: redis.Redis, prefix: str
) -> None:
    streams = {f"{prefix}:articles", f"{prefix}:topic:us-trade-tariffs", f"{prefix}:updates"}
    for stream in streams:
        add_old(redis_client, stream, 300, age_s=3 * DAY)
        add_new(redis_client, stream, 5)
    redis_client.set(f"{prefix}:topic:not-a-stream", "x")
    report = check_streams(redis_client, prefix, RetentionPolicy(maxlen=10_000, max_age_s=DAY))
    assert set(report.trimmed) == streams
    assert all(n >= 200 for n in report.trimmed.values())  # whole macro-nodes only (XTRIM ~)
    assert [f[b"data"] for _, f in redis_client.xrange(f"{prefix}:articles")][-5:] == [
        orjson.dumps({"id": f"new{i}"}) for i in range(5)
    ]
    stats = redis_client.hgetall(f"{prefix}:stats")
    assert int(stats[b"retention:trimmed"]) == sum(report.trimmed.values())


def test_length_only_policy_trims_nothing_by_age(redis_client: redis.Redis, prefix: str) -> None:
    add_old(redis_client, f"{prefix}:articles", 200, age_s=30 * DAY)
    report = check_streams(redis_client, prefix, RetentionPolicy(maxlen=10_000))
    assert report.trimmed == {}
    assert redis_client.xlen(f"{prefix}:articles") == 200


def test_a_group_falling_behind_is_warned_about_and_counted(
    redis_client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    stream = f"{prefix}:articles"
    add_old(redis_client, stream, 5, age_s=0.9 * DAY)
    add_new(redis_client, stream, 95)
    redis_client.xgroup_create(stream, "slow", id="0")
    redis_client.xgroup_create(stream, "quick", id="0")
    list(consume(redis_client, stream, group="quick", consumer="c"))
    with caplog.at_level(logging.WARNING, logger="newswire.retention"):
        report = check_streams(redis_client, prefix, RetentionPolicy(maxlen=110, max_age_s=DAY))
    has_lag = "lag" in redis_client.xinfo_groups(stream)[0]  # Redis 6.2 has no entry-count lag
    expected = 2 if has_lag else 1  # "slow": 100 entries behind (> 88), and 21.6 h old (> 19.2 h)
    assert len(report.warnings) == expected
    assert all("'slow'" in w for w in report.warnings)
    assert any("21.6 h old" in w for w in report.warnings)
    assert report.trimmed == {}  # near the limit, not past it
    assert sum("consumer lag near retention" in r.message for r in caplog.records) == expected
    assert int(redis_client.hget(f"{prefix}:stats", "retention:lag_warning") or 0) == expected


def test_pending_entries_count_as_needed(redis_client: redis.Redis, prefix: str) -> None:
    stream = f"{prefix}:articles"
    add_old(redis_client, stream, 1, age_s=0.95 * DAY)
    add_new(redis_client, stream, 1)
    reader = consume(redis_client, stream, group="g", consumer="c", from_beginning=True, batch=1)
    next(reader)  # the old entry is delivered, never acked
    (warning,) = check_streams(redis_client, prefix, RetentionPolicy(maxlen=10_000, max_age_s=DAY)).warnings
    assert "oldest unacked entry is 22.8 h old" in warning
    reader.close()


def test_checks_are_rate_limited_across_callers(redis_client: redis.Redis, prefix: str) -> None:
    policy = RetentionPolicy(maxlen=1000, max_age_s=DAY, check_every_s=30)
    assert maintain_streams(redis_client, prefix, policy) is not None
    assert maintain_streams(redis_client, prefix, policy) is None


def test_the_beat_tick_applies_the_retention_settings(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    add_old(redis_client, f"{prefix}:articles", 300, age_s=10 * DAY)
    add_new(redis_client, f"{prefix}:articles", 3)
    settings = Settings(
        redis_url=redis_server.url, prefix=prefix, feeds_path=tmp_path / "none.toml", stream_retention_days=7
    )
    assert run_tick(WorkerContext(settings), lambda url: None) == 0
    assert redis_client.xlen(f"{prefix}:articles") < 303
    assert int(redis_client.hget(f"{prefix}:stats", "retention:trimmed") or 0) >= 200
