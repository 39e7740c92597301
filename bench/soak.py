"""Memory soak: `newswire up` against a loopback news web where new articles keep appearing.

    .venv/bin/python bench/soak.py [--minutes 60] [--rate 1] [--sources 12] [--every 30]

Starts a private Redis (newswire.redisd, no persistence) and the corpus web of
bench/corpus_web.py releasing `rate` new articles per second across its sources (each
feed polled every `--interval` seconds), runs the real `newswire up --no-flower` on them
for the given time, and samples the RSS of every worker process (the I/O worker, the
extraction worker and its pool processes, beat) every `--every` seconds. Prints the
RSS per process role at 5 minutes, once warm (`--warmup` minutes: lxml's and the date
parsers' caches fill in the first ~12 minutes) and at the end, the growth from warm to
end, the articles published, and the memory backstops of workers/app.py. A pool process
that was replaced (worker_max_tasks_per_child / worker_max_memory_per_child) shows as a
new pid. The samples are written to --out as JSON lines; `--report FILE` reprints them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.corpus_web import CorpusWeb, WebPlan, load_corpus, write_feeds_file  # noqa: E402
from bench.procs import ProcSample, sample_tree  # noqa: E402
from config.settings import Settings  # noqa: E402
from newswire import redisd  # noqa: E402
from workers.app import celery_config  # noqa: E402

WORKER_ROLES = ("worker-io", "worker-extract", "beat")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1.0, help="new articles per second, whole web")
    parser.add_argument("--sources", type=int, default=12)
    parser.add_argument("--interval", type=int, default=60, help="seconds between polls of a feed (>= 60)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--warmup", type=float, default=15.0, help="minutes until the workers count as warm")
    parser.add_argument("--report", type=Path, help="only print the report of an earlier run's samples file")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "soak-samples.jsonl")
    return parser.parse_args(argv)


def soak_env(redis_url: str, feeds: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_REDIS_URL=redis_url,
        NEWSWIRE_FEEDS=str(feeds),
        NEWSWIRE_STREAM_PREFIX=f"soak{uuid.uuid4().hex[:8]}",
        NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8",
        NEWSWIRE_DATA_DIR=str(data_dir),
        NEWSWIRE_METRICS_PORT="0",
        NEWSWIRE_HTTP_PORT="0",  # off: its default port is fixed, and another run may hold it
        PYTHONPATH=str(ROOT),
    )
    return env


def start_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "newswire.cli", "up", "--no-flower"], env=env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def worker_samples(up_pid: int, roles: dict[int, str]) -> list[ProcSample]:
    return [s for s in sample_tree(up_pid, roles, with_pss=False) if s.role in WORKER_ROLES]


def label(s: ProcSample, samples: list[ProcSample]) -> str:
    """worker-extract's pool processes are children of worker-extract."""
    parent_roles = {p.pid: p.role for p in samples}
    if s.role == "worker-extract" and parent_roles.get(s.ppid) == "worker-extract":
        return "worker-extract pool"
    return s.role


def by_label(samples: list[ProcSample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        key = label(s, samples)
        out[key] = out.get(key, 0) + s.rss_kb
    return out


def published(client: redis.Redis, prefix: str) -> int:
    return int(client.xlen(f"{prefix}:articles")) + int(client.xlen(f"{prefix}:duplicates"))


def run_soak(args: argparse.Namespace, work: Path) -> bool:
    server = redisd.start(work / "redis", persistent=False)
    plan = WebPlan(sources=args.sources, rate=args.rate, feed_items=50)
    web = CorpusWeb(plan, load_corpus())
    env = soak_env(server.url, write_feeds_file(work / "feeds.toml", web, args.interval), work / "var")
    up = start_up(env, work / "up.log")
    client = redis.Redis.from_url(server.url)
    try:
        return sample_loop(args, up, client, env["NEWSWIRE_STREAM_PREFIX"])
    finally:
        stop_up(up)
        web.close()
        server.stop()


def sample_loop(
    args: argparse.Namespace, up: subprocess.Popen[bytes], client: redis.Redis, prefix: str
) -> bool:
    """Sample until the time is up (True) or `newswire up` exits (False); rows go to args.out."""
    started, roles = time.monotonic(), {}  # type: ignore[var-annotated]
    end = started + args.minutes * 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as out:
        while time.monotonic() < end and up.poll() is None:
            samples = worker_samples(up.pid, roles)
            row = sample_row(samples, time.monotonic() - started, published(client, prefix))
            out.write(json.dumps(row) + "\n")
            out.flush()
            time.sleep(args.every)
    return up.poll() is None


def sample_row(samples: list[ProcSample], elapsed: float, articles: int) -> dict[str, object]:
    return {
        "t_s": round(elapsed),
        "articles": articles,
        "rss_kb": by_label(samples),
        "total_rss_kb": sum(s.rss_kb for s in samples),
        "pids": {str(s.pid): label(s, samples) for s in samples},
    }


def stop_up(up: subprocess.Popen[bytes]) -> None:
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)


def print_report(rows: list[dict[str, Any]], args: argparse.Namespace, ran_through: bool) -> None:
    config = celery_config(Settings())
    print(f"soak: {args.minutes:g} min, {args.rate:g} new articles/s over {args.sources} sources")
    print(f"backstops: worker_max_tasks_per_child={config['worker_max_tasks_per_child']}, "
          f"worker_max_memory_per_child={config['worker_max_memory_per_child']} KiB")  # fmt: skip
    marks = [row_at(rows, 300), row_at(rows, args.warmup * 60), rows[-1]] if rows else []
    if len(marks) < 3 or marks[1] is None or marks[0] is None:
        print("too few samples to compare")
        return
    start, warm, end = marks[0], marks[1], marks[2]
    print(f"RSS MiB at {start['t_s']} s (start), {warm['t_s']} s (warmed up), {end['t_s']} s (end):")
    print(f"  {'process':<22}{'start':>9}{'warm':>9}{'end':>9}{'end/warm':>10}")
    for key in sorted(set(warm["rss_kb"]) | set(end["rss_kb"])):
        cells = [m["rss_kb"].get(key, 0) / 1024 for m in (start, warm, end)]
        print(f"  {key:<22}" + "".join(f"{c:>9.1f}" for c in cells) + f"{growth(cells[1], cells[2]):>+10.1%}")
    cells = [m["total_rss_kb"] / 1024 for m in (start, warm, end)]
    print(
        f"  {'all workers':<22}"
        + "".join(f"{c:>9.1f}" for c in cells)
        + f"{growth(cells[1], cells[2]):>+10.1%}"
    )
    peak = max(r["total_rss_kb"] for r in rows) / 1024
    print(
        f"peak of the sum: {peak:.1f} MiB; articles published: {warm['articles']} when warm,"
        f" {end['articles']} at the end"
    )
    replaced = set(end["pids"]) - set(warm["pids"])
    print(f"processes replaced after the warm-up (max tasks/memory per child): {len(replaced)}")
    print(f"newswire up ran through: {ran_through}")


def row_at(rows: list[dict[str, Any]], seconds: float) -> dict[str, Any] | None:
    return next((r for r in rows if r["t_s"] >= seconds), None)


def growth(before: float, after: float) -> float:
    return (after - before) / before if before else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ran_through = True
    if args.report is None:
        work = Path(tempfile.mkdtemp(prefix="newswire-soak-"))
        ran_through = run_soak(args, work)
        print(f"logs of newswire up: {work / 'up.log'}")
    source = args.report or args.out
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    print_report(rows, args, ran_through)
    return 0


if __name__ == "__main__":
    sys.exit(main())
