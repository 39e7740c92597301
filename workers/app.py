"""The Celery application, built from settings (`create_app`)."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging
from kombu import Queue

from config.logs import configure_logging
from config.settings import Settings, load_settings

STAGES = ("feeds", "articles", "extract")  # feed polling (I/O), article pages (I/O), extraction (CPU)
STAGE_OF_TASK = {
    "ingest.tick": "feeds",
    "ingest.poll_feed": "feeds",
    "ingest.fetch_article": "articles",
    "ingest.extract_article": "extract",
}


def queue_name(prefix: str, stage: str) -> str:
    """Queues carry the prefix, so deployments with different prefixes can share one broker."""
    return f"{prefix}.{stage}"


def create_app(settings: Settings) -> Celery:
    app = Celery("newswire", broker=settings.effective_broker_url, include=["workers.tasks"])
    app.conf.update(celery_config(settings))
    app.conf.newswire_settings = settings
    return app


def celery_config(settings: Settings) -> dict[str, object]:
    """No-loss settings: late acks, redelivery on a lost worker, one message prefetched."""
    visibility = 3600
    return {
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": 600,  # well below the broker's visibility timeout
        "task_soft_time_limit": 540,
        "broker_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
        "task_queues": [Queue(queue_name(settings.prefix, stage)) for stage in STAGES],
        "task_default_queue": queue_name(settings.prefix, "feeds"),
        "task_routes": {task: {"queue": queue_name(settings.prefix, s)} for task, s in STAGE_OF_TASK.items()},
        "task_annotations": {
            "ingest.extract_article": {
                "soft_time_limit": settings.extract_time_limit,
                "time_limit": settings.extract_time_limit + 15,
            }
        },
        "task_compression": None,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_max_tasks_per_child": 2000,
        "worker_max_memory_per_child": 600_000,  # KiB
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "tick": {"task": "ingest.tick", "schedule": settings.tick_seconds, "options": {"expires": 60}},
        },
        "timezone": "UTC",
    }


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
