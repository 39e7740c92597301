import redis

from ingest.feeds.registry import (
    SEEN_MIN,
    RedisFeedRegistry,
    apply_moves,
    decode_feed,
    encode_feed,
    seen_capacity,
)
from ingest.models import Feed


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
