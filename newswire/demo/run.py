"""`newswire demo`: the bundled sample news site, ingested through the real workers, shown by topic."""

from __future__ import annotations

import ipaddress
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import redis
from rich.console import Console

from config.settings import Settings
from ingest.keys import articles_stream, duplicates_stream, topic_stream
from ingest.tag.topics import load_topics
from newswire import redisd
from newswire.demo.server import SiteServer
from newswire.sweep import run_sweep
from newswire.tables import Column, print_table

SITE = Path(__file__).resolve().parent / "site"
console = Console()


def run_demo(settings: Settings, *, timeout: float) -> int:
    with tempfile.TemporaryDirectory(prefix="newswire-demo-") as tmp, SiteServer(SITE) as site:
        feeds_path = Path(tmp) / "feeds.toml"
        feeds_path.write_text((SITE / "feeds.toml").read_text().replace("{{BASE}}", site.base_url))
        server = redisd.start(Path(tmp) / "redis", persistent=False)
        try:
            demo = demo_settings(settings, server.url, feeds_path, Path(tmp))
            console.print(
                f"[bold]newswire demo[/]: sample news site at {site.base_url}, Redis at {server.url}",
                soft_wrap=True,
            )
            result = run_sweep(demo, timeout=timeout)
            show_stories(redis.Redis.from_url(server.url), demo)
        finally:
            server.stop()
    console.print("[bold]sweep summary[/]")
    print(orjson.dumps(result.summary).decode())
    return 0 if result.complete else 3


def demo_settings(settings: Settings, redis_url: str, feeds_path: Path, data_dir: Path) -> Settings:
    return replace(
        settings, redis_url=redis_url, broker_url=None, feeds_path=feeds_path, prefix="newswire-demo",
        data_dir=data_dir, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        host_concurrency=4, host_spacing=0.1,  # all three sample sites share one loopback host
    )  # fmt: skip


def read_stream(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def show_stories(client: redis.Redis, settings: Settings) -> None:
    articles = read_stream(client, articles_stream(settings.prefix))
    console.print(f"\n[bold]{len(articles)} distinct articles[/] in {articles_stream(settings.prefix)}")
    for topic in load_topics(settings.topics_path).topics:
        docs = read_stream(client, topic_stream(settings.prefix, topic.slug))
        if docs:
            print_stories(f"{topic.slug} ({len(docs)})", docs, topic.slug)
    untagged = [d for d in articles if not d["topics"]]
    print_stories(f"no topic ({len(untagged)})", untagged, None)
    duplicates = read_stream(client, duplicates_stream(settings.prefix))
    for dup in duplicates:
        console.print(
            f"[yellow]duplicate[/] {dup['source']}: {dup['title']!r} -> copy of {dup['duplicate_of']}",
            soft_wrap=True,
        )


STORY_COLUMNS = (Column("source"), Column("title"), Column("score"), Column("evidence"), Column("url"))


def print_stories(title: str, docs: list[dict[str, Any]], slug: str | None) -> None:
    """One table per topic: rich on a terminal, tab-separated lines in a pipe (newswire/tables.py)."""
    rows = []
    for doc in docs:
        match = next((t for t in doc["topics"] if t["slug"] == slug), None)
        evidence = ", ".join(e["term"] for e in match["evidence"][:4]) if match else ""
        score = f"{match['score']:.2f}" if match else ""
        rows.append((doc["source"] or "", doc["title"], score, evidence, doc["url"]))
    print_table(STORY_COLUMNS, rows, title=title, console=console)
