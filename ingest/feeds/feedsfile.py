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

from ingest.extract.profile import selector_problem
from ingest.models import ExtractRules, Feed, FetchProfile

FEED_KEYS = frozenset(
    {"url", "name", "interval", "enabled", "robots", "kind", "headers", "user_agent", "cookies", "proxy",
     "extract"}
)  # fmt: skip
KINDS = ("feed", "sitemap")
EXTRACT_KEYS = frozenset({"selector", "remove"})
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
# headers the fetcher owns, or that have their own key
RESERVED_HEADERS = {
    "host": "is set from the URL", "content-length": "is set by the client",
    "transfer-encoding": "is set by the client", "connection": "is managed by the client",
    "accept-encoding": "is what the fetcher can undo", "te": "is managed by the client",
    "upgrade": "is managed by the client", "proxy-authorization": "comes from the proxy URL",
    "cookie": "has its own key: cookies", "user-agent": "has its own key: user_agent",
}  # fmt: skip
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: header and cookie names
COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")  # RFC 6265 cookie-octet
URL_LINE = re.compile(r"(?m)^(\s*url\s*=\s*).*$")


class FeedsFileError(ValueError):
    """The feeds file is missing or invalid; the message names the file and the entry."""


class FeedKeyError(ValueError):
    """One key of one feed is wrong: `key` is its dotted name (`extract.selector`, `headers.X-Api`)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


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
    try:
        kind, fetch, extract = read_kind(item), read_profile(item), read_extract(item.get("extract"))
    except FeedKeyError as exc:
        raise FeedsFileError(f"{name}: feed #{index} ({url}): {exc}") from exc
    return Feed(
        url=url, name=item.get("name"), interval=interval, enabled=item.get("enabled", True),
        robots=item.get("robots", True), kind=kind, fetch=fetch, extract=extract,
    )  # fmt: skip


def read_kind(item: dict[str, Any]) -> str | None:
    kind = item.get("kind")
    if kind is not None and kind not in KINDS:
        raise FeedKeyError("kind", f"must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    return kind if isinstance(kind, str) else None


def read_profile(item: dict[str, Any]) -> FetchProfile:
    """headers, user_agent, cookies and proxy, each checked (FeedKeyError names the key)."""
    headers = read_pairs(item.get("headers"), "headers", header_problem)
    cookies = read_pairs(item.get("cookies"), "cookies", cookie_problem)
    user_agent = item.get("user_agent")
    if user_agent is not None and (not isinstance(user_agent, str) or not user_agent.strip()
                                   or has_line_break(user_agent)):  # fmt: skip
        raise FeedKeyError("user_agent", "must be a non-empty string on one line")
    proxy = item.get("proxy")
    if proxy is not None:
        check_proxy(proxy)
    return FetchProfile(headers=headers, user_agent=user_agent, cookies=cookies, proxy=proxy)


def read_pairs(table: object, key: str, problem_of: Any) -> tuple[tuple[str, str], ...]:
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise FeedKeyError(key, 'must be a table of names to strings, e.g. { "X-Name" = "value" }')
    pairs = []
    for name, value in table.items():
        if not isinstance(value, str):
            raise FeedKeyError(f"{key}.{name}", f"must be a string, got {type(value).__name__}")
        problem = problem_of(name, value)
        if problem:
            raise FeedKeyError(f"{key}.{name}", problem)
        pairs.append((name, value))
    return tuple(pairs)


def header_problem(name: str, value: str) -> str | None:
    if not TOKEN.match(name):
        return "is not a valid header name"
    if name.lower() in RESERVED_HEADERS:
        return f"cannot be set here: it {RESERVED_HEADERS[name.lower()]}"
    return "must be on one line" if has_line_break(value) else None


def cookie_problem(name: str, value: str) -> str | None:
    if not TOKEN.match(name):
        return "is not a valid cookie name"
    if COOKIE_VALUE.match(value):
        return None
    return "has characters a cookie value cannot hold (; , space, quotes)"


def has_line_break(value: str) -> bool:
    return "\r" in value or "\n" in value or "\x00" in value


def check_proxy(proxy: object) -> None:
    """An http(s) or socks5 proxy URL with a host and port; the message never repeats a password."""
    if not isinstance(proxy, str):
        raise FeedKeyError("proxy", "must be a URL string")
    try:
        parts = urlsplit(proxy)
        port = parts.port
    except ValueError as exc:
        raise FeedKeyError("proxy", "is not a valid URL (bad port?)") from exc
    if parts.scheme not in PROXY_SCHEMES:
        raise FeedKeyError("proxy", f"scheme must be one of {', '.join(PROXY_SCHEMES)}, got {parts.scheme!r}")
    if not parts.hostname or port is None:
        raise FeedKeyError("proxy", "needs a host and a port, e.g. socks5://127.0.0.1:1080")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise FeedKeyError("proxy", "must be scheme://[user:password@]host:port, without a path")


def read_extract(table: object) -> ExtractRules:
    if table is None:
        return ExtractRules()
    if not isinstance(table, dict):
        raise FeedKeyError("extract", "must be a table: extract.selector and/or extract.remove")
    unknown = set(table) - EXTRACT_KEYS
    if unknown:
        raise FeedKeyError("extract", f"unknown key(s) {sorted(unknown)} (known: selector, remove)")
    selector = table.get("selector")
    if selector is not None and (problem := selector_problem(selector)):
        raise FeedKeyError("extract.selector", problem)
    remove = table.get("remove", [])
    if isinstance(remove, str):
        remove = [remove]
    if not isinstance(remove, list):
        raise FeedKeyError("extract.remove", "must be a list of CSS selectors")
    for n, item in enumerate(remove, start=1):
        if problem := selector_problem(item):
            raise FeedKeyError(f"extract.remove[{n}]", problem)
    return ExtractRules(selector=selector, remove=tuple(remove))


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
    if feed.kind:
        lines.append(f"kind = {toml_str(feed.kind)}")
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
