"""The README's commands, exactly as written, in a fresh clone of the committed HEAD.

A new user clones the repository and types `make run`: no `NEWSWIRE_*` variable (only free ports
for Flower, the exporter and the HTTP service, so parallel runs do not collide), no Redis, no
Docker, no internet. The clone is made in a temporary directory from this repository's HEAD (what
is committed: in a worktree, commit first), so a path that only works from the developer's
checkout or with an absolute data directory fails here. The default feeds file points at the
internet, which these machines cannot reach: that is the fresh machine's case too (every feed
fails, the service keeps running, and the status verdict says so). pip installs from the machine's
own index and cache.

`make run` runs on a pseudo-terminal, as in a shell (its banner and summary line are for a
terminal); Ctrl-C is SIGINT to its process group. Afterwards no process of the clone may be left.
"""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from newswire.redisd import free_port, pid_alive
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SETUP_S = 900.0  # a fresh venv: pip installs every pinned wheel (from the machine's cache or index)
STOP_S = 60.0


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing of this checkout, no NEWSWIRE_* settings."""
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    dropped = ("NEWSWIRE_", "PYTEST_", "PYTHON", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**env, "PATH": path, **extra}


def fresh_clone(parent: Path) -> Path:
    """`git clone` of this repository, checked out at its HEAD commit."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    sha = head.stdout.strip()
    dest = parent / "newswire"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True, timeout=300)
    if run(["git", "checkout", "--quiet", "--detach", sha], dest, user_env()).returncode != 0:
        subprocess.run(["git", "-C", str(dest), "fetch", "--quiet", str(ROOT), sha], check=True, timeout=300)
        subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", "--detach", sha], check=True)
    assert not (dest / ".venv").exists()
    assert not (dest / "var").exists()
    return dest


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_clone(tmp_path_factory.mktemp("fresh-run"))


def processes_of(root: Path) -> list[str]:
    """Live processes whose program, working directory or command line is inside `root`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            places = [os.readlink(entry / "exe"), os.readlink(entry / "cwd"), cmdline]
        except OSError:  # gone meanwhile, or a zombie
            continue
        if any(str(root) in place for place in places):
            found.append(f"{entry.name}: {cmdline}")
    return found


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, output: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}; output so far:\n{output()[-4000:]}"
        )
        time.sleep(1)


class Terminal:
    """A command on a pseudo-terminal, in its own process group (a shell's foreground job)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.buffer = bytearray()
        self.reader = threading.Thread(target=self.pump, daemon=True)
        self.reader.start()

    def pump(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every process holding the terminal is gone
                return
            if not data:
                return
            self.buffer.extend(data)

    def text(self) -> str:
        return self.buffer.decode(errors="replace").replace("\r\n", "\n")

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.reader.join(5)
        os.close(self.master)


@contextlib.contextmanager
def terminal(args: list[str], cwd: Path, env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(args, cwd, env)
    try:
        yield term
    finally:
        term.close()


def flower_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def status_json(clone: Path, env: dict[str, str]) -> dict[str, Any]:
    result = run([".venv/bin/newswire", "status", "--json"], clone, env)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(orjson.loads(result.stdout))


def all_feeds_failed(report: dict[str, Any]) -> bool:
    feeds = report["feeds"]
    return bool(feeds) and feeds["failing"] + feeds["disabled"] == feeds["registered"] > 0


def test_make_run_on_a_fresh_clone_comes_up_is_found_by_the_cli_and_stops_on_ctrl_c(clone: Path) -> None:
    flower_port = free_port()
    ports = {"NEWSWIRE_FLOWER_PORT": flower_port, "NEWSWIRE_METRICS_PORT": free_port()}
    ports["NEWSWIRE_HTTP_PORT"] = free_port()
    env = user_env(**{k: str(v) for k, v in ports.items()})
    cli_env = user_env()  # the CLI is told nothing: it finds the embedded Redis under ./var by itself
    feed_urls = [f["url"] for f in tomllib.loads((clone / "config/feeds.toml").read_text())["feed"]]

    with terminal(["make", "run"], clone, env) as term:
        wait_for(lambda: flower_answers(flower_port), SETUP_S, "Flower to answer", term.text)

        health = wait_for(
            lambda: (r := run([".venv/bin/newswire", "health"], clone, cli_env)).returncode == 0 and r,
            120, "`newswire health` to pass", term.text,
        )  # fmt: skip
        for check in ("redis", "broker", "workers", "schedule"):
            assert f"ok    {check}" in health.stdout, health.stdout

        report = wait_for(
            lambda: all_feeds_failed(r := status_json(clone, cli_env)) and r,
            180,
            "the feeds to fail",
            term.text,
        )
        assert report["redis"].startswith("redis://127.0.0.1:")
        assert report["ok"] is False
        feed_problems = [p for p in report["problems"] if p.startswith("feeds:")]
        assert feed_problems, report["problems"]
        assert f"{len(feed_urls)} of {len(feed_urls)} polled feeds failing" in feed_problems[0]
        assert report["checks"]["workers"]["ok"], report["checks"]
        assert report["checks"]["redis"]["ok"]

        listed = run([".venv/bin/newswire", "feeds", "list"], clone, cli_env)
        assert listed.returncode == 0, listed.stderr[-3000:]
        header, *rows = listed.stdout.splitlines()
        columns = header.split("\t")
        assert columns[:3] == ["health", "name", "url"]
        assert len(rows) == len(feed_urls)
        assert all(len(row.split("\t")) == len(columns) for row in rows), listed.stdout
        assert sorted(row.split("\t")[2] for row in rows) == sorted(feed_urls)
        assert {row.split("\t")[0] for row in rows} <= {"failing", "disabled"}

        wait_for(lambda: "last minute:" in term.text(), 150, "the first summary line", term.text)
        shown = term.text()
        assert "newswire is up; Ctrl-C stops it" in shown
        assert f"(embedded, data in {clone / 'var' / 'redis'})" in shown
        assert f"http://127.0.0.1:{flower_port}/" in shown
        assert f"{len(feed_urls)} in {clone / 'config' / 'feeds.toml'}" in shown
        assert f"{len(feed_urls)} of {len(feed_urls)} feeds failing" in shown

        server = orjson.loads((clone / "var" / "redis" / "server.json").read_bytes())
        term.ctrl_c()
        started = time.monotonic()
        term.proc.wait(STOP_S)
        leftovers = processes_of(clone)
        while leftovers and time.monotonic() - started < STOP_S:
            time.sleep(1)
            leftovers = processes_of(clone)
        assert leftovers == [], term.text()[-4000:]

    assert not pid_alive(server["pid"])
    assert not (clone / "var" / "redis" / "server.json").exists()
    assert not flower_answers(flower_port)
    assert "received SIGINT" in term.text()


def ensure_venv(clone: Path) -> None:
    """The venv `make run` or `make test` creates (created here when this test runs alone)."""
    if not (clone / ".venv" / ".installed-stamp").exists():
        made = run(["make", ".venv/.installed-stamp"], clone, user_env(), timeout=SETUP_S)
        assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]


def test_newswire_demo_in_the_fresh_clone(clone: Path) -> None:
    ensure_venv(clone)
    demo = run([".venv/bin/newswire", "demo"], clone, user_env(), timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    summary = orjson.loads(demo.stdout.strip().splitlines()[-1])
    assert (summary["published"], summary["duplicates"], summary["feeds_failed"]) == (14, 1, 0)
    assert "# ukraine-ceasefire-talks" in demo.stdout  # its tables, as tab-separated lines in a pipe
    assert processes_of(clone) == []


def test_make_test_sets_up_a_fresh_clone(tmp_path: Path) -> None:
    """`make test`'s own set-up (venv, pinned install) and its pytest call, on a small part of the suite:
    the whole suite is what runs this test."""
    fresh = fresh_clone(tmp_path)
    env = user_env(PYTEST_ADDOPTS="tests/unit/config/test_settings.py tests/unit/test_keys.py -q")
    made = run(["make", "test"], fresh, env, timeout=SETUP_S)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert " passed" in made.stdout
    assert (fresh / ".venv" / ".installed-stamp").exists()
    version = run([".venv/bin/newswire", "--version"], fresh, user_env())
    assert version.returncode == 0
    assert "version" in version.stdout
    assert processes_of(fresh) == []
