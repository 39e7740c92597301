"""Worker heartbeats, and handing out again what a dead worker held (docs/faults.md).

Every worker process runs one heartbeat thread. Every `NEWSWIRE_WORKER_TTL / 5` seconds it

- renews, in the state Redis, the heartbeat of this process (`{prefix}:workers`), to which the
  feed polls it runs are tied (`{prefix}:pollers`, recorded when a poll starts), and, with a Redis
  broker, of each open broker channel of this process that holds messages
  (`{prefix}:broker:workers`; `workers/unacked.py`);
- then reaps: feeds polled by a process whose heartbeat expired go back to the schedule, due now
  (`RedisSchedule.reap_pollers`), and the unacknowledged messages of an expired broker channel go
  back to their queues (`workers/broker.py` `Channel.reap_dead`), each once, however many reap.

Expiry is on the Redis server's clock. A worker that could not reach a Redis does not reap there
until it has beaten again for a whole TTL: after an outage every live worker renews its heartbeat
before anyone is taken for dead. With RabbitMQ the broker itself returns a closed connection's
unacknowledged messages, so only the feed side runs.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import redis
from celery.signals import task_postrun, task_prerun, worker_init, worker_shutdown

from ingest import keys, lua
from ingest.feeds.schedule import LEASE_S, RedisSchedule
from workers import names

log = logging.getLogger("newswire.liveness")
DEFAULT_TTL_S = 10.0
BEATS_PER_TTL = 5
POLL_TASK = names.POLL_FEED
NODE = {"name": socket.gethostname()}  # the Celery node name once the worker starts
PROCESS: dict[str, str] = {}  # pid -> this process's holder id (a forked pool process has the parent's)
CHANNELS = itertools.count(1)
_HOLDERS: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()


class Holder(Protocol):
    holder: str

    def is_live(self) -> bool: ...


def process_holder() -> str:
    """`node:pid:nonce` of this worker process; pool processes forked from it report the same."""
    if not PROCESS:
        PROCESS["id"] = f"{NODE['name']}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return PROCESS["id"]


def channel_holder() -> str:
    """One broker channel of this process: a new channel (after a reconnection) is a new holder."""
    return f"{process_holder()}/{next(CHANNELS)}"


def register(holder: Holder) -> None:
    """A channel that holds messages: beaten while it is live."""
    if holder not in _HOLDERS:
        with _LOCK:
            _HOLDERS.add(holder)


def live_holders() -> list[str]:
    with _LOCK:
        return sorted(h.holder for h in list(_HOLDERS) if h.is_live())


class Side:
    """One Redis the heartbeat writes to: beat, then (when healthy long enough) reap."""

    name = ""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.failed_at: float | None = None  # monotonic time of the last failed beat

    def tick(self, now: float) -> None:
        try:
            self.beat()
        except (redis.RedisError, OSError) as exc:
            if self.failed_at is None:
                log.warning("heartbeat to %s failed (%s): not reaping there until it works for %.0fs",
                            self.name, exc, self.ttl_s)  # fmt: skip
            self.failed_at = now
            self.reset()
            return
        if self.failed_at is not None and now - self.failed_at < self.ttl_s:
            return
        self.failed_at = None
        try:
            self.reap()
        except (redis.RedisError, OSError) as exc:
            log.warning("reaping dead workers on %s failed: %s", self.name, exc)
            self.reset()

    def beat(self) -> None:
        raise NotImplementedError

    def reap(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Drop connections after an error; the next tick reconnects."""

    def forget(self) -> None:
        """A clean stop: mark this process's heartbeats expired (nothing is left to hand out)."""


class StateSide(Side):
    """This process's heartbeat in the state Redis, and the feed polls of dead processes."""

    name = "redis"

    def __init__(self, url: str, prefix: str, ttl_s: float) -> None:
        super().__init__(ttl_s)
        timeout = max(1.0, ttl_s / BEATS_PER_TTL)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self.key = keys.workers(prefix)
        self.schedule = RedisSchedule(self.client, prefix)
        self._beat = lua.register(self.client, "workers", "heartbeat.lua")

    def beat(self) -> None:
        self._beat(keys=[self.key], args=[int(self.ttl_s * 1000), process_holder()])

    def reap(self) -> None:
        back = self.schedule.reap_pollers()
        if back:
            log.warning("%d feeds polled by a dead worker are back in the schedule", back,
                        extra={"stage": "recovery", "outcome": "rescheduled"})  # fmt: skip

    def forget(self) -> None:
        self.client.zadd(self.key, {process_holder(): 0})


class BrokerSide(Side):
    """The heartbeats of this process's broker channels, and the messages of dead channels."""

    name = "the broker"

    def __init__(self, connect: Callable[[], Any], ttl_s: float) -> None:
        super().__init__(ttl_s)
        self.connect = connect
        self.connection: Any = None

    @property
    def channel(self) -> Any:
        if self.connection is None:
            self.connection = self.connect()
        return self.connection.default_channel

    def beat(self) -> None:
        channel = self.channel
        with channel.conn_or_acquire() as client:
            channel.index.beat(client, live_holders())

    def reap(self) -> None:
        self.channel.reap_dead()

    def reset(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close too
                log.debug("broker connection of the heartbeat did not close cleanly")
            self.connection = None

    def forget(self) -> None:
        """A clean stop: this process's channels are done (kombu put back what they held)."""
        channel = self.channel
        with channel.conn_or_acquire() as client:
            with _LOCK:
                holders = {h.holder: 0 for h in list(_HOLDERS)}
            if holders:
                client.zadd(channel.index.workers_key, holders)


class Heartbeat(threading.Thread):
    def __init__(self, sides: list[Side], ttl_s: float) -> None:
        super().__init__(name="newswire-heartbeat", daemon=True)
        self.sides = sides
        self.interval = ttl_s / BEATS_PER_TTL
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            now = time.monotonic()
            for side in self.sides:
                try:
                    side.tick(now)
                except Exception:  # the heartbeat must outlive anything unexpected
                    log.exception("heartbeat tick failed")
            if self.stopping.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        for side in self.sides:
            try:
                side.forget()
            except (redis.RedisError, OSError) as exc:
                log.warning("heartbeat not cleared on %s at shutdown (%s): it expires", side.name, exc)


RUNNING: dict[str, Heartbeat] = {}


def heartbeat_for(app: Any) -> Heartbeat:
    settings = app.conf.newswire_settings
    ttl_s = float(settings.worker_ttl)
    sides: list[Side] = [StateSide(settings.redis_url, settings.prefix, ttl_s)]
    if settings.effective_broker_url.startswith(("redis://", "rediss://")):  # workers/broker.py's transport
        sides.append(BrokerSide(app.connection_for_write, ttl_s))
    return Heartbeat(sides, ttl_s)


@worker_init.connect
def start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Before the worker consumes anything: from now on this process is alive for the others."""
    if sender is not None and getattr(sender, "hostname", None):
        NODE["name"] = sender.hostname
    PROCESS.clear()
    beat = heartbeat_for(sender.app)
    beat.start()
    RUNNING["beat"] = beat
    log.info("heartbeat of %s every %.1fs (dead after %.0fs without one)", process_holder(),
             beat.interval, beat.interval * BEATS_PER_TTL)  # fmt: skip


@worker_shutdown.connect
def stop_heartbeat(**_: Any) -> None:
    beat = RUNNING.pop("beat", None)
    if beat is not None:
        beat.stop()


@task_prerun.connect
def hold_poll(task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    """A feed poll starts: tie its lease to this process, so it ends when the process dies."""
    url = poll_url(task, args, kwargs)
    if url is None:
        return
    ttl_ms = int(task.app.conf.newswire_settings.worker_ttl * 1000)
    try:
        schedule_of(task).hold_poll(url, process_holder(), ttl_ms)
    except redis.RedisError as exc:
        log.warning("poll of %s not tied to this worker (%s): its lease ends after %ds", url, exc, LEASE_S)


@task_postrun.connect
def release_poll(task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    url = poll_url(task, args, kwargs)
    if url is None:
        return
    try:
        schedule_of(task).release_poll(url, process_holder())
    except redis.RedisError as exc:
        log.warning("poll of %s not released (%s): it is reaped with this worker", url, exc)


def poll_url(task: Any, args: Any, kwargs: Any) -> str | None:
    if task is None or task.name != POLL_TASK:
        return None
    url = (args[0] if args else None) or (kwargs or {}).get("feed_url")
    return url if isinstance(url, str) else None


def schedule_of(task: Any) -> RedisSchedule:
    from workers.context import worker_context  # noqa: PLC0415 - the tasks' own context, built on first use

    return worker_context().schedule
