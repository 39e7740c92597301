"""One active beat per deployment: a lock in Redis with a short TTL, renewed on every tick.

Beat may run on several nodes, for availability; only the holder of
`{prefix}:beat:lock` sends due entries. The holder renews the lock every third
of its TTL (`NEWSWIRE_BEAT_LOCK_TTL`, 15 s by default) and a standby asks for it
just as often, so a standby takes over at most TTL + TTL/3 after the active beat
dies, and within TTL/3 after it stops cleanly (a clean stop releases the lock).

Taking and renewing is one Lua script, compare-and-extend by a unique owner
token, on the Redis server's clock (PX), so clocks that differ between hosts do
not matter. The lock's value names its holder (`node:pid:nonce`). A doubled
tick would be harmless (the schedule claim is atomic); the lock keeps the
broker traffic and the logs to one beat.

Run it with `celery -A workers.main beat -S workers.beatlock:LockedScheduler`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from celery.beat import PersistentScheduler

from config.settings import Settings
from ingest import keys, lua

log = logging.getLogger("newswire.beat")


@dataclass(frozen=True, slots=True)
class LockTiming:
    """How long the lock lives, how often it is renewed (or asked for), and the worst-case takeover."""

    ttl_s: float

    @property
    def renew_s(self) -> float:
        return self.ttl_s / 3

    @property
    def takeover_s(self) -> float:
        """After the active beat dies: its lock expires (TTL), then the standby's next ask."""
        return self.ttl_s + self.renew_s


def lock_key(prefix: str) -> str:
    return keys.beat_lock(prefix)


def owner_token(node: str, pid: int, nonce: str) -> str:
    """The lock's value: which beat holds it, unique even for two beats with one pid on two hosts."""
    return f"{node}:{pid}:{nonce}"


def next_wake(holding: bool, scheduler_delay: float, timing: LockTiming) -> float:
    """Seconds until the next tick: the schedule's own delay, but never past the next renewal."""
    return min(scheduler_delay, timing.renew_s) if holding else timing.renew_s


class BeatLock:
    """The beat lock in Redis: hold (take or renew), release, and who holds it."""

    def __init__(self, client: redis.Redis, key: str, owner: str, timing: LockTiming) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.key = key
        self.owner = owner
        self.timing = timing
        self._hold = lua.register(client, "workers", "beat_hold.lua")
        self._release = lua.register(client, "workers", "beat_release.lua")

    def hold(self) -> bool:
        """Take the lock if it is free, renew it if it is ours; False while another beat has it."""
        ttl_ms = max(1, int(self.timing.ttl_s * 1000))
        return bool(self._hold(keys=[self.key], args=[self.owner, ttl_ms]))

    def release(self) -> bool:
        """Give the lock up, only if it is still ours (a standby may have it already)."""
        return bool(self._release(keys=[self.key], args=[self.owner]))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


def lock_for(settings: Settings) -> BeatLock:
    """This beat's lock, from the app's settings (`create_app` puts them on the app)."""
    timing = LockTiming(settings.beat_lock_ttl)
    assert settings.redis_url is not None  # noqa: S101 - `celery -A workers.main` requires it
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=timing.renew_s, socket_timeout=timing.renew_s
    )
    owner = owner_token(settings.node_name or socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
    return BeatLock(client, lock_key(settings.prefix), owner, timing)


class LockedScheduler(PersistentScheduler):  # type: ignore[misc]
    """`PersistentScheduler` that sends due entries only while it holds the beat lock."""

    lock: BeatLock | None = None
    active: bool | None = None  # None until the first tick has asked

    def setup_schedule(self) -> None:
        super().setup_schedule()
        self.lock = lock_for(self.app.conf.newswire_settings)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        assert self.lock is not None  # noqa: S101 - set up before the first tick
        holding = self.hold_lock(self.lock)
        delay = float(super().tick(*args, **kwargs)) if holding else self.lock.timing.renew_s
        return next_wake(holding, delay, self.lock.timing)

    def hold_lock(self, lock: BeatLock) -> bool:
        try:
            holding = lock.hold()
        except redis.RedisError as exc:  # no Redis, no ticks: the tick needs Redis anyway
            log.warning("beat lock not checked (%s): standing by", exc, extra={"stage": "beat"})
            holding = False
        if holding != self.active:
            log_change(lock, was_active=bool(self.active), holding=holding)
        self.active = holding
        return holding

    def close(self) -> None:
        """A clean stop hands over at once: release the lock, then close the schedule file."""
        if self.lock is not None and self.active:
            try:
                self.lock.release()
            except redis.RedisError as exc:
                log.warning("beat lock not released (%s): it expires by itself", exc)
            self.active = False
        super().close()


def log_change(lock: BeatLock, *, was_active: bool, holding: bool) -> None:
    fields = {"stage": "beat"}
    if holding:
        log.info("beat lock %s taken: %s is the active beat", lock.key, lock.owner, extra=fields)
        return
    try:
        holder = lock.holder()
    except redis.RedisError:
        holder = None
    level = logging.WARNING if was_active else logging.INFO
    log.log(level, "beat lock %s held by %s: %s stands by", lock.key, holder, lock.owner, extra=fields)
