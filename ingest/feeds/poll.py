"""Polling one feed: conditional GET, status handling, parsing, and what to remember afterwards.

`poll_feed` only reads; `commit_poll` writes the feed's state, the entries it
has seen and its next poll time, after the new entries were handed on.

Outcomes (each counted per feed as `n_<outcome>` in its state hash): `ok`,
`not_modified`, `gone` (410: disabled with its reason), `rate_limited` (429/503:
back when the server said), `http_<code>`, a fetch error kind (`timeout`,
`connect`, ...), `parse`, and `deferred` (the host had no free slot: polled again
shortly, not an error).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from ingest.feeds.feedsfile import FeedsFileError, replace_feed_url_in_file
from ingest.feeds.parse import FeedParseError, parse_feed
from ingest.feeds.registry import RedisFeedRegistry, SyncResult, apply_moves, unseen_in
from ingest.feeds.schedule import PollTiming, RedisSchedule, next_delay
from ingest.fetch.http import Fetcher, FetchError, FetchResult
from ingest.fetch.politeness import HostBusy, PoliteFetcher
from ingest.models import Feed, FeedEntry, iso_utc

log = logging.getLogger("newswire.poll")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8"
)
MOVE_AFTER = 3  # polls that must see the same permanent redirect before the feed's URL is changed
PERMANENT = frozenset({301, 308})
STATE_TEXT_MAX = 64  # longer values turn a Redis hash from listpack into a table (about 3x the memory)
DEFER_MIN_S = 2.0
HEADER_NOTICES = ("no Content-type specified",)  # feedparser's notes on HTTP headers it was not given


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
    feed: Feed, fetcher: Fetcher | PoliteFetcher, registry: RedisFeedRegistry, now: float | None = None
) -> PollReport:
    """Fetch a feed conditionally and parse it; writes nothing (see `commit_poll`)."""
    state, seen = registry.read(feed.url)
    try:
        report, update = fetch_and_parse(feed, fetcher, state, now or time.time())
    except HostBusy as busy:
        return PollReport(feed.url, "deferred", next_poll_s=max(busy.wait_s, DEFER_MIN_S))
    unseen = unseen_in(seen, [e.key for e in report.entries])
    fresh = tuple(e for e, new in zip(report.entries, unseen, strict=True) if new)
    return replace(report, new_entries=fresh, next_poll_s=next_delay(update.timing), update=update)


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
    registry.remember_entries(report.feed_url, [e.key for e in report.entries])
    record_poll(registry, report.feed_url, report, report.update, now)
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
    feed: Feed, fetcher: Fetcher | PoliteFetcher, state: dict[str, str], now: float
) -> tuple[PollReport, StateUpdate]:
    errors = int(state.get("consecutive_errors") or 0)
    timing = PollTiming(
        explicit_s=feed.interval,
        hint_s=int(state.get("hint_s") or 0) or None,
        items_per_day=float(state.get("items_per_day") or 0) or None,
    )
    try:
        result = fetcher.get(feed.url, headers=conditional_headers(state), accept=FEED_ACCEPT)
    except FetchError as exc:
        return failure(feed.url, exc.kind, f"{exc.kind}: {exc.reason}", timing, errors)
    report, update = interpret_response(feed, result, state, timing, errors, now)
    if report.failed:
        return report, update
    moved_to, redirect_fields = track_redirect(state, result.redirects)
    update.fields.update(redirect_fields)
    return replace(report, moved_to=moved_to), update


def interpret_response(
    feed: Feed, result: FetchResult, state: dict[str, str], timing: PollTiming, errors: int, now: float
) -> tuple[PollReport, StateUpdate]:
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
    return parse_ok(feed, result, state, timing, validators, now)


def rate_limited(feed: Feed, status: int, wait: int | None, errors: int) -> tuple[PollReport, StateUpdate]:
    """429/503: come back when the server said (an hour when it did not say), and not before."""
    message = f"HTTP {status}; retry after {wait if wait is not None else 'unspecified'}s"
    log.warning("feed rate-limited: %s %s", feed.url, message, extra={"feed_url": feed.url, "stage": "poll"})
    timing = PollTiming(explicit_s=feed.interval, retry_after_s=3600 if wait is None else wait)
    fields: dict[str, object] = {"consecutive_errors": errors + 1, "last_error": message}
    return PollReport(feed.url, "rate_limited", error=message), StateUpdate(fields, timing)


def parse_ok(
    feed: Feed, result: FetchResult, state: dict[str, str], timing: PollTiming, validators: dict[str, object],
    now: float,
) -> tuple[PollReport, StateUpdate]:  # fmt: skip
    has_validators = bool(validators["etag"] or validators["last_modified"])
    body_hash = None if has_validators else hashlib.sha1(result.body, usedforsecurity=False).hexdigest()[:16]
    fields: dict[str, object] = {**validators, "body_hash": body_hash, "consecutive_errors": None}
    if body_hash is not None and state.get("body_hash") == body_hash:
        return PollReport(feed.url, "not_modified"), StateUpdate(fields, timing)
    try:
        page = parse_feed(result.body, result.final_url, result.headers.get("content-type", ""))
    except FeedParseError as exc:
        errors = int(state.get("consecutive_errors") or 0)
        return failure(feed.url, "parse", str(exc), timing, errors)
    rate = round(items_per_day(page.entries), 2)
    title = None if feed.name else fit(page.title)  # only shown for feeds the user did not name
    fields.update(title=title, bozo=fit(document_fault(page.bozo)), items_per_day=rate or None)
    hint = publisher_hint(result.headers, page.ttl_s, now)
    fields["hint_s"] = hint
    timing = PollTiming(explicit_s=feed.interval, hint_s=hint, items_per_day=rate or None)
    entries = tuple(
        replace(e, feed_url=feed.url) for e in page.entries
    )  # the registered URL, not a redirect's
    return PollReport(feed.url, "ok", entries), StateUpdate(fields, timing)


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


def publisher_hint(headers: dict[str, str], ttl_s: int | None, now: float) -> int | None:
    """The longest wait the publisher asked for: Cache-Control max-age, Expires, <ttl>, sy:update*."""
    hints = [
        max_age_seconds(headers.get("cache-control")),
        expires_seconds(headers.get("expires"), headers.get("date"), now),
        ttl_s,
    ]
    return max((h for h in hints if h), default=None)


def retry_after_seconds(value: str | None, now: float | None = None) -> int | None:
    """Retry-After as seconds: either a delay or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    when = http_date(value)
    return None if when is None else max(0, int(when - (now or time.time())))


def expires_seconds(expires: str | None, date: str | None, now: float) -> int | None:
    """Expires relative to the response's Date (or our clock): the freshness the server promised."""
    when = http_date(expires)
    if when is None:
        return None
    base = http_date(date) or now
    return max(0, int(when - base)) or None


def http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def max_age_seconds(cache_control: str | None) -> int | None:
    match = re.search(r"max-age\s*=\s*(\d+)", cache_control or "")
    return int(match.group(1)) if match else None


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
