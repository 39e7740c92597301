"""WebSub benchmark: how long from a hub's content POST to the article in `{prefix}:articles`.

    python bench/websub.py [--pushes 40] [--gap 1.5]

Starts a private Redis, a loopback news site, a WebSub hub (`tests/websub_hub.py`: verification
of intent, signed distribution) and `newswire up --no-flower` on default settings (only what a
deployment must set: Redis, feeds file, allowed networks, HTTP port, public URL; metrics off).
The feed advertises the hub; once the hub holds a verified subscription, each push adds one new
article to the feed and the hub POSTs the feed to the callback. The latency of a push is from
just before the hub's POST to the Redis time of the article's stream entry (its id), on one clock.
Pushes are `--gap` seconds apart, more than the default per-host spacing (1 s), so each measures
the push path rather than the queue behind the site's politeness.

Prints p50, p95 and max latency over the pushes, and how many arrived.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import redis  # noqa: E402

from newswire import redisd  # noqa: E402
from newswire.demo.server import SiteServer  # noqa: E402
from tests.sitemap_site import write_pages  # noqa: E402
from tests.websub_hub import Hub  # noqa: E402

PREFIX = "wsbench"


def feed_xml(site: SiteServer, hub: Hub, paths: list[str]) -> bytes:
    newest = list(reversed(paths))[:20]  # like a real feed: the last 20 items, newest first
    items = "".join(
        f"<item><title>Push {n}</title><link>{site.base_url}{p}</link><guid>{p}</guid></item>"
        for n, p in enumerate(newest)
    )
    links = f'<atom:link rel="hub" href="{hub.url}"/><atom:link rel="self" href="{site.url("/rss.xml")}"/>'
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        f"<channel><title>Bench Desk</title>{links}{items}</channel></rss>"
    ).encode()


def start_service(redis_url: str, feeds: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = redisd.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_REDIS_URL=redis_url, NEWSWIRE_STREAM_PREFIX=PREFIX, NEWSWIRE_FEEDS=str(feeds),
        NEWSWIRE_DATA_DIR=str(data), NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8", NEWSWIRE_HTTP_PORT=str(port),
        NEWSWIRE_PUBLIC_URL=f"http://127.0.0.1:{port}", NEWSWIRE_METRICS_PORT="0",
        NEWSWIRE_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
    )  # fmt: skip
    cmd = [sys.executable, "-m", "newswire.cli", "up", "--no-flower"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return subprocess.Popen(cmd, env=env, cwd=ROOT, **quiet), env["NEWSWIRE_PUBLIC_URL"]


def arrival(client: redis.Redis, url: str, timeout: float) -> float | None:
    """The Redis time (s) of the stream entry of `url` in `{prefix}:articles`, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry_id, fields in client.xrevrange(f"{PREFIX}:articles", count=5):
            if orjson.loads(fields[b"data"])["url"] == url:
                return int(entry_id.split(b"-")[0]) / 1000
        time.sleep(0.02)
    return None


def run(pushes: int, gap: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = redisd.start(root / "redis", persistent=False)
        client = redis.Redis.from_url(server.url)
        specs = write_pages(root / "site", "desk", pushes + 1, seed=77)
        paths = [s.path for s in specs]
        with SiteServer(root / "site") as site, Hub() as hub:
            site.set_route("/rss.xml", body=feed_xml(site, hub, paths[:1]))
            feeds = root / "feeds.toml"
            feeds.write_text(f'[[feed]]\nurl = "{site.url("/rss.xml")}"\n')
            proc, public = start_service(server.url, feeds, root / "var")
            try:
                started = time.monotonic()
                hub.wait_active(site.url("/rss.xml"), timeout=120)
                took = time.monotonic() - started
                print(f"subscribed via {public} in {took:.1f}s (first poll, tick, verification)")
                latencies = measure(client, site, hub, paths, gap)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(120)
        server.stop()
    report(latencies, pushes)


def measure(client: redis.Redis, site: SiteServer, hub: Hub, paths: list[str], gap: float) -> list[float]:
    latencies = []
    for n in range(1, len(paths)):
        body = feed_xml(site, hub, paths[: n + 1])
        site.set_route("/rss.xml", body=body)
        (delivery,) = hub.publish(site.url("/rss.xml"), body)
        when = arrival(client, site.base_url + paths[n], timeout=30)
        if when is not None:
            latencies.append(when - delivery.sent_at)
        time.sleep(max(0.0, gap - (time.time() - delivery.sent_at)))
    return latencies


def report(latencies: list[float], pushes: int) -> None:
    if not latencies:
        print("no push arrived")
        return
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    print(f"pushes {pushes}, arrived {len(latencies)}")
    print(f"latency hub POST -> :articles: p50 {statistics.median(ordered):.3f}s  p95 {p95:.3f}s  "
          f"max {ordered[-1]:.3f}s  (target p95 <= 2 s: {p95 / 2.0:.2f} of it)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=40)
    parser.add_argument("--gap", type=float, default=1.5, help="seconds between pushes")
    args = parser.parse_args()
    run(args.pushes, args.gap)


if __name__ == "__main__":
    main()
