"""Flower under `newswire up`, seen in a real browser: every task has its name and arguments.

`newswire up` serves the bundled demo site's feeds to the service (on loopback), waits until its
articles are published, then headless Chromium opens Flower's task list. A task whose worker sent
no `task-received` event (events switched on after it arrived) shows as a `null` row without
arguments: there must be none. `FLOWER_SCREENSHOT=path.png` keeps the screenshot (docs/img/).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from config.settings import Settings, load_settings
from ingest.feeds.feedsfile import load_feeds_file
from ingest.feeds.poll import register_feeds
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import RedisSchedule
from newswire import redisd
from newswire.demo import SITE_ROOT
from newswire.demo.server import SiteServer
from newswire.redisd import free_port
from tests.conftest import NEWSWIRE, ROOT
from workers.app import create_app, queue_name

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
DEMO_ARTICLES = 14  # the demo site's distinct articles (`newswire demo` prints the same)
TASK_NAMES = {"ingest.tick", "ingest.poll_feed", "ingest.fetch_articles", "ingest.extract_articles"}


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    """`newswire up` on the demo site, until its articles are published: (Flower URL, Redis)."""
    with SiteServer(SITE_ROOT) as site:
        feeds = tmp_path / "feeds.toml"
        feeds.write_text((SITE_ROOT / "feeds.toml").read_text().replace("{{BASE}}", site.base_url))
        flower_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
        env.update(
            NEWSWIRE_FEEDS=str(feeds), NEWSWIRE_DATA_DIR=str(tmp_path / "var"),
            NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8", NEWSWIRE_FLOWER_PORT=str(flower_port),
            NEWSWIRE_METRICS_PORT="0", NEWSWIRE_HTTP_PORT="0", PYTHONPATH=str(ROOT),
        )  # fmt: skip
        server = redisd.start(tmp_path / "var" / "redis")  # `up` finds and uses it, as a restart would
        client = redis.Redis.from_url(server.url)
        queue_polls(load_settings({**env, "NEWSWIRE_REDIS_URL": server.url}), feeds)
        log = (tmp_path / "up.log").open("wb")
        proc = subprocess.Popen([*NEWSWIRE, "up"], env=env, cwd=ROOT, stdout=log, stderr=log)
        try:
            published = lambda: client.exists("newswire:articles") and client.xlen("newswire:articles")  # noqa: E731
            wait_for(lambda: (published() or 0) >= DEMO_ARTICLES, 240, "the demo's articles")
            yield f"http://127.0.0.1:{flower_port}", client
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
            log.close()
            server.stop()


def queue_polls(settings: Settings, feeds: Path) -> None:
    """Work waiting in the queue when the service starts (as after a restart): the workers take it
    at once, before the first tick."""
    client = redis.Redis.from_url(settings.redis_url or "")
    registered = load_feeds_file(feeds)
    prefix = settings.prefix
    register_feeds(registered, RedisFeedRegistry(client, prefix), RedisSchedule(client, prefix))
    app = create_app(settings)
    for feed in registered:
        app.send_task("ingest.poll_feed", args=[feed.url], queue=queue_name(settings.prefix, "feeds"))


def flower_tasks(flower: str) -> dict[str, dict[str, object]]:
    try:
        reply = httpx.get(f"{flower}/api/tasks", params={"limit": 1000}, timeout=10)
    except httpx.HTTPError:
        return {}
    return dict(reply.json()) if reply.status_code == 200 else {}


def test_flower_lists_every_task_with_its_name_and_args(
    service: tuple[str, redis.Redis], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a dev dependency, for this test

    assert CHROMIUM.exists(), "needs Debian's Chromium: apt-get install -y chromium"
    flower, _client = service
    done = lambda: sum(t.get("state") == "SUCCESS" for t in flower_tasks(flower).values())  # noqa: E731
    wait_for(lambda: done() >= 8, 60, "Flower to list the finished tasks")
    shot = tmp_path / "flower.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{flower}/tasks", wait_until="networkidle")
        page.wait_for_selector("#tasks-table tbody tr td a", timeout=30_000)
        page.evaluate("$('#tasks-table').DataTable().page.len(100).draw()")  # every task on one page
        page.wait_for_load_state("networkidle")
        rows = page.eval_on_selector_all(
            "#tasks-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
        )
        headers = page.eval_on_selector_all("#tasks-table thead th", "hs => hs.map(h => h.innerText.trim())")
        pipeline = " OR ".join(f"name:{n}" for n in sorted(TASK_NAMES - {"ingest.tick"}))
        page.evaluate(f"$('#tasks-table').DataTable().search({pipeline!r}).draw()")  # the ticks aside
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    if os.environ.get("FLOWER_SCREENSHOT"):
        shutil.copy(shot, os.environ["FLOWER_SCREENSHOT"])
    column = {h.lower(): i for i, h in enumerate(headers)}
    names = [row[column["name"]] for row in rows]
    assert len(rows) >= 8, rows  # ticks, three polls, fetches and extractions at least
    assert "null" not in names, rows
    assert "" not in names, rows
    assert set(names) <= TASK_NAMES, names
    polls = [row for row in rows if row[column["name"]] == "ingest.poll_feed"]
    assert len(polls) >= 3
    assert all("http://127.0.0.1" in row[column["args"]] for row in polls), polls  # the feed URL
    extracts = [row for row in rows if row[column["name"]] == "ingest.extract_articles"]
    assert extracts
    assert all(row[column["args"]] not in ("", "null") for row in extracts), extracts
