"""Flower under `newswire up`: listening for task events before any worker takes a task.

Flower learns a task's name and arguments from its `task-received` event. Events sent before
Flower's event queue is bound are lost, and the task then shows in its list as a `null` row
without arguments. So `newswire up` starts Flower first and waits until its queue is bound to
the `celeryev` exchange (on the Redis broker, a new member of kombu's binding table), then starts
the workers, which send events from their first task (NEWSWIRE_TASK_EVENTS). On RabbitMQ the
binding cannot be seen from here; Flower is still started first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from kombu.transport.redis import Channel

from newswire.service import Child, Supervisor, child_env

log = logging.getLogger("newswire.flower")
EVENT_EXCHANGE = "celeryev"
BIND_TIMEOUT_S = 60.0
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass
class FlowerChild(Child):
    """Flower: `start` returns once it listens for events (at most BIND_TIMEOUT_S); idempotent."""

    broker_url: str = ""

    def start(self, env: dict[str, str]) -> None:
        if self.alive():
            return
        before = event_bindings(self.broker_url)
        super().start(env)
        if before is not None:
            self.wait_bound(before)

    def wait_bound(self, before: set[bytes]) -> None:
        deadline = time.monotonic() + BIND_TIMEOUT_S
        while time.monotonic() < deadline and self.alive():
            now = event_bindings(self.broker_url)
            if now is None or now - before:
                return
            time.sleep(0.1)
        log.warning("Flower is not listening for task events yet; tasks taken before it is show as null")


def event_bindings(broker_url: str) -> set[bytes] | None:
    """Members of the event exchange's binding table, or None when that cannot be read."""
    if not broker_url.startswith(REDIS_SCHEMES):
        return None
    try:
        client: Any = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=5)
        return set(client.smembers(Channel.keyprefix_queue % EVENT_EXCHANGE))
    except redis.RedisError:
        return None


def start_flower_first(supervisor: Supervisor) -> None:
    """Start the supervisor's Flower (if any) now, so that it listens before the workers start."""
    env = child_env(supervisor.settings)
    for child in supervisor.others:
        if isinstance(child, FlowerChild):
            child.start(env)
