"""What the CLI shows: feed health, topics, status. Reads Redis, prints with rich or JSON."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import orjson
import redis
from ingest.tag import TopicError, TopicSet, load_topics
from rich.console import Console
from rich.table import Table

from config.settings import Settings, mask_url
from ingest.models import Feed
from ingest.progress import RedisStats
from ingest.publish import articles_stream, deadletter_stream, duplicates_stream
from ingest.registry import RedisFeedRegistry
from ingest.schedule import RedisSchedule
from workers.app import STAGES, create_app, queue_name

console = Console()
FEED_FIELDS = (
    "last_status",
    "last_success",
    "consecutive_errors",
    "next_poll",
    "interval_s",
    "items_per_day",
)


def feed_rows(client: redis.Redis, prefix: str, feeds: list[Feed]) -> list[dict[str, Any]]:
    registry = RedisFeedRegistry(client, prefix)
    rows = []
    for feed in feeds:
        state = registry.state(feed.url)
        row: dict[str, Any] = {"url": feed.url, "name": feed.name or state.get("title") or ""}
        row.update({k: state.get(k, "") for k in FEED_FIELDS})
        row["health"] = feed_health(feed, state)
        row["last_error"] = state.get("disabled_reason") or state.get("last_error", "")
        rows.append(row)
    return rows


def feed_health(feed: Feed, state: dict[str, str]) -> str:
    if not feed.enabled:
        return "off"
    if state.get("disabled"):
        return "disabled"
    if not state.get("last_status"):
        return "new"
    return "failing" if int(state.get("consecutive_errors") or 0) else "ok"


def print_feeds(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    table = Table("health", "feed", "last", "last success", "errors", "next poll", "items/day", "last error")
    for r in rows:
        table.add_row(
            r["health"], r["name"] or r["url"], r["last_status"], r["last_success"], r["consecutive_errors"],
            r["next_poll"], r["items_per_day"], (r["last_error"] or "")[:60],
        )  # fmt: skip
    console.print(table)


def load_topic_set(path: Path) -> TopicSet:
    try:
        return load_topics(path)
    except (TopicError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


def print_topics(topics: TopicSet) -> None:
    table = Table("slug", "name", "description")
    for topic in topics.topics:
        table.add_row(topic.slug, topic.name, topic.description)
    console.print(table)


def print_explanation(report: dict[str, Any]) -> None:
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str).decode())


def status_report(settings: Settings, client: redis.Redis) -> dict[str, Any]:
    now = time.time()
    return {
        "redis": mask_url(settings.redis_url),
        "broker": mask_url(settings.effective_broker_url),
        "queues": queue_depths(settings, client),
        "streams": stream_lengths(client, settings.prefix),
        "feeds": feed_counts(client, settings.prefix, now),
        "workers": worker_names(settings),
        "counters": RedisStats(client, settings.prefix).all(),
    }


def queue_depths(settings: Settings, client: redis.Redis) -> dict[str, int | None]:
    names = [queue_name(settings.prefix, stage) for stage in STAGES]
    if not settings.effective_broker_url.startswith(("redis", "unix")):
        return dict.fromkeys(names)
    broker = redis.Redis.from_url(settings.effective_broker_url) if settings.broker_url else client
    return {q: int(broker.llen(q)) for q in names}


def stream_lengths(client: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    names = [articles_stream(prefix), duplicates_stream(prefix), deadletter_stream(prefix)]
    names += sorted(k.decode() for k in client.scan_iter(f"{prefix}:topic:*", count=1000))
    streams = {}
    for name in names:
        length = int(client.xlen(name)) if client.exists(name) else 0
        streams[name] = {"length": length, "groups": group_lag(client, name) if length else {}}
    return streams


def group_lag(client: redis.Redis, stream: str) -> dict[str, Any]:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return {}
    return {g["name"].decode(): {"pending": g.get("pending"), "lag": g.get("lag")} for g in groups}


def feed_counts(client: redis.Redis, prefix: str, now: float) -> dict[str, Any]:
    registry = RedisFeedRegistry(client, prefix)
    counts: dict[str, Any] = {"registered": 0, "ok": 0, "failing": 0, "disabled": 0, "new": 0, "off": 0}
    failing = []
    for feed in registry.all():
        state = registry.state(feed.url)
        health = feed_health(feed, state)
        counts["registered"] += 1
        counts[health] += 1
        if health in {"failing", "disabled"}:
            failing.append(
                {"url": feed.url, "errors": state.get("consecutive_errors"), "error": state.get("last_error")}
            )
    counts.update(RedisSchedule(client, prefix).counts(now))
    counts["top_failing"] = sorted(failing, key=lambda f: -int(f["errors"] or 0))[:5]
    return counts


def worker_names(settings: Settings) -> list[str]:
    try:
        replies = create_app(settings).control.ping(timeout=1.0) or []
    except Exception:  # noqa: BLE001 - a status view reports an unreachable broker, it does not crash
        return []
    return sorted(name for reply in replies for name in reply)


def print_status(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return
    console.print(f"[bold]redis[/] {report['redis']}   [bold]broker[/] {report['broker']}")
    console.print(f"[bold]workers[/] {', '.join(report['workers']) or '[red]none answering[/]'}")
    console.print("[bold]queues[/] " + "  ".join(f"{q}={n}" for q, n in report["queues"].items()))
    feeds = report["feeds"]
    console.print("[bold]feeds[/] " + "  ".join(f"{k}={feeds[k]}" for k in feeds if k != "top_failing"))
    for row in feeds["top_failing"]:
        console.print(f"  [red]failing[/] {row['url']} ({row['errors']}x): {row['error']}")
    table = Table("stream", "length", "groups (pending/lag)")
    for name, info in report["streams"].items():
        groups = ", ".join(f"{g}: {v['pending']}/{v['lag']}" for g, v in info["groups"].items())
        table.add_row(name, str(info["length"]), groups)
    console.print(table)
