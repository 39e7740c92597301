"""Crash recovery on the corpus web with default settings: the measurement of issue 19, repeated.

    .venv/bin/python bench/faults.py [--sources 6] [--items 10] [--at 0.3] [--runs baseline,all-workers,...]

Each run: a fresh data directory, the loopback corpus web (bench/corpus_web.py: `--sources`
sites of `--items` article pages each, one in twelve a syndicated copy of another site's), and
the real `newswire up --no-flower` on its embedded defaults: its own Redis (AOF), every setting
at its default except NEWSWIRE_ALLOWED_NETWORKS=127.0.0.0/8 (the web is on loopback), free ports
and a prefix of its own. Once `--at` of the items are out (published, or recorded as duplicates):

- `baseline`: nothing is killed; the items out then are what the other runs must match;
- `all-workers`: every Celery worker process is SIGKILLed (`newswire up` frozen meanwhile, so it
  does not heal them), then `newswire up` is stopped and started again on the same data, as an
  operator would (what the issue measured: 42 of 60 stories missing 90 s after the restart);
- `io-worker`, `extract-worker`: that worker's main process is SIGKILLed under `newswire up`, and
  nobody restarts anything by hand.

Prints per run: items expected, out, out twice, lost, and seconds from the mark (`--at` of the
items out: the kill, or nothing in the baseline) to the last item out, and for `all-workers`
from the restart to the first and the last item out. The baseline's mark-to-last is what the
rest of the crawl takes anyway (politeness: one request per site per second); times depend on the
machine's load, the counts must not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import redis  # noqa: E402

from bench.corpus_web import CorpusWeb, WebPlan, all_items, load_corpus, write_feeds_file  # noqa: E402
from bench.procs import cmdline_of, descendants, role_of  # noqa: E402
from newswire.redisd import free_port  # noqa: E402

RUNS = ("baseline", "all-workers", "io-worker", "extract-worker")
TIMEOUT_S = 300.0


@dataclass
class Run:
    name: str
    expected: int = 0
    out: int = 0
    twice: int = 0
    lost: int = 0
    mark_to_last_s: float | None = None
    restart_to_first_s: float | None = None
    restart_to_last_s: float | None = None
    seen: frozenset[str] = field(default=frozenset(), repr=False)


def up_env(work: Path, feeds: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_FEEDS=str(feeds), NEWSWIRE_DATA_DIR=str(work / "var"),
        NEWSWIRE_STREAM_PREFIX=f"bf{uuid.uuid4().hex[:8]}", NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8",
        NEWSWIRE_METRICS_PORT=str(free_port()), NEWSWIRE_HTTP_PORT=str(free_port()), PYTHONPATH=str(ROOT),
    )  # fmt: skip
    return env


def start_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "newswire.cli", "up", "--no-flower"], env=env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def client_of(env: dict[str, str], timeout: float = 60.0) -> redis.Redis:
    info = Path(env["NEWSWIRE_DATA_DIR"]) / "redis" / "server.json"
    deadline = time.monotonic() + timeout
    while not info.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return redis.Redis.from_url(json.loads(info.read_text())["url"], socket_timeout=10)


def items_out(client: redis.Redis, prefix: str, wanted: set[str]) -> tuple[Counter[str], list[float]]:
    """How often each item URL is in `articles` or `duplicates`, and when each came out (sorted)."""
    seen: Counter[str] = Counter()
    times = []
    for stream in (f"{prefix}:articles", f"{prefix}:duplicates"):
        for entry_id, fields in client.xrange(stream):
            url = str(orjson.loads(fields[b"data"]).get("url"))
            if url in wanted:
                seen[url] += 1
                times.append(int(entry_id.decode().split("-")[0]) / 1000)
    return seen, sorted(times)


def wait_out(client: redis.Redis, prefix: str, wanted: set[str], share: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(items_out(client, prefix, wanted)[0]) >= share * len(wanted):
                return True
        except redis.RedisError:
            pass
        time.sleep(0.2)
    return False


def workers_of(up: subprocess.Popen[bytes]) -> dict[str, list[int]]:
    """Worker pids under `newswire up` by role; each list starts with the worker's main process."""
    found: dict[str, list[int]] = {}
    for pid in sorted(descendants(up.pid)):
        role = role_of(cmdline_of(pid))
        if role.startswith("worker-"):
            found.setdefault(role, []).append(pid)
    return found


def kill_every_worker(up: subprocess.Popen[bytes]) -> float:
    """Freeze `newswire up`, SIGKILL every worker process, stop `newswire up`; returns the kill time."""
    os.kill(up.pid, signal.SIGSTOP)
    killed = time.time()
    for pids in workers_of(up).values():
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    os.kill(up.pid, signal.SIGTERM)
    os.kill(up.pid, signal.SIGCONT)
    up.wait(120)
    return killed


def one_run(name: str, web: CorpusWeb, wanted: set[str], expected: frozenset[str], args: Any) -> Run:
    work = Path(tempfile.mkdtemp(prefix=f"newswire-faults-{name}-"))
    env = up_env(work, write_feeds_file(work / "feeds.toml", web))
    prefix, log = env["NEWSWIRE_STREAM_PREFIX"], work / "up.log"
    up = start_up(env, log)
    run, restarted = Run(name), None
    try:
        client = client_of(env)
        assert wait_out(client, prefix, wanted, args.at, TIMEOUT_S), f"nothing came out: see {log}"
        mark = time.time()
        if name != "baseline":
            if name == "all-workers":
                mark = kill_every_worker(up)
                restarted = time.time()
                up = start_up(env, log)
                client = client_of(env)
            else:
                os.kill(workers_of(up)[f"worker-{name.split('-', 1)[0]}"][0], signal.SIGKILL)
        target = expected or wanted
        wait_out(client, prefix, set(target), 1.0, TIMEOUT_S if expected else 120.0)
        time.sleep(5)  # anything that would come out twice comes now
        seen, times = items_out(client, prefix, wanted)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
    run.seen = frozenset(seen)
    run.expected = len(expected or run.seen)
    run.out = len(set(seen) & set(expected or run.seen))
    run.twice = sum(n - 1 for n in seen.values())
    run.lost = run.expected - run.out
    run.mark_to_last_s = round(times[-1] - mark, 1) if times else None
    if restarted and times:
        run.restart_to_first_s = round(
            min((t for t in times if t >= restarted), default=times[-1]) - restarted, 1
        )
        run.restart_to_last_s = round(times[-1] - restarted, 1)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return run


COLUMNS = ("run", "expected", "out", "twice", "lost", "mark→last s", "restart→first s", "restart→last s")


def print_table(runs: list[Run], items: int) -> None:
    print(f"\n{items} items on the web; all settings at their defaults (visibility timeout 3600 s, TTL 10 s)")
    print("".join(f"{c:>16}" if i else f"{c:<15}" for i, c in enumerate(COLUMNS)))
    for r in runs:
        cells = [r.name, r.expected, r.out, r.twice, r.lost, r.mark_to_last_s, r.restart_to_first_s,
                 r.restart_to_last_s]  # fmt: skip
        shown = ["" if c is None else f"{c:.1f}" if isinstance(c, float) else str(c) for c in cells]
        print("".join(f"{c:>16}" if i else f"{c:<15}" for i, c in enumerate(shown)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sources", type=int, default=6)
    parser.add_argument("--items", type=int, default=10, help="article pages per source")
    parser.add_argument("--at", type=float, default=0.3, help="share of the items out when the kill comes")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--keep", action="store_true", help="keep each run's data and log")
    args = parser.parse_args(argv)
    corpus = load_corpus()
    plan = WebPlan(sources=args.sources, per_source=args.items)
    runs: list[Run] = []
    with CorpusWeb(plan, corpus) as web:
        wanted = {web.page_url(item) for item in all_items(plan, len(corpus))}
        expected: frozenset[str] = frozenset()
        for name in args.runs.split(","):
            run = one_run(name, web, wanted, expected, args)
            expected = expected or (run.seen if name == "baseline" else frozenset())
            runs.append(run)
            print(f"{name}: {run}", flush=True)
    print_table(runs, len(wanted))
    return 0 if all(r.twice == 0 and r.lost == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
