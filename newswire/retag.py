"""`newswire topics retag --since DURATION`: re-tag recent articles through a real worker."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import orjson
import redis

from config.settings import Settings
from ingest import keys
from ingest.ops.progress import RedisSweepTracker
from newswire.service import Supervisor, ensure_redis, worker_children
from newswire.sweep import wait_until_done
from workers import names
from workers.app import create_app, queue_name


def run_retag(settings: Settings, *, since_s: int, timeout: float) -> dict[str, Any]:
    settings, server = ensure_redis(settings)
    supervisor = Supervisor(
        settings, workers=worker_children(settings, label=f"-retag{os.getpid()}"), redis=server
    )
    supervisor.start()
    try:
        return enqueue_and_wait(settings, since_s, timeout, supervisor.failed)
    finally:
        supervisor.stop()


def enqueue_and_wait(settings: Settings, since_s: int, timeout: float, failed: Any) -> dict[str, Any]:
    assert settings.redis_url is not None  # noqa: S101 - ensure_redis set it
    client = redis.Redis.from_url(settings.redis_url)
    tracker = RedisSweepTracker(client, settings.prefix, uuid.uuid4().hex[:12])
    tracker.expect(["r:retag"])
    since_ms = int((time.time() - since_s) * 1000)
    create_app(settings).send_task(
        names.RETAG_ARTICLES, args=[since_ms], kwargs={"sweep_id": tracker.sweep_id, "item": "r:retag"},
        queue=queue_name(settings.prefix, "extract"),
    )  # fmt: skip
    complete = wait_until_done(tracker, 1, time.monotonic() + timeout, failed)
    raw = client.get(keys.retag_report(settings.prefix, tracker.sweep_id))
    report: dict[str, Any] = orjson.loads(raw) if raw else {}
    report["complete"] = complete
    return report
