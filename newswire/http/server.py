"""`newswire http`: serve the HTTP application with uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import ipaddress
import logging

import redis
import uvicorn

from config.settings import Settings
from newswire.http.app import HttpContext, create_app

log = logging.getLogger("newswire.http")
GRACEFUL_S = 5  # seconds open requests get on shutdown before they are cancelled


class BindError(SystemExit):
    """The service may not listen there (a clear message for the operator)."""


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_binding(settings: Settings, address: str) -> None:
    """Without API tokens, the service listens on loopback only."""
    if not settings.api_tokens and not is_loopback(address):
        raise BindError(
            f"newswire http: refusing to listen on {address} without NEWSWIRE_API_TOKENS "
            "(set tokens, or keep NEWSWIRE_HTTP_ADDRESS on loopback)"
        )


def serve(settings: Settings, address: str, port: int) -> None:
    check_binding(settings, address)
    assert settings.redis_url is not None  # noqa: S101 - the CLI found the Redis first
    client = redis.Redis.from_url(settings.redis_url, health_check_interval=30, socket_connect_timeout=5)
    app = create_app(HttpContext(settings, client))
    log.info("HTTP service at http://%s:%d/", address, port)
    config = uvicorn.Config(
        app, host=address, port=port, log_config=None, access_log=False, lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_S,  # event streams never finish by themselves
    )  # fmt: skip
    uvicorn.Server(config).run()  # handles SIGINT/SIGTERM: stops accepting, finishes open requests
