"""WebSub against a hub written for the tests: subscription, verification of intent, signed content,
forged pushes, lease expiry, denial and unsubscription, with the real HTTP service on loopback
and a real Redis (the pushes' tasks wait in the broker queue: no worker here)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from config.settings import Settings
from ingest import keys
from ingest.feeds import websub
from ingest.feeds.hints import link_header
from ingest.feeds.poll import commit_push, poll_feed, push_report
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import BACKSTOP_S
from ingest.feeds.websub import RedisWebSub, Subscription
from ingest.fetch.http import Fetcher, FetchOptions, parse_allowed_networks
from ingest.models import Feed
from ingest.ops.progress import RedisStats
from newswire.demo.server import SiteServer
from newswire.http.app import HttpContext, create_app
from newswire.redisd import EmbeddedRedis, free_port
from tests.websub_hub import Forger, Hub

FEED = "http://127.0.0.1:9/news/rss.xml"  # never fetched here
BODY = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Pushed</title>
<item><guid>p1</guid><title>Quay reopens</title><link>http://127.0.0.1:9/news/quay.html</link></item>
</channel></rss>"""
NOW = 1_790_000_000.0


def sub(**changes: object) -> Subscription:
    base = {"sub_id": "s", "feed": FEED, "hub": "h", "topic": "t", "secret": "x", "state": "live",
            "lease_from": NOW - 100, "lease_until": NOW + 900}  # fmt: skip
    return Subscription(**{**base, **changes})  # type: ignore[arg-type]


def test_signatures_sha1_and_sha256_of_the_body() -> None:
    for method in ("sha1", "sha256", "sha512"):
        digest = hmac.new(b"k", b"body", getattr(hashlib, method)).hexdigest()
        assert websub.is_valid_signature("k", b"body", f"{method}={digest}")
        assert websub.is_valid_signature("k", b"body", f"{method.upper()}={digest.upper()}")
        assert not websub.is_valid_signature("k", b"body!", f"{method}={digest}")
        assert not websub.is_valid_signature("other", b"body", f"{method}={digest}")
    for header in (None, "", "sha256", "sha256=", "md5=abc", "=abc"):
        assert not websub.is_valid_signature("k", b"body", header)


def test_what_to_ask_the_hub() -> None:
    advert = ("h", "t")
    assert websub.plan(True, advert, None, NOW) == "subscribe"
    assert websub.plan(True, None, None, NOW) == "none"
    assert websub.plan(False, None, sub(), NOW) == "unsubscribe"
    assert websub.plan(True, None, sub(), NOW) == "unsubscribe"  # the feed stopped advertising its hub
    assert websub.plan(False, None, sub(mode="unsubscribe", mode_until=NOW + 60), NOW) == "none"
    assert websub.plan(False, None, sub(mode="unsubscribe", mode_until=NOW - 1), NOW) == "drop"
    assert websub.plan(True, ("h2", "t"), sub(), NOW) == "replace"
    assert websub.plan(True, advert, sub(), NOW) == "none"
    assert websub.plan(True, advert, sub(lease_until=NOW + 10), NOW) == "renew"  # 80% of the lease gone
    assert websub.plan(True, advert, sub(state="denied"), NOW) == "renew"
    assert (
        websub.plan(True, advert, sub(state="pending", mode="subscribe", mode_until=NOW + 60), NOW) == "none"
    )
    assert (
        websub.plan(True, advert, sub(state="pending", mode="subscribe", mode_until=NOW - 1), NOW) == "renew"
    )
    assert not sub(mode="unsubscribe").is_live(NOW)
    assert not sub(lease_until=NOW - 1).is_live(NOW)


@dataclass
class Service:
    url: str
    settings: Settings
    client: redis.Redis
    store: RedisWebSub
    stats: RedisStats


@pytest.fixture
def service(redis_server: EmbeddedRedis, prefix: str) -> Iterator[Service]:
    port = free_port()
    settings = Settings(
        redis_url=redis_server.url,
        prefix=prefix,
        public_url=f"http://127.0.0.1:{port}",
        max_body_bytes=64 * 1024,
    )
    client = redis.Redis.from_url(redis_server.url)
    app = create_app(HttpContext(settings, client))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield Service(
            settings.public_url or "",
            settings,
            client,
            RedisWebSub(client, prefix),
            RedisStats(client, prefix),
        )
    finally:
        server.should_exit = True
        thread.join(10)


def subscribe(service: Service, hub: Hub, topic: str = FEED) -> Subscription:
    with Fetcher(FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))) as fetcher:
        done = websub.run_plan(service.store, fetcher, FEED, "subscribe", (hub.url, topic), service.url, 3600)
    assert done == "subscribe"
    hub.wait_active(topic, timeout=20)
    found = service.store.for_feed(FEED)
    assert found is not None
    return found


def queued_pushes(service: Service) -> int:
    return int(service.client.llen(f"{service.settings.prefix}.feeds"))


def test_subscribe_verify_and_a_signed_push_is_accepted_and_queued(service: Service) -> None:
    with Hub() as hub:
        record = subscribe(service, hub)
        assert record.state == "live"
        assert record.is_live(time.time())
        form = hub.log.requests[0]
        assert form["hub.callback"] == f"{service.url}/websub/{record.sub_id}"
        assert (form["hub.topic"], form["hub.lease_seconds"]) == (FEED, "3600")
        assert form["hub.secret"] == record.secret
        assert hub.log.verifications == [("subscribe", form["hub.callback"], True)]
        state = service.client.hgetall(keys.feed_state(service.settings.prefix, websub.feed_hash(FEED)))
        assert state[b"websub"] == b"live"

        deliveries = hub.publish(FEED, BODY)
        assert [d.status for d in deliveries] == [202]
        assert queued_pushes(service) == 1
        stored = service.client.keys(f"{service.settings.prefix}:push:*")
        assert [service.client.get(k) for k in stored] == [BODY]
        sha1_hub = Hub(algorithm="sha1")
        sha1_hub.subscriptions = hub.subscriptions
        assert [d.status for d in sha1_hub.publish(FEED, BODY)] == [202]
        assert service.stats.all()["websub:accepted"] == 2


def test_forged_pushes_and_verifications_are_refused_and_counted(service: Service) -> None:
    with Hub() as hub:
        record = subscribe(service, hub)
        forger = Forger(f"{service.url}/websub/{record.sub_id}")
        assert forger.unsigned(BODY) == 403
        assert forger.wrongly_signed(BODY) == [403, 403, 403, 403]
        assert forger.oversized(record.secret, 80 * 1024) == 413  # correctly signed, over the cap
        assert forger.unknown_subscription(BODY) == 404
        verify = f"{service.url}/websub/{record.sub_id}"
        for params in (
            {"hub.mode": "subscribe", "hub.topic": "http://other.test/feed", "hub.challenge": "c"},  # topic
            {"hub.mode": "subscribe", "hub.topic": FEED, "hub.challenge": "c"},  # nothing pending
            {"hub.mode": "unsubscribe", "hub.topic": FEED, "hub.challenge": "c"},
        ):
            assert httpx.get(verify, params=params, timeout=5).status_code == 404
        counts = service.stats.all()
        assert "websub:accepted" not in counts
        assert queued_pushes(service) == 0
        assert counts["websub:refused_unsigned"] == 1
        assert counts["websub:refused_bad_signature"] == 4
        assert counts["websub:refused_too_large"] == 1
        assert counts["websub:refused_unknown"] == 1
        assert counts["websub:refused_verification"] == 3
        assert service.store.get(record.sub_id) == record  # nothing a forger sent changed it


def test_a_lease_ends_on_both_sides_unless_renewed(service: Service) -> None:
    with Hub(max_lease_s=2) as hub:
        record = subscribe(service, hub)
        assert record.lease_until - record.lease_from == 2  # the hub's grant, not what was asked
        assert websub.plan(True, (hub.url, FEED), record, record.lease_from + 1.7) == "renew"
        time.sleep(2.2)
        assert hub.publish(FEED, BODY) == []  # the hub dropped the expired subscription
        digest = hmac.new(record.secret.encode(), BODY, hashlib.sha256).hexdigest()
        late = Forger(f"{service.url}/websub/{record.sub_id}").post(
            BODY, {"X-Hub-Signature": f"sha256={digest}"}
        )
        assert late == 410  # correctly signed, but past the lease
        assert queued_pushes(service) == 0
        with Fetcher(FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))) as fetcher:
            websub.run_plan(service.store, fetcher, FEED, "renew", (hub.url, FEED), service.url, 3600)
        hub.wait_active(FEED, timeout=20)
        renewed = service.store.for_feed(FEED)
        assert renewed is not None
        assert renewed.sub_id == record.sub_id  # the same callback: a renewal
        assert renewed.is_live(time.time())


def test_unsubscribe_and_denial(service: Service) -> None:
    with Hub() as hub:
        record = subscribe(service, hub)
        with Fetcher(FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))) as fetcher:
            websub.run_plan(service.store, fetcher, FEED, "unsubscribe", None, service.url, 3600)
        deadline = time.monotonic() + 20
        while service.store.get(record.sub_id) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.store.get(record.sub_id) is None
        assert hub.active(FEED) == []
        assert hub.log.verifications[-1][0] == "unsubscribe"
        assert hub.publish(FEED, BODY) == []

        other = service.store.create(FEED, hub.url, FEED)
        denied = {"hub.mode": "denied", "hub.topic": FEED, "hub.reason": "not allowed"}
        assert httpx.get(f"{service.url}/websub/{other.sub_id}", params=denied, timeout=5).status_code == 200
        refreshed = service.store.get(other.sub_id)
        assert refreshed is not None
        assert refreshed.state == "denied"


def test_a_hub_on_a_blocked_address_is_not_asked(service: Service) -> None:
    with Hub() as hub, Fetcher(FetchOptions()) as guarded:  # loopback not allowed
        websub.run_plan(service.store, guarded, FEED, "subscribe", (hub.url, FEED), service.url, 3600)
        assert hub.log.requests == []
        record = service.store.for_feed(FEED)
        assert record is not None
        assert record.state == "failed"


def test_a_hub_is_read_from_the_feed_or_its_link_header_and_a_subscribed_feed_is_polled_rarely(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    assert link_header('<https://hub.test/>; rel="hub", <https://x.test/feed>; rel=self') == {
        "hub": "https://hub.test/",
        "self": "https://x.test/feed",
    }
    registry = RedisFeedRegistry(redis_client, prefix)
    with (
        SiteServer(tmp_path) as site,
        Fetcher(FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))) as fetcher,
    ):
        plain = BODY.replace(b"<title>Pushed</title>", b"<title>Plain</title>")
        site.set_route("/rss.xml", body=plain, headers={"Link": '<http://127.0.0.1:9/hub>; rel="hub"'})
        feed = Feed(site.url("/rss.xml"))
        registry.sync([feed])
        report = poll_feed(feed, fetcher, registry)
        assert report.hub is not None
        assert (report.hub.hub, report.hub.topic) == (
            "http://127.0.0.1:9/hub",
            feed.url,
        )  # topic: the URL polled
        assert report.hub_changed
        assert report.next_poll_s < BACKSTOP_S
        registry.update_state(feed.url, {"websub": "live"})
        assert poll_feed(feed, fetcher, registry).next_poll_s >= BACKSTOP_S * 0.9  # a backstop poll only

        registry.remember_entries(feed.url, [f"old{n}" for n in range(40)])
        pushed = push_report(feed, BODY, "application/rss+xml", registry)
        assert [e.link for e in pushed.new_entries] == ["http://127.0.0.1:9/news/quay.html"]
        commit_push(pushed, registry)
        assert registry.unseen_entries(feed.url, ["old0", "old39"]) == [False, False]  # nothing forgotten
        assert push_report(feed, BODY, "application/rss+xml", registry).new_entries == ()
        assert push_report(feed, b"not a feed", "text/plain", registry).outcome == "parse"


def test_what_the_beat_is_handed_hub_changes_removals_renewals_and_retries(
    redis_client: redis.Redis, prefix: str
) -> None:
    now = time.time()  # the record's expiry is real time
    registry, store = RedisFeedRegistry(redis_client, prefix), RedisWebSub(redis_client, prefix)
    registry.sync([Feed(FEED), Feed("https://other.test/rss")])
    registry.note_hub(FEED, "https://hub.test/", FEED)
    assert registry.advertised_hub(FEED) == ("https://hub.test/", FEED)
    assert store.due_feeds(now) == [FEED]
    assert store.due_feeds(now) == []  # handed out once; looked at again an hour later if nothing settles it
    assert store.due_feeds(now + websub.RETRY_S) == [FEED]
    store.settle(FEED)  # no subscription: nothing more to do
    assert store.due_feeds(now + 10 * websub.RETRY_S) == []
    record = store.create(FEED, "https://hub.test/", FEED)
    store.asked(record, "subscribe", now)
    assert store.verify(record.sub_id, "subscribe", FEED, 1000, now + 5)
    assert store.due_feeds(now + 700) == []
    assert store.due_feeds(now + 805) == [FEED]  # renewal due at 80% of the lease
    registry.sync([Feed("https://other.test/rss")])  # the feed left the file
    assert registry.advertised_hub(FEED) is None
    assert store.due_feeds(now + 806) == [FEED]
    assert websub.plan(False, None, store.for_feed(FEED), now + 806) == "unsubscribe"
