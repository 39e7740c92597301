"""Real processes for the fault scenarios: workers started the way `newswire up` starts them, a sweep
driven through the real code, deadlines instead of sleeps, and the figures each scenario reports.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from config.settings import Settings, load_settings
from ingest.feeds.feedsfile import load_feeds_file
from ingest.feeds.poll import register_feeds
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import RedisSchedule
from ingest.keys import articles_stream, deadletter_stream, duplicates_stream
from ingest.ops.progress import RedisSweepTracker, summarize_outcomes
from newswire.service import child_env, worker_children
from newswire.sweep import enqueue_feeds
from tests.conftest import ROOT
from workers.app import create_app
from workers.context import REDIS_RETRY

FIGURES: list[dict[str, Any]] = []  # one row per scenario, printed at the end of the run (conftest.py)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; Redis being down counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (redis.ConnectionError, OperationalError):
            pass
        time.sleep(interval)
    return False


def resilient_client(url: str) -> redis.Redis:
    """A client that, like the workers' own, waits out a Redis restart."""
    return redis.Redis.from_url(url, retry=REDIS_RETRY, retry_on_error=[redis.ConnectionError])


def settings_for(env: dict[str, str]) -> Settings:
    return load_settings({k: v for k, v in env.items() if k.startswith("NEWSWIRE_")})


# --- workers ------------------------------------------------------------------------------------------


def process_children(pid: int) -> list[int]:
    """Direct children of `pid` (prefork pool processes), from /proc."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry.name))
    return kids


def status_kib(pid: int, field_name: str) -> int:
    """A `/proc/PID/status` figure in KiB (VmHWM: peak resident memory; VmRSS: now); 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


@dataclass
class Worker:
    """One Celery worker process (and its pool, for prefork), started like `newswire up` starts it."""

    name: str  # "worker-io" | "worker-extract"
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def node(self) -> str:
        raw = self.argv[self.argv.index("-n") + 1]
        return raw.replace("%h", socket.gethostname())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pool(self) -> list[int]:
        return process_children(self.pid) if self.alive() else []

    def kill(self) -> None:
        """SIGKILL the worker and its pool at once, like the OOM killer taking a container."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM); SIGKILL if it takes longer than `timeout`."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def peak_rss_mib(self) -> float:
        """Largest peak resident memory (VmHWM) of the worker process or any of its pool processes."""
        pids = [self.pid, *self.pool()] if self.alive() else []
        return round(max((status_kib(p, "VmHWM") for p in pids), default=0) / 1024, 1)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Workers:
    """The service's two workers (I/O: threads; extraction: prefork), on one prefix."""

    env: dict[str, str]
    log_dir: Path
    app: Celery = field(init=False)
    io: Worker = field(init=False)
    extract: Worker = field(init=False)

    def __post_init__(self) -> None:
        settings = settings_for(self.env)
        env = {k: v for k, v in child_env(settings).items() if not k.startswith("NEWSWIRE_")} | self.env
        label = f"-f{uuid.uuid4().hex[:6]}"
        children = {c.name: c for c in worker_children(settings, label=label)}
        self.io = Worker("worker-io", children["worker-io"].argv, env, self.log_dir / "worker-io.log")
        self.extract = Worker(
            "worker-extract", children["worker-extract"].argv, env, self.log_dir / "worker-extract.log"
        )
        self.app = create_app(settings)

    def all(self) -> list[Worker]:
        return [self.io, self.extract]

    def start(self, *workers: Worker) -> None:
        chosen = workers or tuple(self.all())
        for worker in chosen:
            worker.start()
        for worker in chosen:
            assert self.wait_ready(worker), f"{worker.name} did not answer:\n{worker.log_text()[-3000:]}"

    def wait_ready(self, worker: Worker, timeout: float = 60.0) -> bool:
        def answers() -> bool:
            assert worker.alive(), worker.log_text()[-3000:]
            return bool(self.app.control.ping(destination=[worker.node], timeout=0.5))

        return wait_for(answers, timeout, interval=0.2)

    def answering(self) -> set[str]:
        """The nodes that answer a ping now (a fresh connection: Redis may have restarted)."""
        with self.app.connection_for_write() as conn:
            replies = self.app.control.ping(timeout=1.0, connection=conn) or []
        return {node for reply in replies for node in reply} & {w.node for w in self.all()}

    def active_task_pid(self, worker: Worker, task_name: str, timeout: float = 0.5) -> int | None:
        """The pool process running a `task_name` task on `worker` now, via Celery's `inspect active`."""
        replies = self.app.control.inspect(destination=[worker.node], timeout=timeout).active() or {}
        for task in replies.get(worker.node, []):
            if task.get("name") == task_name and task.get("worker_pid"):
                return int(task["worker_pid"])
        return None

    def stop(self) -> None:
        for worker in self.all():
            worker.stop()


# --- a sweep, driven through the real code ---------------------------------------------------------


def start_sweep(settings: Settings) -> RedisSweepTracker:
    """What `newswire sweep` does before it waits: register the feeds file, enqueue every enabled feed."""
    assert settings.redis_url is not None
    client = resilient_client(settings.redis_url)
    registry, schedule = RedisFeedRegistry(client, settings.prefix), RedisSchedule(client, settings.prefix)
    feeds = load_feeds_file(settings.feeds_path)
    register_feeds(feeds, registry, schedule)
    tracker = RedisSweepTracker(client, settings.prefix, uuid.uuid4().hex[:12])
    enqueue_feeds(settings, tracker, [f.url for f in feeds if f.enabled])
    return tracker


def wait_sweep(tracker: RedisSweepTracker, timeout: float) -> dict[str, Any]:
    """The sweep summary once nothing is pending (`complete` False if `timeout` passed first)."""
    complete = wait_for(lambda: tracker.pending() == 0, timeout, interval=0.2)
    summary = summarize_outcomes(tracker.outcomes(), tracker.pending())
    summary["complete"] = complete
    return summary


# --- what the streams hold ---------------------------------------------------------------------------


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def topic_streams(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:topic:*", count=1000))


def delivery_figures(client: redis.Redis, prefix: str, expected: Iterable[str]) -> dict[str, int]:
    """Articles expected / found / duplicated / lost in `{prefix}:articles`, plus the other streams."""
    wanted = set(expected)
    found = [str(d["id"]) for d in stream_docs(client, articles_stream(prefix))]
    per_topic = [[str(d["id"]) for d in stream_docs(client, s)] for s in topic_streams(client, prefix)]
    topic_ids = [i for ids in per_topic for i in ids]
    return {
        "expected": len(wanted),
        "found": len(set(found) & wanted),
        "duplicated": len(found) - len(set(found)),
        "lost": len(wanted - set(found)),
        "unexpected": len(set(found) - wanted),
        "topic_entries": len(topic_ids),
        "topic_duplicated": sum(len(ids) - len(set(ids)) for ids in per_topic),  # within each stream
        "duplicates_stream": int(client.xlen(duplicates_stream(prefix))),
        "deadletter": int(client.xlen(deadletter_stream(prefix))),
    }


def published_count(client: redis.Redis, prefix: str) -> int:
    return int(client.xlen(articles_stream(prefix)))


def record_figures(scenario: str, **figures: Any) -> None:
    FIGURES.append({"scenario": scenario, **figures})
