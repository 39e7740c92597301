"""Two worker nodes and two beats on one Redis, polling a loopback web of syndicating sites.

Node A runs an I/O worker (feeds, articles; threads) and an extraction worker;
node B runs one worker for articles and extraction. Each node has its own
NEWSWIRE_NODE_NAME, data directory and beat; the feeds and topics files are the
same. The beats drive the polling (no sweep): one holds the beat lock, the other
stands by. Each site (tests/fixtures/scaleout_site/README.md) is its own host on
loopback and counts the requests it has in flight.

Checked: every story is published exactly once (its other copies are
duplicates of it), no host ever has more requests in flight than
NEWSWIRE_HOST_CONCURRENCY, the standby beat sends nothing until the active one
is killed, and it takes over within the lock's TTL plus one renewal period.
Run with `-s` to see the figures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import redis

from config.settings import load_settings
from ingest.ops.progress import RedisStats
from newswire import redisd
from newswire.demo.server import SiteServer
from newswire.service import beat_argv
from tests.conftest import NEWSWIRE, ROOT
from workers.beatlock import LockTiming, lock_key

pytestmark = pytest.mark.slow

SITE_ROOT = ROOT / "tests" / "fixtures" / "scaleout_site"
FEEDS = {"wire": "rss.xml", "daily": "atom.xml", "courier": "feed.json", "herald": "rss.xml"}
FIRST, LATE = ("wire", "daily", "courier"), "herald"  # herald's feed is added after the takeover
HOST_LIMIT = 2
LOCK_TTL_S = 3.0
ANSWER_DELAY_S = 0.4  # every answer is held back, so requests to one host overlap
SCHEDULING_MARGIN_S = 5.0  # a loaded CI machine may wake the standby late
WAIT_S = 180.0


class Gauge:
    """Requests in flight, and the most there ever were at once (thread-safe)."""

    def __init__(self) -> None:
        self.now = self.max = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.max = max(self.max, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


class CountingSite(SiteServer):
    """A SiteServer that holds each answer back and counts its requests in flight (its own and all sites')."""

    def __init__(self, root: Path, everywhere: Gauge) -> None:
        super().__init__(root)
        self.gauge = Gauge()
        self.everywhere = everywhere

    def answer(self, target: str, request_headers: Mapping[str, str]):  # type: ignore[no-untyped-def]
        for gauge in (self.gauge, self.everywhere):
            gauge.enter()
        try:
            time.sleep(ANSWER_DELAY_S)
            return super().answer(target, request_headers)
        finally:
            for gauge in (self.gauge, self.everywhere):
                gauge.leave()


@dataclass
class Node:
    """One machine's processes: its workers and its beat, each logging to a file of its own."""

    name: str
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, label: str, argv: list[str]) -> None:
        with (self.logs / f"{self.name}-{label}.log").open("wb") as log:
            self.processes[label] = subprocess.Popen(
                argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def worker(self, label: str, *args: str) -> None:
        self.start(label, [*NEWSWIRE, "worker", *args])

    def beat(self) -> None:
        self.start("beat", beat_argv(load_settings(self.env)))

    def log(self, label: str) -> str:
        return (self.logs / f"{self.name}-{label}.log").read_text(errors="replace")

    def exited(self) -> list[str]:
        return [f"{self.name}/{label}" for label, p in self.processes.items() if p.poll() is not None]

    def tails(self) -> str:
        return "".join(f"\n--- {self.name}/{label}\n{self.log(label)[-3000:]}" for label in self.processes)

    def kill(self, label: str) -> None:
        """SIGKILL, as a crash would: no clean stop, the lock is left to expire."""
        process = self.processes.pop(label)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        for process in running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


@pytest.fixture
def sites() -> Iterator[dict[str, CountingSite]]:
    everywhere = Gauge()
    servers = {name: CountingSite(SITE_ROOT / name, everywhere).start() for name in FEEDS}
    yield servers
    for server in servers.values():
        server.stop()


def feed_entry(name: str, site: SiteServer) -> str:
    return f'[[feed]]\nurl = "{site.url(FEEDS[name])}"\nname = "{name}"\n\n'


def node_env(name: str, redis_url: str, prefix: str, feeds: Path, tmp_path: Path) -> dict[str, str]:
    """0.1 s spacing (a changed default): requests to one host must overlap to test the in-flight cap."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_REDIS_URL=redis_url, NEWSWIRE_FEEDS=str(feeds), NEWSWIRE_STREAM_PREFIX=prefix,
        NEWSWIRE_TOPICS=str(ROOT / "config" / "topics.toml"), NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8",
        NEWSWIRE_DATA_DIR=str(tmp_path / name), NEWSWIRE_NODE_NAME=name, NEWSWIRE_LOG_LEVEL="INFO",
        NEWSWIRE_TICK_SECONDS="1", NEWSWIRE_BEAT_LOCK_TTL=str(LOCK_TTL_S),
        NEWSWIRE_HOST_CONCURRENCY=str(HOST_LIMIT), NEWSWIRE_HOST_SPACING="0.1", PYTHONPATH=str(ROOT),
    )  # fmt: skip
    (tmp_path / name).mkdir()
    return env


@pytest.fixture
def nodes(
    redis_server: redisd.EmbeddedRedis, prefix: str, sites: dict[str, CountingSite], tmp_path: Path
) -> Iterator[tuple[Node, Node]]:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("".join(feed_entry(name, sites[name]) for name in FIRST))
    a = Node("node-a", node_env("node-a", redis_server.url, prefix, feeds, tmp_path), tmp_path)
    b = Node("node-b", node_env("node-b", redis_server.url, prefix, feeds, tmp_path), tmp_path)
    try:
        yield a, b
    finally:
        for node in (a, b):
            node.stop()


# --- what the fixture sites should produce --------------------------------------------------------


def pages_of(site: str) -> list[Path]:
    return [p for p in sorted((SITE_ROOT / site).rglob("*.html")) if p.name != "index.html"]


def expected(site_names: tuple[str, ...]) -> tuple[int, set[str]]:
    """Entries in these sites' feeds, and the distinct stories among them (a page's story = its file stem)."""
    pages = [p for s in site_names for p in pages_of(s)]
    return len(pages), {p.stem for p in pages}


def story_of(url: str) -> str:
    return Path(urlsplit(url).path).stem


# --- reading the outcome from Redis -----------------------------------------------------------------


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def articles_done(client: redis.Redis, prefix: str) -> int:
    """Articles finished, whatever the outcome (published, duplicate, ..., dead-lettered)."""
    counters = RedisStats(client, prefix).all()
    given_up = {f"ingest.{task}:dead_lettered" for task in ("fetch_articles", "extract_articles")}
    return sum(n for name, n in counters.items() if name.startswith("article:") or name in given_up)


def wait_for(what: str, done: Callable[[], bool], nodes: tuple[Node, ...], limit_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while not done():
        dead = [name for node in nodes for name in node.exited()]
        if dead or time.monotonic() > deadline:
            why = f"exited: {', '.join(dead)}" if dead else "timed out"
            pytest.fail(f"waiting for {what}: {why}{''.join(node.tails() for node in nodes)}")
        time.sleep(0.1)


def holder(client: redis.Redis, prefix: str) -> str:
    value = client.get(lock_key(prefix))
    return value.decode() if value else ""


def ticks_sent(node: Node) -> int:
    return node.log("beat").count("Sending due task")


def tasks_done(node: Node, label: str) -> int:
    """Tasks a worker finished (workers/signals.py logs one event per task)."""
    return node.log(label).count('"logger":"newswire.events"')


def check_published_once(client: redis.Redis, prefix: str, entries: int, stories: set[str]) -> None:
    articles = stream_docs(client, f"{prefix}:articles")
    duplicates = stream_docs(client, f"{prefix}:duplicates")
    published = {story_of(str(a["url"])): a for a in articles}
    assert Counter(story_of(str(a["url"])) for a in articles) == Counter(stories)  # each story once
    assert len(articles) + len(duplicates) == entries
    for copy in duplicates:  # every other copy is recorded as a duplicate of the one published
        assert copy["duplicate_of"] == published[story_of(str(copy["url"]))]["id"]
    talks = stream_docs(client, f"{prefix}:topic:ukraine-ceasefire-talks")
    assert [story_of(str(t["url"])) for t in talks] == ["black-sea-ceasefire-talks"]


def kill_and_time_takeover(
    active: Node, standby: Node, client: redis.Redis, prefix: str
) -> tuple[float, float]:
    """Kill the active beat; seconds until the standby holds the lock, and the lock's TTL left at the kill."""
    nodes = (active, standby)
    left_s = int(client.pttl(lock_key(prefix))) / 1000
    killed = time.monotonic()
    active.kill("beat")
    wait_for("the standby to take the lock", lambda: holder(client, prefix).startswith(standby.name), nodes)
    return time.monotonic() - killed, left_s


def test_two_nodes_publish_each_story_once_politely_with_one_active_beat(
    nodes: tuple[Node, Node], sites: dict[str, CountingSite], redis_client: redis.Redis, prefix: str
) -> None:
    a, b = nodes
    a.worker("io", "--queues", "feeds,articles", "--pool", "threads", "--concurrency", "6")
    a.worker("extract", "--queues", "extract", "--pool", "prefork", "--concurrency", "1")
    b.worker("mixed", "--queues", "articles,extract", "--pool", "prefork", "--concurrency", "2")
    a.beat()
    wait_for("A's beat to take the lock", lambda: holder(redis_client, prefix).startswith(a.name), (a, b))
    b.beat()

    entries, stories = expected(FIRST)
    wait_for(f"{entries} articles", lambda: articles_done(redis_client, prefix) >= entries, (a, b))
    check_published_once(redis_client, prefix, entries, stories)
    assert ticks_sent(a) > 0
    assert ticks_sent(b) == 0  # the standby sent nothing while A held the lock
    assert holder(redis_client, prefix).startswith(a.name)

    takeover_s, left_s = kill_and_time_takeover(a, b, redis_client, prefix)
    assert left_s - 0.1 <= takeover_s <= LockTiming(LOCK_TTL_S).takeover_s + SCHEDULING_MARGIN_S

    feeds = Path(a.env["NEWSWIRE_FEEDS"])
    feeds.write_text(feeds.read_text() + feed_entry(LATE, sites[LATE]))  # only B's beat can hand it out now
    entries, stories = expected((*FIRST, LATE))
    wait_for(f"{entries} articles", lambda: articles_done(redis_client, prefix) >= entries, (a, b))
    check_published_once(redis_client, prefix, entries, stories)
    assert ticks_sent(b) > 0

    per_worker = {f"{n.name}/{w}": tasks_done(n, w) for n, w in ((a, "io"), (a, "extract"), (b, "mixed"))}
    per_host = {name: site.gauge.max for name, site in sites.items()}
    everywhere = next(iter(sites.values())).everywhere.max
    print(
        f"\ntwo nodes: {entries} entries, {len(stories)} stories expected, "
        f"{redis_client.xlen(f'{prefix}:articles')} published, {redis_client.xlen(f'{prefix}:duplicates')} "
        f"duplicates; beat takeover {takeover_s:.2f}s after kill (lock TTL {LOCK_TTL_S:.0f}s, "
        f"{left_s:.2f}s left at the kill, bound {LockTiming(LOCK_TTL_S).takeover_s:.0f}s); "
        f"max in flight per host {per_host} (limit {HOST_LIMIT}), all hosts {everywhere}; "
        f"tasks per worker {per_worker}"
    )
    assert all(per_worker.values())  # both nodes took part
    assert max(per_host.values()) <= HOST_LIMIT
    assert everywhere > HOST_LIMIT  # the nodes did send more at once than one host may take
