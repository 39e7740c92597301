"""Polling one feed: conditional GET, status handling, parsing, and what to remember afterwards.

`poll_feed` only reads; `commit_poll` writes the feed's state, the entries it
has seen and its next poll time, after the new entries were handed on.

Outcomes (each counted per feed as `n_<outcome>` in its state hash): `ok`,
`not_modified`, `gone` (410: disabled with its reason), `rate_limited` (429/503:
back when the server said), `http_<code>`, a fetch error kind (`timeout`,
`connect`, ...), `parse`, and `deferred` (the host had no free slot: polled again
shortly, not an error).

A source whose document is a sitemap (`sitemap.py`) is polled the same way; its entries are the
URLs inside the window. At most `PollOptions.max_new` new entries are handed on per poll, newest
first; the rest stay unseen and the source is polled again within a minute. A pushed document
(WebSub, `push_report`) goes through the same parsing and the same seen entries.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from ingest.feeds import sitemap
from ingest.feeds.feedsfile import FeedsFileError, replace_feed_url_in_file
from ingest.feeds.hints import link_header, publisher_hint, retry_after_seconds
from ingest.feeds.parse import FeedParseError, parse_feed
from ingest.feeds.registry import RedisFeedRegistry, SyncResult, apply_moves, hub_signature, unseen_in
from ingest.feeds.schedule import PollTiming, RedisSchedule, next_delay
from ingest.fetch.http import Fetcher, FetchError, FetchResult
from ingest.fetch.politeness import HostBusy, PoliteFetcher
from ingest.models import Feed, FeedEntry, FeedPage, iso_utc

log = logging.getLogger("newswire.poll")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8"
)
SITEMAP_WINDOW_S = 2 * 86400
MAX_NEW = 1000
MOVE_AFTER = 3  # polls that must see the same permanent redirect before the feed's URL is changed
PERMANENT = frozenset({301, 308})
STATE_TEXT_MAX = 64  # longer values turn a Redis hash from listpack into a table (about 3x the memory)
DEFER_MIN_S = 2.0
HEADER_NOTICES = ("no Content-type specified",)  # feedparser's notes on HTTP headers it was not given


@dataclass(frozen=True, slots=True)
class PollOptions:
    """What settings decide about a poll (NEWSWIRE_SITEMAP_WINDOW_DAYS, NEWSWIRE_SITEMAP_MAX_URLS)."""

    sitemap_window_s: float = SITEMAP_WINDOW_S
    max_new: int = MAX_NEW  # new entries handed on per poll; the rest wait for the next one


@dataclass(frozen=True, slots=True)
class HubLink:
    """A WebSub hub the source advertises, and the topic URL to subscribe to."""

    hub: str
    topic: str


@dataclass(slots=True)
class StateUpdate:
    fields: dict[str, object] = field(default_factory=dict)
    timing: PollTiming = field(default_factory=PollTiming)


@dataclass(frozen=True, slots=True)
class PollReport:
    feed_url: str
    outcome: str  # see the module docstring
    entries: tuple[FeedEntry, ...] = ()
    new_entries: tuple[FeedEntry, ...] = ()
    error: str | None = None
    next_poll_s: float = 0.0
    update: StateUpdate = field(default_factory=StateUpdate)
    moved_to: str | None = None  # the feed's new URL, once a permanent redirect was seen MOVE_AFTER times
    seen_keys: tuple[str, ...] = ()  # one per entry when they are not the entries' keys (sitemaps)
    quiet_keys: tuple[str, ...] = ()  # remembered without being handed on (a sitemap's undated URLs)
    hub: HubLink | None = None
    hub_changed: bool = False  # the advertised hub is not the one noted before (WebSub)
    left_over: int = 0  # new entries over `max_new`, for the next poll

    @property
    def failed(self) -> bool:
        return self.outcome not in {"ok", "not_modified", "deferred"}


def conditional_headers(state: dict[str, str]) -> dict[str, str]:
    """Validators from the last 200/304, for a conditional GET."""
    headers = {}
    if state.get("etag"):
        headers["If-None-Match"] = state["etag"]
    if state.get("last_modified"):
        headers["If-Modified-Since"] = state["last_modified"]
    return headers


def poll_feed(
    feed: Feed, fetcher: Fetcher | PoliteFetcher, registry: RedisFeedRegistry, now: float | None = None,
    options: PollOptions | None = None,
) -> PollReport:  # fmt: skip
    """Fetch a feed (or sitemap) conditionally and parse it; writes nothing (see `commit_poll`)."""
    state, seen = registry.read(feed.url)
    try:
        report, update = fetch_and_parse(feed, fetcher, state, now or time.time(), options or PollOptions())
    except HostBusy as busy:
        return PollReport(feed.url, "deferred", next_poll_s=max(busy.wait_s, DEFER_MIN_S))
    report = pick_new(report, seen, (options or PollOptions()).max_new)
    if report.outcome == "ok" and hub_signature(*hub_parts(report.hub)) != state.get("hub_sig", "-"):
        report = replace(report, hub_changed=True)
    if report.outcome == "ok":  # with a backlog, the next poll reads the document again (no 304)
        update.fields["backlog"] = report.left_over or None
    if report.left_over:
        update.timing = replace(update.timing, backlog=True)
    update.timing = replace(update.timing, pushed=state.get("websub") == "live")
    return replace(report, next_poll_s=next_delay(update.timing), update=update)


def push_report(
    feed: Feed, body: bytes, content_type: str, registry: RedisFeedRegistry, max_new: int = MAX_NEW
) -> PollReport:
    """A document a WebSub hub pushed, as a poll report: parsed, and its new entries picked, like a
    poll's (`commit_push` remembers them). A body that is not a feed is outcome `parse`."""
    try:
        page = parse_feed(body, feed.url, content_type)
    except FeedParseError as exc:
        return PollReport(feed.url, "parse", error=str(exc))
    report = PollReport(feed.url, "pushed", feed_entries(feed, page))
    return pick_new(report, registry.read(feed.url)[1], max_new)


def commit_push(report: PollReport, registry: RedisFeedRegistry, now: float | None = None) -> None:
    """After a push's new entries were handed on: remember them (keeping every entry remembered
    before: a push may carry only the newest entries) and note the push in the feed's state."""
    if report.entries:
        registry.remember_entries(report.feed_url, report_keys(report), keep_all=True)
    registry.update_state(report.feed_url, {"last_push": iso_utc(now or time.time())}, count=report.outcome)


def hub_parts(hub: HubLink | None) -> tuple[str | None, str | None]:
    return (hub.hub, hub.topic) if hub else (None, None)


def report_keys(report: PollReport) -> list[str]:
    return list(report.seen_keys or [e.key for e in report.entries]) + list(report.quiet_keys)


def pick_new(report: PollReport, seen: frozenset[bytes], max_new: int) -> PollReport:
    """The entries not seen before, at most `max_new` (in document order: newest first for a
    sitemap); those over the cap leave the report, so they are still new at the next poll."""
    keys = list(report.seen_keys or [e.key for e in report.entries])
    unseen = unseen_in(seen, keys)
    fresh = [n for n, new in enumerate(unseen) if new]
    over = set(fresh[max_new:])
    if over:
        log.info("%d new entries left for the next poll (cap %d)", len(over), max_new,
                 extra={"feed_url": report.feed_url, "stage": "poll"})  # fmt: skip
    kept = [n for n in range(len(keys)) if n not in over]
    entries = tuple(report.entries[n] for n in kept)
    seen_keys = tuple(keys[n] for n in kept) if report.seen_keys else ()
    new_entries = tuple(report.entries[n] for n in fresh[:max_new])
    return replace(report, entries=entries, seen_keys=seen_keys, new_entries=new_entries, left_over=len(over))


def commit_poll(
    report: PollReport,
    registry: RedisFeedRegistry,
    schedule: RedisSchedule,
    now: float | None = None,
    feeds_path: Path | None = None,
) -> None:
    """After the new entries were handed on: remember them, store state, schedule the next poll.

    Doing this last means a poll interrupted before it (a killed worker) is
    simply redone: nothing it found is lost, and publishing drops the repeats.
    """
    now = now or time.time()
    next_at = now + report.next_poll_s
    if report.outcome == "deferred":
        schedule.finish(report.feed_url, next_at)
        registry.update_state(report.feed_url, {}, count="deferred")
        return
    registry.remember_entries(report.feed_url, report_keys(report))
    record_poll(registry, report.feed_url, report, report.update, now)
    if report.hub_changed:
        registry.note_hub(report.feed_url, *hub_parts(report.hub))
    if report.outcome == "gone":
        schedule.remove(report.feed_url)
    elif report.moved_to:
        move_feed(report.feed_url, report.moved_to, registry, schedule, next_at, feeds_path)
    else:
        schedule.finish(report.feed_url, next_at)


def move_feed(
    old: str, new: str, registry: RedisFeedRegistry, schedule: RedisSchedule, next_at: float,
    feeds_path: Path | None,
) -> None:  # fmt: skip
    """Point the feed at its new URL: registry (state kept), schedule, and the feeds file if TOML."""
    registry.move_feed(old, new)
    schedule.move(old, new, next_at)
    log.warning("feed moved permanently: %s -> %s", old, new, extra={"feed_url": old, "stage": "poll"})
    if feeds_path is None or feeds_path.suffix.lower() != ".toml":
        return
    try:
        replace_feed_url_in_file(feeds_path, old, new)
    except (OSError, FeedsFileError) as exc:  # a read-only file: the registry's move record still applies
        log.warning("feeds file not updated for the move: %s", exc, extra={"feed_url": old, "stage": "poll"})


def fetch_and_parse(
    feed: Feed, fetcher: Fetcher | PoliteFetcher, state: dict[str, str], now: float, options: PollOptions
) -> tuple[PollReport, StateUpdate]:
    errors = int(state.get("consecutive_errors") or 0)
    timing = PollTiming(
        explicit_s=feed.interval,
        hint_s=int(state.get("hint_s") or 0) or None,
        items_per_day=float(state.get("items_per_day") or 0) or None,
    )
    headers = {} if state.get("backlog") else conditional_headers(state)
    try:
        result = fetcher.get(feed.url, headers=headers, accept=FEED_ACCEPT, profile=feed.fetch, unzip=True)
    except FetchError as exc:
        return failure(feed.url, exc.kind, f"{exc.kind}: {exc.reason}", timing, errors)
    reader = SourceReader(fetcher, options)
    report, update = interpret_response(feed, result, state, timing, errors, now, reader)
    if report.failed:
        return report, update
    moved_to, redirect_fields = track_redirect(state, result.redirects)
    update.fields.update(redirect_fields)
    return replace(report, moved_to=moved_to), update


@dataclass(frozen=True, slots=True)
class SourceReader:
    """What reading a fetched document may need: a sitemap index fetches its children."""

    fetcher: Fetcher | PoliteFetcher | None = None  # None: an index's children cannot be read
    options: PollOptions = PollOptions()


def interpret_response(
    feed: Feed, result: FetchResult, state: dict[str, str], timing: PollTiming, errors: int, now: float,
    reader: SourceReader | None = None,
) -> tuple[PollReport, StateUpdate]:  # fmt: skip
    status = result.status
    validators: dict[str, object] = {
        "etag": result.headers.get("etag", state.get("etag", "")),
        "last_modified": result.headers.get("last-modified", state.get("last_modified", "")),
    }
    if status == 304:
        hint = publisher_hint(result.headers, None, now) or timing.hint_s
        fields = {**validators, "consecutive_errors": None, "hint_s": hint}
        return PollReport(feed.url, "not_modified"), StateUpdate(fields, replace(timing, hint_s=hint))
    if status == 410:
        return failure(feed.url, "gone", "410 Gone: feed disabled", timing, errors)
    if status in {429, 503}:
        return rate_limited(feed, status, retry_after_seconds(result.headers.get("retry-after"), now), errors)
    if status != 200:
        return failure(feed.url, f"http_{status}", f"HTTP {status}", timing, errors)
    return parse_ok(feed, result, state, timing, validators, now, reader or SourceReader())


def rate_limited(feed: Feed, status: int, wait: int | None, errors: int) -> tuple[PollReport, StateUpdate]:
    """429/503: come back when the server said (an hour when it did not say), and not before."""
    message = f"HTTP {status}; retry after {wait if wait is not None else 'unspecified'}s"
    log.warning("feed rate-limited: %s %s", feed.url, message, extra={"feed_url": feed.url, "stage": "poll"})
    timing = PollTiming(explicit_s=feed.interval, retry_after_s=3600 if wait is None else wait)
    fields: dict[str, object] = {"consecutive_errors": errors + 1, "last_error": message}
    return PollReport(feed.url, "rate_limited", error=message), StateUpdate(fields, timing)


def parse_ok(
    feed: Feed, result: FetchResult, state: dict[str, str], timing: PollTiming, validators: dict[str, object],
    now: float, reader: SourceReader,
) -> tuple[PollReport, StateUpdate]:  # fmt: skip
    has_validators = bool(validators["etag"] or validators["last_modified"])
    body_hash = None if has_validators else hashlib.sha1(result.body, usedforsecurity=False).hexdigest()[:16]
    fields: dict[str, object] = {**validators, "body_hash": body_hash, "consecutive_errors": None}
    if body_hash is not None and state.get("body_hash") == body_hash and not state.get("backlog"):
        return PollReport(feed.url, "not_modified"), StateUpdate(fields, timing)
    errors = int(state.get("consecutive_errors") or 0)
    if feed.kind == "sitemap" or (feed.kind is None and sitemap.is_sitemap(result.body)):
        return sitemap_ok(feed, result, state, fields, now, reader, errors)
    try:
        page = parse_feed(result.body, result.final_url, result.headers.get("content-type", ""))
    except FeedParseError as exc:
        return failure(feed.url, "parse", str(exc), timing, errors)
    rate = round(items_per_day(page.entries), 2)
    title = None if feed.name else fit(page.title)  # only shown for feeds the user did not name
    fields.update(title=title, bozo=fit(document_fault(page.bozo)), items_per_day=rate or None)
    hint = publisher_hint(result.headers, page.ttl_s, now)
    fields["hint_s"] = hint
    timing = PollTiming(explicit_s=feed.interval, hint_s=hint, items_per_day=rate or None)
    hub = hub_link(page, result)
    return PollReport(feed.url, "ok", feed_entries(feed, page), hub=hub), StateUpdate(fields, timing)


def feed_entries(feed: Feed, page: FeedPage) -> tuple[FeedEntry, ...]:
    return tuple(replace(e, feed_url=feed.url) for e in page.entries)  # the registered URL, not a redirect's


def sitemap_ok(
    feed: Feed, result: FetchResult, state: dict[str, str], fields: dict[str, object], now: float,
    reader: SourceReader, errors: int,
) -> tuple[PollReport, StateUpdate]:  # fmt: skip
    window = reader.options.sitemap_window_s
    try:
        selection, extra = sitemap.read_source(
            result, feed.url, reader.fetcher, feed.fetch, state, now, window
        )
    except sitemap.SitemapError as exc:
        return failure(feed.url, "parse", str(exc), PollTiming(explicit_s=feed.interval), errors)
    rate = round(items_per_day(selection.entries), 2)
    hint = publisher_hint(result.headers, None, now)
    fields.update(extra, items_per_day=rate or None, hint_s=hint, title=None)
    timing = PollTiming(explicit_s=feed.interval, hint_s=hint, items_per_day=rate or None)
    report = PollReport(
        feed.url, "ok", selection.entries, seen_keys=selection.seen_keys, quiet_keys=selection.quiet_keys
    )
    return report, StateUpdate(fields, timing)


def hub_link(page: FeedPage, result: FetchResult) -> HubLink | None:
    """The WebSub hub and topic a feed advertises: `<link rel="hub">` and `rel="self"` in the
    document, else the HTTP `Link` header's; the topic defaults to the URL fetched."""
    links = link_header(result.headers.get("link", ""))
    hub = page.hub or links.get("hub")
    if not hub:
        return None
    topic = page.self_url or links.get("self") or result.final_url
    return HubLink(hub, topic)


def failure(
    url: str, outcome: str, message: str, timing: PollTiming, errors: int
) -> tuple[PollReport, StateUpdate]:
    log.warning(
        "feed poll failed: %s %s", url, message, extra={"feed_url": url, "stage": "poll", "outcome": outcome}
    )
    backoff = PollTiming(explicit_s=timing.explicit_s, consecutive_errors=errors + 1)
    fields: dict[str, object] = {"consecutive_errors": errors + 1, "last_error": fit(message)}
    if outcome == "gone":
        fields.update(disabled="1", disabled_reason=fit(message))
    return PollReport(url, outcome, error=message), StateUpdate(fields, backoff)


def track_redirect(
    state: dict[str, str], redirects: tuple[tuple[int, str], ...]
) -> tuple[str | None, dict[str, object]]:
    """(new URL once the same permanent redirect was seen MOVE_AFTER polls in a row, state fields).

    302/307 (and anything after one) never count; a poll without the redirect resets the count."""
    target = permanent_target(redirects)
    if target is None:
        return None, {"redirect": None, "redirect_n": None}
    digest = hashlib.sha1(target.encode(), usedforsecurity=False).hexdigest()[:12]
    count = int(state.get("redirect_n") or 0) + 1 if state.get("redirect") == digest else 1
    if count >= MOVE_AFTER:
        return target, {"redirect": None, "redirect_n": None}
    return None, {"redirect": digest, "redirect_n": count}


def permanent_target(redirects: tuple[tuple[int, str], ...]) -> str | None:
    """Where the leading run of 301/308 hops points; None if the first hop is temporary."""
    target = None
    for status, location in redirects:
        if status not in PERMANENT:
            break
        target = location
    return target


def record_poll(
    registry: RedisFeedRegistry, url: str, report: PollReport, update: StateUpdate, now: float
) -> None:
    fields = dict(update.fields)
    fields.update(
        last_status=report.outcome,
        next_poll=iso_utc(now + report.next_poll_s),
        interval_s=int(report.next_poll_s),
    )
    if not report.failed:
        fields.update(last_success=iso_utc(now), last_error=None)
    registry.update_state(url, fields, count=report.outcome)


def document_fault(bozo: str | None) -> str | None:
    """What was wrong with the feed document itself; feedparser also flags a missing HTTP header."""
    return None if not bozo or bozo.startswith(HEADER_NOTICES) else bozo


def fit(text: str | None, limit: int = STATE_TEXT_MAX) -> str | None:
    """Text for the state hash, cut to keep the hash compact; the full text is in the logs."""
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def items_per_day(entries: tuple[FeedEntry, ...]) -> float:
    """Publishing rate seen in one feed document, from its entries' dates."""
    stamps = sorted(parse_iso(e.published_at) for e in entries if e.published_at)
    if len(stamps) < 2:
        return 0.0
    span_days = max((stamps[-1] - stamps[0]) / 86400, 1 / 24)
    return (len(stamps) - 1) / span_days


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def register_feeds(
    feeds: list[Feed], registry: RedisFeedRegistry, schedule: RedisSchedule, now: float | None = None
) -> SyncResult:
    """Mirror the feeds file into Redis; new feeds are due at once, removed ones leave the schedule.

    A feed that moved (301/308) is registered at its new URL even if the file could not be edited."""
    now = now or time.time()
    moves = registry.moves()
    feeds = apply_moves(feeds, moves)
    result = registry.sync(feeds)
    enabled = [f.url for f in feeds if f.enabled]
    disabled = registry.disabled(enabled)
    schedule.add_many([url for url in enabled if url not in disabled], now)
    off = [f.url for f in feeds if not f.enabled] + sorted(disabled) + list(result.removed) + list(moves)
    for url in off:
        schedule.remove(url)
    return result
