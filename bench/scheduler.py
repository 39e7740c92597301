"""Scheduler benchmark: the cost of a tick per due feed, and Redis memory per feed, at 1k/10k/100k feeds.

    python bench/scheduler.py [--sizes 1000,10000,100000] [--due 1000]

For each size, a private Redis (started here, no persistence) is filled through
the real code: `register_feeds` (registry hash + schedule) and one `commit_poll`
per feed of a real poll report (a 200 with ETag/Last-Modified and 50 entries:
state hash + 50 seen-entry digests). Then `--due` feeds are made due and the
beat's claim (`RedisSchedule.claim_due`, one Lua script) is timed; it must cost
the same per due feed whether 1k or 100k feeds are registered. Memory per feed
is INFO `used_memory` before/after, divided by the number of feeds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.polling import rss_document  # noqa: E402
from ingest.feeds.poll import PollReport, commit_poll, interpret_response, register_feeds  # noqa: E402
from ingest.feeds.registry import RedisFeedRegistry  # noqa: E402
from ingest.feeds.schedule import PollTiming, RedisSchedule, next_delay  # noqa: E402
from ingest.fetch.http import FetchResult  # noqa: E402
from ingest.models import Feed  # noqa: E402
from newswire import redisd  # noqa: E402

PREFIX = "newswire"


def feed_urls(count: int) -> list[str]:
    """Realistic lengths: about 55 characters, like most news feed URLs."""
    return [f"https://www.news-site-{i:06d}.example.com/world/rss.xml" for i in range(count)]


def sample_report() -> PollReport:
    """A real poll report: 200, validators, 50 entries, interpreted by the real code."""
    headers = {
        "etag": '"5f3a9c2b-6d2e1"',
        "last-modified": "Fri, 27 Nov 2026 09:00:00 GMT",
        "content-type": "application/rss+xml",
        "cache-control": "max-age=600",
    }
    url = "https://www.news-site-000000.example.com/world/rss.xml"
    result = FetchResult(url, url, 200, headers, rss_document(50), 1.0, ())
    report, update = interpret_response(Feed(url), result, {}, PollTiming(), 0, time.time())
    return replace(report, new_entries=report.entries, next_poll_s=next_delay(update.timing), update=update)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def fill(client: redis.Redis, urls: list[str], report: PollReport) -> tuple[int, int]:
    """Register the feeds and commit one poll each; returns the bytes each step added."""
    registry, schedule = RedisFeedRegistry(client, PREFIX), RedisSchedule(client, PREFIX)
    before = used_memory(client)
    register_feeds([Feed(u, f"News site {i}") for i, u in enumerate(urls)], registry, schedule)
    registered = used_memory(client)

    def commit(url: str) -> None:
        commit_poll(replace(report, feed_url=url), registry, schedule)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(commit, urls, chunksize=256))
    return registered - before, used_memory(client) - registered


def time_claims(
    client: redis.Redis, urls: list[str], due: int, rounds: int = 25
) -> tuple[float, float, float, float]:
    """Milliseconds of one claim of `due` due feeds: median and min as the client sees it, the
    server's own mean (INFO commandstats, no client or network), and a reap with nothing to reap.

    The minimum is the cost without interference from other processes on the machine."""
    schedule = RedisSchedule(client, PREFIX)
    claims, reaps, server_us = [], [], 0.0
    for _ in range(rounds):
        now = time.time()
        chosen = random.sample(urls, due)
        client.zadd(schedule.due_key, dict.fromkeys(chosen, now - 1), xx=True)
        client.config_resetstat()
        started = time.perf_counter()
        claimed = schedule.claim_due(now, limit=5000)
        claims.append(time.perf_counter() - started)
        server_us += script_usec(client)
        assert len(claimed) == due, (len(claimed), due)
        started = time.perf_counter()
        schedule.reap(now)
        reaps.append(time.perf_counter() - started)
        client.zrem(schedule.inflight_key, *claimed)  # as if polled: back in the schedule, not due
        client.zadd(schedule.due_key, {u: now + random.uniform(600, 900) for u in claimed})
    median, best, reap = statistics.median(claims), min(claims), statistics.median(reaps)
    return median * 1000, best * 1000, server_us / rounds / 1000, reap * 1000


def script_usec(client: redis.Redis) -> float:
    stats = client.info("commandstats")
    return sum(float(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--due", type=int, default=1000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    report = sample_report()
    print(
        f"scheduler benchmark: {args.due} due feeds per tick; state = a 200 with validators and 50 entries\n"
    )
    columns = f"{'registered':>10} {'claim ms':>9} {'min ms':>8} {'server ms':>10}"
    columns += f" {'µs/due feed':>12} {'vs first':>9}"
    memory = f"{'B/feed registry+schedule':>25} {'B/feed state+seen':>18} {'B/feed total':>13}"
    print(f"{columns} {'reap ms':>8} {memory}")
    first = None
    with tempfile.TemporaryDirectory(prefix="newswire-bench-") as tmp:
        server = redisd.start(Path(tmp) / "redis", persistent=False)
        client = redis.Redis.from_url(server.url)
        try:
            for size in sizes:
                client.flushall()
                urls = feed_urls(size)
                registered, polled = fill(client, urls, report)
                claim_ms, best_ms, server_ms, reap_ms = time_claims(client, urls, min(args.due, size))
                per_due = server_ms * 1000 / min(args.due, size)
                first = first or per_due
                total = (registered + polled) / size
                print(
                    f"{size:>10} {claim_ms:>9.2f} {best_ms:>8.2f} {server_ms:>10.2f} {per_due:>12.2f}"
                    f" {per_due / first:>8.2f}x {reap_ms:>8.2f} {registered / size:>25.0f}"
                    f" {polled / size:>18.0f} {total:>13.0f}"
                )
        finally:
            server.stop()
    print(
        "\nclaim ms: median and fastest of 25 ticks, as the client sees them; server ms and µs/due feed: the"
        "\nscript's own time in Redis (INFO commandstats), free of client and network noise. One Lua script:"
        "\nZRANGEBYSCORE .. LIMIT, one ZREMRANGEBYRANK, ZADD to the in-flight set (small): O(log N + due)"
    )


if __name__ == "__main__":
    main()
