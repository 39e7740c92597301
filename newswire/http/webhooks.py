"""`newswire webhooks`: the webhook deliveries of `config/webhooks.toml`, until SIGTERM.

Each webhook gets `concurrency` consumers (threads) on each of its streams, all in its own
consumer group, sharing the webhook's concurrency and rate caps (`ingest/streams/webhook.py`).
Consumer names are `{node}-{stream}-{i}`, the same after a restart, so each consumer first
finishes the entries it held when it stopped. `newswire up` starts this process when the file
lists a webhook (`webhooks_children`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

import redis

from config.settings import Settings
from ingest.fetch.post import Poster, PostOptions
from ingest.streams.consume import ConsumeOptions, RedisStreamConsumer
from ingest.streams.entries import output_stream
from ingest.streams.webhook import Endpoint, Webhook, WebhookDelivery, WebhookError, load_webhooks
from newswire.service import Child

log = logging.getLogger("newswire.webhooks")
CLAIM_IDLE_MS = 15 * 60_000  # a consumer gone this long (fewer threads now, another host name)
MAX_HANDOUTS = 50  # restarts while one entry is retried; the attempts themselves are capped apart


def webhooks_children(settings: Settings) -> list[Child]:
    """The `webhooks` process for `newswire up`, when the webhooks file lists any."""
    try:
        hooks = load_webhooks(settings.webhooks_path)
        secrets_of(hooks, dict(os.environ))
    except WebhookError as exc:
        raise SystemExit(f"newswire up: {exc}") from exc
    if not hooks:
        return []
    return [Child("webhooks", [sys.executable, "-m", "newswire.cli", "webhooks"])]


def secrets_of(hooks: tuple[Webhook, ...], env: dict[str, str]) -> dict[str, bytes]:
    missing = sorted({h.secret_env for h in hooks if not env.get(h.secret_env)})
    if missing:
        raise WebhookError(f"webhook secrets missing: set {', '.join(missing)} (named by secret_env)")
    return {h.name: env[h.secret_env].encode() for h in hooks}


def post_options(settings: Settings, hook: Webhook) -> PostOptions:
    return PostOptions(
        user_agent=settings.user_agent, total_timeout=hook.timeout, read_timeout=hook.timeout,
        allowed_networks=settings.allowed_networks,
    )  # fmt: skip


def consumer_thread(
    client: Any, settings: Settings, endpoint: Endpoint, stream: str, index: int
) -> threading.Thread:
    hook, node = endpoint.hook, settings.node_name or socket.gethostname()
    consumer = f"{node}-{stream}-{index}"
    poster = Poster(post_options(settings, hook))
    delivery = WebhookDelivery(client, settings.prefix, endpoint, stream, consumer, poster)
    options = ConsumeOptions(follow=True, batch=10, claim_idle_ms=CLAIM_IDLE_MS, max_deliveries=MAX_HANDOUTS)
    reader = RedisStreamConsumer(
        client, output_stream(settings.prefix, stream), group=hook.group, consumer=consumer, options=options
    )

    def work() -> None:
        try:
            while not endpoint.stop.is_set():
                try:
                    reader.run(delivery.handle, stop=endpoint.stop)
                except redis.RedisError as exc:  # Redis restarting: the entries in hand stay pending
                    log.warning(
                        "webhook %s: %s; reading again in 2 s", hook.name, exc, extra={"stage": "webhook"}
                    )
                    endpoint.stop.wait(2)
        finally:
            poster.close()

    return threading.Thread(target=work, name=f"webhook {hook.name} {consumer}", daemon=True)


def run_webhooks(settings: Settings) -> int:
    hooks = load_webhooks(settings.webhooks_path)
    if not hooks:
        log.info("webhooks: %s lists no webhook; nothing to do", settings.webhooks_path)
        return 0
    secrets = secrets_of(hooks, dict(os.environ))
    assert settings.redis_url is not None  # noqa: S101 - the CLI found the Redis first
    # socket_timeout above the consumers' XREADGROUP BLOCK (redis-py's default of 5 s cuts it short)
    client = redis.Redis.from_url(settings.redis_url, health_check_interval=30, socket_timeout=30)
    stop = threading.Event()
    threads = [
        consumer_thread(client, settings, endpoint, stream, i)
        for endpoint in (Endpoint(h, secrets[h.name], stop) for h in hooks)
        for stream in endpoint.hook.streams
        for i in range(endpoint.hook.concurrency)
    ]
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for thread in threads:
        thread.start()
    log.info("webhooks: %d endpoints, %d consumers", len(hooks), len(threads))
    while not stop.wait(1):
        if not any(t.is_alive() for t in threads):
            return 1
    for thread in threads:
        thread.join(10)  # a blocking read returns within 5 s; entries in hand stay pending
    return 0
