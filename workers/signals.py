"""Instrumentation by Celery signals: metrics into Redis, one log line per main event, readable args.

Tasks stay thin: each returns a small dict saying what happened (outcome, ids).
The handlers here turn that, the task's duration and its kwargs (`first_seen`,
set when a poll dispatches an entry) into metric updates (`ingest.ops.metrics`,
one Redis round trip per task, correct under prefork) and a structured log line
with the stable fields. Nothing here can fail a task: a metrics write that
fails is logged and dropped.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import redis
from celery.signals import task_failure, task_postrun, task_prerun, task_retry

from ingest.models import Document
from ingest.ops.metrics import Count, Observe, RedisMetrics, Update, labels_of
from workers import names

log = logging.getLogger("newswire.events")
POLL, FETCH, EXTRACT = names.POLL_FEED, names.FETCH_ARTICLES, names.EXTRACT_ARTICLES
FETCHES = (FETCH, names.FETCH_ARTICLE)  # the one-article names: tasks queued by earlier versions
EXTRACTS = (EXTRACT, names.EXTRACT_ARTICLE)
STAGE = {POLL: "poll", **dict.fromkeys(FETCHES, "fetch"), **dict.fromkeys(EXTRACTS, "publish")}
STARTED: dict[str, float] = {}  # task id -> monotonic start, per process (threads: distinct ids)


@task_prerun.connect
def on_prerun(task_id: str, **_: Any) -> None:
    STARTED[task_id] = time.monotonic()


@task_postrun.connect
def on_postrun(
    task_id: str, task: Any, args: Any, kwargs: Any, retval: Any, state: str | None = None, **_: Any
) -> None:
    started = STARTED.pop(task_id, None)
    if state != "SUCCESS" or started is None or not isinstance(retval, dict):
        return
    duration = time.monotonic() - started
    page_fetched = len(args) > 1 and args[1] is not None
    record(task, task_updates(task.name, retval, kwargs or {}, duration, time.time(), page_fetched))
    log_event(task.name, args, retval, duration)


@task_failure.connect
def on_failure(sender: Any, task_id: str, args: Any = None, **_: Any) -> None:
    STARTED.pop(task_id, None)
    batch = args[0] if args and isinstance(args[0], list) else None
    record(sender, failure_updates(sender.name, len(batch) if batch is not None else 1))


@task_retry.connect
def on_retry(sender: Any, **_: Any) -> None:
    record(sender, [Count("newswire_task_retries", labels_of(task=sender.name))])


def task_updates(
    name: str, result: dict[str, Any], kwargs: dict[str, Any], duration: float, now: float, page: bool
) -> list[Update]:
    """What one finished task adds to the metrics (pure)."""
    if name == POLL:
        return poll_updates(result, duration)
    if name in FETCHES:
        pages = result.get("pages", [result])  # a batch task's result lists its items
        return [u for p in pages for u in fetch_updates(p, duration / max(1, len(pages)))]
    if name in EXTRACTS:
        articles = result.get("articles", [result])
        share = duration / max(1, len(articles))
        first_seen = kwargs.get("first_seen")
        updates = [
            u
            for a in articles
            for u in article_updates(a, share, now, a.get("first_seen") or first_seen, a.get("page", page))
        ]
        dead = int(result.get("dead_lettered", 0))  # items of the batch given up on alone
        return updates + (failure_updates(name, dead) if dead else [])
    return []


def poll_updates(result: dict[str, Any], duration: float) -> list[Update]:
    outcome = str(result.get("outcome"))
    updates: list[Update] = [Count("newswire_feed_polls", labels_of(outcome=outcome))]
    if outcome != "deferred":  # a deferred poll sent no request
        updates.append(Observe("newswire_fetch_seconds", duration, labels_of(kind="feed")))
    return updates


def fetch_updates(result: dict[str, Any], duration: float) -> list[Update]:
    outcome = str(result.get("outcome"))
    updates: list[Update] = [Count("newswire_page_fetches", labels_of(outcome=outcome))]
    if outcome not in {"known", "deferred"}:  # published already, or the host was busy: no request
        updates.append(Observe("newswire_fetch_seconds", duration, labels_of(kind="page")))
    return updates


def article_updates(
    result: dict[str, Any], duration: float, now: float, first_seen: object, page: bool
) -> list[Update]:
    status = str(result.get("outcome"))
    updates: list[Update] = [
        Count("newswire_articles", labels_of(outcome=status)),
        Observe("newswire_extract_seconds", duration),
    ]
    if page and status != "already":  # a redelivery was counted the first time
        updates.append(Count("newswire_extractions", labels_of(method=result.get("extraction"))))
    if status != "published":
        return updates
    updates += [Count("newswire_topic_published", labels_of(topic=t)) for t in result.get("topics", ())]
    return updates + latency_updates(now, first_seen, result.get("published_at"))


def latency_updates(now: float, first_seen: object, published_at: object) -> list[Update]:
    updates: list[Update] = []
    if isinstance(first_seen, int | float) and now >= first_seen:
        updates.append(Observe("newswire_end_to_end_seconds", now - first_seen))
    stamp = parse_time(published_at)
    if stamp is not None and now >= stamp:
        updates.append(Observe("newswire_publication_delay_seconds", now - stamp))
    return updates


def failure_updates(name: str, items: int = 1) -> list[Update]:
    """A task given up on: `items` dead letters (the items of a batch)."""
    updates: list[Update] = [Count("newswire_dead_letters", labels_of(task=name), items)]
    if name == POLL:
        updates.append(Count("newswire_feed_polls", labels_of(outcome="dead_lettered")))
    elif name in FETCHES + EXTRACTS:
        updates.append(Count("newswire_articles", labels_of(outcome="dead_lettered"), items))
    return updates


def parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def record(task: Any, updates: list[Update]) -> None:
    ctx = task.app.conf.get("newswire_context") if updates else None
    if ctx is None:
        return
    try:
        RedisMetrics(ctx.redis, ctx.settings.prefix).record(updates)
    except redis.RedisError as exc:
        log.warning("metrics not recorded for %s: %s", task.name, exc)


def log_event(name: str, args: Any, result: dict[str, Any], duration: float) -> None:
    fields = {
        **item_fields(name, args),
        "stage": STAGE.get(name, name),
        "outcome": result.get("outcome"),
        "duration_ms": round(duration * 1000, 1),
    }
    if name == POLL:
        log.info("poll done: %s %s, %s new", fields["outcome"], fields.get("feed_url"),
                 result.get("new_entries", 0), extra=fields)  # fmt: skip
    elif name in FETCHES:
        for page in result.get("pages", ()):
            one = {**fields, "outcome": page.get("outcome"), "url": page.get("link") or ""}
            log.info("page %s: %s", one["outcome"], one["url"], extra=one)
    elif name in EXTRACTS:
        for article in result.get("articles", ()):
            one = {
                **fields, "outcome": article.get("outcome"), "url": article.get("url") or "",
                "feed_url": article.get("feed_url") or "", "article_id": article.get("article_id"),
                "story_id": article.get("story_id"),
            }  # fmt: skip
            log.info("article %s: %s", one["outcome"], one["url"], extra=one)


def item_fields(name: str, args: Any) -> dict[str, str]:
    """feed_url (and the article url) of a task's item, for log lines; {} for odd arguments."""
    first = args[0] if args else None
    if isinstance(first, list) and first and isinstance(first[0], dict):  # a batch: its first item
        first = first[0].get("entry", first[0])
    if name == POLL and isinstance(first, str):
        return {"feed_url": first}
    if isinstance(first, dict):
        return {"feed_url": str(first.get("feed_url") or ""), "url": str(first.get("link") or "")}
    return {}


def article_result(status: str, doc: Document) -> dict[str, Any]:
    """What the extraction task returns per article: read by the handlers above, never stored."""
    return {
        "outcome": status,
        "url": doc.url,
        "feed_url": doc.feed_url,
        "article_id": doc.id,
        "story_id": doc.story_id,
        "extraction": doc.extraction,
        "topics": [t.slug for t in doc.topics],
        "published_at": doc.published_at,
    }


def fetches_argsrepr(entries: list[dict[str, Any]]) -> str:
    """How Flower shows a page-fetch task: the article URLs, not the whole entries."""
    return repr(([e.get("link") for e in entries],))


def extractions_argsrepr(pages: list[dict[str, Any]]) -> str:
    """How Flower shows an extraction task: each URL and its error, if any (never HTML)."""
    return repr(([(p["entry"].get("link"), p.get("error")) for p in pages],))
