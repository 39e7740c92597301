from pathlib import Path

import pytest
import redis

from ingest.feeds.registry import (
    SEEN_MIN,
    FeedsFileError,
    RedisFeedRegistry,
    add_feeds_to_file,
    apply_moves,
    decode_feed,
    encode_feed,
    load_feeds_file,
    parse_opml,
    remove_feed_from_file,
    render_opml,
    replace_feed_url_in_file,
    seen_capacity,
)
from ingest.models import Feed

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
    registry.update_state("https://a.test/rss", {"etag": '"x"'})
    second = registry.sync([Feed("https://b.test/rss", interval=600)])
    assert (second.added, second.removed) == ((), ("https://a.test/rss",))
    assert registry.get("https://b.test/rss") == Feed("https://b.test/rss", interval=600)
    assert registry.state("https://a.test/rss") == {}  # a feed that left the file starts afresh if re-added

    url = "https://b.test/rss"
    assert registry.unseen_entries(url, ["k1", "k2"]) == [True, True]
    assert registry.remember_entries(url, ["k1"]) == 1
    assert registry.unseen_entries(url, ["k1", "k2"]) == [False, True]
    registry.update_state(url, {"etag": '"v1"', "last_error": "boom"}, count="ok")
    registry.update_state(url, {"last_error": None, "title": ""}, count="ok")
    assert registry.state(url) == {"etag": '"v1"', "n_ok": "2"}  # empty values are deleted, not stored


def test_seen_entries_survive_reordering_and_dropping_out_up_to_the_capacity(
    redis_client: redis.Redis, prefix: str
) -> None:
    registry = RedisFeedRegistry(redis_client, prefix)
    url = "https://c.test/rss"
    window = [f"k{i}" for i in range(10)]
    registry.remember_entries(url, window)
    registry.remember_entries(url, list(reversed(window[5:])))  # k0-k4 dropped out of the feed
    assert registry.unseen_entries(url, window) == [False] * 10
    for i in range(10, 10 + seen_capacity(1) - 5):  # more entries come and go, one at a time
        registry.remember_entries(url, [f"k{i}"])
    assert registry.unseen_entries(url, ["k0", "k4", "k9"]) == [True, True, False]  # the oldest are forgotten
    pinned = ["pinned", *(f"n{i}" for i in range(3 * SEEN_MIN))]
    registry.remember_entries(url, pinned)
    assert registry.unseen_entries(url, ["pinned"]) == [False]  # still in the feed: never forgotten


def test_a_moved_feed_keeps_config_state_and_seen_entries(redis_client: redis.Redis, prefix: str) -> None:
    registry = RedisFeedRegistry(redis_client, prefix)
    old, new = "http://d.test/rss", "https://d.test/rss"
    registry.sync([Feed(old, "D", 900, robots=False)])
    registry.update_state(old, {"etag": '"e"'}, count="ok")
    registry.remember_entries(old, ["k1"])
    registry.move_feed(old, new)
    assert registry.urls() == [new]
    assert registry.get(new) == Feed(new, "D", 900, robots=False)
    assert registry.state(new) == {"etag": '"e"', "n_ok": "1"}
    assert registry.unseen_entries(new, ["k1"]) == [False]
    assert registry.state(old) == {}
    assert registry.moves() == {old: new}
    assert apply_moves([Feed(old, "D"), Feed("https://e.test/rss")], registry.moves()) == [
        Feed(new, "D"),
        Feed("https://e.test/rss"),
    ]


def test_a_move_onto_a_feed_already_registered_drops_the_old_one(
    redis_client: redis.Redis, prefix: str
) -> None:
    registry = RedisFeedRegistry(redis_client, prefix)
    registry.sync([Feed("https://f.test/old"), Feed("https://f.test/new", "New")])
    registry.update_state("https://f.test/old", {"etag": '"old"'})
    registry.move_feed("https://f.test/old", "https://f.test/new")
    assert registry.all() == [Feed("https://f.test/new", "New")]
    assert registry.state("https://f.test/old") == {}


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


def test_feed_config_is_stored_without_url_or_defaults() -> None:
    assert encode_feed(Feed("https://j.test/rss")) == b"{}"
    assert encode_feed(Feed("https://j.test/rss", "J", robots=False)) == b'{"name":"J","robots":false}'
    assert decode_feed("https://j.test/rss", b'{"name":"J","robots":false}') == Feed(
        "https://j.test/rss", "J", robots=False
    )


def test_many_feeds_states_are_read_in_chunks(redis_client: redis.Redis, prefix: str) -> None:
    registry = RedisFeedRegistry(redis_client, prefix)
    urls = [f"https://feeds{n}.test/rss" for n in range(5)]
    registry.sync(Feed(url=u) for u in urls)
    registry.update_state(urls[3], {"last_status": "200", "title": "Desk 3"})
    states = registry.states(urls, chunk=2)
    assert [s.get("last_status") for s in states] == [None, None, None, "200", None]
    assert states[3] == registry.state(urls[3])
