"""What `newswire up` prints on a terminal: the banner and the summary line."""

from __future__ import annotations

from pathlib import Path

from config.settings import load_settings
from newswire.health import FeedOverview
from newswire.redisd import free_port
from newswire.watch import Totals, banner_lines, summary_line, totals_of

ROOT = Path(__file__).resolve().parents[3]


def test_totals_count_polls_by_outcome_and_articles() -> None:
    counters = {
        "poll:ok": 5, "poll:not_modified": 7, "poll:dns": 3, "poll:http_500": 1, "poll:deferred": 40,
        "article:published": 9, "article:duplicate": 2, "article:already": 1, "extract:timeout": 1,
    }  # fmt: skip
    assert totals_of(counters) == Totals(polled=16, poll_failed=4, published=9, duplicates=2)
    assert totals_of({}) == Totals()


def test_the_summary_line_says_what_the_minute_and_the_run_did() -> None:
    counts = {"registered": 15, "ok": 1, "failing": 13, "disabled": 1, "new": 0, "off": 0}
    line = summary_line(
        Totals(14, 14, 0, 0), Totals(28, 27, 3, 1), FeedOverview(counts, (), ()), 1_800_000_000
    )
    assert line == (
        "08:00 UTC · last minute: polled 14 (14 failed) · published 0 · duplicates 0 · "
        "since start: polled 28 (27 failed) · published 3 · duplicates 1 · 14 of 15 feeds failing"
    )
    assert summary_line(Totals(), Totals(), None, 0).endswith("feeds not read")


def test_the_banner_says_where_everything_is_and_how_to_stop(tmp_path: Path) -> None:
    redis_port, flower_port = free_port(), free_port()  # nothing listens: the banner only names them
    env = {
        "NEWSWIRE_REDIS_URL": f"redis://:secret@cache:{redis_port}/0",
        "NEWSWIRE_FLOWER_PORT": str(flower_port),
        "NEWSWIRE_METRICS_PORT": "0", "NEWSWIRE_DATA_DIR": str(tmp_path),
        "NEWSWIRE_FEEDS": str(ROOT / "config" / "feeds.toml"),
        "NEWSWIRE_TOPICS": str(tmp_path / "missing.toml"),
    }  # fmt: skip
    text = "\n".join(banner_lines(load_settings(env), flower=True))
    assert "Ctrl-C stops it" in text
    assert f"redis://:***@cache:{redis_port}/0 (NEWSWIRE_REDIS_URL)" in text
    assert "secret" not in text
    assert f"http://127.0.0.1:{flower_port}/" in text
    assert "metrics" not in text.split("\n", 1)[1].split("look")[0]  # port 0: no exporter line
    assert "http://127.0.0.1:8480/" in text
    assert f"in {ROOT / 'config' / 'feeds.toml'}" in text
    assert "topics   not loaded:" in text
