"""What every child of `newswire up` (and `newswire worker`) runs with: glibc's malloc arenas capped.

The I/O worker's task and fetch threads each allocate and drop page-sized buffers; with one
malloc arena per thread the freed space stayed spread over a dozen arenas and its RSS kept
growing (docs/performance.md, soak). The child here is a real process with the real environment.
"""

from __future__ import annotations

import ctypes.util
import os
import platform
import re
import subprocess
import sys

import pytest

from config.settings import Settings
from newswire.service import MALLOC_ARENA_MAX, child_env

# 12 threads each keep a few page-sized buffers alive at once (as fetch threads do), then
# glibc's malloc_stats prints one "Arena N:" block per arena in use to stderr
THREADS = """
import ctypes, threading
barrier = threading.Barrier(12)
def work():
    barrier.wait()
    for _ in range(50):
        pages = [bytearray(170_000 + i) for i in range(4)]
        del pages
threads = [threading.Thread(target=work) for _ in range(12)]
[t.start() for t in threads]
[t.join() for t in threads]
ctypes.CDLL("libc.so.6").malloc_stats()
"""

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or ctypes.util.find_library("c") is None, reason="glibc malloc only"
)


def arenas_used(env: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c", THREADS], env=env, capture_output=True, text=True, check=True
    )
    return len(re.findall(r"^Arena \d+:", done.stderr, re.M))


def test_children_run_with_two_malloc_arenas() -> None:
    assert child_env(Settings())["MALLOC_ARENA_MAX"] == MALLOC_ARENA_MAX == "2"


def test_an_operators_own_arena_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert child_env(Settings())["MALLOC_ARENA_MAX"] == "4"


@glibc
def test_a_threaded_child_allocates_in_two_arenas_not_one_per_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    uncapped = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert arenas_used(uncapped) > 2  # what the I/O worker had: an arena per allocating thread
    assert arenas_used(child_env(Settings())) <= 2
