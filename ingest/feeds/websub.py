"""WebSub subscriptions: which feeds to subscribe, the requests to hubs, verification, signatures.

With a public URL (`NEWSWIRE_PUBLIC_URL`), a feed that advertises a hub (`poll.hub_link`) is
subscribed: `hub.mode=subscribe`, `hub.topic`, `hub.callback` = `{public}/websub/{sub_id}`, a
`hub.secret` of its own and `hub.lease_seconds`. A subscription is a hash
`{prefix}:websub:sub:{sub_id}`:

    feed, hub, topic, secret   what was asked for
    state                      pending | live | denied | failed
    mode, mode_until           the request awaiting the hub's verification (subscribe or
                               unsubscribe) and until when a verification is accepted
    lease_from, lease_until    the lease the hub granted (Unix seconds)

The hub's verification GET is answered only for the pending request with the same topic;
content is accepted only for a live subscription, within its lease, with a valid
`X-Hub-Signature` (HMAC of the body with the secret: sha1, sha256, sha384 or sha512). The beat
asks for what is due (`due_feeds`): feeds whose advertised hub changed or that left the feeds
file (`{prefix}:websub:todo`), and subscriptions to renew (at 80% of the lease) or retry
(`{prefix}:websub:due`); `plan` decides, `send_request` talks to the hub.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from ingest import keys
from ingest.feeds.registry import feed_hash
from ingest.fetch.http import FetchError, FetchResult
from ingest.models import iso_utc

log = logging.getLogger("newswire.websub")

LEASE_S = 10 * 86400  # what is asked for; the hub decides
RENEW_SHARE = 0.8  # renew when this much of the lease has passed
VERIFY_WINDOW_S = 3600  # a hub must verify a request within this long
RETRY_S = 3600  # a request that failed (hub down, refused) is tried again after this
DENIED_RETRY_S = 86400  # a hub that denied the subscription is asked again after this
SIGNATURES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
              "sha512": hashlib.sha512}  # fmt: skip
DUE_BATCH = 100  # feeds handed out per tick


class FormPoster(Protocol):
    def post_form(self, url: str, form: dict[str, str]) -> FetchResult: ...


@dataclass(frozen=True, slots=True)
class Subscription:
    sub_id: str
    feed: str
    hub: str
    topic: str
    secret: str
    state: str
    mode: str = ""
    mode_until: float = 0.0
    lease_from: float = 0.0
    lease_until: float = 0.0

    def is_live(self, now: float) -> bool:
        """Content is accepted: verified, within its lease, and not being unsubscribed."""
        return self.state == "live" and self.lease_until > now and self.mode != "unsubscribe"

    @classmethod
    def from_hash(cls, sub_id: str, raw: dict[bytes, bytes]) -> Subscription:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            sub_id=sub_id, feed=data.get("feed", ""), hub=data.get("hub", ""), topic=data.get("topic", ""),
            secret=data.get("secret", ""), state=data.get("state", ""), mode=data.get("mode", ""),
            mode_until=float(data.get("mode_until") or 0), lease_from=float(data.get("lease_from") or 0),
            lease_until=float(data.get("lease_until") or 0),
        )  # fmt: skip


# --- pure decisions ---------------------------------------------------------------------------


def callback_url(public_url: str, sub_id: str) -> str:
    return f"{public_url.rstrip('/')}/websub/{sub_id}"


def is_valid_signature(secret: str, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature: method=hexdigest`, the HMAC of the body with the subscription's secret."""
    method, _, given = (header or "").strip().partition("=")
    digest = SIGNATURES.get(method.strip().lower())
    if digest is None or not given or not secret:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def plan(registered: bool, advertised: tuple[str, str] | None, sub: Subscription | None, now: float) -> str:
    """What to ask the hub now: `subscribe` (a new subscription), `renew`, `unsubscribe`, `replace`
    (unsubscribe the old hub or topic, subscribe the new) or `none`."""
    wanted = registered and advertised is not None
    if sub is None:
        return "subscribe" if wanted else "none"
    if sub.mode == "unsubscribe" and sub.mode_until > now:
        return "none"  # already asked; the hub will verify
    if not wanted:  # asked once; unverified by its deadline, it is dropped here (pushes refused)
        return "unsubscribe" if sub.state in ("live", "pending") and sub.mode != "unsubscribe" else "drop"
    if advertised != (sub.hub, sub.topic):
        return "replace"
    return "renew" if needs_request(sub, now) else "none"


def needs_request(sub: Subscription, now: float) -> bool:
    """Refused or failed before, a verification that never came, or a lease 80% gone."""
    if sub.state in ("denied", "failed") or (sub.state == "pending" and sub.mode_until <= now):
        return True
    return sub.state == "live" and now >= renew_time(sub)


def renew_time(sub: Subscription) -> float:
    """When a live subscription is renewed: at 80% of its lease."""
    return sub.lease_from + RENEW_SHARE * (sub.lease_until - sub.lease_from)


# --- the Redis side ---------------------------------------------------------------------------


class RedisWebSub:
    """Subscriptions by id, the feed -> id index, and what the beat should look at."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix

    def get(self, sub_id: str) -> Subscription | None:
        raw = self.client.hgetall(keys.websub_sub(self.prefix, sub_id))
        return Subscription.from_hash(sub_id, raw) if raw else None

    def for_feed(self, feed_url: str) -> Subscription | None:
        sub_id = self.client.hget(keys.websub_feeds(self.prefix), feed_url)
        return self.get(sub_id.decode()) if sub_id else None

    def create(self, feed_url: str, hub: str, topic: str) -> Subscription:
        sub = Subscription(secrets.token_urlsafe(16), feed_url, hub, topic, secrets.token_hex(24), "pending")
        pipe = self.client.pipeline()
        pipe.hset(keys.websub_sub(self.prefix, sub.sub_id),
                  mapping={"feed": feed_url, "hub": hub, "topic": topic, "secret": sub.secret,
                           "state": "pending"})  # fmt: skip
        pipe.hset(keys.websub_feeds(self.prefix), feed_url, sub.sub_id)
        pipe.execute()
        return sub

    def asked(self, sub: Subscription, mode: str, now: float) -> None:
        """A request was sent: its verification is awaited; if none comes, it is retried."""
        until = now + VERIFY_WINDOW_S
        self.client.hset(keys.websub_sub(self.prefix, sub.sub_id),
                         mapping={"mode": mode, "mode_until": int(until)})  # fmt: skip
        self.schedule(sub.feed, until + 1)
        self.note_feed(sub.feed, state="pending" if sub.state != "live" else "live")

    def failed(self, sub: Subscription, reason: str, now: float, retry_s: float = RETRY_S) -> None:
        state = "live" if sub.is_live(now) else "failed"
        self.client.hset(keys.websub_sub(self.prefix, sub.sub_id),
                         mapping={"state": state, "mode": "", "error": reason[:200]})  # fmt: skip
        self.schedule(sub.feed, now + retry_s)
        self.note_feed(sub.feed, state=state)

    def verify(self, sub_id: str, mode: str, topic: str, lease_s: int | None, now: float) -> bool:
        """The hub's verification of intent: True (echo the challenge) only for the pending
        request of this mode and topic, before its deadline; records the outcome."""
        sub = self.get(sub_id)
        if sub is None or sub.mode != mode or sub.topic != topic or sub.mode_until < now:
            return False
        if mode == "unsubscribe":
            self.drop(sub)
            return True
        lease = lease_s if lease_s and lease_s > 0 else LEASE_S
        until = now + lease
        self.client.hset(keys.websub_sub(self.prefix, sub_id),
                         mapping={"state": "live", "mode": "", "mode_until": 0, "lease_from": int(now),
                                  "lease_until": int(until), "error": ""})  # fmt: skip
        self.client.expireat(keys.websub_sub(self.prefix, sub_id), int(until + 86400))
        self.schedule(sub.feed, now + RENEW_SHARE * lease)
        self.note_feed(sub.feed, state="live", until=until)
        return True

    def deny(self, sub_id: str, topic: str, reason: str, now: float) -> bool:
        """`hub.mode=denied`: the hub refused (or ended) the subscription."""
        sub = self.get(sub_id)
        if sub is None or sub.topic != topic:
            return False
        self.client.hset(keys.websub_sub(self.prefix, sub_id),
                         mapping={"state": "denied", "mode": "", "error": reason[:200]})  # fmt: skip
        self.schedule(sub.feed, now + DENIED_RETRY_S)
        self.note_feed(sub.feed, state="denied")
        return True

    def drop(self, sub: Subscription) -> None:
        pipe = self.client.pipeline()
        pipe.delete(keys.websub_sub(self.prefix, sub.sub_id))
        current = self.client.hget(keys.websub_feeds(self.prefix), sub.feed)
        if current is not None and current.decode() == sub.sub_id:
            pipe.hdel(keys.websub_feeds(self.prefix), sub.feed)
            pipe.zrem(keys.websub_due(self.prefix), sub.feed)
            pipe.hdel(self.state_key(sub.feed), "websub", "websub_until")
        pipe.execute()

    def schedule(self, feed_url: str, at: float) -> None:
        self.client.zadd(keys.websub_due(self.prefix), {feed_url: at})

    def due_feeds(self, now: float, limit: int = DUE_BATCH) -> list[str]:
        """Feeds to look at now (hub changed, removed, renewal or retry due); each is pushed a
        retry time ahead, so a lost task is looked at again (`settle` ends that)."""
        todo = self.client.spop(keys.websub_todo(self.prefix), limit) or []
        due = self.client.zrangebyscore(keys.websub_due(self.prefix), "-inf", now, start=0, num=limit)
        urls = sorted({u.decode() for u in [*todo, *due]})
        if urls:
            self.client.zadd(keys.websub_due(self.prefix), dict.fromkeys(urls, now + RETRY_S))
        return urls

    def settle(self, feed_url: str) -> None:
        """Nothing to do for this feed: without a subscription it needs no look again."""
        if not self.client.hexists(keys.websub_feeds(self.prefix), feed_url):
            self.client.zrem(keys.websub_due(self.prefix), feed_url)

    def state_key(self, feed_url: str) -> str:
        return keys.feed_state(self.prefix, feed_hash(feed_url))

    def note_feed(self, feed_url: str, *, state: str, until: float | None = None) -> None:
        """The subscription's state in the feed's own state hash, for `feeds list` and `status`."""
        fields = {"websub": state, **({"websub_until": iso_utc(until)} if until else {})}
        self.client.hset(self.state_key(feed_url), mapping=fields)


# --- talking to the hub -----------------------------------------------------------------------


def send_request(
    poster: FormPoster, sub: Subscription, mode: str, public_url: str, lease_s: int
) -> str | None:
    """POST a (un)subscription request; None when the hub accepted it (202/204), else why not."""
    form = {"hub.mode": mode, "hub.topic": sub.topic, "hub.callback": callback_url(public_url, sub.sub_id)}
    if mode == "subscribe":
        form.update({"hub.secret": sub.secret, "hub.lease_seconds": str(lease_s)})
    try:
        result = poster.post_form(sub.hub, form)
    except FetchError as exc:
        return f"{exc.kind}: {exc.reason}"
    if result.status in (202, 204):
        return None
    return f"hub answered HTTP {result.status}: {result.body[:120].decode('utf-8', 'replace')}"


def run_plan(
    store: RedisWebSub, poster: FormPoster, feed_url: str, action: str, advertised: tuple[str, str] | None,
    public_url: str, lease_s: int = LEASE_S, now: float | None = None,
) -> str:  # fmt: skip
    """Carry out `plan`'s action for one feed; returns what was done (for logs and counters)."""
    now = now or time.time()
    sub = store.for_feed(feed_url)
    if action == "drop" and sub is not None:
        store.drop(sub)
    if action in ("unsubscribe", "replace") and sub is not None:
        ask(store, poster, sub, "unsubscribe", public_url, lease_s, now)
        if action == "replace":  # the old one winds down alone: verified, or gone after the window
            store.client.hdel(keys.websub_feeds(store.prefix), feed_url)
            store.client.expire(keys.websub_sub(store.prefix, sub.sub_id), VERIFY_WINDOW_S + 60)
    if action in ("subscribe", "replace") and advertised is not None:
        sub = store.create(feed_url, *advertised)
    if action in ("subscribe", "replace", "renew") and sub is not None:
        ask(store, poster, sub, "subscribe", public_url, lease_s, now)
    return action


def ask(
    store: RedisWebSub, poster: FormPoster, sub: Subscription, mode: str, public_url: str, lease_s: int,
    now: float,
) -> None:  # fmt: skip
    problem = send_request(poster, sub, mode, public_url, lease_s)
    fields = {"feed_url": sub.feed, "stage": "websub", "outcome": mode if problem is None else "failed"}
    if problem is None:
        store.asked(sub, mode, now)
        log.info("asked %s to %s %s", sub.hub, mode, sub.topic, extra=fields)
    else:
        store.failed(sub, problem, now)
        log.warning("hub request failed: %s %s: %s", mode, sub.hub, problem, extra=fields)
