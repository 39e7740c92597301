"""The Celery application, built from settings (`create_app`)."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from kombu import Exchange, Queue

from config.logs import configure_logging
from config.settings import Settings, load_settings
from ingest.extract.article import warm_up
from workers import names
from workers.names import STAGE_OF_TASK, STAGES

__all__ = ["STAGES", "create_app", "queue_name"]
EXTRACT_BATCH = 8  # pages per extraction task at most (workers/tasks.py sends them)


def queue_name(prefix: str, stage: str) -> str:
    """Queues carry the prefix, so deployments with different prefixes can share one broker."""
    return f"{prefix}.{stage}"


def create_app(settings: Settings) -> Celery:
    include = ["workers.tasks", "workers.websub", "workers.signals", "workers.liveness", "workers.dispatch"]
    app = Celery("newswire", broker=settings.effective_broker_url, include=include)
    app.conf.update(celery_config(settings))
    app.conf.newswire_settings = settings
    return app


def celery_config(settings: Settings) -> dict[str, object]:
    """No-loss settings: late acks, redelivery on a lost worker, one message prefetched."""
    visibility = settings.visibility_timeout  # the backstop: any unacked task comes back after this
    queues = [queue_name(settings.prefix, stage) for stage in STAGES]
    batch_limit = settings.extract_time_limit * EXTRACT_BATCH + 30
    return {
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": 600,  # below Redis' visibility timeout and RabbitMQ's consumer_timeout (30 min)
        "task_soft_time_limit": 540,
        # visibility_timeout: Redis transport only; confirm_publish: RabbitMQ acknowledges every message
        # a task sends before that task is acked (ignored by the Redis transport)
        # (the unacked index is scanned every unacked_restore_interval seconds: redelivery within ~10%)
        # newswire_*: the heartbeat keys of workers/broker.py (a dead worker's tasks are back within
        # about NEWSWIRE_WORKER_TTL; the visibility timeout stays as the backstop)
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "confirm_publish": True,
            "unacked_restore_interval": max(1, min(10, visibility // 10)),
            "unacked_restore_throttle": 1,
            "newswire_prefix": settings.prefix,
            "newswire_worker_ttl": settings.worker_ttl,
        },
        "broker_connection_retry_on_startup": True,
        # imported by every worker and beat: kombu's Redis transport with the fixes in workers/broker.py
        "imports": ["workers.broker"],
        "broker_connection_max_retries": None,  # a worker waits for the broker to come back, however long
        # a task that sends a task while the broker restarts waits for it (~1 min) instead of failing
        "task_publish_retry_policy": {
            "max_retries": 30,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        # each stage's queue has its own exchange and key: nothing published for one stage reaches another
        "task_queues": [Queue(q, Exchange(q), routing_key=q) for q in queues],
        "task_default_queue": queue_name(settings.prefix, "feeds"),
        "task_routes": {task: {"queue": queue_name(settings.prefix, s)} for task, s in STAGE_OF_TASK.items()},
        # each page has its own limit (workers/timelimit.py); the task's covers a whole batch
        "task_annotations": {
            name: {"soft_time_limit": batch_limit, "time_limit": batch_limit + 30}
            for name in (names.EXTRACT_ARTICLES, names.EXTRACT_ARTICLE)
        },
        "task_compression": None,
        # task events cost ~1.7 ms of CPU per article (docs/performance.md): on from the first task
        # when someone watches (NEWSWIRE_TASK_EVENTS, set by `newswire up` with Flower); otherwise off,
        # and Flower turns them on within 5 s (its enable_events), missing the name and args of tasks
        # received before (the `null` rows of its task list)
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": False,
        "worker_max_tasks_per_child": 2000,
        "worker_max_memory_per_child": 600_000,  # KiB
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "tick": {"task": names.TICK, "schedule": settings.tick_seconds, "options": {"expires": 60}},
        },
        "timezone": "UTC",
    }


@worker_process_init.connect
def load_extraction_models(**_: object) -> None:
    """Each pool process loads the language model once, not on its first page (~0.5 s)."""
    warm_up()


def app_from_environment() -> Celery:
    """The app for `celery -A workers.main`: settings from the environment, Redis required."""
    settings = load_settings()
    if settings.redis_url is None:
        raise SystemExit(
            "NEWSWIRE_REDIS_URL is not set: run the service with `newswire up` "
            "(which starts an embedded Redis) or point NEWSWIRE_REDIS_URL at your Redis"
        )
    setup_logging.connect(lambda **_: configure_logging(settings.log_level), weak=False)
    return create_app(settings)
