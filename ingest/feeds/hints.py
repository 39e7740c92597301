"""What a publisher's answer says about polling it: Cache-Control max-age, Expires, Retry-After,
the feed's own <ttl> or sy:update*, and the HTTP `Link` header (a WebSub hub). Pure functions."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime


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


LINK_ITEM = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
LINK_REL = re.compile(r'rel\s*=\s*"?([^";,]+)"?', re.IGNORECASE)


def link_header(value: str) -> dict[str, str]:
    """rel -> URL from an HTTP `Link` header (RFC 8288), the first of each rel."""
    found: dict[str, str] = {}
    for match in LINK_ITEM.finditer(value):
        rel = LINK_REL.search(match.group(2))
        for name in rel.group(1).lower().split() if rel else []:
            found.setdefault(name, match.group(1).strip())
    return found
