"""Poison pages: one that makes extraction overrun its time limit, one that keeps killing its worker.

A page over the extraction time limit is published with the feed's own content (counted as
`extract:timeout`). A task whose pool process dies each time it runs it (here: SIGKILL sent to
exactly the process running that page, as the OOM killer would) is run NEWSWIRE_MAX_DELIVERIES
times and then dead-lettered, instead of being redelivered forever; the rest of the sweep is
published as usual.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest import keys
from ingest.keys import deadletter_stream
from ingest.ops.progress import RedisStats
from newswire import redisd
from newswire.demo.server import SiteServer
from tests.faults.conftest import fault_env
from tests.faults.harness import (
    Workers,
    delivery_figures,
    record_figures,
    resilient_client,
    settings_for,
    start_sweep,
    stream_docs,
    wait_sweep,
)
from tests.faults.sites import SYLLABLES, write_feeds_toml, write_news_site
from workers.delivery import RedisDeliveryCounter, counter_ttl, limit_message

MAX_DELIVERIES = 3


def write_heavy_page(root: Path, name: str, megabytes: float) -> str:
    """A real-looking article page big enough to keep trafilatura busy for seconds."""
    rng = random.Random(name)
    words = ["".join(rng.choice(SYLLABLES) for _ in range(3)) for _ in range(4000)]
    paragraphs, size = [], 0
    while size < megabytes * 1_000_000:
        text = " ".join(rng.choice(words) for _ in range(50))
        paragraphs.append(f"<p>{text}.</p>")
        size += len(text) + 8
    html = f"<html><head><title>{name}</title></head><body><article><h1>{name}</h1>{''.join(paragraphs)}"
    (root / "desk0" / f"{name}.html").write_text(html + "</article></body></html>")
    return f"/desk0/{name}.html"


def add_item(root: Path, path: str, title: str) -> None:
    """Put one more item, linking to `path`, at the top of desk0's feed."""
    feed = root / "desk0" / "rss.xml"
    item = (
        f"<item><title>{title}</title><link>{{{{BASE}}}}{path}</link>"
        f"<guid isPermaLink='false'>{path}</guid>"
        f"<description>{title}: the feed's own summary.</description></item>"
    )
    feed.write_text(feed.read_text().replace("<link>{{BASE}}/</link>", "<link>{{BASE}}/</link>\n" + item, 1))


def sweep_site(tmp_path: Path, heavy: str, megabytes: float) -> tuple[Path, list[Any], str]:
    root = tmp_path / "site"
    specs = write_news_site(root, feeds=2, per_feed=4, seed=5)
    path = write_heavy_page(root, heavy, megabytes)
    add_item(root, path, heavy.replace("-", " ").title())
    return root, specs, path


@pytest.mark.slow
def test_a_page_over_the_extraction_time_limit_is_published_from_the_feed(
    durable_redis: redisd.EmbeddedRedis, make_workers: Any, prefix: str, tmp_path: Path
) -> None:
    root, specs, path = sweep_site(tmp_path, "endless-report", megabytes=4.5)
    with SiteServer(root) as site:
        feeds = write_feeds_toml(tmp_path / "feeds.toml", sorted({site.url(s.feed) for s in specs}))
        env = fault_env(durable_redis.url, prefix, tmp_path, feeds, extract_time_limit="0.5")
        workers: Workers = make_workers(env)
        workers.start()
        started = time.monotonic()
        summary = wait_sweep(start_sweep(settings_for(env)), 120)
        client = resilient_client(durable_redis.url)
        docs = {d["url"]: d for d in stream_docs(client, f"{prefix}:articles")}
        figures = delivery_figures(client, prefix, [d["id"] for d in docs.values()])
        timeouts = RedisStats(client, prefix).all().get("extract:timeout", 0)
        record_figures(
            "4a extraction over its limit", **figures, articles=len(specs) + 1, extract_timeouts=timeouts,
            elapsed_s=round(time.monotonic() - started, 1),
        )  # fmt: skip
        assert summary["complete"], summary
        assert len(docs) == len(specs) + 1, figures
        assert figures["duplicated"] == 0, figures
        heavy = docs[site.base_url + path]
        assert heavy["extraction"] == "feed"  # published, from the feed's own content
        assert "the feed's own summary" in heavy["text"]
        assert timeouts >= 1
        assert "extraction over its time limit" in workers.extract.log_text()
        assert figures["deadletter"] == 0


def crash_task(workers: Workers, url: str) -> tuple[int, str] | None:
    """The pool process running the extraction of `url` right now, and the task's id, if any."""
    node = workers.extract.node
    # limit=1: back as soon as the one worker answers (else each look waits the whole timeout)
    replies = workers.app.control.inspect(destination=[node], timeout=0.5, limit=1).active() or {}
    for task in replies.get(node, []):
        if task.get("name") == "ingest.extract_articles" and url in str(task.get("args")):
            return int(task["worker_pid"]), str(task["id"])
    return None


@pytest.mark.slow
def test_a_page_that_keeps_killing_its_worker_is_dead_lettered_after_max_deliveries(
    durable_redis: redisd.EmbeddedRedis, make_workers: Any, prefix: str, tmp_path: Path
) -> None:
    root, specs, path = sweep_site(tmp_path, "worker-killer", megabytes=4.0)
    with SiteServer(root) as site:
        url = site.base_url + path
        feeds = write_feeds_toml(tmp_path / "feeds.toml", sorted({site.url(s.feed) for s in specs}))
        env = fault_env(durable_redis.url, prefix, tmp_path, feeds, max_deliveries=str(MAX_DELIVERIES))
        workers: Workers = make_workers(env)
        workers.start()
        client = resilient_client(durable_redis.url)
        tracker = start_sweep(settings_for(env))
        kills = kill_whenever_running(workers, url, client, prefix)
        summary = wait_sweep(tracker, 120)

        dead = stream_docs(client, deadletter_stream(prefix))
        figures = delivery_figures(client, prefix, [s.doc_id(site) for s in specs])
        record_figures("4b page that kills its worker", **figures, kills=kills, max_deliveries=MAX_DELIVERIES)
        # a batch that keeps dying goes on as batches of one: its other pages are published, and
        # only the page that kills its worker is dead-lettered, after its own max_deliveries
        # (max_deliveries kills, twice that when the page first ran in a batch of several)
        assert kills >= MAX_DELIVERIES, kills
        assert figures["unexpected"] == 0, figures  # the page itself never got published
        assert len(dead) == 1, dead
        [[page]] = dead[0]["args"]
        assert (dead[0]["task"], page["entry"]["link"]) == ("ingest.extract_articles", url)
        assert dead[0]["reason"] == f"DeliveryLimitError: {limit_message(MAX_DELIVERIES + 1, MAX_DELIVERIES)}"
        assert summary["complete"], summary
        assert summary["article_outcomes"].get("error_dead_lettered") == 1, summary
        assert (figures["found"], figures["lost"], figures["duplicated"]) == (len(specs), 0, 0), figures
        assert workers.extract.alive()


def kill_whenever_running(workers: Workers, url: str, client: redis.Redis, prefix: str) -> int:
    """SIGKILL the pool process running `url`'s extraction each time it runs, until it is dead-lettered.

    As a page that kills its worker would: once the delivery has started (its count is up), and
    not on a delivery that is past the limit (that one does not run the page: it dead-letters it)."""
    killed: set[int] = set()
    counted: dict[str, int] = {}
    deadline = time.monotonic() + 240
    while not client.xlen(deadletter_stream(prefix)) and time.monotonic() < deadline:
        found = crash_task(workers, url)
        count = int(client.get(keys.deliveries(prefix, found[1])) or 0) if found else 0
        if found and found[0] not in killed and counted.get(found[1], 0) < count <= MAX_DELIVERIES:
            with contextlib.suppress(ProcessLookupError):  # (a dead child may still be listed)
                os.kill(found[0], signal.SIGKILL)
                killed.add(found[0])
                counted[found[1]] = count
        time.sleep(0.05)
    return len(killed)


def test_the_delivery_counter_counts_only_deliveries_that_never_finished(
    redis_client: redis.Redis, prefix: str
) -> None:
    counter = RedisDeliveryCounter(redis_client, prefix, counter_ttl(3600, 3))
    assert [counter.start("t1") for _ in range(3)] == [1, 2, 3]  # three deliveries, none finished
    counter.finish("t1")
    assert counter.start("t1") == 1  # a delivery that ended normally resets it
    assert 86400 <= redis_client.ttl(counter.key("t1")) <= counter_ttl(3600, 3)
    assert counter_ttl(86400, 3) == 4 * 86400  # each redelivery may take a visibility timeout
    assert "died during the previous 3" in limit_message(4, 3)
