"""`newswire up` and `newswire worker`: the long-running processes."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

from config.settings import Settings, mask_url
from newswire.flower import FlowerChild, start_flower_first
from newswire.http.webhooks import webhooks_children
from newswire.service import (
    Child,
    Supervisor,
    beat_argv,
    child_env,
    ensure_redis,
    flower_argv,
    http_argv,
    metrics_argv,
    wait_forever,
    worker_argv,
    worker_children,
)
from newswire.watch import show_banner, summary_lines
from workers.app import queue_name

log = logging.getLogger("newswire.up")


def run_service(settings: Settings, *, concurrency: int | None, flower: bool) -> None:
    if flower:  # Flower lists every task with its name and args only if events flow from the first one
        settings = replace(settings, task_events=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings, server = ensure_redis(settings)
    others = [Child("beat", beat_argv(settings))]
    if flower:
        others.append(FlowerChild("flower", flower_argv(settings), broker_url=settings.effective_broker_url))
    if settings.metrics_port:
        others.append(Child("metrics", metrics_argv(settings)))
    if settings.http_port:
        others.append(Child("http", http_argv(settings)))
    others += webhooks_children(settings)  # the webhook deliveries, when config/webhooks.toml lists any
    supervisor = Supervisor(
        settings, workers=worker_children(settings, concurrency), others=others, redis=server
    )
    log.info(
        "newswire up: redis %s, feeds %s, topics %s, prefix %s%s",
        mask_url(settings.redis_url), settings.feeds_path, settings.topics_path, settings.prefix,
        f", Flower http://127.0.0.1:{settings.flower_port}" if flower else "",
    )  # fmt: skip
    if settings.metrics_port:
        log.info("Prometheus metrics at http://127.0.0.1:%d/metrics", settings.metrics_port)
    if settings.http_port:
        log.info("HTTP service at http://%s:%d/", settings.http_address, settings.http_port)
    start_flower_first(supervisor)  # listening before a worker takes a task: no `null` rows (flower.py)
    supervisor.start()
    show_banner(settings, flower=flower)  # on a terminal: where everything is, how to stop
    with summary_lines(settings):  # on a terminal: one line a minute (newswire/watch.py)
        wait_forever(supervisor)


def run_worker(settings: Settings, *, queues: str, concurrency: int | None, pool: str) -> None:
    """Replace this process with one Celery worker (for Procfile/docker-compose and scale-out)."""
    if not settings.redis_url:
        raise SystemExit("newswire worker needs NEWSWIRE_REDIS_URL (the shared Redis of the deployment)")
    queues = ",".join(q if "." in q else queue_name(settings.prefix, q) for q in queues.split(","))
    name = "-".join(q.rsplit(".", 1)[-1] for q in queues.split(","))
    size = concurrency or settings.concurrency
    argv = worker_argv(name, queues, pool, size, settings.log_level, settings.node_name)
    sys.stdout.flush()
    os.execve(argv[0], argv, child_env(settings))  # noqa: S606 - replaces this process with the worker
