"""WebSub tasks: requests to hubs (subscribe, renew, unsubscribe) and pushed documents.

`ingest.websub_request` is handed out by the beat tick (`workers/beat.py`) for each feed whose
subscription needs something; `ingest.websub_push` by the HTTP service for each accepted push
(`newswire/http/websub.py` stored the body in Redis). A push goes down the poll's path: parsed,
its entries not seen before handed to the I/O stage (`dispatch_entries`), then remembered.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task

from ingest.feeds import poll, websub
from workers.tasks import CTX, FEED_WAIT_S, IngestTask, dispatch_entries

log = logging.getLogger("newswire.websub")


@shared_task(name="ingest.websub_request", base=IngestTask)
def websub_request(feed_url: str) -> dict[str, Any]:
    """Subscribe, renew or unsubscribe one feed at its hub, as `websub.plan` decides."""
    public_url = CTX.settings.public_url
    if not public_url:
        return {"outcome": "off"}
    feed = CTX.registry.get(feed_url)
    advertised = CTX.registry.advertised_hub(feed_url) if feed is not None and feed.enabled else None
    action = websub.plan(
        feed is not None and feed.enabled, advertised, CTX.websub.for_feed(feed_url), time.time()
    )
    if action == "none":
        CTX.websub.settle(feed_url)
    else:
        fetcher = CTX.polite_fetcher(max_wait_s=FEED_WAIT_S)
        websub.run_plan(
            CTX.websub, fetcher, feed_url, action, advertised, public_url, CTX.settings.websub_lease_seconds
        )
    CTX.stats.count("websub", f"request_{action}")
    return {"outcome": action}


@shared_task(name="ingest.websub_push", base=IngestTask)
def websub_push(sub_id: str, body_key: str, content_type: str = "") -> dict[str, Any]:
    """One accepted push: parse, hand on the new entries, remember them; the body is then dropped."""
    body = CTX.redis.get(body_key)
    sub = CTX.websub.get(sub_id)
    feed = CTX.registry.get(sub.feed) if sub is not None else None
    if body is None or feed is None:  # processed already (a redelivery), or the feed was removed
        CTX.redis.delete(body_key)
        return {"outcome": "gone", "new_entries": 0}
    report = poll.push_report(feed, bytes(body), content_type, CTX.registry, CTX.poll_options.max_new)
    dispatch_entries(report.new_entries, None)
    poll.commit_push(report, CTX.registry)
    CTX.redis.delete(body_key)
    CTX.stats.count("websub", f"push_{report.outcome}")
    if report.outcome != "pushed":
        log.warning(
            "pushed document not read: %s", report.error, extra={"feed_url": feed.url, "stage": "websub"}
        )
    return {"outcome": report.outcome, "new_entries": len(report.new_entries)}
