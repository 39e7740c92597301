"""The beat lock (workers/beatlock.py) on the suite's real Redis, and the scheduler that obeys it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.settings import Settings, SettingsError, load_settings
from newswire import redisd
from newswire.service import beat_argv, worker_argv, worker_children
from workers.app import create_app, queue_name
from workers.beatlock import (
    BeatLock,
    LockedScheduler,
    LockTiming,
    lock_key,
    next_wake,
    owner_token,
)


def make_lock(client: redis.Redis, prefix: str, owner: str, ttl_s: float = 15.0) -> BeatLock:
    return BeatLock(client, lock_key(prefix), owner, LockTiming(ttl_s))


def wait_until_gone(client: redis.Redis, key: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not client.exists(key), "the lock did not expire"


def test_timing_renews_three_times_per_ttl_and_bounds_the_takeover() -> None:
    timing = LockTiming(15.0)
    assert timing.renew_s == 5.0
    assert timing.takeover_s == 20.0


def test_next_wake_never_sleeps_past_a_renewal() -> None:
    timing = LockTiming(3.0)
    assert next_wake(True, 0.0, timing) == 0.0  # an entry was just sent: tick again at once
    assert next_wake(True, 0.4, timing) == 0.4
    assert next_wake(True, 300.0, timing) == 1.0
    assert next_wake(False, 0.0, timing) == 1.0  # a standby asks again after a renewal period


def test_owner_token_names_node_and_process() -> None:
    assert owner_token("node-a", 4242, "c0ffee00") == "node-a:4242:c0ffee00"


def test_one_holder_at_a_time_and_the_holder_renews(redis_client: redis.Redis, prefix: str) -> None:
    first = make_lock(redis_client, prefix, "a:1:x")
    second = make_lock(redis_client, prefix, "b:2:y")
    assert first.hold()
    assert not second.hold()
    assert first.holder() == "a:1:x"
    redis_client.pexpire(lock_key(prefix), 500)
    assert first.hold()  # renewing resets the TTL to the full 15 s
    assert int(redis_client.pttl(lock_key(prefix))) > 10_000
    assert not second.hold()


def test_release_only_by_the_holder(redis_client: redis.Redis, prefix: str) -> None:
    first = make_lock(redis_client, prefix, "a:1:x")
    second = make_lock(redis_client, prefix, "b:2:y")
    assert first.hold()
    assert not second.release()
    assert first.holder() == "a:1:x"
    assert first.release()
    assert first.holder() is None
    assert second.hold()


def test_standby_takes_over_once_the_holder_stops_renewing(redis_client: redis.Redis, prefix: str) -> None:
    dead = make_lock(redis_client, prefix, "a:1:x", ttl_s=0.3)
    standby = make_lock(redis_client, prefix, "b:2:y", ttl_s=0.3)
    assert dead.hold()
    assert not standby.hold()
    wait_until_gone(redis_client, lock_key(prefix))
    assert standby.hold()
    assert not dead.hold()  # the old holder, back from a pause, finds the lock taken
    assert standby.holder() == "b:2:y"


# --- the scheduler: only the lock holder sends `ingest.tick` to the broker (the suite's Redis) -------


@pytest.fixture
def beat_settings(redis_server: redisd.EmbeddedRedis, prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_server.url, prefix=prefix, tick_seconds=0.2, beat_lock_ttl=3.0, data_dir=tmp_path
    )


@pytest.fixture
def schedulers(beat_settings: Settings, tmp_path: Path) -> Iterator[tuple[LockedScheduler, LockedScheduler]]:
    app = create_app(beat_settings)
    pair = tuple(LockedScheduler(app, schedule_filename=str(tmp_path / name)) for name in ("a", "b"))
    yield pair[0], pair[1]
    for scheduler in pair:
        scheduler.close()


def ticks_sent(client: redis.Redis, prefix: str) -> int:
    return int(client.llen(queue_name(prefix, "feeds")))


def run_for(scheduler: LockedScheduler, seconds: float) -> None:
    """The beat service's loop for a while: tick, sleep what the scheduler asks."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(max(0.0, min(scheduler.tick(), 0.1)))


def test_only_the_holder_sends_ticks(
    schedulers: tuple[LockedScheduler, LockedScheduler], redis_client: redis.Redis, prefix: str
) -> None:
    active, standby = schedulers
    run_for(active, 0.7)
    assert active.active
    sent = ticks_sent(redis_client, prefix)
    assert sent >= 1
    assert standby.tick() == pytest.approx(1.0)  # standing by: ask again after a renewal period
    run_for(standby, 0.7)
    assert standby.active is False
    assert ticks_sent(redis_client, prefix) == sent
    assert redis_client.get(lock_key(prefix)) == active.lock.owner.encode()  # type: ignore[union-attr]


def test_clean_stop_hands_over_at_once(
    schedulers: tuple[LockedScheduler, LockedScheduler], redis_client: redis.Redis, prefix: str
) -> None:
    active, standby = schedulers
    run_for(active, 0.5)
    standby.tick()
    active.close()
    assert not redis_client.exists(lock_key(prefix))
    sent = ticks_sent(redis_client, prefix)
    standby.tick()  # takes the lock, and the tick it has not sent for a while is due
    assert standby.active
    assert ticks_sent(redis_client, prefix) == sent + 1


def test_redis_gone_means_standing_by(beat_settings: Settings, tmp_path: Path) -> None:
    unreachable = Settings(redis_url="redis://127.0.0.1:1/0", prefix=beat_settings.prefix, beat_lock_ttl=3.0)
    scheduler = LockedScheduler(create_app(unreachable), schedule_filename=str(tmp_path / "c"))
    try:
        assert scheduler.tick() == pytest.approx(1.0)
        assert scheduler.active is False
    finally:
        scheduler.close()


# --- wiring: settings, and the commands that start beat and workers ---------------------------------


def test_settings_read_the_lock_ttl_and_node_name() -> None:
    settings = load_settings({"NEWSWIRE_BEAT_LOCK_TTL": "4.5", "NEWSWIRE_NODE_NAME": "fetch-07"})
    assert (settings.beat_lock_ttl, settings.node_name) == (4.5, "fetch-07")
    assert (load_settings({}).beat_lock_ttl, load_settings({}).node_name) == (15.0, None)
    for bad in ({"NEWSWIRE_BEAT_LOCK_TTL": "0.5"}, {"NEWSWIRE_NODE_NAME": "a b"}):
        with pytest.raises(SettingsError):
            load_settings(bad)


def test_beat_runs_the_locked_scheduler_and_workers_carry_the_node_name() -> None:
    argv = beat_argv(Settings(data_dir=Path("/srv/var")))
    assert argv[argv.index("-S") + 1] == "workers.beatlock:LockedScheduler"
    node = Settings(prefix="nw", node_name="fetch-07")
    names = [c.argv[c.argv.index("-n") + 1] for c in worker_children(node)]
    assert names == ["io@fetch-07", "extract@fetch-07"]
    default = worker_argv("extract", "nw.extract", "prefork", 2)
    assert default[default.index("-n") + 1] == "extract@%h"  # no node name: the machine's hostname
