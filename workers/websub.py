"""WebSub tasks: requests to hubs (subscribe, renew, unsubscribe) and pushed documents.

`ingest.websub_request` is handed out by the beat tick (`workers/beat.py`) for each feed whose
subscription needs something; `ingest.websub_push` by the HTTP service for each accepted push
(`newswire/http/websub.py` stored the body in Redis). A push goes down the poll's path: parsed,
its entries not seen before handed to the I/O stage's host queues, then remembered.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task

from ingest.feeds import poll, websub
from workers import names
from workers.context import worker_context
from workers.messages import WebsubPush, WebsubRequest
from workers.tasks import IngestTask, hand_on_entries

log = logging.getLogger("newswire.websub")
HUB_WAIT_S = 2.0  # a request to a hub waits this long for the hub host's slot (rare: subscriptions)


@shared_task(name=names.WEBSUB_REQUEST, base=IngestTask, message=WebsubRequest)
def websub_request(feed_url: str) -> dict[str, Any]:
    """Subscribe, renew or unsubscribe one feed at its hub, as `websub.plan` decides."""
    msg, ctx = WebsubRequest(feed_url), worker_context()
    public_url = ctx.settings.public_url
    if not public_url:
        return {"outcome": "off"}
    feed = ctx.registry.get(msg.feed_url)
    live = feed is not None and feed.enabled
    advertised = ctx.registry.advertised_hub(msg.feed_url) if live else None
    action = websub.plan(live, advertised, ctx.websub.for_feed(msg.feed_url), time.time())
    if action == "none":
        ctx.websub.settle(msg.feed_url)
    else:
        fetcher = ctx.polite_fetcher(max_wait_s=HUB_WAIT_S)
        lease = ctx.settings.websub_lease_seconds
        websub.run_plan(ctx.websub, fetcher, msg.feed_url, action, advertised, public_url, lease)
    ctx.stats.count("websub", f"request_{action}")
    return {"outcome": action}


@shared_task(name=names.WEBSUB_PUSH, base=IngestTask, message=WebsubPush)
def websub_push(sub_id: str, body_key: str, content_type: str = "") -> dict[str, Any]:
    """One accepted push: parse, hand on the new entries, remember them; the body is then dropped."""
    msg, ctx = WebsubPush(sub_id, body_key, content_type), worker_context()
    body = ctx.redis.get(msg.body_key)
    sub = ctx.websub.get(msg.sub_id)
    feed = ctx.registry.get(sub.feed) if sub is not None else None
    if body is None or feed is None:  # processed already (a redelivery), or the feed was removed
        ctx.redis.delete(msg.body_key)
        return {"outcome": "gone", "new_entries": 0}
    report = poll.push_report(feed, bytes(body), msg.content_type, ctx.registry, ctx.poll_options.max_new)
    hand_on_entries(ctx, feed, report.new_entries, None)
    poll.commit_push(report, ctx.registry)
    ctx.redis.delete(msg.body_key)
    ctx.stats.count("websub", f"push_{report.outcome}")
    if report.outcome != "pushed":
        log.warning(
            "pushed document not read: %s", report.error, extra={"feed_url": feed.url, "stage": "websub"}
        )
    return {"outcome": report.outcome, "new_entries": len(report.new_entries)}
