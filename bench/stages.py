"""Where a newswire run's CPU goes, by pipeline stage, from py-spy samples of its workers.

py-spy (`record --format raw --subprocesses --gil`) writes one line per distinct stack:
`process PID:"cmd";frame;...;frame COUNT`, frames as `function (path:line)`, root first.
A sample belongs to the innermost frame whose file names a stage (a newswire module or
a library only that stage uses); frames of shared plumbing (redis-py, json, logging,
threading, the standard library) are skipped on the way up, so a Redis call made by the
publish script counts as publishing and one made by Celery as Celery. Samples under no
stage are Celery's (kombu, billiard, the task protocol, the broker round trips).
Each process's samples are scaled to the CPU time /proc measured for it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

FRAME_FILE = re.compile(r"\(([^()]*?)(?::\d+)?\)$")
PROCESS = re.compile(r"^process (\d+):")
STAGES = ("fetch", "parse", "extract", "dedup", "tag", "publish", "document", "metrics+logs", "tracking",
          "celery")  # fmt: skip
RULES: tuple[tuple[str, str], ...] = (
    # newswire's own modules first: innermost wins, so order only matters within one frame
    ("/ingest/fetch/", "fetch"), ("/httpx/", "fetch"), ("/httpcore/", "fetch"), ("/h11/", "fetch"),
    ("/brotli", "fetch"), ("/charset_normalizer/", "fetch"), ("/ssl.py", "fetch"),
    ("/ingest/feeds/", "parse"), ("/feedparser/", "parse"), ("/sgmllib", "parse"),
    ("/ingest/extract/", "extract"), ("/trafilatura/", "extract"), ("/htmldate/", "extract"),
    ("/lxml/", "extract"), ("/justext/", "extract"),
    ("/courlan/", "extract"), ("/dateparser/", "extract"), ("/py3langid/", "extract"),
    ("/lxml_html_clean/", "extract"), ("/tld/", "extract"), ("/dateutil/", "extract"),
    ("/ingest/dedup/", "dedup"), ("/numpy/", "dedup"),
    ("/ingest/tag/", "tag"),
    ("/ingest/streams/publish.py", "publish"),
    ("/ingest/pipeline.py", "document"), ("/ingest/models.py", "document"),
    ("/ingest/ops/metrics.py", "metrics+logs"), ("/workers/signals.py", "metrics+logs"),
    ("/config/logs.py", "metrics+logs"), ("/logging/", "metrics+logs"),
    ("/ingest/ops/progress.py", "tracking"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageShare:
    stage: str
    cpu_s: float
    share: float  # of all sampled worker CPU


def stage_of(frames: list[str]) -> str:
    """The stage of one stack (root first): the innermost frame that names a stage."""
    for frame in reversed(frames):
        match = FRAME_FILE.search(frame)
        path = "/" + (match.group(1) if match else frame)  # py-spy names files from the import root
        for needle, stage in RULES:
            if needle in path:
                return stage
    return "celery"


def read_samples(path: Path) -> dict[int, Counter[str]]:
    """Samples per process and stage, from one py-spy raw file."""
    out: dict[int, Counter[str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        pid, frames = split_process(stack.split(";"))
        out.setdefault(pid, Counter())[stage_of(frames)] += int(count)
    return out


def split_process(frames: list[str]) -> tuple[int, list[str]]:
    """(pid, Python frames): a pool process's stack starts with its parent's and its own name."""
    pid, first = 0, 0
    for i, frame in enumerate(frames):
        match = PROCESS.match(frame)
        if match is None:
            break
        pid, first = int(match.group(1)), i + 1
    return pid, frames[first:]


def breakdown(
    samples: dict[int, Counter[str]], cpu_by_pid: dict[int, float], role_of: dict[int, str]
) -> dict[str, dict[str, float]]:
    """CPU seconds by process role and stage: each process's samples scaled to its measured CPU."""
    out: dict[str, dict[str, float]] = {}
    for pid, counts in samples.items():
        total = sum(counts.values())
        cpu = cpu_by_pid.get(pid, 0.0)
        row = out.setdefault(role_of.get(pid, "?"), dict.fromkeys(STAGES, 0.0))
        for stage, n in counts.items():
            row[stage] += cpu * n / total if total else 0.0
    return out


def totals(by_role: dict[str, dict[str, float]]) -> list[StageShare]:
    seconds = {s: sum(row.get(s, 0.0) for row in by_role.values()) for s in STAGES}
    whole = sum(seconds.values()) or 1.0
    return [StageShare(s, seconds[s], seconds[s] / whole) for s in STAGES if seconds[s] > 0]


def top_frames(path: Path, stage: str, limit: int = 12) -> list[tuple[str, int]]:
    """The innermost newswire/Celery frames where one stage's samples sit (for finding overhead)."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = split_process(stack.split(";"))[1]
        if stage_of(frames) == stage:
            counts[frames[-1] if frames else "?"] += int(count)
    return counts.most_common(limit)
