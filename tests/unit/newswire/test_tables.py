"""CLI output in a pipe: one tab-separated row per line after a header, nothing cut (CONTRACT §2)."""

from __future__ import annotations

import io
import sys

import orjson
import pytest
from rich.console import Console

from config.settings import load_settings
from newswire import views
from newswire.health import FeedOverview, FeedRow, Snapshot
from newswire.tables import Column, cell, print_table, tsv_lines
from newswire.verdict import Signals

LONG_ERROR = "connect: " + "the far end said no and then some more words about why " * 4
ROWS = [
    {
        "url": "https://very-long-host-name.example.org/feeds/world/all-the-news-that-fits.xml",
        "name": "The Extremely Long Name Of A Newspaper\twith a tab", "last_status": "connect",
        "last_success": "", "consecutive_errors": "7", "next_poll": "2026-12-07T23:00:00Z",
        "interval_s": "3600", "items_per_day": "", "health": "failing",
        "last_error": LONG_ERROR + "\nline two",
    },
    {
        "url": "https://b.example/rss", "name": "", "last_status": "ok",
        "last_success": "2026-12-07T22:00:00Z", "consecutive_errors": "", "next_poll": "",
        "interval_s": "900", "items_per_day": "12.5", "health": "ok", "last_error": "",
    },
]  # fmt: skip


def test_cells_stay_on_one_line() -> None:
    assert cell("a\tb\r\nc\n\nd") == "a b c d"
    assert cell(None) == ""
    assert cell(3) == "3"


def test_tsv_has_a_header_and_one_full_line_per_row() -> None:
    lines = tsv_lines([Column("a"), Column("b", "B title", width=3)], [["x" * 500, "y\nz"], [1, None]])
    assert lines == ["a\tb", "x" * 500 + "\ty z", "1\t"]


def test_feeds_list_in_a_pipe_names_every_url_and_cuts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    views.print_feeds(ROWS, as_json=False, terminal=False)
    header, *lines = capsys.readouterr().out.splitlines()
    columns = header.split("\t")
    assert columns == [c.header for c in views.FEED_COLUMNS]
    assert len(lines) == 2
    first = dict(zip(columns, lines[0].split("\t"), strict=True))
    assert first["url"] == ROWS[0]["url"]
    assert first["name"] == "The Extremely Long Name Of A Newspaper with a tab"
    assert first["last_error"] == (LONG_ERROR + " line two").strip() or first["last_error"].startswith(
        LONG_ERROR
    )
    assert len(first["last_error"]) > 200
    assert first["interval_s"] == "3600"  # raw values in a pipe, as --json has them
    assert lines[1].split("\t")[2] == "https://b.example/rss"


def test_feeds_list_on_a_terminal_shows_the_url_too(capsys: pytest.CaptureFixture[str]) -> None:
    out = Console(record=True, width=200, file=io.StringIO())
    views.console, saved = out, views.console
    try:
        views.print_feeds(ROWS, as_json=False, terminal=True)
    finally:
        views.console = saved
    text = out.export_text()
    assert "https://b.example/rss" in text
    assert "1h" in text  # the interval as a person reads it
    assert "…" in text  # the long error is cut to fit on a terminal


def test_json_lines_for_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    views.print_feeds(ROWS, as_json=True)
    assert [orjson.loads(line)["url"] for line in capsys.readouterr().out.splitlines()] == [
        r["url"] for r in ROWS
    ]


def test_print_table_decides_by_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert not sys.stdout.isatty()  # captured: a pipe
    print_table([Column("k"), Column("v")], [["a", "b"]], title="things")
    assert capsys.readouterr().out == "# things\nk\tv\na\tb\n"


def test_status_in_a_pipe_is_plain_lines_and_tab_separated_tables(capsys: pytest.CaptureFixture[str]) -> None:
    rows = tuple(
        FeedRow(f"https://f{i}.example/rss", "", "failing", 0.0, 2, "dns", "dns: no") for i in range(3)
    )
    counts = {"registered": 3, "ok": 0, "failing": 3, "disabled": 0, "new": 0, "off": 0}
    snapshot = Snapshot(
        redis_url="redis://r/0", workers={"io@a": ["nw.feeds", "nw.articles"], "extract@a": ["nw.extract"]},
        queues={"nw.feeds": 0, "nw.articles": 0, "nw.extract": 0}, feeds=FeedOverview(counts, (), rows),
        streams={"nw:articles": {"length": 0, "groups": {}}},
    )  # fmt: skip
    report = views.status_report(load_settings({"NEWSWIRE_STREAM_PREFIX": "nw"}), snapshot, 900, Signals(0.0))
    views.print_status(report, as_json=False, terminal=False)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "✘ 1 PROBLEM(S):"
    assert out[2].startswith("  ✘ feeds: 3 of 3 polled feeds failing: https://f0.example/rss")
    assert "# summary" in out
    assert "feeds\t✘\t3 registered: 3 failing · 0 overdue" in out
    failing = out.index("# top failing feeds")
    assert out[failing + 1] == "feed\turl\terrors\tlast_status\tlast_success\terror"
    assert out[failing + 2].split("\t")[1] == "https://f0.example/rss"
    assert not any("[red]" in line for line in out)
