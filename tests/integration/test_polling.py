"""Polling end to end: real Celery workers started by the CLI, a real Redis, a loopback site.

The beat's tick is run from the test (`workers.beat.run_tick`, the same function the
`ingest.tick` task runs), so each test decides when a tick happens; waiting minutes
for a schedule is replaced by setting feeds' times in the schedule directly.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import redis

from config.settings import load_settings
from ingest.feeds.feedsfile import load_feeds_file
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import MAX_BACKOFF_S, RedisSchedule
from newswire.demo.server import SiteServer
from tests.conftest import FIXTURE_SITE, NEWSWIRE, ROOT, run_cli
from tests.unit.fetch.test_politeness import CountingSite
from workers.app import create_app, queue_name
from workers.beat import run_tick
from workers.context import WorkerContext

pytestmark = pytest.mark.slow
AGENT = "newswire-test/1 (+https://example.test/contact)"


class Deployment:
    """The test's view of one deployment: its settings, a tick, and the feeds' state."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.settings = load_settings(env)
        self.ctx = WorkerContext(self.settings)
        self.app = create_app(self.settings)
        self.client = redis.Redis.from_url(env["NEWSWIRE_REDIS_URL"])
        self.registry = RedisFeedRegistry(self.client, self.settings.prefix)
        self.schedule = RedisSchedule(self.client, self.settings.prefix)

    def tick(self, now: float | None = None) -> int:
        queue = queue_name(self.settings.prefix, "feeds")
        return run_tick(
            self.ctx, lambda url: self.app.send_task("ingest.poll_feed", args=[url], queue=queue), now
        )

    def make_due(self, url: str) -> None:
        assert self.client.zadd(self.schedule.due_key, {url: 0}, xx=True, ch=True) == 1

    def count(self, url: str, outcome: str) -> int:
        return int(self.registry.state(url).get(f"n_{outcome}") or 0)

    def wait_count(self, url: str, outcome: str, n: int, timeout: float = 30) -> None:
        wait_for(lambda: self.count(url, outcome) >= n, timeout, f"{url}: n_{outcome} >= {n}")


def wait_for(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def workers(env: dict[str, str], log_dir: Path, count: int = 1, queues: str = "feeds") -> Iterator[None]:
    """`newswire worker` processes (thread pools, as the I/O worker runs), stopped by pid at the end."""
    argv = [*NEWSWIRE, "worker", "--queues", queues, "--pool", "threads", "--concurrency", "6"]
    started = []
    for n in range(count):
        log = (log_dir / f"worker{n}.log").open("wb")
        started.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=log))
    try:
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def write_feeds(path: Path, site: SiteServer, *feeds: str) -> None:
    """A feeds file; each feed is 'path' or 'path interval'."""
    blocks = []
    for spec in feeds:
        feed_path, _, interval = spec.partition(" ")
        blocks.append(
            f'[[feed]]\nurl = "{site.url(feed_path)}"\n' + (f"interval = {interval}\n" if interval else "")
        )
    path.write_text("\n".join(blocks))


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    # the default politeness (a second between requests to one host); only the user agent is ours
    return {**cli_env, "NEWSWIRE_USER_AGENT": AGENT}


def test_rate_limited_feed_waits_for_retry_after(
    env: dict[str, str], site: SiteServer, tmp_path: Path
) -> None:
    site.set_route("/limited.xml", status=429, headers={"Retry-After": "600"})
    write_feeds(Path(env["NEWSWIRE_FEEDS"]), site, "/limited.xml", "/news/rss.xml 60")
    limited, steady = site.url("/limited.xml"), site.url("/news/rss.xml")
    deployment = Deployment(env)
    with workers(env, tmp_path):
        started = time.time()
        assert deployment.tick() == 2
        deployment.wait_count(limited, "rate_limited", 1)
        deployment.wait_count(steady, "ok", 1)
        for url in (limited, steady):  # the counters are written just before the next poll time
            wait_for(lambda u=url: deployment.schedule.next_poll(u) is not None, what=f"{url} rescheduled")
        assert (deployment.schedule.next_poll(limited) or 0) >= started + 600
        for later in (0, 120, 300, 590):  # ticks up to just before Retry-After: only the other feed is due
            deployment.tick(started + later)
        deployment.wait_count(steady, "not_modified", 1)
        assert len(site.requests_for("/limited.xml")) == 1
        assert deployment.tick(time.time() + 600 * 1.1 + 1) >= 1  # the server's time has come
        deployment.wait_count(limited, "rate_limited", 2)
    assert len(site.requests_for("/limited.xml")) == 2


def test_moved_feed_is_polled_at_its_new_url(env: dict[str, str], site: SiteServer, tmp_path: Path) -> None:
    site.set_route("/old/rss.xml", status=301, headers={"Location": "{{BASE}}/news/rss.xml"})
    feeds_file = Path(env["NEWSWIRE_FEEDS"])
    write_feeds(feeds_file, site, "/old/rss.xml 600")
    old, new = site.url("/old/rss.xml"), site.url("/news/rss.xml")
    deployment = Deployment(env)
    with workers(env, tmp_path, queues="feeds,articles"):
        deployment.tick()
        for polls in (1, 2, 3):
            wait_for(lambda n=polls: len(site.requests_for("/news/rss.xml")) >= n, what=f"poll {polls}")
            wait_for(lambda: deployment.schedule.next_poll(old) or deployment.schedule.next_poll(new))
            if polls < 3:
                deployment.make_due(old)
                deployment.tick()
        wait_for(lambda: deployment.registry.get(new) is not None, what="the move")
        assert [f.url for f in load_feeds_file(feeds_file)] == [new]
        assert deployment.registry.get(new).interval == 600  # type: ignore[union-attr]
        site.clear_requests()
        deployment.make_due(new)
        deployment.tick()
        wait_for(lambda: len(site.requests_for("/news/rss.xml")) == 1, what="a poll of the new URL")
    assert site.requests_for("/old/rss.xml") == []
    assert site.requests_for("/news/rss.xml")[0].status == 304  # validators came along with the move


def test_gone_feed_is_disabled_with_its_reason(env: dict[str, str], site: SiteServer, tmp_path: Path) -> None:
    site.set_route("/gone.xml", status=410)
    write_feeds(Path(env["NEWSWIRE_FEEDS"]), site, "/gone.xml")
    gone = site.url("/gone.xml")
    deployment = Deployment(env)
    with workers(env, tmp_path):
        deployment.tick()
        deployment.wait_count(gone, "gone", 1)
    assert deployment.schedule.next_poll(gone) is None
    assert deployment.tick(time.time() + 30 * 86400) == 0
    rows = [orjson.loads(line) for line in run_cli(["feeds", "list", "--json"], env).stdout.splitlines()]
    assert rows[0]["health"] == "disabled"
    assert "410 Gone" in rows[0]["last_error"]


def test_a_feed_failing_ten_times_is_still_polled(
    env: dict[str, str], site: SiteServer, tmp_path: Path
) -> None:
    site.set_route("/down.xml", status=500)
    write_feeds(Path(env["NEWSWIRE_FEEDS"]), site, "/down.xml")
    down = site.url("/down.xml")
    deployment = Deployment(env)
    with workers(env, tmp_path):
        deployment.tick()
        for failures in range(1, 11):
            deployment.wait_count(down, "http_500", failures)
            wait_for(lambda: deployment.schedule.next_poll(down) is not None, what="rescheduled")
            if failures < 10:
                deployment.make_due(down)
                deployment.tick()
        state = deployment.registry.state(down)
        assert (state["consecutive_errors"], state["last_status"]) == ("10", "http_500")
        assert (deployment.schedule.next_poll(down) or 0) <= time.time() + MAX_BACKOFF_S * 1.1
        assert deployment.tick(time.time() + MAX_BACKOFF_S * 1.1 + 1) == 1
        deployment.wait_count(down, "http_500", 11)
    assert len(site.requests_for("/down.xml")) == 11


SLOW_PATHS = (
    "/news/rss.xml", "/wire/atom.xml", "/news/city-library-reopens.html", "/news/us-steel-tariffs.html",
    "/news/ceasefire-envoys-vienna.html", "/wire/eu-freezes-russian-metals-traders.html",
    "/wire/ukraine-truce-talks-resume.html",
)  # fmt: skip


@pytest.fixture
def counting_site() -> Iterator[CountingSite]:
    with CountingSite(FIXTURE_SITE) as server:
        yield server


def test_two_workers_never_exceed_the_host_concurrency(
    cli_env: dict[str, str], counting_site: CountingSite, tmp_path: Path
) -> None:
    site = counting_site
    feeds = Path(cli_env["NEWSWIRE_FEEDS"])
    # no spacing, so both slots of the one host are wanted at once: the test is about the concurrency cap
    env = {**cli_env, "NEWSWIRE_HOST_CONCURRENCY": "2", "NEWSWIRE_HOST_SPACING": "0"}
    write_feeds(feeds, site, *(f"/news/rss.xml?copy={n}" for n in range(4)), "/wire/atom.xml")
    for path in SLOW_PATHS:
        site.set_route(path, delay=0.25)
    deployment = Deployment(env)
    with workers(env, tmp_path, count=2, queues="feeds,articles"):
        assert deployment.tick() == 5

        def pages_fetched() -> bool:
            deployment.tick()  # beat keeps ticking: a poll deferred for a busy host is handed out again
            return len([r for r in site.requests if urlsplit(r.path).path.endswith(".html")]) >= 14

        wait_for(pages_fetched, 90, "the pages")
        assert deployment.count(site.url("/news/rss.xml?copy=0"), "ok") == 1
    assert len([r for r in site.requests if "rss.xml" in r.path or "atom.xml" in r.path]) == 5
    assert site.peak == 2  # both slots were used, never a third


def test_json_feed_and_opml_feeds_file_with_robots_and_user_agent(
    env: dict[str, str], site: SiteServer, tmp_path: Path
) -> None:
    opml = tmp_path / "feeds.opml"
    exported = run_cli(["feeds", "export"], env)
    assert exported.returncode == 0, exported.stderr
    opml.write_text(exported.stdout)
    site.set_route(
        "/robots.txt",
        body=b"User-agent: newswire-test\nDisallow: /json/\n",
        headers={"Content-Type": "text/plain"},
    )
    result = run_cli(["sweep", "--timeout", "120"], {**env, "NEWSWIRE_FEEDS": str(opml)})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["feeds"], summary["entries"], summary["published"]) == (5, 9, 8)

    client = redis.Redis.from_url(env["NEWSWIRE_REDIS_URL"])
    docs = [orjson.loads(f[b"data"]) for _, f in client.xrange(f"{env['NEWSWIRE_STREAM_PREFIX']}:articles")]
    from_json = [d for d in docs if d["feed_url"] == site.url("/json/feed.json")]
    assert len(from_json) == 2
    assert {d["extraction"] for d in from_json} == {"feed"}  # robots.txt kept us off those pages
    assert not [r for r in site.requests if r.path.startswith("/json/") and r.path.endswith(".html")]
    assert site.requests_for("/robots.txt")
    assert {r.headers.get("User-Agent") for r in site.requests} == {AGENT}
