"""The status verdict beyond health: failing feeds, a growing backlog, consumer lag near retention."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from ingest.ops.backlog import DepthSample
from newswire import views
from newswire.health import FeedOverview, FeedRow, Snapshot, evaluate
from newswire.verdict import Signals, backlog_check, feeds_check, retention_check, service_checks

NOW = 1_800_000_000.0
QUEUES = {"nw.feeds": 0, "nw.articles": 4, "nw.extract": 0}
BOTH = {"io@a": ["nw.articles", "nw.feeds"], "extract@a": ["nw.extract"]}


def overview(ok: int = 0, failing: int = 0, disabled: int = 0, new: int = 0, off: int = 0) -> FeedOverview:
    registered = ok + failing + disabled + new + off
    counts = {
        "registered": registered,
        "ok": ok,
        "failing": failing,
        "disabled": disabled,
        "new": new,
        "off": off,
    }
    rows = tuple(
        FeedRow(f"https://f{i}.example/rss", f"Feed {i}", "failing", 0.0, errors=3, last_status="dns",
                last_error="dns: does not resolve")
        for i in range(min(failing, 5))
    )  # fmt: skip
    return FeedOverview(counts, (), rows)


def test_every_feed_failing_is_a_problem_that_names_the_feeds_and_the_reason() -> None:
    check = feeds_check(overview(failing=14))
    assert not check.ok
    assert check.detail.startswith("14 of 14 polled feeds failing: Feed 0, Feed 1, Feed 2 and 11 more")
    assert "last error of Feed 0: dns: does not resolve" in check.detail
    assert "newswire feeds list" in check.detail


@pytest.mark.parametrize(
    ("feeds", "ok", "words"),
    [
        (overview(ok=6, failing=4), True, "4 of 10 polled feeds failing"),
        (overview(ok=4, failing=4, disabled=1), False, "5 of 9 polled feeds failing"),  # 410s count
        (overview(ok=5, failing=5), True, "5 of 10"),  # half is not most
        (overview(new=3), True, "3 feeds not polled yet"),
        (overview(), False, "no feed registered"),
        (overview(off=2), False, "switched off"),
    ],
)
def test_feeds_check(feeds: FeedOverview, ok: bool, words: str) -> None:
    check = feeds_check(feeds)
    assert (check.ok, words in check.detail) == (ok, True), check


def samples(*points: tuple[float, int]) -> tuple[DepthSample, ...]:
    """(seconds ago, depth of nw.extract) -> samples."""
    return tuple(DepthSample(NOW - ago, {"nw.extract": depth, "nw.feeds": 0}) for ago, depth in points)


def test_a_queue_that_grew_over_two_five_minute_steps_is_a_growing_backlog() -> None:
    history = samples((660, 300), (420, 900), (310, 1500), (60, 2000))
    check = backlog_check({"nw.extract": 2400, "nw.feeds": 0}, history, NOW)
    assert not check.ok
    assert check.detail == "growing: extract 300 → 1,500 → 2,400 in 11 min"


@pytest.mark.parametrize(
    ("history", "depth", "why"),
    [
        (samples((660, 300), (310, 1500)), 1200, "shrinking now"),
        (samples((660, 300), (310, 200)), 900, "a burst after a dip"),
        (samples((660, 10), (310, 40)), 90, "too small to matter"),
        (samples((310, 100)), 5000, "one step of history only"),
        ((), 5000, "no history"),
    ],
)
def test_no_backlog_without_two_steps_of_growth(
    history: tuple[DepthSample, ...], depth: int, why: str
) -> None:
    assert backlog_check({"nw.extract": depth}, history, NOW).ok, why


def test_consumer_lag_near_retention_is_a_problem_with_the_groups_reason() -> None:
    warnings = tuple(f"group 'g{i}' on nw:articles is 900000 entries behind; streams are capped at ~1000000"
                     for i in range(3))  # fmt: skip
    check = retention_check(Signals(NOW, (), warnings))
    assert not check.ok
    assert check.detail.startswith("group 'g0' on nw:articles is 900000 entries behind")
    assert check.detail.endswith("; and 1 more")
    assert retention_check(Signals(NOW)).ok


def snapshot(feeds: FeedOverview) -> Snapshot:
    return Snapshot(redis_url="redis://r:7379/0", workers=BOTH, queues=QUEUES, feeds=feeds)


def test_status_says_what_is_wrong_while_health_still_passes() -> None:
    """The first hour's case: processes fine, every feed failing (no internet)."""
    failing = snapshot(overview(failing=14))
    assert all(c.ok for c in evaluate(failing, 900))  # health: exit 0, the compose healthchecks pass
    report = views.status_report(load_settings({"NEWSWIRE_STREAM_PREFIX": "nw"}), failing, 900, Signals(NOW))
    assert report["ok"] is False
    assert report["problems"] == [f"feeds: {feeds_check(overview(failing=14)).detail}"]
    assert set(report["checks"]) == {
        "redis",
        "broker",
        "workers",
        "schedule",
        "feeds",
        "backlog",
        "retention",
    }
    assert "HEALTHY" not in views.headline(report).plain


def test_without_redis_only_the_health_checks_speak() -> None:
    down = Snapshot(redis_url="redis://r:7379/0", redis_error="unreachable: refused", broker_error="refused")
    settings = load_settings({})
    report = views.status_report(settings, down, 900, None)
    assert [p.split(":")[0] for p in report["problems"]] == ["redis", "broker", "workers"]
    assert [c.name for c in service_checks(snapshot(overview(ok=1)), Signals(NOW))] == [
        "feeds", "backlog", "retention"
    ]  # fmt: skip
