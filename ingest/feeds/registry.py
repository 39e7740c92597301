"""The feed registry: each feed's state in Redis.

The feeds file (`feedsfile.py`) is the source of truth for which feeds exist; Redis holds a
mirror of it plus what polling learned (validators, health, counters) and the
entries each feed has shown. The Redis layout is kept small (under 1 KB per
feed, see docs/polling.md): one field per feed in `{prefix}:feeds` (its config
without the URL or defaults), a state hash `{prefix}:feed:{hash}` of short text
values (so it stays a compact listpack), and a string `{prefix}:seen:{hash}` of
6-byte digests of the entry keys the feed has shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson
import redis

from ingest import keys, lua
from ingest.feeds.feedsfile import unique_feeds
from ingest.models import ExtractRules, Feed, FetchProfile

DIGEST_BYTES = 6  # per remembered entry; 48 bits keep false "seen" matches below 1e-12 per entry
SEEN_MIN = 32  # a feed remembers at least this many entry keys, and twice its current entries


def feed_hash(url: str) -> str:
    return hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:16]


def hub_signature(hub: str | None, topic: str | None) -> str:
    """A short stand-in for the advertised hub and topic in the feed's state ("-" for none)."""
    if not hub:
        return "-"
    return hashlib.sha1(f"{hub} {topic}".encode(), usedforsecurity=False).hexdigest()[:12]


def entry_digest(key: str) -> bytes:
    """What the seen-set stores for one entry key: 6 bytes instead of a 20-character string."""
    return hashlib.sha1(key.encode(), usedforsecurity=False).digest()[:DIGEST_BYTES]


def split_digests(blob: bytes) -> list[bytes]:
    return [blob[i : i + DIGEST_BYTES] for i in range(0, len(blob), DIGEST_BYTES)]


def unseen_in(seen: frozenset[bytes], keys: list[str]) -> list[bool]:
    return [entry_digest(k) not in seen for k in keys]


def seen_capacity(entries: int) -> int:
    """How many entry keys a feed remembers: its current entries, and as many that dropped out."""
    return max(SEEN_MIN, 2 * entries)


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: tuple[str, ...]
    removed: tuple[str, ...]


class RedisFeedRegistry:
    """Registered feeds (hash url -> config), a state hash per feed and its seen-entry digests."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.key = keys.feeds(prefix)
        self.moved_key = keys.feed_moves(prefix)
        self._remember = lua.register(client, "ingest.feeds", "remember.lua")
        self._move = lua.register(client, "ingest.feeds", "move.lua")

    def sync(self, feeds: Iterable[Feed]) -> SyncResult:
        """Mirror the feeds file; feeds that left it lose their state (a re-added feed starts afresh)."""
        wanted = {f.url: f for f in feeds}
        current = set(self.urls())
        removed = tuple(sorted(current - set(wanted)))
        pipe = self.client.pipeline()
        if wanted:
            pipe.hset(self.key, mapping={u: encode_feed(f) for u, f in wanted.items()})
        if removed:
            pipe.hdel(self.key, *removed)
            pipe.delete(*[k for url in removed for k in (self.state_key(url), self.seen_key(url))])
            pipe.hdel(keys.websub_hubs(self.prefix), *removed)
            pipe.sadd(keys.websub_todo(self.prefix), *removed)  # a subscription of theirs ends
        pipe.execute()
        return SyncResult(added=tuple(sorted(set(wanted) - current)), removed=removed)

    def urls(self) -> list[str]:
        return [u.decode() for u in self.client.hkeys(self.key)]

    def get(self, url: str) -> Feed | None:
        raw = self.client.hget(self.key, url)
        return decode_feed(url, raw) if raw else None

    def all(self) -> list[Feed]:
        return [decode_feed(u.decode(), v) for u, v in self.client.hgetall(self.key).items()]

    def state_key(self, url: str) -> str:
        return keys.feed_state(self.prefix, feed_hash(url))

    def seen_key(self, url: str) -> str:
        return keys.feed_seen(self.prefix, feed_hash(url))

    def state(self, url: str) -> dict[str, str]:
        raw = self.client.hgetall(self.state_key(url))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def states(self, urls: list[str], chunk: int = 1000) -> list[dict[str, str]]:
        """`state` of many feeds, a pipelined round trip per `chunk` of them (100k feeds: ~100)."""
        out: list[dict[str, str]] = []
        for start in range(0, len(urls), chunk):
            pipe = self.client.pipeline(transaction=False)
            for url in urls[start : start + chunk]:
                pipe.hgetall(self.state_key(url))
            out += [{k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute()]
        return out

    def read(self, url: str) -> tuple[dict[str, str], frozenset[bytes]]:
        """The feed's state and the digests of the entries it remembers, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.state_key(url))
        pipe.get(self.seen_key(url))
        raw, blob = pipe.execute()
        state = {k.decode(): v.decode() for k, v in raw.items()}
        return state, frozenset(split_digests(blob or b""))

    def disabled(self, urls: list[str]) -> set[str]:
        """Which of `urls` polling disabled (410 Gone), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for url in urls:
            pipe.hexists(self.state_key(url), "disabled")
        return {url for url, flag in zip(urls, pipe.execute(), strict=True) if flag}

    def update_state(self, url: str, fields: dict[str, Any], *, count: str | None = None) -> None:
        """Set fields; a None or empty value deletes the field (an empty field still costs memory)."""
        key = self.state_key(url)
        keep = {k: str(v) for k, v in fields.items() if v is not None and v != ""}
        drop = [k for k in fields if k not in keep]
        pipe = self.client.pipeline()
        if keep:
            pipe.hset(key, mapping=keep)
        if drop:
            pipe.hdel(key, *drop)
        if count:
            pipe.hincrby(key, f"n_{count}", 1)
        pipe.execute()

    def unseen_entries(self, url: str, keys: list[str]) -> list[bool]:
        """True for each entry key this feed never yielded before (or long enough ago to be forgotten)."""
        return unseen_in(self.read(url)[1], keys) if keys else []

    def remember_entries(self, url: str, keys: list[str], *, keep_all: bool = False) -> int:
        """Remember the keys of the feed's current entries; returns how many are remembered.

        Keys that drop out of the feed are kept, oldest forgotten first, up to
        `seen_capacity`, so an entry that drops out and comes back is not new again.
        `keep_all` (a pushed document, which may hold only the newest entries): nothing
        remembered before is forgotten to make room."""
        if not keys:
            return 0
        digests = [entry_digest(k) for k in keys]
        capacity = seen_capacity(len(set(digests)))
        if keep_all:
            capacity += int(self.client.strlen(self.seen_key(url))) // DIGEST_BYTES
        args: list[bytes | int] = [DIGEST_BYTES, capacity, *digests]
        return int(self._remember(keys=[self.seen_key(url)], args=args))

    def note_hub(self, url: str, hub: str | None, topic: str | None) -> None:
        """The WebSub hub (and topic) the feed advertises now, None when it stopped advertising one;
        the feed is queued for the beat to (re)consider its subscription."""
        pipe = self.client.pipeline()
        if hub and topic:
            pipe.hset(keys.websub_hubs(self.prefix), url, f"{hub} {topic}")
        else:
            pipe.hdel(keys.websub_hubs(self.prefix), url)
        pipe.hset(self.state_key(url), "hub_sig", hub_signature(hub, topic))
        pipe.sadd(keys.websub_todo(self.prefix), url)
        pipe.execute()

    def advertised_hub(self, url: str) -> tuple[str, str] | None:
        raw = self.client.hget(keys.websub_hubs(self.prefix), url)
        if not raw:
            return None
        hub, _, topic = raw.decode().partition(" ")
        return hub, topic

    def forget_entries(self, url: str) -> None:
        self.client.delete(self.seen_key(url), self.state_key(url))

    def move_feed(self, old: str, new: str) -> None:
        """A feed that moved (301/308) keeps its config, state and seen entries under its new URL.

        When `new` is registered already, `old` is dropped as a duplicate of it."""
        names = [self.key, self.state_key(old), self.state_key(new), self.seen_key(old), self.seen_key(new)]
        self._move(keys=[*names, self.moved_key], args=[old, new])

    def moves(self) -> dict[str, str]:
        """Old URL -> new URL for every feed that moved (used when the feeds file could not be edited)."""
        return {k.decode(): v.decode() for k, v in self.client.hgetall(self.moved_key).items()}


def apply_moves(feeds: list[Feed], moves: dict[str, str]) -> list[Feed]:
    """The feeds file as polling knows it: feeds that moved at their new URL."""
    return unique_feeds([replace(f, url=follow_moves(f.url, moves)) for f in feeds])


def follow_moves(url: str, moves: dict[str, str]) -> str:
    for _ in range(10):  # a feed can move more than once; a cycle stops here
        if url not in moves:
            break
        url = moves[url]
    return url


def feed_fields(feed: Feed) -> dict[str, Any]:
    """A feed's config as JSON-ready values (the profile as lists and dicts, empty parts left out)."""
    profile = feed.fetch
    fetch = {"headers": [list(h) for h in profile.headers], "user_agent": profile.user_agent,
             "cookies": [list(c) for c in profile.cookies], "proxy": profile.proxy}  # fmt: skip
    extract = {"selector": feed.extract.selector, "remove": list(feed.extract.remove)}
    return {"url": feed.url, "name": feed.name, "interval": feed.interval, "enabled": feed.enabled,
            "robots": feed.robots, "kind": feed.kind, "fetch": {k: v for k, v in fetch.items() if v},
            "extract": {k: v for k, v in extract.items() if v}}  # fmt: skip


def encode_feed(feed: Feed) -> bytes:
    """A feed's config without its URL (the hash field) or defaults: `{}` for most feeds."""
    data = {k: v for k, v in feed_fields(feed).items() if k != "url" and v != DEFAULTS[k]}
    return orjson.dumps(data)


def decode_feed(url: str, raw: bytes) -> Feed:
    data = orjson.loads(raw)
    data.pop("url", None)  # written by older versions
    values = {k: data.get(k, DEFAULTS[k]) for k in DEFAULTS}
    fetch, extract = values.pop("fetch"), values.pop("extract")
    profile = FetchProfile(
        headers=tuple((k, v) for k, v in fetch.get("headers", [])), user_agent=fetch.get("user_agent"),
        cookies=tuple((k, v) for k, v in fetch.get("cookies", [])), proxy=fetch.get("proxy"),
    )  # fmt: skip
    rules = ExtractRules(selector=extract.get("selector"), remove=tuple(extract.get("remove", [])))
    return Feed(url=url, **values, fetch=profile, extract=rules)


DEFAULTS: dict[str, Any] = {
    "name": None, "interval": None, "enabled": True, "robots": True, "kind": None, "fetch": {}, "extract": {},
}  # fmt: skip
