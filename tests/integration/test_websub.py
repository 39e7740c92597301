"""WebSub end to end under `newswire up`: a feed that advertises a hub is subscribed from the beat tick,
the hub verifies intent through the HTTP service, a signed push reaches `:articles` down the poll's
path, forged pushes are refused, the state shows in `feeds list` and `status`, and removing the
feed from the feeds file unsubscribes it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis

from newswire.demo.server import SiteServer
from newswire.redisd import EmbeddedRedis, free_port
from tests.conftest import NEWSWIRE, ROOT, run_cli
from tests.sitemap_site import write_pages
from tests.websub_hub import Forger, Hub

pytestmark = pytest.mark.slow


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def feed_xml(site: SiteServer, hub: Hub, paths: list[str]) -> bytes:
    items = "".join(
        f"<item><title>T {p}</title><link>{site.base_url}{p}</link><guid>{p}</guid></item>" for p in paths
    )
    links = f'<atom:link rel="hub" href="{hub.url}"/><atom:link rel="self" href="{site.url("/rss.xml")}"/>'
    return (
        f'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        f"<channel><title>Pushed Desk</title>{links}{items}</channel></rss>"
    ).encode()


@pytest.fixture
def up(
    redis_server: EmbeddedRedis, prefix: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], SiteServer, Hub, list[str]]]:
    pages = [f"/desk/story-{n}.html" for n in range(4)]
    write_pages(tmp_path / "site", "desk", 4, seed=41)
    http_port = free_port()
    with SiteServer(tmp_path / "site") as site, Hub() as hub:
        site.set_route(
            "/rss.xml", body=feed_xml(site, hub, pages[:2]), headers={"Content-Type": "application/rss+xml"}
        )
        feeds = tmp_path / "feeds.toml"
        feeds.write_text(f'[[feed]]\nurl = "{site.url("/rss.xml")}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
        env.update(
            NEWSWIRE_REDIS_URL=redis_server.url, NEWSWIRE_STREAM_PREFIX=prefix, NEWSWIRE_FEEDS=str(feeds),
            NEWSWIRE_DATA_DIR=str(tmp_path / "var"), NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8",
            NEWSWIRE_HTTP_PORT=str(http_port), NEWSWIRE_PUBLIC_URL=f"http://127.0.0.1:{http_port}",
            NEWSWIRE_METRICS_PORT="0", NEWSWIRE_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
        )  # fmt: skip
        proc = subprocess.Popen(
            [*NEWSWIRE, "up", "--no-flower"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
        )
        try:
            yield env, site, hub, pages
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)


def test_a_pushed_article_is_published_and_forgeries_are_not(
    up: tuple[dict[str, str], SiteServer, Hub, list[str]], redis_client: redis.Redis, prefix: str
) -> None:
    env, site, hub, pages = up
    topic = site.url("/rss.xml")
    articles = f"{prefix}:articles"
    sub = hub.wait_active(topic, timeout=90)  # polled, hub noted, subscribed from the tick, verified
    assert sub.callback.startswith(env["NEWSWIRE_PUBLIC_URL"] + "/websub/")
    wait_for(lambda: redis_client.xlen(articles) == 2, 60, "the polled articles")

    forger = Forger(sub.callback)
    refused = [forger.unsigned(b"<rss/>"), *forger.wrongly_signed(b"<rss/>")]
    refused += [forger.oversized(sub.secret, 6 << 20), forger.unknown_subscription(b"<rss/>")]
    assert refused == [403, 403, 403, 403, 403, 413, 404]

    pushed = feed_xml(site, hub, pages[:3])  # one new entry
    site.set_route("/rss.xml", body=pushed, headers={"Content-Type": "application/rss+xml"})
    assert [d.status for d in hub.publish(topic, pushed)] == [202]
    wait_for(lambda: redis_client.xlen(articles) == 3, 30, "the pushed article")
    urls = [orjson.loads(f[b"data"])["url"] for _, f in redis_client.xrange(articles)]
    assert urls[-1] == site.base_url + pages[2]
    assert [d.status for d in hub.publish(topic, pushed)] == [202]  # the same push again: nothing new
    time.sleep(3)
    assert redis_client.xlen(articles) == 3

    stats = {k.decode(): int(v) for k, v in redis_client.hgetall(f"{prefix}:stats").items()}
    assert stats["websub:accepted"] == 2  # the forgeries: 0 accepted
    assert sum(n for k, n in stats.items() if k.startswith("websub:refused_")) == 7
    listed = orjson.loads(run_cli(["feeds", "list", "--json"], env).stdout.splitlines()[0])
    assert listed["websub"].startswith("live until ")
    status = orjson.loads(run_cli(["status", "--json"], env).stdout)
    assert status["feeds"]["websub"] == {"live": 1}

    Path(env["NEWSWIRE_FEEDS"]).write_text("")  # removing the feed unsubscribes it
    wait_for(lambda: any(r["hub.mode"] == "unsubscribe" for r in hub.log.requests), 30, "the unsubscription")
    wait_for(lambda: hub.active(topic) == [], 30, "the hub to drop the subscription")
    assert [d.status for d in hub.publish(topic, pushed)] == []
    assert redis_client.hlen(f"{prefix}:websub:feeds") == 0
