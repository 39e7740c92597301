"""Each item of a batch task has its own time limit (workers/timelimit.py)."""

from __future__ import annotations

import threading

import pytest

from workers.timelimit import ItemTimeLimitError, time_limit


def spin_forever() -> None:
    n = 0
    while True:
        n += 1


def test_an_item_over_its_limit_is_interrupted_and_the_next_one_runs() -> None:
    with pytest.raises(ItemTimeLimitError), time_limit(0.05):
        spin_forever()
    with time_limit(5):  # the next item: its own limit, not what the last one left
        assert sum(range(1000)) == 499500


def test_off_the_main_thread_an_item_runs_without_its_own_limit() -> None:
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(run_briefly()))
    worker.start()
    worker.join(10)
    assert done == [True]


def run_briefly() -> bool:
    with time_limit(0.001):
        return sum(range(200_000)) > 0
