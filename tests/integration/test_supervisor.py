"""`Supervisor.heal` with real processes: a child that dies comes back, counted in Redis; one that
keeps dying stops the service; the embedded Redis comes back on its port with its data (AOF)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import redis

from config.settings import load_settings
from ingest.ops.metrics import RedisMetrics
from ingest.ops.progress import RedisStats
from newswire import redisd
from newswire.service import Child, CrashLoopError, RestartPolicy, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def heal_until(supervisor: Supervisor, done: object, timeout: float = 30.0) -> None:
    """Drive `heal` as `wait_forever` does, until `done()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.heal(time.monotonic())
        if done():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("not healed in time")


def test_a_child_that_dies_is_restarted_and_counted(redis_server: redisd.EmbeddedRedis, prefix: str) -> None:
    settings = load_settings({"NEWSWIRE_REDIS_URL": redis_server.url, "NEWSWIRE_STREAM_PREFIX": prefix})
    child = Child("sleeper", SLEEPER)
    supervisor = Supervisor(settings, others=[child])
    supervisor.start()
    try:
        assert child.process is not None
        first = child.process.pid
        os.kill(first, signal.SIGKILL)
        heal_until(
            supervisor, lambda: child.alive() and child.process is not None and child.process.pid != first
        )
        assert child.restarts == 1
        client = redis.Redis.from_url(redis_server.url)
        assert RedisStats(client, prefix).all()["restart:sleeper"] == 1
        counters = RedisMetrics(client, prefix).counters()["newswire_child_restarts"]
        assert counters == {(("child", "sleeper"),): 1}
    finally:
        supervisor.stop()
    assert not child.alive()


def test_a_child_that_keeps_crashing_stops_the_supervisor(redis_server: redisd.EmbeddedRedis) -> None:
    settings = load_settings({"NEWSWIRE_REDIS_URL": redis_server.url})
    fast = RestartPolicy(first_delay_s=0.05, max_delay_s=0.1)  # the default backs off 1, 2, 4, 8 s
    child = Child("crasher", CRASHER)
    supervisor = Supervisor(settings, others=[child], policy=fast)
    supervisor.start()
    with pytest.raises(CrashLoopError, match=r"crasher exited 5 times within 120s \(last: exit code 3\)"):
        heal_until(supervisor, lambda: False)
    assert child.restarts == 4


def test_the_embedded_redis_comes_back_on_its_port_with_its_data(tmp_path: Path) -> None:
    server = redisd.start(tmp_path / "redis", persistent=True)
    settings = load_settings({"NEWSWIRE_REDIS_URL": server.url})
    supervisor = Supervisor(settings, redis=server)
    try:
        client = redis.Redis.from_url(server.url)
        client.set("accepted", "yes")  # acknowledged: in the AOF (written before the reply)
        server.kill()
        heal_until(supervisor, lambda: supervisor.redis is not server and redisd.is_alive(server.url))
        assert supervisor.redis is not None
        assert supervisor.redis.url == server.url
        assert client.get("accepted") == b"yes"
        assert client.hgetall("newswire:stats") == {b"restart:redis": b"1"}
    finally:
        supervisor.stop()
    assert not redisd.is_alive(server.url)
