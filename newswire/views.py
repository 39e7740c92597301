"""What the CLI shows: feed health, topics, status. Reads Redis, prints with rich or JSON."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import orjson
import redis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from config.settings import Settings, mask_url
from ingest.feeds.registry import RedisFeedRegistry
from ingest.models import Feed
from ingest.tag.topics import Topic, TopicError, TopicSet, load_topics
from newswire.health import FeedRow, Snapshot, evaluate, feed_health
from newswire.tables import Column, emit_lines, is_terminal, print_table
from newswire.verdict import Signals, service_checks

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
        row["kind"] = state.get("sm_kind") or feed.kind or "feed"
        row["websub"] = websub_text(state)
        row["profile"] = profile_summary(feed)
        rows.append(row)
    return rows


def websub_text(state: dict[str, str]) -> str:
    """`live until 2026-…`, `pending`, `denied`…, or "" for a feed without a subscription."""
    status = state.get("websub", "")
    until = state.get("websub_until", "")
    return f"{status} until {until}" if status == "live" and until else status


def profile_summary(feed: Feed) -> dict[str, Any]:
    """The feed's fetch profile and extract rules, cookie values and proxy passwords masked."""
    shown: dict[str, Any] = feed.fetch.masked()
    if feed.extract.selector:
        shown["extract.selector"] = feed.extract.selector
    if feed.extract.remove:
        shown["extract.remove"] = list(feed.extract.remove)
    return shown


FEED_COLUMNS = (
    Column("health"), Column("name", "feed", width=30), Column("url"), Column("kind"),
    Column("last_status", "last"), Column("last_success", "last success"),
    Column("consecutive_errors", "errors"), Column("next_poll", "next poll"),
    Column("interval_s", "interval"), Column("items_per_day", "items/day"),
    Column("websub", "push"), Column("last_error", "last error", width=60),
)  # fmt: skip


def print_feeds(rows: list[dict[str, Any]], *, as_json: bool, terminal: bool | None = None) -> None:
    """One JSON object per feed, or the table (every value in full when stdout is not a terminal)."""
    if as_json:
        emit_lines(orjson.dumps(row).decode() for row in rows)
        return
    on_terminal = is_terminal() if terminal is None else terminal
    print_table(
        FEED_COLUMNS, [feed_cells(r, on_terminal) for r in rows], console=console, terminal=on_terminal
    )


def feed_cells(row: dict[str, Any], for_people: bool) -> list[object]:
    shown = dict(row)
    if for_people:  # readable forms; a pipe gets the raw values, as --json has them
        shown["consecutive_errors"] = row["consecutive_errors"] or "0"
        shown["interval_s"] = format_interval(row["interval_s"])
    return [shown.get(c.header, "") for c in FEED_COLUMNS]


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


TOPIC_COLUMNS = (Column("slug"), Column("name"), Column("description"))


def print_topics(topics: TopicSet, *, as_json: bool = False) -> None:
    if as_json:
        emit_lines(orjson.dumps(topic_row(topic)).decode() for topic in topics.topics)
        return
    rows = [(t.slug, t.name, t.description) for t in topics.topics]
    print_table(TOPIC_COLUMNS, rows, console=console)


def topic_row(topic: Topic) -> dict[str, Any]:
    return {
        "slug": topic.slug, "name": topic.name, "description": topic.description, "query": topic.query,
        "exclude": topic.exclude, "min_score": topic.min_score,
    }  # fmt: skip


def print_explanation(report: dict[str, Any]) -> None:
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str).decode())


def status_report(
    settings: Settings, snapshot: Snapshot, max_overdue_s: float, signals: Signals | None = None
) -> dict[str, Any]:
    """`newswire status --json`: the snapshot, the verdict (health's checks and the service's) and
    the service counters."""
    checks = evaluate(snapshot, max_overdue_s)
    if signals is not None:
        checks += service_checks(snapshot, signals)
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
        "websub": feeds.websub,
        "max_lateness_s": round(feeds.max_lateness_s, 1),
        "top_failing": [failing_row(row) for row in feeds.top_failing],
    }


def failing_row(row: FeedRow) -> dict[str, Any]:
    return {
        "url": row.url, "name": row.name, "health": row.health, "errors": row.errors,
        "last_status": row.last_status, "error": row.last_error, "last_success": row.last_success,
    }  # fmt: skip


def print_status(
    report: dict[str, Any], *, as_json: bool, out: Console | None = None, terminal: bool | None = None
) -> None:
    """One JSON object; or, read top to bottom in ten seconds, the verdict with one reason per
    problem, one line per part, then the detail tables (tab-separated when not on a terminal)."""
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return
    on_terminal = (out is not None or is_terminal()) if terminal is None else terminal
    out = out or console
    if on_terminal:
        out.print(headline(report))
        out.print(summary_grid(report))
    else:
        for line in headline(report).plain.splitlines():
            click.echo(line)
        print_table(SUMMARY_COLUMNS, summary_rows(report, plain=True), title="summary", terminal=False)
    for columns, rows, title in detail_tables(report):
        print_table(columns, rows, title=title, console=out, terminal=on_terminal)


def headline(report: dict[str, Any]) -> Text:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    line = Text(f"newswire · prefix {report['prefix']} · redis {report['redis']} · {stamp}\n", style="bold")
    if report["ok"]:
        return line.append("✔ HEALTHY", style="bold green")
    line.append(f"✘ {len(report['problems'])} PROBLEM(S):", style="bold red")
    for problem in report["problems"]:
        line.append(f"\n  ✘ {problem}", style="red")
    return line


SUMMARY_COLUMNS = (Column("part"), Column("ok"), Column("detail"))


def summary_rows(report: dict[str, Any], *, plain: bool = False) -> list[tuple[str, Any, str]]:
    checks = report["checks"]
    rows = [
        ("workers", mark(checks.get("workers")), workers_line(report)),
        ("queues", mark(checks.get("broker"), checks.get("backlog")), queues_line(report)),
        ("feeds", mark(checks.get("schedule"), checks.get("feeds")), feeds_line(report["feeds"])),
        ("streams", mark(checks.get("retention")), streams_line(report)),
    ]
    if restarts_line(report):
        rows.append(("restarts", Text(""), restarts_line(report)))
    if plain:
        return [(part, ok.plain, Text.from_markup(detail).plain) for part, ok, detail in rows]
    return rows


def restarts_line(report: dict[str, Any]) -> str:
    """Processes `newswire up` restarted after they died (`restart:{child}` counters), "" if none."""
    counts = {k.split(":", 1)[1]: v for k, v in report["counters"].items() if k.startswith("restart:")}
    return " · ".join(f"{name} {n:,}" for name, n in sorted(counts.items()))


def summary_grid(report: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_column()
    for row in summary_rows(report):
        grid.add_row(*row)
    return grid


def mark(*checks: dict[str, Any] | None) -> Text:
    known = [c for c in checks if c is not None]
    if not known:
        return Text("")
    return Text("✔", style="green") if all(c["ok"] for c in known) else Text("✘", style="bold red")


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
    push = (
        " · WebSub " + ", ".join(f"{n} {k}" for k, n in feeds["websub"].items())
        if feeds.get("websub")
        else ""
    )
    return f"{feeds['registered']:,} registered: {' · '.join(counts) or 'none'} · {overdue}{push}"


def streams_line(report: dict[str, Any]) -> str:
    streams = report["streams"]
    main = [f"{short_stream(n)} {i['length']:,}" for n, i in streams.items() if ":topic:" not in n]
    topics = sum(1 for n in streams if ":topic:" in n)
    lagging = sum(1 for i in streams.values() for g in i["groups"].values() if g.get("lag"))
    tail = f" · {lagging} group(s) lagging" if lagging else ""
    return " · ".join(main) + f" · {topics} topic streams{tail}"


STREAM_COLUMNS = (Column("stream"), Column("length"), Column("group"), Column("pending"), Column("lag"))
FAILING_COLUMNS = (
    Column("feed", width=30), Column("url"), Column("errors"), Column("last_status", "last"),
    Column("last_success", "last success"), Column("error", "last error", width=70),
)  # fmt: skip


def detail_tables(report: dict[str, Any]) -> list[tuple[tuple[Column, ...], list[list[Any]], str]]:
    tables = []
    streams = stream_rows(report)
    if streams:
        tables.append((STREAM_COLUMNS, streams, "streams and consumer groups"))
    failing = report["feeds"].get("top_failing")
    if failing:
        tables.append((FAILING_COLUMNS, [failing_cells(row) for row in failing], "top failing feeds"))
    return tables


def stream_rows(report: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, info in report["streams"].items():
        groups = info["groups"] or ({} if ":topic:" in name else {"-": {}})
        for group, lag in groups.items():
            rows.append(
                [
                    short_stream(name),
                    f"{info['length']:,}",
                    group,
                    num(lag.get("pending")),
                    num(lag.get("lag")),
                ]
            )
    return rows


def failing_cells(row: dict[str, Any]) -> list[Any]:
    return [row["name"] or row["url"], row["url"], row["errors"], row["last_status"],
            row["last_success"] or "never", row["error"] or ""]  # fmt: skip


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
