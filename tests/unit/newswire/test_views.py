"""The status view and the health verdict, from snapshots written by hand."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from config.settings import load_settings
from ingest.models import Feed
from newswire import views
from newswire.health import (
    FeedOverview,
    Snapshot,
    evaluate,
    feed_lateness,
    feed_row,
    local_worker_name,
    parse_iso,
    summarize_feeds,
)

NOW = 1_800_000_000.0
QUEUES = {"nw.feeds": 0, "nw.articles": 4, "nw.extract": 120}
BOTH = {"io@a": ["nw.articles", "nw.feeds"], "extract@a": ["nw.extract"]}


def iso(stamp: float) -> str:
    from ingest.models import iso_utc  # noqa: PLC0415

    return iso_utc(stamp)


def overview(lateness: tuple[float, ...] = (), failing: int = 0, ok: int = 10) -> FeedOverview:
    counts = {"registered": ok + failing, "ok": ok, "failing": failing, "disabled": 0, "new": 0, "off": 0}
    return FeedOverview(counts, lateness, ())


def snapshot(**changes: object) -> Snapshot:
    base: dict[str, object] = {
        "redis_url": "redis://:secret@r:7379/0", "workers": BOTH, "queues": QUEUES,
        "streams": {"nw:articles": {"length": 12, "groups": {"desk": {"pending": 2, "lag": 3}}}},
        "feeds": overview(),
    }  # fmt: skip
    base.update(changes)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_a_feed_scheduled_in_the_future_is_on_time_whatever_its_last_plan() -> None:
    assert feed_lateness({"next_poll": iso(NOW - 5000)}, NOW + 60, NOW) == 0.0


def test_a_claimed_or_queued_feed_is_late_from_its_planned_time() -> None:
    state = {"next_poll": iso(NOW - 600)}
    assert feed_lateness(state, None, NOW) == pytest.approx(600)  # in flight: not in the due set
    assert feed_lateness(state, NOW - 5, NOW) == pytest.approx(600)  # lease reaped back: still late
    assert feed_lateness({}, NOW - 30, NOW) == pytest.approx(30)  # a new feed: due since it was added
    assert feed_lateness({}, None, NOW) == 0.0


def test_disabled_and_switched_off_feeds_are_never_overdue() -> None:
    state = {"last_status": "gone", "disabled": "1", "next_poll": iso(NOW - 9999), "disabled_reason": "410"}
    row = feed_row(Feed("https://a.example/rss"), state, None, NOW)
    assert (row.health, row.lateness_s, row.last_error) == ("disabled", 0.0, "410")
    assert feed_row(Feed("https://b.example/rss", enabled=False), {}, NOW - 999, NOW).lateness_s == 0.0


def test_summary_counts_health_and_lists_the_worst_failing_feeds_first() -> None:
    rows = [
        feed_row(Feed(f"https://f{i}.example/rss"), {"last_status": "http_500", "consecutive_errors": str(i),
                 "last_error": f"HTTP 500 #{i}"}, NOW + 60, NOW)
        for i in range(1, 8)
    ] + [feed_row(Feed("https://ok.example/rss"), {"last_status": "ok"}, NOW - 120, NOW)]  # fmt: skip
    summary = summarize_feeds(rows)
    assert (summary.counts["failing"], summary.counts["ok"], summary.counts["registered"]) == (7, 1, 8)
    assert [r.errors for r in summary.top_failing] == [7, 6, 5, 4, 3]
    assert (summary.overdue, summary.max_lateness_s) == (1, pytest.approx(120))


def test_healthy_service_passes_every_check() -> None:
    assert all(check.ok for check in evaluate(snapshot(), 900))


@pytest.mark.parametrize(
    ("changes", "failing", "words"),
    [
        ({"redis_error": "unreachable: refused", "workers": None, "feeds": None}, "redis", "refused"),
        ({"workers": {}}, "workers", "no worker answers"),
        ({"workers": {"io@a": BOTH["io@a"]}}, "workers", "no worker consumes nw.extract"),
        ({"feeds": overview(lateness=(4000.0, 3000.0))}, "schedule", "2 of 10 feeds overdue"),
    ],
)
def test_each_failure_names_its_check(changes: dict[str, object], failing: str, words: str) -> None:
    bad = [c for c in evaluate(snapshot(**changes), 900) if not c.ok]
    assert bad[0].name == failing
    assert words in bad[0].detail


def test_one_late_feed_in_ten_is_a_feed_problem_not_a_service_problem() -> None:
    checks = {c.name: c for c in evaluate(snapshot(feeds=overview(lateness=(5000.0,))), 900)}
    assert checks["schedule"].ok


def test_a_worker_container_checks_only_its_own_worker() -> None:
    late = snapshot(feeds=overview(lateness=(9e9,) * 10), workers={"extract@a": ["nw.extract"]})
    assert all(c.ok for c in evaluate(late, 900, worker="extract@a"))
    assert not all(c.ok for c in evaluate(late, 900, worker="io@a"))
    assert local_worker_name("extract@b") == "extract@b"
    assert local_worker_name("extract").startswith("extract@")
    assert local_worker_name("extract", "node-2") == "extract@node-2"


def render(report: dict[str, object]) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    views.print_status(report, as_json=False, out=console)
    return console.export_text()


def test_status_reads_top_down_verdict_first() -> None:
    settings = load_settings({"NEWSWIRE_STREAM_PREFIX": "nw"})
    failing = snapshot(workers={"io@a": BOTH["io@a"]}, feeds=overview(failing=2))
    report = views.status_report(settings, failing, 900)
    text = render(report)
    assert text.index("PROBLEM") < text.index("workers") < text.index("queues") < text.index("streams")
    assert "no worker consumes nw.extract" in text
    assert "extract 120 (no worker)" in text
    assert "2 failing" in text
    assert "secret" not in text
    assert report["queue_consumers"] == {"nw.feeds": ["io@a"], "nw.articles": ["io@a"], "nw.extract": []}
    assert "HEALTHY" in render(views.status_report(settings, snapshot(), 900))


def test_status_shows_the_children_newswire_up_restarted() -> None:
    settings = load_settings({"NEWSWIRE_STREAM_PREFIX": "nw"})
    counters = {"restart:worker-io": 2, "restart:redis": 1, "article:published": 40}
    text = render(views.status_report(settings, snapshot(counters=counters), 900))
    assert "restarts" in text
    assert "redis 1 · worker-io 2" in text
    assert "restarts" not in render(views.status_report(settings, snapshot(), 900))


def test_iso_times_parse_and_junk_does_not() -> None:
    assert parse_iso(iso(NOW)) == NOW
    assert parse_iso("soon") is None
    assert parse_iso("") is None
