"""What the CLI shows: feed health, topics, status. Reads Redis, prints with rich or JSON."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import orjson
import redis
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from config.settings import Settings, mask_url
from ingest.feeds.registry import RedisFeedRegistry
from ingest.models import Feed
from ingest.tag.topics import TopicError, TopicSet, load_topics
from newswire.health import FeedRow, Snapshot, evaluate, feed_health

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
    states = RedisFeedRegistry(client, prefix).states([f.url for f in feeds])
    rows = []
    for feed, state in zip(feeds, states, strict=True):
        row: dict[str, Any] = {"url": feed.url, "name": feed.name or state.get("title") or ""}
        row.update({k: state.get(k, "") for k in FEED_FIELDS})
        row["health"] = feed_health(feed, state)
        row["last_error"] = state.get("disabled_reason") or state.get("last_error", "")
        rows.append(row)
    return rows


def print_feeds(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    table = Table(
        "health", "feed", "last", "last success", "errors", "next poll", "interval", "items/day", "last error"
    )
    for r in rows:
        table.add_row(
            r["health"], r["name"] or r["url"], r["last_status"], r["last_success"],
            r["consecutive_errors"] or "0", r["next_poll"], format_interval(r["interval_s"]),
            r["items_per_day"], (r["last_error"] or "")[:60],
        )  # fmt: skip
    console.print(table)


def format_interval(seconds: str) -> str:
    """`900` -> `15m`, `7200` -> `2h`: the poll interval as a person reads it."""
    if not seconds.isdigit():
        return seconds
    value = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value}s"


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


def status_report(settings: Settings, snapshot: Snapshot, max_overdue_s: float) -> dict[str, Any]:
    """`newswire status --json`: the snapshot, the health verdict and the service counters."""
    checks = evaluate(snapshot, max_overdue_s)
    report: dict[str, Any] = {
        "ok": all(c.ok for c in checks),
        "problems": [f"{c.name}: {c.detail}" for c in checks if not c.ok],
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
        "prefix": settings.prefix,
        "redis": mask_url(snapshot.redis_url),
        "broker": mask_url(settings.broker_url or snapshot.redis_url),
        "workers": sorted(snapshot.workers or {}),
        "worker_queues": snapshot.workers or {},
        "queues": snapshot.queues,
        "queue_consumers": {q: snapshot.consumers(q) for q in snapshot.queues},
        "streams": snapshot.streams,
        "feeds": feeds_report(snapshot),
        "counters": snapshot.counters,
    }
    return report


def feeds_report(snapshot: Snapshot) -> dict[str, Any]:
    feeds = snapshot.feeds
    if feeds is None:
        return {}
    return {
        **feeds.counts,
        **snapshot.schedule,
        "overdue": feeds.overdue,
        "max_lateness_s": round(feeds.max_lateness_s, 1),
        "top_failing": [failing_row(row) for row in feeds.top_failing],
    }


def failing_row(row: FeedRow) -> dict[str, Any]:
    return {
        "url": row.url, "name": row.name, "health": row.health, "errors": row.errors,
        "last_status": row.last_status, "error": row.last_error, "last_success": row.last_success,
    }  # fmt: skip


def print_status(report: dict[str, Any], *, as_json: bool, out: Console | None = None) -> None:
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return
    out = out or console
    for part in status_renderables(report):
        out.print(part)


def status_renderables(report: dict[str, Any]) -> list[Any]:
    """Read top to bottom in ten seconds: verdict, one line per part, then the detail tables."""
    parts: list[Any] = [headline(report), summary_grid(report)]
    streams = streams_table(report)
    if streams.row_count:
        parts.append(streams)
    if report["feeds"].get("top_failing"):
        parts.append(failing_table(report["feeds"]["top_failing"]))
    return parts


def headline(report: dict[str, Any]) -> Text:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    line = Text(f"newswire · prefix {report['prefix']} · redis {report['redis']} · {stamp}\n", style="bold")
    if report["ok"]:
        return line.append("✔ HEALTHY", style="bold green")
    line.append(f"✘ {len(report['problems'])} PROBLEM(S): ", style="bold red")
    return line.append("; ".join(report["problems"]), style="red")


def summary_grid(report: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_column()
    checks = report["checks"]
    grid.add_row("workers", mark(checks.get("workers")), workers_line(report))
    grid.add_row("queues", mark(checks.get("broker")), queues_line(report))
    grid.add_row("feeds", mark(checks.get("schedule")), feeds_line(report["feeds"]))
    grid.add_row("streams", "", streams_line(report))
    if restarts_line(report):
        grid.add_row("restarts", "", restarts_line(report))
    return grid


def restarts_line(report: dict[str, Any]) -> str:
    """Processes `newswire up` restarted after they died (`restart:{child}` counters), "" if none."""
    counts = {k.split(":", 1)[1]: v for k, v in report["counters"].items() if k.startswith("restart:")}
    return " · ".join(f"{name} {n:,}" for name, n in sorted(counts.items()))


def mark(check: dict[str, Any] | None) -> Text:
    if check is None:
        return Text("")
    return Text("✔", style="green") if check["ok"] else Text("✘", style="bold red")


def workers_line(report: dict[str, Any]) -> str:
    workers = report["worker_queues"]
    if not workers:
        return "[red]none answering[/]"
    names = " · ".join(f"{w} ({', '.join(short_queue(q) for q in qs)})" for w, qs in workers.items())
    return f"{len(workers)} answering: {names}"


def queues_line(report: dict[str, Any]) -> str:
    parts = []
    for queue, depth in report["queues"].items():
        idle = "" if report["queue_consumers"].get(queue) else " [red](no worker)[/]"
        parts.append(f"{short_queue(queue)} {'?' if depth is None else f'{depth:,}'}{idle}")
    return " · ".join(parts) or "[red]unknown[/]"


def feeds_line(feeds: dict[str, Any]) -> str:
    if not feeds:
        return "[red]not read[/]"
    counts = [f"{feeds[k]:,} {k}" for k in ("ok", "failing", "disabled", "new", "off") if feeds.get(k)]
    late = f"[red]{feeds['overdue']:,} overdue[/] (worst {age(feeds['max_lateness_s'])} late)"
    overdue = late if feeds["overdue"] else "0 overdue"
    return f"{feeds['registered']:,} registered: {' · '.join(counts) or 'none'} · {overdue}"


def streams_line(report: dict[str, Any]) -> str:
    streams = report["streams"]
    main = [f"{short_stream(n)} {i['length']:,}" for n, i in streams.items() if ":topic:" not in n]
    topics = sum(1 for n in streams if ":topic:" in n)
    lagging = sum(1 for i in streams.values() for g in i["groups"].values() if g.get("lag"))
    tail = f" · {lagging} group(s) lagging" if lagging else ""
    return " · ".join(main) + f" · {topics} topic streams{tail}"


def streams_table(report: dict[str, Any]) -> Table:
    table = Table("stream", "length", "group", "pending", "lag", title="streams and consumer groups",
                  title_justify="left", box=box.SIMPLE_HEAD)  # fmt: skip
    for name, info in report["streams"].items():
        groups = info["groups"] or ({} if ":topic:" in name else {"-": {}})
        for group, lag in groups.items():
            table.add_row(
                short_stream(name), f"{info['length']:,}", group, num(lag.get("pending")), num(lag.get("lag"))
            )
    return table


def failing_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("feed", "errors", "last", "last success", "last error", title="top failing feeds",
                  title_justify="left", box=box.SIMPLE_HEAD)  # fmt: skip
    for row in rows:
        table.add_row(row["name"] or row["url"], str(row["errors"]), row["last_status"],
                      row["last_success"] or "never", (row["error"] or "")[:70], style="red")  # fmt: skip
    return table


def short_queue(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def short_stream(name: str) -> str:
    return name.split(":", 1)[-1]


def num(value: object) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
