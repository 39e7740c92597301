"""The feeds file: TOML or OPML, loaded and checked, and edited in place (add, remove, a moved URL).

The feeds file is the source of truth for which feeds exist (`registry.py` mirrors it into
Redis). Every problem is a `FeedsFileError` whose message names the file, the feed and the key.
Edits keep everything else as written: comments, order, other keys.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import orjson

from ingest.models import Feed

FEED_KEYS = frozenset({"url", "name", "interval", "enabled", "robots"})
URL_LINE = re.compile(r"(?m)^(\s*url\s*=\s*).*$")


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
    unknown = set(item) - FEED_KEYS
    if unknown:
        raise FeedsFileError(f"{name}: feed #{index}: unknown key(s) {sorted(unknown)}")
    url = item.get("url")
    if not isinstance(url, str) or not is_http_url(url):
        raise FeedsFileError(f"{name}: feed #{index}: url must be an http(s) URL, got {url!r}")
    interval = item.get("interval")
    if interval is not None and (not isinstance(interval, int) or interval < 60):
        raise FeedsFileError(f"{name}: feed #{index} ({url}): interval must be an integer >= 60 seconds")
    for flag in ("enabled", "robots"):
        if not isinstance(item.get(flag, True), bool):
            raise FeedsFileError(f"{name}: feed #{index} ({url}): {flag} must be true or false")
    return Feed(
        url=url, name=item.get("name"), interval=interval, enabled=item.get("enabled", True),
        robots=item.get("robots", True),
    )  # fmt: skip


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
    if not feed.enabled:
        lines.append("enabled = false")
    if not feed.robots:
        lines.append("robots = false")
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
    write_atomically(path, "".join(kept))
    return True


def replace_feed_url_in_file(path: Path, old: str, new: str) -> bool:
    """Point the `[[feed]]` block of `old` at `new` (a feed that moved), keeping its other keys.

    When `new` is in the file already, the `old` block is dropped instead."""
    require_toml(path)
    blocks = split_blocks(path.read_text(encoding="utf-8"))
    if not any(block_has_url(b, old) for b in blocks):
        return False
    if any(block_has_url(b, new) for b in blocks):
        return remove_feed_from_file(path, old)
    edited = [set_block_url(b, new) if block_has_url(b, old) else b for b in blocks]
    write_atomically(path, "".join(edited))
    return True


def set_block_url(block: str, url: str) -> str:
    return URL_LINE.sub(lambda m: m.group(1) + toml_str(url), block, count=1)


def write_atomically(path: Path, text: str) -> None:
    """Readers (the beat re-reading the file) see the old or the new file, never half of it."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    if path.exists():
        os.chmod(temp, path.stat().st_mode & 0o7777)
    os.replace(temp, path)


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
