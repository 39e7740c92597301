"""The feed registry: the feeds file (TOML or OPML) and each feed's state in Redis.

The feeds file is the source of truth for which feeds exist; Redis holds a
mirror of it plus what polling learned (validators, health, counters).
"""

from __future__ import annotations

import hashlib
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import orjson
import redis

from ingest.models import Feed


class FeedsFileError(ValueError):
    """The feeds file is missing or invalid; the message names the file and the entry."""


def load_feeds_file(path: Path) -> list[Feed]:
    if not path.exists():
        raise FeedsFileError(f"{path}: feeds file not found")
    if path.suffix.lower() in {".opml", ".xml"}:
        return parse_opml(path.read_bytes(), str(path))
    return parse_feeds_toml(path.read_text(encoding="utf-8"), str(path))


def parse_feeds_toml(text: str, name: str = "feeds.toml") -> list[Feed]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FeedsFileError(f"{name}: {exc}") from exc
    feeds = [feed_from_table(item, name, i) for i, item in enumerate(data.get("feed", []), start=1)]
    return unique_feeds(feeds)


def feed_from_table(item: dict[str, Any], name: str, index: int) -> Feed:
    unknown = set(item) - {"url", "name", "interval", "enabled"}
    if unknown:
        raise FeedsFileError(f"{name}: feed #{index}: unknown key(s) {sorted(unknown)}")
    url = item.get("url")
    if not isinstance(url, str) or not is_http_url(url):
        raise FeedsFileError(f"{name}: feed #{index}: url must be an http(s) URL, got {url!r}")
    interval = item.get("interval")
    if interval is not None and (not isinstance(interval, int) or interval < 60):
        raise FeedsFileError(f"{name}: feed #{index} ({url}): interval must be an integer >= 60 seconds")
    return Feed(url=url, name=item.get("name"), interval=interval, enabled=bool(item.get("enabled", True)))


def parse_opml(data: bytes, name: str = "feeds.opml") -> list[Feed]:
    if b"<!ENTITY" in data or b"<!DOCTYPE" in data:
        raise FeedsFileError(f"{name}: DOCTYPE/ENTITY declarations are not accepted in OPML")
    try:
        root = ET.fromstring(data)  # noqa: S314 - entity declarations refused above
    except ET.ParseError as exc:
        raise FeedsFileError(f"{name}: not well-formed OPML ({exc})") from exc
    feeds = []
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl") or outline.get("xmlurl")
        if url and is_http_url(url):
            feeds.append(Feed(url=url, name=outline.get("title") or outline.get("text")))
    return unique_feeds(feeds)


def render_opml(feeds: Iterable[Feed], title: str = "newswire feeds") -> str:
    root = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(root, "head"), "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        label = feed.name or feed.url
        ET.SubElement(body, "outline", type="rss", text=label, title=label, xmlUrl=feed.url)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_feed_toml(feed: Feed) -> str:
    lines = ["[[feed]]", f"url = {toml_str(feed.url)}"]
    if feed.name:
        lines.append(f"name = {toml_str(feed.name)}")
    if feed.interval:
        lines.append(f"interval = {feed.interval}")
    return "\n".join(lines) + "\n"


def toml_str(value: str) -> str:
    return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string


def add_feeds_to_file(path: Path, feeds: Iterable[Feed]) -> list[Feed]:
    """Append feeds not yet in the TOML file; return the ones added."""
    require_toml(path)
    existing = {f.url for f in load_feeds_file(path)} if path.exists() else set()
    added = unique_feeds([f for f in feeds if f.url not in existing])
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write("".join("\n" + render_feed_toml(f) for f in added))
    return added


def remove_feed_from_file(path: Path, url: str) -> bool:
    """Drop the `[[feed]]` block whose url is `url`; keep everything else as written."""
    require_toml(path)
    blocks = split_blocks(path.read_text(encoding="utf-8"))
    kept = [b for b in blocks if not block_has_url(b, url)]
    if len(kept) == len(blocks):
        return False
    path.write_text("".join(kept), encoding="utf-8")
    return True


def split_blocks(text: str) -> list[str]:
    blocks: list[str] = [""]
    for line in text.splitlines(keepends=True):
        if line.strip() == "[[feed]]":
            blocks.append("")
        blocks[-1] += line
    return blocks


def block_has_url(block: str, url: str) -> bool:
    if not block.lstrip().startswith("[[feed]]"):
        return False
    table = tomllib.loads(block.replace("[[feed]]", "", 1))
    return bool(table.get("url") == url)


def require_toml(path: Path) -> None:
    if path.suffix.lower() != ".toml":
        raise FeedsFileError(f"{path}: only a TOML feeds file can be edited; convert it with `feeds export`")


def unique_feeds(feeds: Iterable[Feed]) -> list[Feed]:
    seen: dict[str, Feed] = {}
    for feed in feeds:
        seen.setdefault(feed.url, feed)
    return list(seen.values())


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def feed_hash(url: str) -> str:
    return hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: tuple[str, ...]
    removed: tuple[str, ...]


class RedisFeedRegistry:
    """Registered feeds (hash url -> config) and per-feed state hashes."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.key = f"{prefix}:feeds"

    def sync(self, feeds: Iterable[Feed]) -> SyncResult:
        wanted = {f.url: f for f in feeds}
        current = set(self.urls())
        removed = tuple(sorted(current - set(wanted)))
        pipe = self.client.pipeline()
        if wanted:
            pipe.hset(self.key, mapping={u: encode_feed(f) for u, f in wanted.items()})
        if removed:
            pipe.hdel(self.key, *removed)
        pipe.execute()
        return SyncResult(added=tuple(sorted(set(wanted) - current)), removed=removed)

    def urls(self) -> list[str]:
        return [u.decode() for u in self.client.hkeys(self.key)]

    def get(self, url: str) -> Feed | None:
        raw = self.client.hget(self.key, url)
        return decode_feed(raw) if raw else None

    def all(self) -> list[Feed]:
        return [decode_feed(v) for v in self.client.hvals(self.key)]

    def state_key(self, url: str) -> str:
        return f"{self.prefix}:feed:{feed_hash(url)}"

    def state(self, url: str) -> dict[str, str]:
        raw = self.client.hgetall(self.state_key(url))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def update_state(self, url: str, fields: dict[str, Any], *, count: str | None = None) -> None:
        pipe = self.client.pipeline()
        key = self.state_key(url)
        clean = {k: ("" if v is None else str(v)) for k, v in fields.items()}
        if clean:
            pipe.hset(key, mapping=clean)
        if count:
            pipe.hincrby(key, f"n_{count}", 1)
        pipe.execute()

    def unseen_entries(self, url: str, keys: list[str]) -> list[bool]:
        """True for each entry key this feed never yielded before."""
        if not keys:
            return []
        scores = self.client.zmscore(f"{self.prefix}:entries:{feed_hash(url)}", keys)
        return [score is None for score in scores]

    def mark_new_entries(self, url: str, keys: list[str], now: float | None = None) -> list[bool]:
        """Remember entry keys; True for each one never seen before (atomic per key)."""
        if not keys:
            return []
        seen_key = f"{self.prefix}:entries:{feed_hash(url)}"
        stamp = now or time.time()
        pipe = self.client.pipeline()
        for key in keys:
            pipe.zadd(seen_key, {key: stamp}, nx=True)
        pipe.zremrangebyscore(seen_key, "-inf", stamp - 180 * 86400)
        results = pipe.execute()
        return [bool(r) for r in results[:-1]]

    def forget_entries(self, url: str) -> None:
        self.client.delete(f"{self.prefix}:entries:{feed_hash(url)}", self.state_key(url))


def encode_feed(feed: Feed) -> bytes:
    return orjson.dumps(
        {"url": feed.url, "name": feed.name, "interval": feed.interval, "enabled": feed.enabled}
    )


def decode_feed(raw: bytes) -> Feed:
    data = orjson.loads(raw)
    return Feed(
        url=data["url"], name=data.get("name"), interval=data.get("interval"), enabled=data["enabled"]
    )
