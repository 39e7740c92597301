"""Dedup end to end: real Redis, real Celery workers, three loopback "sites" (tests/fixtures/dedup_site).

One wire story is syndicated on /alpha/, /beta/ and /gamma/ with different headlines, tracking
parameters, an AMP URL and copy-edits; it must be published once with the two other copies in
`duplicates`, while five distinct stories (one a follow-up of the same event, one a bridge story
of another city, one with the same wire boilerplate) are all published. A changed page re-listed
later is an update. Two worker processes racing on two copies publish exactly one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path

import orjson
import pytest
import redis

from config.settings import load_settings
from ingest.models import FeedEntry
from ingest.ops.progress import RedisStats
from newswire.demo.server import SiteServer
from newswire.service import worker_argv
from tests.conftest import ROOT, run_cli, worker_process
from workers.app import create_app, queue_name

pytestmark = pytest.mark.slow

DEDUP_SITE = ROOT / "tests" / "fixtures" / "dedup_site"
COPIES = {  # canonical paths of the three copies of the syndicated story
    "/alpha/world/danube-bridge-collapse.html",
    "/beta/news/2026/11/10/bridge-collapse-two-missing.html",
    "/gamma/stories/danube-bridge-collapse",
}
FOLLOW_UP = "/beta/news/2026/11/10/croatia-orders-bridge-inspections.html"
DISTINCT = {
    FOLLOW_UP,
    "/beta/news/2026/11/10/split-airport-runway.html",
    "/alpha/business/rijeka-port-record.html",
    "/alpha/world/novi-sad-bridge-reopens.html",
    "/gamma/stories/zagreb-tram-fares",
}
TRAM_PAGE = "/gamma/stories/zagreb-tram-fares/amp"


@pytest.fixture
def dedup_site() -> Iterator[SiteServer]:
    with SiteServer(DEDUP_SITE) as server:
        yield server


@pytest.fixture
def dedup_env(cli_env: dict[str, str], dedup_site: SiteServer, tmp_path: Path) -> dict[str, str]:
    feeds = tmp_path / "dedup-feeds.toml"
    feeds.write_text((DEDUP_SITE / "feeds.toml").read_text().replace("{{BASE}}", dedup_site.base_url))
    return {**cli_env, "NEWSWIRE_FEEDS": str(feeds)}


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def sweep(env: dict[str, str]) -> dict[str, object]:
    result = run_cli(["sweep", "--timeout", "150"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(orjson.loads(result.stdout.strip().splitlines()[-1]))


def path_of(doc: dict[str, object], base: str) -> str:
    return str(doc["canonical_url"]).removeprefix(base)


def test_a_story_on_three_sites_is_published_once_and_distinct_stories_are_not_merged(
    dedup_env: dict[str, str], dedup_site: SiteServer, redis_client: redis.Redis, prefix: str
) -> None:
    summary = sweep(dedup_env)
    assert (summary["feeds"], summary["entries"], summary["errors"]) == (3, 8, 0)
    assert (summary["published"], summary["duplicates"]) == (6, 2)

    base = dedup_site.base_url
    articles = {path_of(d, base): d for d in stream_docs(redis_client, f"{prefix}:articles")}
    duplicates = {path_of(d, base): d for d in stream_docs(redis_client, f"{prefix}:duplicates")}
    assert set(articles) | set(duplicates) == COPIES | DISTINCT  # tracking parameters and /amp gone
    [original] = COPIES & set(articles)
    assert set(duplicates) == COPIES - {original}
    original_id, story = articles[original]["id"], articles[original]["story_id"]
    assert all(d["duplicate_of"] == original_id and d["story_id"] == story for d in duplicates.values())
    assert set(articles) >= DISTINCT  # distinct stories are never merged as copies

    assert articles[FOLLOW_UP]["story_id"] == story  # another report of the same event: same story
    others = [articles[p]["story_id"] for p in DISTINCT - {FOLLOW_UP}]
    assert story not in others
    assert len(set(others)) == len(others)

    update_a_page_and_relist_it(dedup_site)
    second = sweep(dedup_env)
    assert (second["entries"], second["published"], second["errors"]) == (1, 0, 0)
    [update] = stream_docs(redis_client, f"{prefix}:updates")
    tram = articles["/gamma/stories/zagreb-tram-fares"]
    assert (update["id"], update["revision"], update["story_id"]) == (tram["id"], 2, tram["story_id"])
    assert "Update:" in str(update["text"])
    assert redis_client.xlen(f"{prefix}:articles") == 6  # still every article exactly once


def update_a_page_and_relist_it(site: SiteServer) -> None:
    """The tram story gains a paragraph; its feed re-lists it with a new GUID and a later date."""
    page = (DEDUP_SITE / TRAM_PAGE.lstrip("/") / "index.html").read_text()
    added = "<p>Update: the council also approved a night tram line that will run at weekends from March.</p>"
    site.set_route(TRAM_PAGE, body=page.replace("</header>\n<p>", f"</header>\n{added}\n<p>", 1).encode())
    feed = (DEDUP_SITE / "gamma" / "rss.xml").read_text()
    relisted = feed.replace("gamma-zagreb-tram-fares", "gamma-zagreb-tram-fares-update-1").replace(
        "Tue, 10 Nov 2026 10:15:00 +0000", formatdate(time.time() + 120, usegmt=True)
    )
    site.set_route("/gamma/rss.xml", body=relisted.encode(), headers={"Content-Type": "application/rss+xml"})


# --- two workers racing on copies ----------------------------------------------------------


@pytest.fixture
def extract_workers(dedup_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real extraction worker with two processes, started like `newswire up` starts it."""
    queue = queue_name(dedup_env["NEWSWIRE_STREAM_PREFIX"], "extract")
    with worker_process(
        worker_argv("extract-race", queue, "prefork", 2), dedup_env, tmp_path / "worker.log"
    ) as proc:
        yield proc


def copy_task(base: str, page: str, site: str) -> tuple[dict[str, object], str, str]:
    """The entry, HTML and URL of a page as another site carries it: delta adds a dateline,
    epsilon a credit line, so the two copies differ and only the near-duplicate layer links them."""
    path = DEDUP_SITE / page.lstrip("/")
    html = (path if path.suffix == ".html" else path / "index.html").read_text()
    canonical = page.removesuffix("/amp")
    url = f"{base}/{site}/{canonical.rsplit('/', 1)[-1]}"
    html = html.replace("{{BASE}}" + canonical, url).replace("{{BASE}}", base)
    if site == "delta":
        html = html.replace("</header>\n<p>", "</header>\n<p>ZAGREB (Ledger Wire) — ", 1)
    else:
        html = html.replace(
            "</p>\n</article>", " Reporting by Ana Lima; editing by Tom Berg.</p>\n</article>", 1
        )
    entry = FeedEntry(feed_url=f"{base}/{site}/rss.xml", key=f"{site}:{page}", link=url, title="copy")
    return entry.to_dict(), html, url


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_two_workers_racing_on_copies_publish_each_story_once(
    dedup_env: dict[str, str], dedup_site: SiteServer, extract_workers: subprocess.Popen[bytes],
    redis_client: redis.Redis, prefix: str,
) -> None:  # fmt: skip
    app = create_app(load_settings(dedup_env))
    base = dedup_site.base_url
    pages = [
        "/alpha/business/rijeka-port-record.html",
        "/alpha/world/novi-sad-bridge-reopens.html",
        TRAM_PAGE,
    ]
    for page in pages:  # both copies of a story back to back: the two worker processes take one each
        for site in ("delta", "epsilon"):
            app.send_task("ingest.extract_article", args=[*copy_task(base, page, site), None])
    stats = RedisStats(redis_client, prefix)
    assert wait_for(lambda: sum(v for k, v in stats.all().items() if k.startswith("article:")) >= 6, 120), (
        stats.all()
    )
    assert (stats.all().get("article:published"), stats.all().get("article:duplicate")) == (3, 3)
    published = stream_docs(redis_client, f"{prefix}:articles")
    copies = stream_docs(redis_client, f"{prefix}:duplicates")
    assert len({d["title"] for d in published}) == 3
    assert {d["duplicate_of"] for d in copies} == {d["id"] for d in published}
