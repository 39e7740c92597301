"""Polling one feed against a loopback site and a real Redis: status handling, validators, identity."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
import redis

from ingest.feeds.feedsfile import load_feeds_file
from ingest.feeds.poll import (
    MOVE_AFTER,
    PollReport,
    commit_poll,
    permanent_target,
    poll_feed,
    publisher_hint,
    register_feeds,
    retry_after_seconds,
    track_redirect,
)
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import MAX_BACKOFF_S, RedisSchedule
from ingest.fetch.http import Fetcher, FetchOptions, parse_allowed_networks
from ingest.fetch.politeness import HostPolicy, PoliteFetcher, RedisHostLimiter, host_of
from ingest.models import Feed
from newswire.demo.server import SiteServer

LOOPBACK = parse_allowed_networks("127.0.0.0/8")


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchOptions(allowed_networks=LOOPBACK, total_timeout=1.0)) as client:
        yield client


@pytest.fixture
def registry(redis_client: redis.Redis, prefix: str) -> RedisFeedRegistry:
    return RedisFeedRegistry(redis_client, prefix)


@pytest.fixture
def schedule(redis_client: redis.Redis, prefix: str) -> RedisSchedule:
    return RedisSchedule(redis_client, prefix)


def rss(*items: str) -> bytes:
    """An RSS document with one item per GUID, in the order given."""
    body = "".join(
        f"<item><guid>{g}</guid><title>Story {g}</title><link>https://news.test/{g}</link></item>"
        for g in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


def poll_once(
    feed: Feed, fetcher: Fetcher | PoliteFetcher, registry: RedisFeedRegistry, schedule: RedisSchedule,
    feeds_path: Path | None = None,
) -> PollReport:  # fmt: skip
    report = poll_feed(feed, fetcher, registry)
    commit_poll(report, registry, schedule, feeds_path=feeds_path)
    return report


def guids(report: PollReport) -> list[str]:
    """The GUIDs of the new entries, as written in `rss` (feedparser makes GUIDs absolute URLs)."""
    return [e.title.removeprefix("Story ") for e in report.new_entries]


def test_validators_are_stored_and_sent_back_for_a_304(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    feed = Feed(site.url("/news/rss.xml"))
    first = poll_once(feed, fetcher, registry, schedule)
    assert (first.outcome, len(first.new_entries)) == ("ok", 3)
    assert all(e.feed_url == feed.url for e in first.entries)
    state = registry.state(feed.url)
    assert state["etag"]
    assert state["last_modified"]

    second = poll_once(feed, fetcher, registry, schedule)
    assert (second.outcome, second.new_entries) == ("not_modified", ())
    request = site.requests_for("/news/rss.xml")[-1]
    assert (request.headers["If-None-Match"], request.status) == (state["etag"], 304)
    state = registry.state(feed.url)
    assert (state["n_ok"], state["n_not_modified"], state["last_status"]) == ("1", "1", "not_modified")


def test_entries_seen_never_come_back_after_reorder_drop_and_readd(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    feed = Feed(site.url("/shuffled.xml"))
    documents = [("a", "b", "c"), ("c", "b", "a"), ("b", "c"), ("d", "a", "b", "c"), ("a",), ("e", "d", "c")]
    new = []
    for items in documents:
        site.set_route("/shuffled.xml", body=rss(*items), headers={"Content-Type": "application/rss+xml"})
        new.append(guids(poll_once(feed, fetcher, registry, schedule)))
    assert new == [["a", "b", "c"], [], [], ["d"], [], ["e"]]


def test_a_server_without_validators_is_compared_by_body_hash(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    feed = Feed(site.url("/plain.xml"))
    site.set_route("/plain.xml", body=rss("a"), headers={"Content-Type": "application/rss+xml"})
    assert poll_once(feed, fetcher, registry, schedule).outcome == "ok"
    assert poll_once(feed, fetcher, registry, schedule).outcome == "not_modified"
    assert "If-None-Match" not in site.requests_for("/plain.xml")[-1].headers
    site.set_route("/plain.xml", body=rss("a", "b"), headers={"Content-Type": "application/rss+xml"})
    changed = poll_once(feed, fetcher, registry, schedule)
    assert (changed.outcome, guids(changed)) == ("ok", ["b"])


@pytest.mark.parametrize(
    ("status", "retry_after", "wait_s"), [(429, "7200", 7200), (503, "date", 5400), (429, None, 3600)]
)
def test_rate_limited_feeds_are_not_polled_again_before_they_were_told(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule,
    status: int, retry_after: str | None, wait_s: int,
) -> None:  # fmt: skip
    if retry_after == "date":
        retry_after = formatdate(time.time() + wait_s + 2, usegmt=True)
    headers = {"Retry-After": retry_after} if retry_after else {}
    site.set_route("/busy.xml", status=status, headers=headers)
    feed = Feed(site.url("/busy.xml"), interval=300)
    registry.sync([feed])
    schedule.add(feed.url, 0)
    started = time.time()
    assert schedule.claim_due(started) == [feed.url]
    assert poll_once(feed, fetcher, registry, schedule).outcome == "rate_limited"
    assert schedule.claim_due(started + wait_s - 5) == []
    assert schedule.claim_due(started + wait_s * 1.1 + 5) == [feed.url]
    state = registry.state(feed.url)
    assert (state["n_rate_limited"], state["consecutive_errors"]) == ("1", "1")


def test_failing_feeds_back_off_capped_and_are_never_given_up(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    site.set_route("/flaky.xml", status=500)
    feed = Feed(site.url("/flaky.xml"))
    registry.sync([feed])
    schedule.add(feed.url, 0)
    waits = []
    for _ in range(12):
        before = time.time()
        assert poll_once(feed, fetcher, registry, schedule).outcome == "http_500"
        waits.append((schedule.next_poll(feed.url) or 0) - before)
    assert waits[3] > waits[0]
    assert max(waits) <= MAX_BACKOFF_S * 1.1 + 1
    state = registry.state(feed.url)
    assert (state["n_http_500"], state["consecutive_errors"], state["last_error"]) == ("12", "12", "HTTP 500")
    site.set_route("/flaky.xml", body=rss("a"), headers={"Content-Type": "application/rss+xml"})
    recovered = poll_once(feed, fetcher, registry, schedule)
    assert (recovered.outcome, registry.state(feed.url).get("consecutive_errors")) == ("ok", None)


def test_missing_and_slow_feeds_count_their_own_outcome(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    site.set_route("/slow.xml", body=rss("a"), delay=2.0)
    for path, outcome in (("/missing.xml", "http_404"), ("/slow.xml", "timeout")):
        feed = Feed(site.url(path))
        register_feeds([feed], registry, schedule)
        assert poll_once(feed, fetcher, registry, schedule).outcome == outcome
        assert registry.state(feed.url)[f"n_{outcome}"] == "1"
        assert schedule.next_poll(feed.url) is not None


def test_gone_feeds_are_disabled_with_their_reason(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    site.set_route("/gone.xml", status=410)
    feed = Feed(site.url("/gone.xml"))
    register_feeds([feed], registry, schedule)
    assert poll_once(feed, fetcher, registry, schedule).outcome == "gone"
    state = registry.state(feed.url)
    assert state["disabled"] == "1"
    assert "410" in state["disabled_reason"]
    assert schedule.next_poll(feed.url) is None
    register_feeds([feed], registry, schedule)  # the feeds file still lists it: it stays disabled
    assert schedule.next_poll(feed.url) is None


def test_a_permanent_redirect_moves_the_feed_after_three_polls_keeping_its_state(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule, tmp_path: Path
) -> None:
    site.set_route("/old/rss.xml", status=301, headers={"Location": "{{BASE}}/news/rss.xml"})
    old, new = site.url("/old/rss.xml"), site.url("/news/rss.xml")
    feeds_path = tmp_path / "feeds.toml"
    feeds_path.write_text(f'# mine\n[[feed]]\nurl = "{old}"\nname = "Moved"\ninterval = 600\n')
    register_feeds(load_feeds_file(feeds_path), registry, schedule)
    for n in range(1, MOVE_AFTER + 1):
        report = poll_once(Feed(old, "Moved", 600), fetcher, registry, schedule, feeds_path)
        assert report.outcome in {"ok", "not_modified"}
        assert (registry.get(old) is None) is (n == MOVE_AFTER)
    assert registry.get(new) == Feed(new, "Moved", 600)
    assert registry.state(new)["n_ok"] == "1"  # the state came along
    assert (schedule.next_poll(old), schedule.next_poll(new) is not None) == (None, True)
    assert [f.url for f in load_feeds_file(feeds_path)] == [new]
    assert feeds_path.read_text().startswith("# mine\n")

    site.clear_requests()
    after = poll_once(registry.get(new) or Feed(new), fetcher, registry, schedule, feeds_path)
    assert (after.outcome, after.new_entries) == ("not_modified", ())  # validators and seen entries kept
    assert [r.path for r in site.requests] == ["/news/rss.xml"]


def test_temporary_redirects_never_move_the_feed(
    site: SiteServer, fetcher: Fetcher, registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    site.set_route("/moving/rss.xml", status=302, headers={"Location": "{{BASE}}/news/rss.xml"})
    feed = Feed(site.url("/moving/rss.xml"))
    registry.sync([feed])
    for _ in range(MOVE_AFTER + 2):
        assert poll_once(feed, fetcher, registry, schedule).moved_to is None
    assert registry.get(feed.url) == feed


def test_redirect_tracking_needs_the_same_permanent_target_in_a_row() -> None:
    hop = ((301, "https://new.test/rss"),)
    state: dict[str, str] = {}
    moved = []
    for redirects in (hop, hop, (), hop, hop, ((308, "https://other.test/rss"),), hop, hop, hop):
        target, fields = track_redirect(state, redirects)
        state = {k: str(v) for k, v in fields.items() if v is not None}
        moved.append(target)
    assert moved == [None] * 8 + ["https://new.test/rss"]
    assert permanent_target(((301, "https://a.test/"), (302, "https://b.test/"))) == "https://a.test/"
    assert permanent_target(((307, "https://a.test/"), (301, "https://b.test/"))) is None


def test_a_busy_host_defers_the_poll_without_counting_an_error(
    site: SiteServer, fetcher: Fetcher, redis_client: redis.Redis, prefix: str,
    registry: RedisFeedRegistry, schedule: RedisSchedule,
) -> None:  # fmt: skip
    limiter = RedisHostLimiter(redis_client, prefix, HostPolicy(max_concurrent=1, min_spacing_s=0))
    feed = Feed(site.url("/news/rss.xml"))
    registry.sync([feed])
    schedule.add(feed.url, 0)
    assert schedule.claim_due(time.time()) == [feed.url]
    limiter.acquire(host_of(feed.url), "another-worker", max_wait_s=0)
    started = time.time()
    report = poll_once(feed, PoliteFetcher(fetcher, limiter, max_wait_s=0.1), registry, schedule)
    assert report.outcome == "deferred"
    assert site.requests_for("/news/rss.xml") == []
    assert started + 1 < (schedule.next_poll(feed.url) or 0) < started + 60
    assert registry.state(feed.url) == {"n_deferred": "1"}  # no error, no status: nothing happened


def test_publisher_hints_and_retry_after_parse_both_forms() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(formatdate(now + 900, usegmt=True), now) == 900
    assert retry_after_seconds("soon") is None
    headers = {"cache-control": "public, max-age=1800"}
    assert publisher_hint(headers, 600, now) == 1800
    dated = {"expires": formatdate(now + 7200, usegmt=True), "date": formatdate(now, usegmt=True)}
    assert publisher_hint(dated, None, now + 50_000) == 7200  # relative to the response's Date
    assert publisher_hint({}, None, now) is None


def test_register_feeds_skips_disabled_feeds_and_follows_moves(
    registry: RedisFeedRegistry, schedule: RedisSchedule
) -> None:
    feeds = [
        Feed("https://a.test/rss"),
        Feed("https://b.test/rss"),
        Feed("https://c.test/rss", enabled=False),
    ]
    register_feeds(feeds, registry, schedule, now=100)
    registry.update_state("https://b.test/rss", {"disabled": "1"})
    registry.move_feed("https://a.test/rss", "https://a.test/feed")  # a worker saw it move; file not edited
    register_feeds(feeds, registry, schedule, now=200)
    assert sorted(registry.urls()) == ["https://a.test/feed", "https://b.test/rss", "https://c.test/rss"]
    assert schedule.claim_due(300) == ["https://a.test/feed"]
