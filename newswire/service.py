"""Running the service's processes: started, restarted when they die, stopped in a safe order.

`newswire up` supervises its children (`Supervisor.heal`): a child that exits unexpectedly,
the embedded Redis included, is restarted after a backoff that doubles while it keeps
crashing (1 s, 2 s, 4 s, ...), and each restart is logged and counted (`newswire status`,
`newswire_child_restarts{child}`). A child that crashes `max_crashes` times within
`window_s` stops the service with an error naming it, instead of restarting in a tight loop.

Workers stop first (warm shutdown: unfinished late-acked tasks go back to the
broker), then beat and Flower, and the embedded Redis last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from config.settings import Settings, settings_env
from ingest.ops.metrics import Count, RedisMetrics, labels_of
from ingest.ops.progress import RedisStats
from newswire import redisd
from workers.app import queue_name

log = logging.getLogger("newswire.service")
CELERY = [sys.executable, "-m", "celery", "-A", "workers.main"]
BEAT_SCHEDULER = "workers.beatlock:LockedScheduler"  # any number of beats, one active (docs/scaling.md)
FLOWER_COLUMNS = "--tasks_columns=name,args,state,received,runtime,worker"  # args: the feed or article URL
MALLOC_ARENA_MAX = "2"  # glibc malloc arenas per child process (child_env)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How `newswire up` restarts a child that died, and when it gives up."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    window_s: float = 120.0
    max_crashes: int = 5  # crashes of one child within window_s: the service stops

    def recent(self, crashes: list[float], now: float) -> int:
        return sum(1 for at in crashes if now - at <= self.window_s)

    def delay(self, crashes: list[float], now: float) -> float:
        """Seconds before the next start: doubles with each crash in the window."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, self.recent(crashes, now) - 1))

    def gives_up(self, crashes: list[float], now: float) -> bool:
        return self.recent(crashes, now) >= self.max_crashes


class CrashLoopError(RuntimeError):
    """A child kept crashing: the service stops instead of restarting it in a loop."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        known = -code in signal.valid_signals()
        return f"killed by {signal.Signals(-code).name}" if known else f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    crashes: list[float] = field(default_factory=list)  # monotonic times it died unexpectedly
    restarts: int = 0
    restart_at: float | None = None  # when it is due to start again (it died)

    def start(self, env: dict[str, str]) -> None:
        # children write to stderr: stdout belongs to the command's own output (sweep's JSON summary)
        self.process = subprocess.Popen(self.argv, env=env, start_new_session=True, stdout=sys.stderr)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def clear_group(self) -> None:
        """What is left of a dead child's process group (a worker's pool processes) goes too."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def signal(self, sig: int) -> None:
        if self.alive() and self.process is not None:
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def worker_argv(
    name: str, queues: str, pool: str, concurrency: int, loglevel: str = "INFO", host: str | None = None
) -> list[str]:
    """`name@host`: host is NEWSWIRE_NODE_NAME when set, else the machine's hostname (`%h`)."""
    return [
        *CELERY, "worker", "-Q", queues, "-P", pool, "-c", str(concurrency), "-n", f"{name}@{host or '%h'}",
        "--loglevel", loglevel, "--without-mingle", "--without-gossip",
    ]  # fmt: skip


def beat_argv(settings: Settings) -> list[str]:
    schedule = settings.data_dir / "celerybeat-schedule"
    level = settings.log_level
    return [*CELERY, "beat", "-S", BEAT_SCHEDULER, "--schedule", str(schedule), "--loglevel", level]


def flower_argv(settings: Settings) -> list[str]:
    argv = [*CELERY, "flower", "--address=127.0.0.1", f"--port={settings.flower_port}", FLOWER_COLUMNS]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth}")
    return argv


def metrics_argv(settings: Settings) -> list[str]:
    """The Prometheus exporter (`newswire metrics`): one per deployment, on loopback."""
    port = f"--port={settings.metrics_port}"
    return [sys.executable, "-m", "newswire.cli", "metrics", "--address=127.0.0.1", port]


def http_argv(settings: Settings) -> list[str]:
    """The HTTP service (`newswire http`) on NEWSWIRE_HTTP_ADDRESS:NEWSWIRE_HTTP_PORT."""
    return [sys.executable, "-m", "newswire.cli", "http"]


def worker_children(settings: Settings, concurrency: int | None = None, label: str = "") -> list[Child]:
    """One I/O worker (threads: feeds and pages) and one CPU worker (processes: extraction)."""
    cpu = concurrency or settings.concurrency
    io_queues = f"{queue_name(settings.prefix, 'feeds')},{queue_name(settings.prefix, 'articles')}"
    level, host, threads = settings.log_level, settings.node_name, settings.io_concurrency
    extract = queue_name(settings.prefix, "extract")
    return [
        Child("worker-io", worker_argv(f"io{label}", io_queues, "threads", threads, level, host)),
        Child("worker-extract", worker_argv(f"extract{label}", extract, "prefork", cpu, level, host)),
    ]


def child_env(settings: Settings) -> dict[str, str]:
    """The children read exactly the settings this process has (the demo and sweep adjust some)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env = {**inherited, **settings_env(settings)}
    if not settings.flower_basic_auth:
        env.setdefault("FLOWER_UNAUTHENTICATED_API", "true")  # Flower binds to 127.0.0.1 only
    # glibc gives each thread that allocates its own malloc arena (up to 8 per core). The I/O
    # worker's task and fetch threads each build and drop ~170 KB pages, and what they freed stayed
    # in a dozen arenas: its RSS grew ~3 MiB a minute with malloc's in-use bytes flat (docs/
    # performance.md, soak). Two arenas cut that to under 1 MiB a minute; the GIL serializes
    # allocation anyway.
    env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)  # an operator's own value is kept
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class RedisChild:
    """The embedded Redis as a child: restarted on its port and data (the AOF replays)."""

    server: redisd.EmbeddedRedis
    name: str = "redis"
    crashes: list[float] = field(default_factory=list)
    restarts: int = 0
    restart_at: float | None = None

    def alive(self) -> bool:
        return self.server.process is not None and self.server.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.server.process is None else self.server.process.poll()

    def clear_group(self) -> None:
        """Nothing to clear: the server has no children."""

    def start(self, env: dict[str, str]) -> None:
        self.server = redisd.restart(self.server)
        log.info("started %s (pid %d)", self.name, self.server.pid)


Supervised = Child | RedisChild


@dataclass
class Supervisor:
    """Starts children, restarts those that die, and stops them in order: beat, workers, Flower
    and the rest, then Redis."""

    settings: Settings
    workers: list[Child] = field(default_factory=list)
    others: list[Child] = field(default_factory=list)
    redis: redisd.EmbeddedRedis | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    uncounted: Counter[str] = field(default_factory=Counter)  # restarts not yet written to Redis
    redis_child: RedisChild | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.redis is not None and self.redis.owned:
            self.redis_child = RedisChild(self.redis)

    def start(self) -> None:
        env = child_env(self.settings)
        for child in self.workers + self.others:
            child.start(env)

    def failed(self) -> list[str]:
        return [c.name for c in self.workers + self.others if c.process and not c.alive()]

    def supervised(self) -> list[Supervised]:
        redis_first: list[Supervised] = [self.redis_child] if self.redis_child else []
        return [*redis_first, *self.workers, *self.others]

    def heal(self, now: float) -> None:
        """Restart what died once its backoff has passed; CrashLoopError when one keeps dying."""
        for child in self.supervised():
            if child.restart_at is None and child.exit_code() is not None:  # it was running: now it is not
                self.on_exit(child, now)
            elif child.restart_at is not None and now >= child.restart_at:
                self.restart(child)
        self.count_restarts()

    def on_exit(self, child: Supervised, now: float) -> None:
        child.crashes.append(now)
        how = describe_exit(child.exit_code())
        recent = self.policy.recent(child.crashes, now)
        if self.policy.gives_up(child.crashes, now):
            raise CrashLoopError(
                f"{child.name} exited {recent} times within {self.policy.window_s:.0f}s (last: {how}); "
                "stopping the service instead of restarting it again: see its log lines above"
            )
        delay = self.policy.delay(child.crashes, now)
        child.restart_at = now + delay
        log.error("%s exited unexpectedly (%s): restarting it in %.0fs (%d crash(es) within %.0fs; %d "
                  "stop the service)", child.name, how, delay, recent, self.policy.window_s,
                  self.policy.max_crashes, extra={"stage": "supervisor", "outcome": "crashed"})  # fmt: skip

    def restart(self, child: Supervised) -> None:
        child.restart_at = None
        child.clear_group()
        try:
            child.start(child_env(self.settings))
        except (OSError, redisd.EmbeddedRedisError) as exc:
            log.error("%s did not start again: %s", child.name, exc)  # noqa: TRY400 - the reason is the message
            return  # counts as another exit at the next check
        if isinstance(child, RedisChild):
            self.redis = child.server
        child.restarts += 1
        self.uncounted[child.name] += 1
        log.warning("restarted %s (restart %d)", child.name, child.restarts,
                    extra={"stage": "supervisor", "outcome": "restarted", "child": child.name})  # fmt: skip

    def count_restarts(self) -> None:
        """Restarts into Redis (`newswire status`, the exporter); kept for later while Redis is down."""
        if not self.uncounted or not self.settings.redis_url:
            return
        try:
            record_restarts(self.settings, dict(self.uncounted))
        except (redis.RedisError, OSError) as exc:
            log.warning("restarts not counted yet (%s): retrying", exc)
            return
        self.uncounted.clear()

    def stop(self, timeout: float = 60.0) -> None:
        producers = [c for c in self.others if c.name == "beat"]
        rest = [c for c in self.others if c.name != "beat"]
        for group, wait_s in ((producers, 15.0), (self.workers, timeout), (rest, 15.0)):
            for child in group:
                child.signal(signal.SIGTERM)  # workers: warm shutdown, unfinished tasks go back
            for child in group:
                child.wait(wait_s)
        if self.redis is not None:
            self.redis.stop()


def record_restarts(settings: Settings, restarts: dict[str, int]) -> None:
    """`restart:{child}` in `{prefix}:stats` and `newswire_child_restarts{child}` in the metrics."""
    assert settings.redis_url is not None  # noqa: S101 - checked by the caller
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    stats = RedisStats(client, settings.prefix)
    for name, n in restarts.items():
        stats.count("restart", name, n)
    RedisMetrics(client, settings.prefix).record(
        [Count("newswire_child_restarts", labels_of(child=name), n) for name, n in restarts.items()]
    )


def ensure_redis(settings: Settings) -> tuple[Settings, redisd.EmbeddedRedis | None]:
    """Settings pointing at a Redis: the configured one, or an embedded server under data_dir."""
    if settings.redis_url:
        return settings, None
    server = redisd.start(settings.data_dir / "redis")
    return settings.with_redis(server.url), server if server.owned else None


def wait_forever(supervisor: Supervisor, tick_s: float = 0.5) -> None:
    """Until SIGINT/SIGTERM, restarting children that die; then stop everything in order.

    A child that keeps crashing stops the service: SystemExit with the reason."""
    stopping = {"flag": False}

    def request_stop(signum: int, _frame: object) -> None:
        log.info(
            "received %s: stopping workers, then beat and Flower, then Redis", signal.Signals(signum).name
        )
        stopping["flag"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    failure: str | None = None
    while not stopping["flag"]:
        try:
            supervisor.heal(time.monotonic())
        except CrashLoopError as exc:
            failure = str(exc)
            log.error("%s", failure, extra={"stage": "supervisor", "outcome": "gave_up"})  # noqa: TRY400
            break
        time.sleep(tick_s)
    supervisor.stop()
    if failure:
        raise SystemExit(f"newswire up: {failure}")
