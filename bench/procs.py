"""Process trees from /proc: who is running under a pid, their CPU time and memory, sampled.

Used by bench/pipeline.py and bench/soak.py to account for every process of a newswire run
(the CLI, the Celery workers and their pool children) without touching the processes.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    pid: int
    ppid: int
    role: str
    cpu_s: float  # user + system
    rss_kb: int
    hwm_kb: int  # peak RSS of the process so far
    pss_kb: int  # proportional share (shared pages split between the processes sharing them)


def parent_map() -> dict[int, int]:
    """pid -> parent pid, for every process visible now."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = int(stat[1])
    return parents


def read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/pid/stat after the command name (state is [0], ppid [1])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def descendants(root: int, parents: dict[int, int] | None = None) -> list[int]:
    """`root` and every process below it."""
    parents = parent_map() if parents is None else parents
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in parents or pid == root:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def role_of(cmdline: str) -> str:
    """A short name for a newswire process, from its command line."""
    if " worker " in f" {cmdline} ":
        pool = "extract" if "extract" in cmdline.split("-Q", 1)[-1].split(maxsplit=1)[0] else "io"
        return f"worker-{pool}"
    for word in ("beat", "flower", "metrics", "sweep", " up", "valkey-server", "py-spy"):
        if word in cmdline:
            return word.strip()
    return Path(cmdline.split(" ", 1)[0]).name or "?"


def cmdline_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def status_kb(pid: int, keys: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    out = dict.fromkeys(keys, 0)
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, _, value = line.partition(":")
        if name in out:
            out[name] = int(value.split()[0])
    return out


def pss_kb(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith("Pss:")), 0)


def sample(
    pid: int, parents: dict[int, int], roles: dict[int, str], with_pss: bool = True
) -> ProcSample | None:
    stat = read_stat(pid)
    if stat is None:
        return None
    if pid not in roles:
        roles[pid] = role_of(cmdline_of(pid))
    mem = status_kb(pid)
    cpu = (int(stat[11]) + int(stat[12])) / TICKS
    pss = pss_kb(pid) if with_pss else 0
    return ProcSample(pid, parents.get(pid, 0), roles[pid], cpu, mem["VmRSS"], mem["VmHWM"], pss)


def sample_tree(root: int, roles: dict[int, str], with_pss: bool = True) -> list[ProcSample]:
    parents = parent_map()
    found = (sample(pid, parents, roles, with_pss) for pid in descendants(root, parents))
    return [s for s in found if s is not None]


@dataclass
class TreeSampler:
    """Samples a process tree in a thread: the last CPU time and peak memory of every process
    seen, and the peak of the tree's summed RSS and PSS."""

    root: int
    every_s: float = 0.5
    extra: list[int] = field(default_factory=list)  # more roots (e.g. the Redis server)
    last: dict[int, ProcSample] = field(default_factory=dict)
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    roles: dict[int, str] = field(default_factory=dict)
    with_pss: bool = True
    history: list[tuple[float, dict[int, float]]] = field(default_factory=list)  # (time, cpu by pid)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.take()
            self._stop.wait(self.every_s)

    def take(self) -> list[ProcSample]:
        now = [s for root in (self.root, *self.extra) for s in sample_tree(root, self.roles, self.with_pss)]
        for s in now:
            self.last[s.pid] = s
        self.history.append((time.time(), {s.pid: s.cpu_s for s in now}))
        self.peak_rss_kb = max(self.peak_rss_kb, sum(s.rss_kb for s in now))
        self.peak_pss_kb = max(self.peak_pss_kb, sum(s.pss_kb for s in now))
        return now

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.last.values():
            out[s.role] = out.get(s.role, 0.0) + s.cpu_s
        return out

    def cpu_since(self, since: float) -> dict[int, float]:
        """CPU seconds of each process after `since` (Unix time), from the last sample before it."""
        before = next((cpu for t, cpu in reversed(self.history) if t <= since), {})
        return {pid: s.cpu_s - before.get(pid, 0.0) for pid, s in self.last.items()}

    def pids(self, role: str) -> list[int]:
        return [s.pid for s in self.last.values() if s.role == role]


def wait_for_roles(root: int, roles: tuple[str, ...], timeout: float) -> dict[str, list[int]]:
    """The pids of the wanted roles under `root`, once each role has at least one process."""
    deadline = time.monotonic() + timeout
    seen: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        parents = parent_map()
        seen = {}
        for pid in descendants(root, parents):
            seen.setdefault(role_of(cmdline_of(pid)), []).append(pid)
        if all(seen.get(r) for r in roles):
            return seen
        time.sleep(0.05)
    return seen
