from pathlib import Path

import pytest
import redis

from ingest.models import Feed
from ingest.registry import (
    FeedsFileError,
    RedisFeedRegistry,
    add_feeds_to_file,
    load_feeds_file,
    parse_opml,
    remove_feed_from_file,
    render_opml,
)

ROOT = Path(__file__).resolve().parents[2]


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


def test_registry_mirrors_the_file_and_remembers_entries(redis_client: redis.Redis, prefix: str) -> None:
    registry = RedisFeedRegistry(redis_client, prefix)
    first = registry.sync([Feed("https://a.test/rss"), Feed("https://b.test/rss", interval=600)])
    assert first.added == ("https://a.test/rss", "https://b.test/rss")
    second = registry.sync([Feed("https://b.test/rss", interval=600)])
    assert (second.added, second.removed) == ((), ("https://a.test/rss",))
    assert registry.get("https://b.test/rss") == Feed("https://b.test/rss", interval=600)

    url = "https://b.test/rss"
    assert registry.unseen_entries(url, ["k1", "k2"]) == [True, True]
    assert registry.mark_new_entries(url, ["k1"]) == [True]
    assert registry.unseen_entries(url, ["k1", "k2"]) == [False, True]
    registry.update_state(url, {"etag": '"v1"', "last_error": None}, count="ok")
    assert registry.state(url) == {"etag": '"v1"', "last_error": "", "n_ok": "1"}
