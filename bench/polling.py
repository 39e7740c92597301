"""Polling benchmark: polls per second through the real poll path, on this machine, on loopback.

    python bench/polling.py [--feeds 2000] [--seconds 8] [--skip-celery]

A small asyncio HTTP server (its own process, keep-alive, gzip like a real site)
serves every feed. Two cases: every feed answers 304 to our conditional GET, and
every feed answers 200 with a fresh ETag and the same 50 items (so each poll
downloads, decompresses and parses 50 entries, all already seen).

Each poll is what the I/O worker's task does: `registry.get` + `ingest.feeds.poll.poll_feed`
(with the Redis host limiter in front of the Fetcher) + `commit_poll`, against a
private Redis this script starts. Politeness is set wide open here (every feed is
on one loopback host; a real deployment spreads over thousands of hosts), so the
figure is the cost of the path, the limiter's two Lua calls included.

Prints polls/s for 1 process x 16 threads (one I/O worker as `newswire up` runs it)
and 2 processes x 8 threads, the CPU seconds the pollers, Redis and the server used,
a per-step breakdown of one poll, and (unless --skip-celery) the same through real
Celery I/O workers started with `newswire worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from ingest.feeds.poll import commit_poll, poll_feed, register_feeds  # noqa: E402
from ingest.feeds.registry import RedisFeedRegistry  # noqa: E402
from ingest.feeds.schedule import RedisSchedule  # noqa: E402
from ingest.fetch.http import Fetcher, FetchOptions, parse_allowed_networks  # noqa: E402
from ingest.fetch.politeness import HostPolicy, PoliteFetcher, RedisHostLimiter  # noqa: E402
from ingest.models import Feed  # noqa: E402
from newswire import redisd  # noqa: E402

OPEN_POLICY = HostPolicy(max_concurrent=1000, min_spacing_s=0, lease_s=60)
OPTIONS = FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_document(items: int = 50, site: str = "https://bench.test") -> bytes:
    """A realistic feed document: `items` stories with GUID, link, date, author and a summary."""
    stories = "".join(
        f"<item><title>Story number {i}: officials meet to discuss the latest developments</title>"
        f'<link>{site}/2026/11/27/story-{i}.html</link><guid isPermaLink="false">bench-{i}</guid>'
        f"<pubDate>Fri, 27 Nov 2026 {i % 24:02d}:{i % 60:02d}:00 +0000</pubDate><dc:creator>Reporter {i % 7}"
        f"</dc:creator><description>Summary of story {i}: "
        + "a few sentences of teaser text. " * 6
        + "</description></item>"
        for i in range(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Bench News</title>'
        f"<link>{site}/</link><description>Benchmark feed</description>{stories}</channel></rss>"
    ).encode()


# -- the loopback server ----------------------------------------------------------


class FeedProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: 304 for our ETag (mode 304), else 200 + gzip body + a fresh ETag."""

    def __init__(self, mode: str, body: bytes, counter: list[int]) -> None:
        self.mode, self.body, self.counter = mode, body, counter
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
            self.transport.write(self.reply(head))

    def reply(self, head: bytes) -> bytes:
        self.counter[0] += 1
        if self.mode == "304" and b'if-none-match: "bench-v1"' in head:
            return b'HTTP/1.1 304 Not Modified\r\nETag: "bench-v1"\r\nContent-Length: 0\r\n\r\n'
        etag = b'"bench-v1"' if self.mode == "304" else b'"bench-%d"' % self.counter[0]
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Encoding: gzip\r\n"
            b"ETag: " + etag + b"\r\nContent-Length: %d\r\n\r\n" % len(self.body) + self.body
        )


def serve(mode: str, ready: Any) -> None:
    body = gzip.compress(rss_document(), 6)
    counter = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: FeedProtocol(mode, body, counter), "127.0.0.1", 0)
        ready.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def feed_server(mode: str) -> Iterator[tuple[int, int]]:
    """(port, pid) of a server process answering in `mode`."""
    here, there = mp.Pipe()
    process = mp.Process(target=serve, args=(mode, there), daemon=True)
    process.start()
    try:
        yield int(here.recv()), int(process.pid or 0)
    finally:
        process.terminate()
        process.join(5)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- the pollers --------------------------------------------------------------------


def poll_forever(url: str, prefix: str, urls: list[str], deadline: float, counts: Counter[str]) -> None:
    client = redis.Redis.from_url(url)
    registry, schedule = RedisFeedRegistry(client, prefix), RedisSchedule(client, prefix)
    limiter = RedisHostLimiter(client, prefix, OPEN_POLICY)
    with Fetcher(OPTIONS) as fetcher:
        polite = PoliteFetcher(fetcher, limiter)
        i = 0
        while time.monotonic() < deadline if deadline else i < len(urls):  # no deadline: each feed once
            feed_url = urls[i % len(urls)]
            i += 1
            report = poll_feed(registry.get(feed_url) or Feed(feed_url), polite, registry)
            commit_poll(report, registry, schedule)
            counts[report.outcome] += 1


def poller_process(
    redis_url: str, prefix: str, urls: list[str], threads: int, seconds: float, out: Any
) -> None:
    counts: list[Counter[str]] = [Counter() for _ in range(threads)]
    deadline = time.monotonic() + seconds if seconds else 0.0
    workers = [
        threading.Thread(target=poll_forever, args=(redis_url, prefix, urls[t::threads], deadline, counts[t]))
        for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.send((sum(counts, Counter()), time.process_time()))


def run_pollers(
    redis_url: str, prefix: str, urls: list[str], procs: int, threads: int, seconds: float
) -> tuple[Counter[str], float]:
    pipes, processes = [], []
    for p in range(procs):
        here, there = mp.Pipe()
        process = mp.Process(
            target=poller_process, args=(redis_url, prefix, urls[p::procs], threads, seconds, there)
        )
        process.start()
        pipes.append(here)
        processes.append(process)
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    return sum((r[0] for r in results), Counter()), sum(r[1] for r in results)


def register(client: redis.Redis, prefix: str, port: int, feeds: int) -> list[str]:
    urls = [f"http://127.0.0.1:{port}/feeds/{i}.xml" for i in range(feeds)]
    register_feeds([Feed(u) for u in urls], RedisFeedRegistry(client, prefix), RedisSchedule(client, prefix))
    return urls


def measure_case(server: redisd.EmbeddedRedis, mode: str, feeds: int, seconds: float) -> None:
    client = redis.Redis.from_url(server.url)
    with feed_server(mode) as (port, server_pid):
        prefix = f"bench{mode}"
        urls = register(client, prefix, port, feeds)
        run_pollers(server.url, prefix, urls, 2, 8, 0)  # warm-up, each feed once: validators, seen entries
        answer = "304 Not Modified" if mode == "304" else "200 with 50 items (gzip)"
        print(f"\n== every feed answers {answer} ==")
        print(
            f"{'pollers':<22}{'polls/s':>10}{'pollers cpu':>13}{'redis cpu':>11}{'server cpu':>12}  outcomes"
        )
        for procs, threads in ((1, 16), (2, 8)):
            redis_cpu, http_cpu, started = cpu_seconds(server.pid), cpu_seconds(server_pid), time.monotonic()
            counts, poll_cpu = run_pollers(server.url, prefix, urls, procs, threads, seconds)
            elapsed = time.monotonic() - started
            total = sum(counts.values())
            print(
                f"{procs} proc x {threads} threads".ljust(22) + f"{total / seconds:>10.0f}"
                f"{poll_cpu / elapsed:>12.2f}c{(cpu_seconds(server.pid) - redis_cpu) / elapsed:>10.2f}c"
                f"{(cpu_seconds(server_pid) - http_cpu) / elapsed:>11.2f}c  {dict(counts)}"
            )
        breakdown(server.url, prefix, urls)


# -- where one poll's time goes ------------------------------------------------------


class Stopwatch:
    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()

    def wrap(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - started

        return timed


def breakdown(redis_url: str, prefix: str, urls: list[str], polls: int = 400) -> None:
    """One thread, no contention: each step of the real path timed by wrapping the clients it calls."""
    client = redis.Redis.from_url(redis_url)
    watch = Stopwatch()
    registry, schedule = RedisFeedRegistry(client, prefix), RedisSchedule(client, prefix)
    limiter = RedisHostLimiter(client, prefix, OPEN_POLICY)
    registry.get = watch.wrap("redis: feed config", registry.get)  # type: ignore[method-assign]
    registry.read = watch.wrap("redis: state + seen", registry.read)  # type: ignore[method-assign]
    limiter.try_acquire = watch.wrap("redis: host slot (Lua)", limiter.try_acquire)  # type: ignore[method-assign]
    limiter.release = watch.wrap("redis: host slot (Lua)", limiter.release)  # type: ignore[method-assign]
    with Fetcher(OPTIONS) as fetcher:
        fetcher.get = watch.wrap("http: GET (client + server)", fetcher.get)  # type: ignore[method-assign]
        polite = PoliteFetcher(fetcher, limiter)
        totals = []
        for i in range(polls):
            started = time.perf_counter()
            feed_url = urls[i % len(urls)]
            report = poll_feed(registry.get(feed_url) or Feed(feed_url), polite, registry)
            commit = time.perf_counter()
            commit_poll(report, registry, schedule)
            watch.spent["redis: commit (seen, state, schedule)"] += time.perf_counter() - commit
            totals.append(time.perf_counter() - started)
    whole = sum(totals)
    watch.spent["parse + decisions (python)"] = whole - sum(watch.spent.values())
    print(f"one poll, single thread: median {statistics.median(totals) * 1000:.2f} ms")
    for name, spent in watch.spent.most_common():
        print(f"  {name:<40}{spent / polls * 1000:>7.3f} ms  {spent / whole:>5.0%}")


# -- through Celery -------------------------------------------------------------------


def measure_celery(server: redisd.EmbeddedRedis, feeds: int, workdir: Path) -> None:
    """The same polls as tasks of real `newswire worker` processes (threads pool), 304 case."""
    from celery import Celery  # noqa: PLC0415

    client = redis.Redis.from_url(server.url)
    print("\n== through Celery I/O workers (`newswire worker --pool threads`), 304 case ==")
    with feed_server("304") as (port, _):
        for procs, threads in ((1, 16), (2, 8)):
            prefix = f"benchcelery{procs}"
            urls = register(client, prefix, port, feeds)
            env = worker_env(server.url, prefix, workdir)
            workers = [start_worker(env, threads, f"bench{procs}-{n}") for n in range(procs)]
            try:
                app = Celery(broker=server.url)
                run_tasks(app, client, prefix, urls)  # warm-up: validators
                started = time.monotonic()
                run_tasks(app, client, prefix, urls * 2)
                rate = 2 * len(urls) / (time.monotonic() - started)
                print(f"{procs} worker x {threads} threads".ljust(26) + f"{rate:>8.0f} polls/s")
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    worker.wait(30)


def worker_env(redis_url: str, prefix: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_REDIS_URL=redis_url, NEWSWIRE_STREAM_PREFIX=prefix, NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8",
        NEWSWIRE_HOST_SPACING="0", NEWSWIRE_HOST_CONCURRENCY="64", NEWSWIRE_LOG_LEVEL="WARNING",
        NEWSWIRE_DATA_DIR=str(workdir), NEWSWIRE_FEEDS=str(workdir / "none.toml"), PYTHONPATH=str(ROOT),
    )  # fmt: skip
    return env


def start_worker(env: dict[str, str], threads: int, name: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "newswire.cli", "worker", "--queues", "feeds", "--pool", "threads"]
    return subprocess.Popen(
        [*argv, "--concurrency", str(threads)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )


def run_tasks(app: Any, client: redis.Redis, prefix: str, urls: list[str]) -> None:
    stats = f"{prefix}:stats"
    before = polls_counted(client, stats)
    with app.producer_or_acquire() as producer:
        for url in urls:
            app.send_task("ingest.poll_feed", args=[url], queue=f"{prefix}.feeds", producer=producer)
    deadline = time.monotonic() + 300
    while polls_counted(client, stats) - before < len(urls) and time.monotonic() < deadline:
        time.sleep(0.05)


def polls_counted(client: redis.Redis, key: str) -> int:
    return sum(int(v) for k, v in client.hgetall(key).items() if k.startswith(b"poll:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--skip-celery", action="store_true")
    args = parser.parse_args()
    print(f"polling benchmark: {args.feeds} feeds, {os.cpu_count()} cores, {args.seconds:.0f}s per run")
    with tempfile.TemporaryDirectory(prefix="newswire-bench-") as tmp:
        server = redisd.start(Path(tmp) / "redis", persistent=False)
        try:
            for mode in ("304", "200"):
                measure_case(server, mode, args.feeds, args.seconds)
            if not args.skip_celery:
                measure_celery(server, args.feeds, Path(tmp))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
