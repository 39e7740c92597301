"""Polling one feed: conditional GET, status handling, parsing, and what to remember afterwards.

`poll_feed` only reads; `commit_poll` writes the feed's state, the entries it
has seen and its next poll time, after the new entries were handed on.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime

from ingest.fetch import Fetcher, FetchError, FetchResult
from ingest.models import Feed, FeedEntry, iso_utc
from ingest.parse import FeedParseError, parse_feed
from ingest.registry import RedisFeedRegistry, SyncResult
from ingest.schedule import PollTiming, RedisSchedule, next_interval, with_jitter

log = logging.getLogger("newswire.poll")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8"
)


@dataclass(slots=True)
class StateUpdate:
    fields: dict[str, object] = field(default_factory=dict)
    timing: PollTiming = field(default_factory=PollTiming)


@dataclass(frozen=True, slots=True)
class PollReport:
    feed_url: str
    outcome: str  # "ok", "not_modified", "gone", "rate_limited", "http_<code>", "<fetch error kind>", "parse"
    entries: tuple[FeedEntry, ...] = ()
    new_entries: tuple[FeedEntry, ...] = ()
    error: str | None = None
    next_poll_s: float = 0.0
    update: StateUpdate = field(default_factory=StateUpdate)

    @property
    def failed(self) -> bool:
        return self.outcome not in {"ok", "not_modified"}


def conditional_headers(state: dict[str, str]) -> dict[str, str]:
    """Validators from the last 200/304, for a conditional GET."""
    headers = {}
    if state.get("etag"):
        headers["If-None-Match"] = state["etag"]
    if state.get("last_modified"):
        headers["If-Modified-Since"] = state["last_modified"]
    return headers


def poll_feed(
    feed: Feed, fetcher: Fetcher, registry: RedisFeedRegistry, now: float | None = None
) -> PollReport:
    """Fetch a feed conditionally and parse it; writes nothing (see `commit_poll`)."""
    now = now or time.time()
    state = registry.state(feed.url)
    report, update = fetch_and_parse(feed, fetcher, state)
    unseen = registry.unseen_entries(feed.url, [e.key for e in report.entries])
    fresh = tuple(e for e, new in zip(report.entries, unseen, strict=True) if new)
    delay = with_jitter(next_interval(update.timing))
    return replace(report, new_entries=fresh, next_poll_s=delay, update=update)


def commit_poll(
    report: PollReport, registry: RedisFeedRegistry, schedule: RedisSchedule, now: float | None = None
) -> None:
    """After the new entries were handed on: remember them, store state, schedule the next poll.

    Doing this last means a poll interrupted before it (a killed worker) is
    simply redone: nothing it found is lost, and publishing drops the repeats.
    """
    now = now or time.time()
    registry.mark_new_entries(report.feed_url, [e.key for e in report.new_entries], now)
    next_at = now + report.next_poll_s
    record_poll(registry, report.feed_url, report, report.update, now, next_at)
    if report.outcome == "gone":
        schedule.remove(report.feed_url)
    else:
        schedule.finish(report.feed_url, next_at)


def fetch_and_parse(feed: Feed, fetcher: Fetcher, state: dict[str, str]) -> tuple[PollReport, StateUpdate]:
    errors = int(state.get("consecutive_errors") or 0)
    timing = PollTiming(
        explicit_s=feed.interval, items_per_day=float(state.get("items_per_day") or 0) or None
    )
    try:
        result = fetcher.get(feed.url, headers=conditional_headers(state), accept=FEED_ACCEPT)
    except FetchError as exc:
        return failure(feed.url, exc.kind, str(exc), timing, errors)
    return interpret_response(feed, result, state, timing, errors)


def interpret_response(
    feed: Feed, result: FetchResult, state: dict[str, str], timing: PollTiming, errors: int
) -> tuple[PollReport, StateUpdate]:
    status = result.status
    validators: dict[str, object] = {
        "etag": result.headers.get("etag", state.get("etag", "")),
        "last_modified": result.headers.get("last-modified", state.get("last_modified", "")),
    }
    if status == 304:
        return PollReport(feed.url, "not_modified"), StateUpdate(validators, timing)
    if status == 410:
        return failure(feed.url, "gone", f"{feed.url} answered 410 Gone: feed disabled", timing, errors)
    if status in {429, 503}:
        wait = retry_after_seconds(result.headers.get("retry-after"))
        update = PollTiming(explicit_s=feed.interval, retry_after_s=wait or 3600)
        report = PollReport(
            feed.url, "rate_limited", error=f"{feed.url} answered {status}; retry after {wait}s"
        )
        return report, StateUpdate({"consecutive_errors": errors + 1}, update)
    if status != 200:
        return failure(feed.url, f"http_{status}", f"{feed.url} answered HTTP {status}", timing, errors)
    return parse_ok(feed, result, state, timing, validators)


def parse_ok(
    feed: Feed, result: FetchResult, state: dict[str, str], timing: PollTiming, validators: dict[str, object]
) -> tuple[PollReport, StateUpdate]:
    body_hash = hashlib.sha1(result.body, usedforsecurity=False).hexdigest()
    fields: dict[str, object] = {**validators, "body_hash": body_hash, "consecutive_errors": 0}
    if not validators["etag"] and not validators["last_modified"] and state.get("body_hash") == body_hash:
        return PollReport(feed.url, "not_modified"), StateUpdate(fields, timing)
    try:
        page = parse_feed(result.body, result.final_url, result.headers.get("content-type", ""))
    except FeedParseError as exc:
        return failure(
            feed.url, "parse", f"{feed.url}: {exc}", timing, int(state.get("consecutive_errors") or 0)
        )
    hint = max_age_seconds(result.headers.get("cache-control")) or page.ttl_s
    fields.update(title=page.title or "", entries_last=len(page.entries), bozo=page.bozo or "")
    rate = round(items_per_day(page.entries), 2)
    fields["items_per_day"] = rate
    timing = PollTiming(explicit_s=feed.interval, hint_s=hint, items_per_day=rate or None)
    return PollReport(feed.url, "ok", page.entries), StateUpdate(fields, timing)


def failure(
    url: str, outcome: str, message: str, timing: PollTiming, errors: int
) -> tuple[PollReport, StateUpdate]:
    log.warning("feed poll failed: %s", message, extra={"feed_url": url, "stage": "poll", "outcome": outcome})
    backoff = PollTiming(explicit_s=timing.explicit_s, consecutive_errors=errors + 1)
    fields: dict[str, object] = {"consecutive_errors": errors + 1, "last_error": message}
    if outcome == "gone":
        fields.update(disabled="1", disabled_reason=message)
    return PollReport(url, outcome, error=message), StateUpdate(fields, backoff)


def record_poll(
    registry: RedisFeedRegistry, url: str, report: PollReport, update: StateUpdate, now: float, next_at: float
) -> None:
    fields = dict(update.fields)
    fields.update(last_poll=iso_utc(now), last_status=report.outcome, next_poll=iso_utc(next_at))
    fields["interval_s"] = int(next_at - now)
    if not report.failed:
        fields.update(last_success=iso_utc(now), last_error="")
    registry.update_state(url, fields, count=report.outcome)


def retry_after_seconds(value: str | None, now: float | None = None) -> int | None:
    """Retry-After as seconds: either a delay or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0, int(when - (now or time.time())))


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
    """Mirror the feeds file into Redis; new feeds are due at once, removed ones leave the schedule."""
    now = now or time.time()
    result = registry.sync(feeds)
    for feed in feeds:
        if feed.enabled and not registry.state(feed.url).get("disabled"):
            schedule.add(feed.url, now)
        else:
            schedule.remove(feed.url)
    for url in result.removed:
        schedule.remove(url)
    return result
