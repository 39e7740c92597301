"""How `newswire up` restarts its children, and when a worker's heartbeat lets it reap (pure parts)."""

from __future__ import annotations

import signal

import pytest

from newswire.service import RestartPolicy, describe_exit
from workers import liveness
from workers.unacked import parse_dead

POLICY = RestartPolicy()


def test_the_backoff_doubles_while_a_child_keeps_crashing_and_is_capped() -> None:
    crashes: list[float] = []
    delays = []
    for at in (0.0, 1.0, 3.0, 7.0, 15.0):
        crashes.append(at)
        delays.append(POLICY.delay(crashes, at))
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert POLICY.delay([float(t) for t in range(9)], 8.0) == POLICY.max_delay_s


def test_a_child_that_ran_long_enough_is_restarted_at_once_again() -> None:
    assert POLICY.delay([0.0, 10.0, 20.0], 20.0) == 4.0
    assert POLICY.delay([0.0, 10.0, 20.0, 500.0], 500.0) == 1.0  # the old crashes left the window


def test_the_fifth_crash_within_the_window_gives_up() -> None:
    assert not POLICY.gives_up([0.0, 1.0, 3.0, 7.0], 7.0)
    assert POLICY.gives_up([0.0, 1.0, 3.0, 7.0, 15.0], 15.0)
    assert not POLICY.gives_up([0.0, 1.0, 3.0, 7.0, 200.0], 200.0)


def test_exits_are_described_as_a_person_reads_them() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(None) == "still running"


class FlakySide(liveness.Side):
    """A side whose beats fail when told to; counts its reaps."""

    name = "test"

    def __init__(self) -> None:
        super().__init__(ttl_s=10.0)
        self.failing = False
        self.reaps = 0

    def beat(self) -> None:
        if self.failing:
            raise ConnectionError("down")

    def reap(self) -> None:
        self.reaps += 1


def test_a_fresh_worker_reaps_at_once() -> None:
    side = FlakySide()
    side.tick(100.0)
    assert side.reaps == 1


def test_after_an_outage_a_worker_waits_a_whole_ttl_before_taking_anyone_for_dead() -> None:
    side = FlakySide()
    side.failing = True
    side.tick(100.0)
    side.tick(102.0)
    side.failing = False
    for now in (104.0, 108.0, 111.9):  # beating again, but the others may not have yet
        side.tick(now)
    assert side.reaps == 0
    side.tick(112.1)
    assert side.reaps == 1


@pytest.mark.parametrize(
    ("flat", "expected"),
    [
        ([], []),
        ([b"a/1", 2, b"t1", b"t2", b"b/1", 0], [("a/1", (b"t1", b"t2")), ("b/1", ())]),
    ],
)
def test_dead_holders_are_read_back_from_the_scripts_flat_reply(
    flat: list[object], expected: list[tuple[str, tuple[bytes, ...]]]
) -> None:
    assert [(d.holder, d.tags) for d in parse_dead(iter(flat))] == expected


def test_a_new_broker_channel_is_a_new_holder_of_the_same_process() -> None:
    first, second = liveness.channel_holder(), liveness.channel_holder()
    assert first != second
    assert first.rsplit("/", 1)[0] == second.rsplit("/", 1)[0] == liveness.process_holder()
