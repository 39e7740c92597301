"""I/O concurrency candidates for the page fetcher: a thread pool, or gevent greenlets.

    .venv/bin/python bench/iopool.py [--requests 2000] [--concurrency 16,64,256] [--delay 0.2]

A loopback server (asyncio, its own process) answers every request after `--delay` seconds, as a
real site does, with a 60 KB page. Each candidate runs in a fresh process and fetches `--requests`
pages through the project's own `ingest.fetch.http.Fetcher` (the address guard included, one
client per worker), `--concurrency` at once: threads (`concurrent.futures.ThreadPoolExecutor`) or
gevent (`gevent.monkey.patch_all()` first, then the same executor, whose threads become
greenlets: Celery's `-P gevent` patches the same way). Prints requests/s against the bound
(concurrency / delay) and CPU ms per request of the fetching process. gevent is not a dependency
of newswire: `pip install gevent` to measure it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = b"<html><body>" + b"<p>words and more words</p>" * 2200 + b"</body></html>"


async def serve(delay: float) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(delay)
                head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(BODY)}\r\n\r\n"
                writer.write(head.encode() + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def fetch_all(runtime: str, url: str, requests: int, concurrency: int) -> dict[str, float]:
    if runtime == "gevent":
        from gevent import monkey  # noqa: PLC0415

        monkey.patch_all()
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    sys.path.insert(0, str(ROOT))
    from ingest.fetch.http import Fetcher, FetchOptions, parse_allowed_networks  # noqa: PLC0415

    options = FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))
    local = threading.local()

    def get(_: int) -> int:
        fetcher = getattr(local, "fetcher", None)
        if fetcher is None:
            fetcher = local.fetcher = Fetcher(options)
        return fetcher.get(url).status

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(get, range(concurrency)))  # every worker and its client exist before the clock
        wall, cpu = time.perf_counter(), time.process_time()
        statuses = list(pool.map(get, range(requests)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"ok": statuses.count(200), "wall_s": wall, "cpu_ms": 1000 * cpu / requests}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="16,64,256")
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        runtime, url, requests, concurrency = args.child
        print(json.dumps(fetch_all(runtime, url, int(requests), int(concurrency))))
        return 0
    code = f"import asyncio, bench.iopool as b; asyncio.run(b.serve({args.delay}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, env=env)
    assert server.stdout is not None
    url = f"http://127.0.0.1:{int(server.stdout.readline())}/page.html"
    print(f"load {os.getloadavg()[0]:.2f}; {args.requests} requests, each answered after {args.delay} s")
    print(f"{'runtime':<8}{'at once':>8}{'req/s':>9}{'bound':>9}{'CPU ms/req':>12}")
    try:
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            for runtime in ("threads", "gevent"):
                child = [
                    sys.executable,
                    __file__,
                    "--child",
                    runtime,
                    url,
                    str(args.requests),
                    str(concurrency),
                ]
                done = subprocess.run(child, capture_output=True, text=True, check=False, cwd=ROOT)
                if done.returncode != 0:
                    print(f"{runtime:<8}{concurrency:>8}  failed: {done.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                bound = concurrency / args.delay
                rate = r["ok"] / r["wall_s"]
                print(f"{runtime:<8}{concurrency:>8}{rate:>9.1f}{bound:>9.0f}{r['cpu_ms']:>12.2f}")
    finally:
        server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
