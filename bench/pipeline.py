"""Pipeline benchmark: `newswire sweep` with default settings on three loopback webs, each against
the extraction limit of its own pages measured in the same run.

    .venv/bin/python bench/pipeline.py [--webs many,few,paced] [--phases limit,newswire,spacing0,profile,peer]
                                       [--env NEWSWIRE_X=V ...] [--json FILE] [--keep]

The webs (bench/corpus_web.py: corpus pages, each source on a loopback address of its own, one
RSS feed per source, ~8% exact copies across sources; read from the corpus at run time only):

- many: 240 sources x 9 pages (2,160 articles): a deployment following many sites, where
  politeness (1 page a second per host) leaves room for more than the CPUs can extract;
- few: 12 sources x 181 pages (2,172 articles): politeness is the bound, pages per host x
  spacing; the sweep's time is printed against it;
- paced: 1 source x 30 pages: each article's latency from the feed's poll to its publish, p50/p95,
  and beyond the politeness bound (the k-th page may not start before poll + k x spacing).

Phases: the limit (`ingest.extract.article.extract_article` alone over the web's pages, one
warmed-up process per core, articles/s); newswire (the real `newswire sweep` CLI with its own
workers, on a fresh private Redis, from the web's first request to the last entry in the articles
and duplicates streams; CPU per process); spacing0 (the same sweep with NEWSWIRE_HOST_SPACING=0, a
changed default, printed next to the default figure: the CPU path alone, many web only); profile
(a sweep with py-spy on the workers, CPU by stage: bench/stages.py); peer (newspaper4k on the same
URLs, bench/peer.py in var/bench-peer-venv). Machine load seen during each phase is printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import stages  # noqa: E402
from bench.corpus_web import CorpusWeb, Item, WebPlan, load_corpus, prerender, write_feeds_file  # noqa: E402
from bench.procs import TreeSampler, wait_for_roles  # noqa: E402
from ingest.extract.article import ExtractionError, extract_article, warm_up  # noqa: E402
from newswire import redisd  # noqa: E402

CORES = os.cpu_count() or 1
PEER_VENV = ROOT / "var" / "bench-peer-venv"
PEER_PACKAGE = "newspaper4k==0.9.6"
PY_SPY = Path(sys.executable).parent / "py-spy"
PAGES: list[tuple[bytes, str]] = []  # (body, url) of every item, shared with the limit's pool by fork


@dataclass
class Measure:
    name: str
    articles: int
    seconds: float
    cpu_s: float = 0.0
    other_load: float = 0.0  # cores used by processes outside the measurement, on average
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.articles / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.articles if self.articles else 0.0


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- 1. the limit -------------------------------------------------------------------------


def extract_one(index: int) -> tuple[float, bool]:
    body, url = PAGES[index]
    start = time.process_time()
    try:
        extract_article(body, url)
        ok = True
    except ExtractionError:
        ok = False
    return time.process_time() - start, ok


def warm_worker() -> None:
    warm_up()
    extract_one(0)


def measure_limit(procs: int) -> Measure:
    with mp.get_context("fork").Pool(procs, initializer=warm_worker) as pool:
        pool.map(time.sleep, [0.2] * procs)  # every worker is up and warm before the clock starts
        busy, start = machine_busy_s(), time.perf_counter()
        results = pool.map(extract_one, range(len(PAGES)), chunksize=4)
        seconds, busy = time.perf_counter() - start, machine_busy_s() - busy
    cpu = sum(r[0] for r in results)
    failed = sum(1 for r in results if not r[1])
    other = max(0.0, busy - cpu) / seconds
    return Measure(
        f"limit: extraction, {procs} processes", len(PAGES), seconds, cpu, other, {"failed": failed}
    )


# --- 2. newswire --------------------------------------------------------------------------


def sweep_env(redis_url: str, feeds: Path, work: Path, overrides: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_REDIS_URL=redis_url,
        NEWSWIRE_FEEDS=str(feeds),
        NEWSWIRE_STREAM_PREFIX=f"bench{uuid.uuid4().hex[:8]}",
        NEWSWIRE_ALLOWED_NETWORKS="127.0.0.0/8",
        NEWSWIRE_DATA_DIR=str(work / "var"),
        PYTHONPATH=str(ROOT),
    )
    env.update(dict(item.split("=", 1) for item in overrides))
    return env


def last_entry_s(client: redis.Redis, prefix: str) -> float:
    """Unix time of the newest entry in the articles and duplicates streams (its stream id)."""
    newest = 0
    for stream in (f"{prefix}:articles", f"{prefix}:duplicates"):
        entries = client.xrevrange(stream, count=1)
        if entries:
            newest = max(newest, int(entries[0][0].split(b"-")[0]))
    return newest / 1000


def publish_times(client: redis.Redis, prefix: str) -> list[float]:
    """Unix times of every entry in the articles and duplicates streams (their stream ids), sorted."""
    stamps = []
    for stream in (f"{prefix}:articles", f"{prefix}:duplicates"):
        stamps += [int(eid.split(b"-")[0]) / 1000 for eid, _ in client.xrange(stream)]
    return sorted(stamps)


def latency(client: redis.Redis, prefix: str, polled: float, spacing: float = 1.0) -> dict[str, float]:
    """From the web's first request (the feed's poll) to each publish; and beyond the politeness
    bound of each: the k-th page (from 0) may start at poll + (k + 2) x spacing, after robots.txt."""
    stamps = publish_times(client, prefix)
    if not stamps or not polled:
        return {}
    waits = [t - polled for t in stamps]
    over = [t - (polled + (k + 2) * spacing) for k, t in enumerate(stamps)]
    return {"n": len(waits), "p50": quantile(waits, 0.5), "p95": quantile(waits, 0.95), "max": max(waits),
            "over_p50": quantile(over, 0.5), "over_p95": quantile(over, 0.95)}  # fmt: skip


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def feed_fallbacks(client: redis.Redis, prefix: str) -> int:
    """Articles whose body came from the feed, not the page (extraction found nothing)."""
    return sum(b'"extraction":"feed"' in f[b"data"] for _, f in client.xrange(f"{prefix}:articles"))


def redis_commands(client: redis.Redis, top: int = 8) -> list[tuple[str, int, float]]:
    """The Redis server's busiest commands of the run: (command, calls, CPU seconds)."""
    stats = client.info("commandstats")
    rows = [(name.removeprefix("cmdstat_"), int(v["calls"]), v["usec"] / 1e6) for name, v in stats.items()]
    return sorted(rows, key=lambda row: -row[2])[:top]


def attach_spies(sweep_pid: int, work: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """py-spy on each worker's main process and its pool processes (on-GIL samples only)."""
    found = wait_for_roles(sweep_pid, ("worker-io", "worker-extract"), 60)
    spies = []
    for role in ("worker-io", "worker-extract"):
        pid = min(found.get(role, [0]))  # the main process starts before its pool children
        out = work / f"pyspy-{role}.txt"
        argv = [str(PY_SPY), "record", "-p", str(pid), "--subprocesses",
                "--gil", "--nonblocking", "--rate", "200", "--format", "raw", "-o", str(out)]  # fmt: skip
        spies.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
    return spies


def run_newswire(
    web: CorpusWeb, feeds: Path, args: argparse.Namespace, profile: bool, extra: tuple[str, ...] = ()
) -> Measure:
    work = Path(tempfile.mkdtemp(prefix="newswire-pipeline-"))
    server = redisd.start(work / "redis", persistent=False)
    env = sweep_env(server.url, feeds, work, [*args.env, *extra])
    client = redis.Redis.from_url(server.url)
    web.reset()
    try:
        return sweep_once(web, env, client, server.pid, work, profile)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def sweep_once(
    web: CorpusWeb, env: dict[str, str], client: redis.Redis, redis_pid: int, work: Path, profile: bool
) -> Measure:
    busy, launched = machine_busy_s(), time.time()
    with (work / "sweep.log").open("wb") as log:
        sweep = subprocess.Popen(
            [sys.executable, "-m", "newswire.cli", "sweep", "--timeout", "900"], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
    tree = TreeSampler(sweep.pid).start()
    others = TreeSampler(redis_pid, extra=[web.pid], with_pss=False).start()
    spies = attach_spies(sweep.pid, work) if profile else []
    out, _ = sweep.communicate(timeout=1000)
    wall = time.time() - launched
    tree.stop()
    others.stop()
    busy = machine_busy_s() - busy
    for spy, _ in spies:
        spy.wait(60)
    return sweep_measure(web, env, client, out, wall, busy, tree, others, spies, work)


def role_label(tree: TreeSampler, pid: int) -> str:
    """The process's role; an extraction worker's pool processes are "worker-extract pool"."""
    sample = tree.last[pid]
    parent = tree.last.get(sample.ppid)
    if parent is not None and parent.role == sample.role:
        return f"{sample.role} pool"
    return sample.role


def sweep_measure(
    web: CorpusWeb, env: dict[str, str], client: redis.Redis, out: bytes, wall: float, busy: float,
    tree: TreeSampler, others: TreeSampler, spies: list[tuple[subprocess.Popen[bytes], Path]], work: Path,
) -> Measure:  # fmt: skip
    lines = out.decode().strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    prefix = env["NEWSWIRE_STREAM_PREFIX"]
    first, last = web.snapshot()["first_request"], last_entry_s(client, prefix)
    window = tree.cpu_since(first)
    cpu_roles: dict[str, float] = {}
    for pid, cpu in window.items():
        role = tree.last[pid].role
        cpu_roles[role] = cpu_roles.get(role, 0.0) + cpu
    side = {others.last[p].role: c for p, c in others.cpu_since(first).items()}
    own = sum(tree.cpu_by_role().values()) + sum(others.cpu_by_role().values())
    notes = {
        "summary": summary, "wall_s": wall, "cpu_by_role": cpu_roles, "side_cpu": side,
        "peak_rss_mb": tree.peak_rss_kb / 1024, "peak_pss_mb": tree.peak_pss_kb / 1024,
        "redis_peak_mb": int(client.info("memory").get("used_memory_peak", 0)) / 2**20,
        "feed_fallbacks": feed_fallbacks(client, prefix), "log": str(work / "sweep.log"),
        "redis_commands": redis_commands(client), "latency": latency(client, prefix, first),
        "env": {k: v for k, v in env.items() if k.startswith("NEWSWIRE_") and "URL" not in k},
    }  # fmt: skip
    if spies:
        samples: dict[int, Any] = {}
        for _, path in spies:
            if path.exists():
                samples.update(stages.read_samples(path))
        roles = {pid: role_label(tree, pid) for pid in tree.last}
        notes["stages"] = stages.breakdown(samples, window, roles)
        notes["spy_files"] = [str(p) for _, p in spies]
    articles = int(summary.get("articles", 0))
    other = max(0.0, busy - own) / wall if wall else 0.0
    cpu = sum(window.values()) + sum(c for r, c in side.items() if r == "valkey-server")  # Redis is ours
    name = "newswire sweep, profiled" if spies else "newswire sweep"
    return Measure(name, articles, max(1e-9, last - first), cpu, other, notes)


# --- 3. the peer --------------------------------------------------------------------------


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_VENV} with {PEER_PACKAGE} (first run only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_PACKAGE], check=True)
    return python


def measure_peer(urls: list[str], procs: int, threads: int) -> Measure:
    work = Path(tempfile.mkdtemp(prefix="newswire-peer-"))
    (work / "urls.txt").write_text("\n".join(urls))
    env = dict(os.environ, TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="", TLDEXTRACT_CACHE=str(work / "tld"))
    argv = [str(peer_python()), str(ROOT / "bench" / "peer.py"), str(work / "urls.txt"),
            "--procs", str(procs), "--threads", str(threads)]  # fmt: skip
    busy, cpu = machine_busy_s(), children_cpu_s()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=3600)
    busy, cpu = machine_busy_s() - busy, children_cpu_s() - cpu
    shutil.rmtree(work, ignore_errors=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = result["end"] - result["start"]
    name = f"peer: newspaper4k {result['version']}, {procs}x{threads} threads"
    notes = {"parsed": result["parsed"], "cpu_in_window_s": result.get("cpu_s", 0.0)}
    other = max(0.0, busy - cpu) / seconds
    return Measure(name, result["articles"], seconds, result.get("cpu_s", cpu), other, notes)


# --- report -------------------------------------------------------------------------------


def print_report(
    web_note: str, limit: Measure | None, ours: Measure | None, peer: Measure | None,
    profiled: Measure | None, zero: Measure | None = None,
) -> None:  # fmt: skip
    print(web_note)
    print(f"{'':<44}{'articles':>9}{'seconds':>9}{'art/s':>8}{'CPU ms/art':>11}{'other load':>11}")
    print("(CPU: the measured processes only; newswire's includes its Redis. Other load: cores the rest of")
    print(" the machine used meanwhile, e.g. other test runs; it slows every figure.)")
    for m in (limit, ours, zero, profiled, peer):
        if m is not None:
            print(
                f"{m.name:<44}{m.articles:>9}{m.seconds:>9.2f}{m.rate:>8.1f}{m.cpu_ms:>11.1f}{m.other_load:>10.2f}c"
            )
    for mine in (ours, zero):
        for other, target in ((limit, "0.85"), (peer, "2")):
            if mine is not None and other is not None and mine.cpu_ms:
                name = other.name.split(":", 1)[0]
                label = "newswire" if mine is ours else "spacing 0"
                print(
                    f"{label} / {name + ':':<7} {mine.rate / other.rate:.3f} in articles/s "
                    f"(target >= {target}); {other.cpu_ms / mine.cpu_ms:.3f} in articles per CPU-second "
                    "(as on an idle machine)"
                )
    for m in (ours, zero, profiled):
        if m is not None:
            print_newswire_notes(m)
    if profiled is not None:
        print_stages(profiled, limit)


def print_newswire_notes(ours: Measure) -> None:
    n = ours.notes
    s = n["summary"]
    print(f"sweep summary: {s.get('published')} published, {s.get('duplicates')} duplicates, "
          f"{s.get('errors')} errors, {n['feed_fallbacks']} bodies from the feed; "
          f"whole command {n['wall_s']:.1f} s (start-up and shut-down included)")  # fmt: skip
    roles = ", ".join(f"{r} {c:.1f}" for r, c in sorted(n["cpu_by_role"].items()))
    side = ", ".join(f"{r} {c:.1f}" for r, c in sorted(n["side_cpu"].items()))
    print(f"CPU s in the window by process: {roles}; outside newswire: {side}")
    per = ours.articles or 1
    cmds = ", ".join(f"{c} {k / per:.1f}x {1000 * t / per:.2f}" for c, k, t in n["redis_commands"])
    print(f"Redis commands per article (calls, CPU ms): {cmds}")
    print(f"peak memory of the newswire processes: RSS {n['peak_rss_mb']:.0f} MiB (sum), "
          f"PSS {n['peak_pss_mb']:.0f} MiB; Redis used_memory_peak {n['redis_peak_mb']:.0f} MiB")  # fmt: skip


def print_stages(profiled: Measure, limit: Measure | None) -> None:
    by_role = profiled.notes.get("stages") or {}
    per = profiled.articles or 1
    roles = sorted(by_role)
    print(f"CPU ms per article by stage and process (py-spy on the workers, {profiled.rate:.1f} art/s):")
    print(f"  {'stage':<14}" + "".join(f"{r:>22}" for r in roles) + f"{'all':>8}{'share':>8}")
    for share in stages.totals(by_role):
        cells = "".join(f"{1000 * by_role[r].get(share.stage, 0.0) / per:>22.2f}" for r in roles)
        print(f"  {share.stage:<14}{cells}{1000 * share.cpu_s / per:>8.2f}{share.share:>8.1%}")
    side = profiled.notes["side_cpu"]
    print("  outside the workers: " + ", ".join(f"{r} {1000 * c / per:.2f}" for r, c in sorted(side.items())))
    if limit is not None:
        print(f"  (extraction alone in the limit run: {limit.cpu_ms:.2f} ms/art)")


WEBS = {
    "many": WebPlan(sources=240, per_source=9),
    "few": WebPlan(sources=12),
    "paced": WebPlan(sources=1, per_source=30, copy_every=0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--webs", default="many,few,paced", help="which webs, comma-separated")
    parser.add_argument("--procs", type=int, default=CORES, help="processes for the limit and the peer")
    parser.add_argument("--peer-threads", type=int, default=10)
    parser.add_argument("--phases", default="limit,newswire,spacing0", help="which to run, comma-separated")
    parser.add_argument("--env", action="append", default=[], help="NEWSWIRE_X=V for every sweep")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep each sweep's log and py-spy files")
    args = parser.parse_args(argv)
    corpus, figures = load_corpus(), {}
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min load average); {CORES} cores; settings: defaults"
          + (f" + {' '.join(args.env)}" if args.env else ""))  # fmt: skip
    for name in args.webs.split(","):
        plan = WEBS[name]
        rendered = prerender(plan, corpus)
        with CorpusWeb(plan, corpus, {(i.source, i.n): body for i, body in rendered}) as web:
            figures[name] = run_web(name, args, web, [i for i, _ in rendered], rendered)
    if args.json:
        args.json.write_text(json.dumps(figures, default=lambda m: m.__dict__))
    return 0


def run_web(
    name: str, args: argparse.Namespace, web: CorpusWeb, items: list[Item], rendered: list[tuple[Item, bytes]]
) -> list[Measure]:
    urls = [web.page_url(i) for i in items]
    PAGES[:] = [(body, url) for (_, body), url in zip(rendered, urls, strict=True)]
    sources = WEBS[name].sources
    copies = sum(1 for i in items if i.dialect % sources != i.source)
    megabytes = sum(len(b) for b, _ in PAGES) / 1e6
    note = (f"\n=== web '{name}': {len(items)} articles under {sources} sources (each its own loopback "
            f"host), {copies} exact copies; {megabytes:.0f} MB of HTML")  # fmt: skip
    feeds_dir = Path(tempfile.mkdtemp(prefix="newswire-feeds-"))
    feeds = write_feeds_file(feeds_dir / "feeds.toml", web)
    phases = set(args.phases.split(","))
    if "profile" in phases and not PY_SPY.exists():
        print(f"no {PY_SPY}: `pip install py-spy==0.4.3` for the CPU breakdown by stage", file=sys.stderr)
        phases.discard("profile")
    limit = measure_limit(args.procs) if "limit" in phases else None
    ours = run_newswire(web, feeds, args, profile=False) if "newswire" in phases else None
    zero = None
    if "spacing0" in phases and name == "many":
        zero = run_newswire(web, feeds, args, profile=False, extra=("NEWSWIRE_HOST_SPACING=0",))
        zero.name = "newswire sweep, NEWSWIRE_HOST_SPACING=0"
    profiled = run_newswire(web, feeds, args, profile=True) if "profile" in phases else None
    peer = measure_peer(urls, args.procs, args.peer_threads) if "peer" in phases else None
    shutil.rmtree(feeds_dir, ignore_errors=True)
    print_report(note, limit, ours, peer, profiled, zero)
    if ours is not None and name == "few":
        print_politeness_bound(ours, items, sources)
    if ours is not None and name == "paced":
        print_latency(ours)
    return [m for m in (limit, ours, zero, profiled, peer) if m is not None]


def print_politeness_bound(ours: Measure, items: list[Item], sources: int) -> None:
    """Pages per host x spacing (1 s, the default), plus the feed poll and robots.txt before them."""
    per_host = max(sum(1 for i in items if i.source == s) for s in range(sources))
    bound = per_host + 2  # each host's requests: the feed, robots.txt, then its pages, a second apart
    print(
        f"politeness bound: {per_host} pages per host + feed + robots.txt, 1 s apart = {bound} s; "
        f"sweep {ours.seconds:.1f} s = {ours.seconds / bound:.3f} x the bound (target <= 1.15)"
    )


def print_latency(ours: Measure) -> None:
    lat = ours.notes.get("latency") or {}
    if lat:
        print(
            f"latency from the feed's poll to publish: p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s, "
            f"max {lat['max']:.2f} s over {lat['n']} articles; beyond the politeness bound (the k-th page "
            f"starts at poll + k x 1 s at the earliest): p50 {lat['over_p50']:.2f} s, "
            f"p95 {lat['over_p95']:.2f} s"
        )


if __name__ == "__main__":
    sys.exit(main())
