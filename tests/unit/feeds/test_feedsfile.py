"""The feeds file: loading and checking it, OPML, and editing it in place."""

from pathlib import Path

import pytest

from ingest.feeds.feedsfile import (
    FeedsFileError,
    add_feeds_to_file,
    load_feeds_file,
    parse_opml,
    remove_feed_from_file,
    render_opml,
    replace_feed_url_in_file,
)
from ingest.models import Feed

ROOT = Path(__file__).resolve().parents[3]


def test_default_feeds_file_loads_every_entry() -> None:
    feeds = load_feeds_file(ROOT / "config" / "feeds.toml")
    assert len(feeds) >= 12
    assert all(f.url.startswith("https://") and f.name for f in feeds)


def test_invalid_entries_fail_with_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[[feed]]\nurl = "https://ok.test/rss"\n\n[[feed]]\nurl = "ftp://bad.test/rss"\n')
    with pytest.raises(FeedsFileError, match=r"feeds.toml: feed #2: url must be an http\(s\) URL"):
        load_feeds_file(path)
    path.write_text('[[feed]]\nurl = "https://ok.test/rss"\nintervall = 60\n')
    with pytest.raises(FeedsFileError, match="unknown key"):
        load_feeds_file(path)
    path.write_text("[[feed]\n")
    with pytest.raises(FeedsFileError, match=r"feeds\.toml"):
        load_feeds_file(path)


def test_add_and_remove_keep_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('# my feeds\n[[feed]]\nurl = "https://a.test/rss"\nname = "A"\n')
    added = add_feeds_to_file(
        path, [Feed("https://b.test/rss", 'B "quoted"', 900), Feed("https://a.test/rss")]
    )
    assert [f.url for f in added] == ["https://b.test/rss"]
    assert [f.name for f in load_feeds_file(path)] == ["A", 'B "quoted"']
    assert remove_feed_from_file(path, "https://a.test/rss")
    assert not remove_feed_from_file(path, "https://nope.test/rss")
    text = path.read_text()
    assert text.startswith("# my feeds")
    assert [f.url for f in load_feeds_file(path)] == ["https://b.test/rss"]


def test_opml_round_trip_and_hostile_opml_refused() -> None:
    feeds = [Feed("https://a.test/rss", "A & Co"), Feed("https://b.test/atom", None)]
    parsed = parse_opml(render_opml(feeds).encode())
    assert [(f.url, f.name) for f in parsed] == [
        ("https://a.test/rss", "A & Co"),
        ("https://b.test/atom", "https://b.test/atom"),
    ]
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body/></opml>'
    with pytest.raises(FeedsFileError, match="DOCTYPE"):
        parse_opml(bomb)


def test_the_feeds_file_follows_a_move_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '# mine\n[[feed]]\nurl = "http://g.test/rss"  # old\nname = "G"\nrobots = false\n\n'
        '[[feed]]\nurl = "https://h.test/rss"\n'
    )
    assert replace_feed_url_in_file(path, "http://g.test/rss", "https://g.test/rss")
    assert load_feeds_file(path) == [
        Feed("https://g.test/rss", "G", robots=False),
        Feed("https://h.test/rss"),
    ]
    assert path.read_text().startswith("# mine\n")
    assert not replace_feed_url_in_file(path, "http://nope.test/rss", "https://nope.test/rss")
    assert replace_feed_url_in_file(path, "https://g.test/rss", "https://h.test/rss")  # onto an existing feed
    assert load_feeds_file(path) == [Feed("https://h.test/rss")]


def test_robots_and_enabled_keys_are_read_written_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    add_feeds_to_file(path, [Feed("https://i.test/rss", robots=False, enabled=False)])
    assert "robots = false" in path.read_text()
    assert load_feeds_file(path) == [Feed("https://i.test/rss", robots=False, enabled=False)]
    path.write_text('[[feed]]\nurl = "https://i.test/rss"\nrobots = "no"\n')
    with pytest.raises(FeedsFileError, match="robots must be true or false"):
        load_feeds_file(path)
