"""Kill points for the recovery scenarios: every worker process killed at one moment of the pipeline.

A scenario runs the service as `newswire up` runs it (the two workers and beat, with default
settings), hands it a batch of new feeds, waits for one moment of the pipeline - a poll in flight,
a page fetch, an extraction, the moment after a publish, a retag half done - then SIGKILLs every
worker process at once and starts them again, and measures how long the rest takes.

The moments after a publish and inside a retag are caught exactly: the test blocks on the output
stream (XREAD) and, the instant the first entry of the batch is written, pauses every client's
writes (CLIENT PAUSE WRITE), so the task that wrote it cannot get any further (not even to its
ack) before its worker dies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from ingest.keys import pollers
from newswire.service import beat_argv
from tests.conftest import ROOT
from tests.faults.harness import Worker, Workers, stream_docs, wait_for

PAUSE_MS = 10_000  # writes paused at most this long; unpaused as soon as the workers are dead


@dataclass
class Service:
    """The workers and beat of one deployment, started as `newswire up` starts them."""

    workers: Workers
    beat: Worker = field(init=False)

    def __post_init__(self) -> None:
        from tests.faults.harness import settings_for  # noqa: PLC0415

        argv = beat_argv(settings_for(self.workers.env))
        self.beat = Worker("beat", argv, self.workers.io.env, self.workers.log_dir / "beat.log")

    def start(self) -> None:
        Path(self.workers.env["NEWSWIRE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        self.workers.start()
        self.beat.start()

    def kill_workers(self) -> float:
        """SIGKILL every worker process (pools included) at once; returns when (time.time())."""
        killed = time.time()
        for worker in self.workers.all():
            worker.kill()
        return killed

    def restart_workers(self) -> float:
        started = time.time()
        self.workers.start()
        return started

    def stop(self) -> None:
        self.beat.stop()
        self.workers.stop()

    def log_text(self) -> str:
        return "".join(w.log_text() for w in [*self.workers.all(), self.beat])


def last_id(client: redis.Redis, stream: str) -> str:
    newest: Any = client.xrevrange(stream, count=1)
    return newest[0][0].decode() if newest else "0-0"


def kill_after_first_write(client: redis.Redis, stream: str, after: str, kill: Callable[[], float]) -> float:
    """Block until `stream` gets an entry past `after`, pause all writes at once, kill, unpause."""
    reply: Any = client.xread({stream: after}, count=1, block=120_000)
    assert reply, f"nothing written to {stream} within 120 s"
    client.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
    try:
        return kill()
    finally:
        client.execute_command("CLIENT", "UNPAUSE")


def wait_active(workers: Workers, worker: Worker, task: str, timeout: float = 90.0) -> bool:
    """Until `worker` reports a `task` among its active tasks (Celery's `inspect active`)."""

    def running() -> bool:
        replies = workers.app.control.inspect(destination=[worker.node], timeout=0.5).active() or {}
        return any(t.get("name") == task for t in replies.get(worker.node, []))

    return wait_for(running, timeout, interval=0.05)


def entry_times(client: redis.Redis, stream: str, wanted: set[str]) -> list[float]:
    """When each wanted document reached `stream` (the entry id's milliseconds, the server's clock)."""
    raw: Any = client.xrange(stream)
    times = []
    for entry_id, fields in raw:
        if stream_doc_id(fields) in wanted:
            times.append(int(entry_id.decode().split("-")[0]) / 1000)
    return times


def stream_doc_id(fields: dict[bytes, bytes]) -> str:
    import orjson  # noqa: PLC0415

    return str(orjson.loads(fields[b"data"])["id"])


def published_all(client: redis.Redis, stream: str, expected: set[str]) -> Callable[[], bool]:
    """A predicate for `wait_for`: every expected document is in `stream`."""
    return lambda: batch_figures(client, stream, expected)["published"] == len(expected)


def batch_figures(client: redis.Redis, stream: str, expected: set[str]) -> dict[str, int]:
    """Expected / published / duplicated / lost for the documents of one batch in one stream."""
    found = [str(d["id"]) for d in stream_docs(client, stream) if str(d["id"]) in expected]
    return {
        "expected": len(expected),
        "published": len(set(found)),
        "duplicated": len(found) - len(set(found)),
        "lost": len(expected - set(found)),
    }


def polls_in_flight(client: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in client.hkeys(pollers(prefix))}


def retag_topic(slug: str) -> str:
    """A topic every article of the fault sites matches (their titles read `Story N: ...`)."""
    return f"""

[[topic]]
slug = "{slug}"
name = "Fault Gazette stories"
description = "Every story of the fault scenarios' sites."
query = "story"
min_score = 2
"""


def write_topics(path: Path, extra: str = "") -> Path:
    path.write_text((ROOT / "config" / "topics.toml").read_text() + extra)
    return path
