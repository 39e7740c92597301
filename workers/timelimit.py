"""A time limit for one item of a batch task, in the process that runs it.

Celery's soft time limit covers a whole task; an extraction task carries several pages, and one
slow page must not eat the time of the others. So each page gets its own limit: SIGALRM through
`setitimer`, raised as `ItemTimeLimitError` between Python bytecodes (like Celery's own soft limit,
it cannot interrupt a long C call; the task's hard limit stays the backstop). Signals reach only
the main thread: in a thread pool the item runs without its own limit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class ItemTimeLimitError(Exception):
    """One item ran over its own time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise ItemTimeLimitError(f"over its {seconds:g} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
