"""Running the service's processes: workers, beat and Flower, stopped in a safe order.

Workers stop first (warm shutdown: unfinished late-acked tasks go back to the
broker), then beat and Flower, and the embedded Redis last.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import Settings, settings_env
from newswire import redisd
from workers.app import queue_name

log = logging.getLogger("newswire.service")
CELERY = [sys.executable, "-m", "celery", "-A", "workers.main"]
BEAT_SCHEDULER = "workers.beatlock:LockedScheduler"  # any number of beats, one active (docs/scaling.md)
FLOWER_COLUMNS = "--tasks_columns=name,args,state,received,runtime,worker"  # args: the feed or article URL


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        # children write to stderr: stdout belongs to the command's own output (sweep's JSON summary)
        self.process = subprocess.Popen(self.argv, env=env, start_new_session=True, stdout=sys.stderr)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

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
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Supervisor:
    """Starts children and stops them in order: beat, workers, Flower and the rest, then Redis."""

    settings: Settings
    workers: list[Child] = field(default_factory=list)
    others: list[Child] = field(default_factory=list)
    redis: redisd.EmbeddedRedis | None = None

    def start(self) -> None:
        env = child_env(self.settings)
        for child in self.workers + self.others:
            child.start(env)

    def failed(self) -> list[str]:
        return [c.name for c in self.workers + self.others if c.process and not c.alive()]

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


def ensure_redis(settings: Settings) -> tuple[Settings, redisd.EmbeddedRedis | None]:
    """Settings pointing at a Redis: the configured one, or an embedded server under data_dir."""
    if settings.redis_url:
        return settings, None
    server = redisd.start(settings.data_dir / "redis")
    return settings.with_redis(server.url), server if server.owned else None


def wait_forever(supervisor: Supervisor) -> None:
    """Until SIGINT/SIGTERM or a child dies; then stop everything in order."""
    stopping = {"flag": False}

    def request_stop(signum: int, _frame: object) -> None:
        log.info(
            "received %s: stopping workers, then beat and Flower, then Redis", signal.Signals(signum).name
        )
        stopping["flag"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stopping["flag"]:
        dead = supervisor.failed()
        if dead:
            log.error("%s exited unexpectedly; stopping the service", ", ".join(dead))
            break
        time.sleep(0.5)
    supervisor.stop()
