"""WebSub callbacks at `/websub/{sub_id}` (outside `/v1/`: the hub's signature is the credential).

GET: the hub's verification of intent, answered with `hub.challenge` only for the pending request
of that mode and topic (`ingest/feeds/websub.py`); `hub.mode=denied` is recorded. POST: content,
accepted only for a live subscription, within `NEWSWIRE_MAX_BODY_BYTES`, with a valid
`X-Hub-Signature`; it is stored in Redis and handed to a worker (`ingest.websub_push`), which
parses it like a poll. Everything else is refused (404 unknown, 410 not live, 413 too large,
403 unsigned or wrongly signed) and counted in `{prefix}:stats` as `websub:refused_<reason>`.
"""

from __future__ import annotations

import logging
import time
import uuid
from functools import cache
from typing import TYPE_CHECKING, Any

from celery import Celery
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ingest import keys
from ingest.feeds.websub import RedisWebSub, Subscription, is_valid_signature
from ingest.ops.progress import RedisStats
from workers.app import create_app

if TYPE_CHECKING:
    from newswire.http.app import HttpContext

log = logging.getLogger("newswire.http.websub")
PUSH_TTL_S = 86400
MAX_CHALLENGE_CHARS = 1024


class Refused(Exception):  # noqa: N818 - an answer, not an error
    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def websub_routes(ctx: HttpContext) -> list[BaseRoute]:
    store = RedisWebSub(ctx.redis, ctx.settings.prefix)
    stats = RedisStats(ctx.redis, ctx.settings.prefix)
    celery = cache(lambda: create_app(ctx.settings))

    def refuse(reason: str, status: int, sub_id: str) -> Response:
        stats.count("websub", f"refused_{reason}")
        log.warning("websub request refused: %s", reason, extra={"stage": "websub", "sub_id": sub_id[:40]})
        return PlainTextResponse(f"{reason}\n", status_code=status)

    def verify(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        sub_id, params = request.path_params["sub_id"], request.query_params
        mode, topic = params.get("hub.mode", ""), params.get("hub.topic", "")
        challenge = params.get("hub.challenge", "")
        if mode in ("subscribe", "unsubscribe") and topic and 0 < len(challenge) <= MAX_CHALLENGE_CHARS:
            lease = params.get("hub.lease_seconds", "")
            if store.verify(sub_id, mode, topic, int(lease) if lease.isdigit() else None, time.time()):
                stats.count("websub", f"verified_{mode}")
                return PlainTextResponse(challenge)
        elif mode == "denied" and store.deny(sub_id, topic, params.get("hub.reason", ""), time.time()):
            stats.count("websub", "denied")
            return PlainTextResponse("")
        return refuse("verification", 404, sub_id)

    async def receive(request: Request) -> Response:
        sub_id = request.path_params["sub_id"]
        try:
            sub = await run_in_threadpool(live_subscription, store, sub_id)
            body = await read_capped(request, ctx.settings.max_body_bytes)
            check_signature(sub, body, request.headers.get("x-hub-signature"))
        except Refused as refused:
            return await run_in_threadpool(refuse, refused.reason, refused.status, sub_id)
        content_type = request.headers.get("content-type", "")
        return await run_in_threadpool(accept, ctx, celery(), stats, sub_id, body, content_type)

    return [
        Route("/websub/{sub_id}", verify, methods=["GET"]),
        Route("/websub/{sub_id}", receive, methods=["POST"]),
    ]


def check_signature(sub: Subscription, body: bytes, header: str | None) -> None:
    if header is None:
        raise Refused("unsigned", 403)
    if not is_valid_signature(sub.secret, body, header):
        raise Refused("bad_signature", 403)


def live_subscription(store: RedisWebSub, sub_id: str) -> Subscription:
    sub = store.get(sub_id) if len(sub_id) <= 64 else None
    if sub is None:
        raise Refused("unknown", 404)
    if not sub.is_live(time.time()):
        raise Refused("not_live", 410)
    return sub


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or Refused("too_large") once it passes `limit` (declared or sent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused("too_large", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused("too_large", 413)
    return bytes(body)


def accept(
    ctx: HttpContext, celery: Celery, stats: RedisStats, sub_id: str, body: bytes, content_type: str
) -> Response:
    """Keep the body in Redis and hand it to a worker; 503 (the hub retries) if that fails."""
    key = keys.push_body(ctx.settings.prefix, uuid.uuid4().hex)
    client: Any = ctx.redis
    try:
        client.set(key, body, ex=PUSH_TTL_S)
        celery.send_task("ingest.websub_push", args=[sub_id, key, content_type[:200]])
    except Exception as exc:  # noqa: BLE001 - Redis or the broker is down: the hub must try again
        log.error("push not handed on: %s", exc, extra={"stage": "websub"})  # noqa: TRY400
        return PlainTextResponse("try again\n", status_code=503)
    stats.count("websub", "accepted")
    return PlainTextResponse("accepted\n", status_code=202)
