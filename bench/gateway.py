"""Gateway benchmark: SSE events/s to one client, the memory of idle clients, webhook deliveries/s.

    .venv/bin/python bench/gateway.py [--events N] [--idle N] [--webhook-docs N]

Starts its own Valkey (newswire.redisd, no persistence) and a real `newswire http` process on
free loopback ports, with default settings. Documents are ~2 KB of JSON (bench/streams.py).

- catch-up: N entries already in `{prefix}:articles`, one client reads them all with
  `?after=0` (served from Redis in pages);
- live: one client follows the stream while N entries are written as fast as pipelined XADDs go
  (served from the shared ring);
- idle: the HTTP process's resident memory before and after N clients hold an idle stream open
  (all on `articles`, then spread over 10 topic streams);
- webhooks: N documents delivered by `newswire webhooks` to a loopback receiver, at the default
  caps (4 in flight, 20/s) and, as a changed default, with `rate = 10000`.

Prints figures and ratios to the targets of issue 21 (5,000 events/s; 100 idle clients <= 50 MB);
no pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.streams import make_doc  # noqa: E402
from newswire import redisd  # noqa: E402

EVENTS_TARGET, IDLE_TARGET_MB = 5_000, 50.0


def base_env(url: str, tmp: Path, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(NEWSWIRE_REDIS_URL=url, NEWSWIRE_STREAM_PREFIX=prefix, NEWSWIRE_DATA_DIR=str(tmp / "var"))
    env.update(NEWSWIRE_LOG_LEVEL="WARNING", NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8", PYTHONPATH=str(ROOT))
    return env


@contextlib.contextmanager
def http_service(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = redisd.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "newswire.cli", "http"], env={**env, "NEWSWIRE_HTTP_PORT": str(port)}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{base}/healthz", timeout=2)
                break
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def fill(client: redis.Redis, stream: str, start: int, count: int) -> None:
    for first in range(start, start + count, 1000):
        pipe = client.pipeline(transaction=False)
        for n in range(first, min(start + count, first + 1000)):
            pipe.xadd(stream, {"data": orjson.dumps(make_doc(n).to_dict())})
        pipe.execute()


def count_events(reply: httpx.Response, want: int) -> int:
    seen = 0
    for line in reply.iter_lines():
        if line.startswith("id: "):
            seen += 1
            if seen == want:
                break
    return seen


def catch_up(base: str, stream: str, n: int) -> float:
    started = time.perf_counter()
    with httpx.stream("GET", f"{base}/v1/streams/articles?after=0", timeout=60) as reply:
        got = count_events(reply, n)
    assert got == n
    return n / (time.perf_counter() - started)


def write_all(url: str, stream: str, start: int, count: int, done: Any) -> None:
    """The writer, in a process of its own: documents encoded first, then pipelined XADDs."""
    client = redis.Redis.from_url(url)
    docs = [orjson.dumps(make_doc(n).to_dict()) for n in range(start, start + count)]
    started = time.perf_counter()
    for first in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for data in docs[first : first + 1000]:
            pipe.xadd(stream, {"data": data})
        pipe.execute()
    done.value = count / (time.perf_counter() - started)


def live(base: str, url: str, stream: str, n: int) -> tuple[float, float]:
    """(events/s at the client, entries/s the writer managed)."""
    writer_rate = mp.Value("d", 0.0)
    writer = mp.Process(target=write_all, args=(url, stream, 10_000_000, n, writer_rate))
    with httpx.stream("GET", f"{base}/v1/streams/articles", timeout=60) as reply:
        lines = reply.iter_lines()
        next(lines)  # the opening comment: the client is placed
        writer.start()
        started, seen = None, 0
        for line in lines:
            if line.startswith("id: "):
                started = started or time.perf_counter()
                seen += 1
                if seen == n:
                    break
        elapsed = time.perf_counter() - (started or 0.0)
    writer.join()
    return seen / elapsed, writer_rate.value


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def idle_clients(base: str, pid: int, n: int, paths: list[str]) -> tuple[float, float]:
    port = int(base.rsplit(":", 1)[1])
    before = rss_mb(pid)
    sockets = []
    for i in range(n):
        sock = socket.create_connection(("127.0.0.1", port))
        request = f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        sock.sendall(request.encode())
        sockets.append(sock)
    for sock in sockets:
        sock.recv(4096)  # the headers and the opening comment: the client is being served
    time.sleep(2)
    after = rss_mb(pid)
    for sock in sockets:
        sock.close()
    time.sleep(1)
    return before, after


class Sink(BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        with Sink.lock:
            Sink.count += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def webhooks(
    env: dict[str, str], client: redis.Redis, prefix: str, tmp: Path, n: int, rate: str | None
) -> float:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hooks = tmp / f"webhooks-{rate}.toml"
    extra = f"\nrate = {rate}" if rate else ""
    hooks.write_text(f'[[webhook]]\nname = "bench-{rate or "default"}"\nurl = "http://127.0.0.1:{server.server_port}/"\n'
                     f'streams = ["updates"]\nsecret_env = "BENCH_SECRET"{extra}\n')  # fmt: skip
    stream = f"{prefix}:updates"
    client.delete(stream)
    Sink.count = 0
    env = {**env, "NEWSWIRE_WEBHOOKS": str(hooks), "BENCH_SECRET": "bench"}
    proc = subprocess.Popen([sys.executable, "-m", "newswire.cli", "webhooks"], env=env)
    try:
        while not client.exists(stream):
            time.sleep(0.1)
        time.sleep(0.5)
        fill(client, stream, 0, n)
        started = time.perf_counter()
        while Sink.count < n:
            time.sleep(0.02)
        return n / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(30)
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--idle", type=int, default=100)
    parser.add_argument("--webhook-docs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        server = redisd.start(Path(tmp) / "redis", persistent=False)
        try:
            run(server.url, Path(tmp), args)
        finally:
            server.stop()


def run(url: str, tmp: Path, args: argparse.Namespace) -> None:
    client, prefix = redis.Redis.from_url(url), "bench"
    env, stream = base_env(url, tmp, prefix), f"{prefix}:articles"
    with http_service(env) as (base, pid):
        fill(client, stream, 0, args.events)
        used = cpu_s(pid)
        rate = catch_up(base, stream, args.events)
        per_event = (cpu_s(pid) - used) / args.events * 1e6
        print(f"SSE catch-up, one client, {args.events:,} entries from Redis: {rate:,.0f} events/s "
              f"({rate / EVENTS_TARGET:.1f}x the {EVENTS_TARGET:,}/s target); the server spent "
              f"{per_event:.0f} us CPU per event ({1e6 / per_event:,.0f}/s per core)")  # fmt: skip
        used = cpu_s(pid)
        rate, written = live(base, url, stream, args.events)
        per_event = (cpu_s(pid) - used) / args.events * 1e6
        print(f"SSE live, one client while another process writes {args.events:,} entries "
              f"({written:,.0f}/s): {rate:,.0f} events/s ({rate / EVENTS_TARGET:.1f}x target); the server "
              f"spent {per_event:.0f} us CPU per event ({1e6 / per_event:,.0f}/s per core)")  # fmt: skip
        client.delete(stream)
        topics = [f"/v1/streams/topic:bench-{i}" for i in range(10)]
        for label, paths in (("articles", ["/v1/streams/articles"]), ("10 topic streams", topics)):
            if label != "articles":
                for i in range(10):
                    fill(
                        client, f"{prefix}:topic:bench-{i}", i * 100, 1
                    )  # a topic stream exists once written
            before, after = idle_clients(base, pid, args.idle, paths)
            cost = after - before
            print(f"{args.idle} idle SSE clients on {label}: RSS {before:.1f} -> {after:.1f} MB, "
                  f"+{cost:.1f} MB ({cost / IDLE_TARGET_MB:.2f} of the {IDLE_TARGET_MB:.0f} MB budget; "
                  f"{cost * 1024 / args.idle:.0f} KB per client)")  # fmt: skip
    for rate_setting in (None, "10000"):
        done = webhooks(env, client, prefix, tmp, args.webhook_docs, rate_setting)
        label = (
            "default caps (concurrency 4, rate 20/s)" if rate_setting is None else "rate = 10000 (changed)"
        )
        print(f"webhooks, {args.webhook_docs} documents to a loopback receiver, {label}: {done:,.0f}/s")


if __name__ == "__main__":
    main()
