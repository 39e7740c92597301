"""Webhooks: each document of the configured streams POSTed, signed, at least once per webhook.

`config/webhooks.toml` (NEWSWIRE_WEBHOOKS) lists `[[webhook]]` tables: `url`, `streams` (names
as in the HTTP API: `articles`, `duplicates`, `updates`, `topic:{slug}`), `secret_env` (the
variable holding the signing secret) and optionally `name` (the consumer group is
`webhook:{name}`; default: derived from the URL), `max_attempts`, `concurrency`, `rate`
(requests per second) and `timeout` (seconds).

Each webhook reads each of its streams through its own consumer group (`consume.py`), so a
document is acked only once the endpoint took it (2xx) or it was dead-lettered, and a restart
resumes with the entries still pending. Timeouts, connection failures, 408, 429 and 5xx are
retried with exponential backoff (a `Retry-After` is honoured up to the cap); any other 4xx,
a 3xx (not followed) or an address the guard refuses is final. After `max_attempts` (counted
in Redis, across restarts) or a final answer, the document goes to `{prefix}:deadletter` with
the reason. `concurrency` caps the requests in flight to the endpoint and `rate` their pace.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ingest import keys, lua
from ingest.fetch.post import FetchError, Poster, PostResult
from ingest.streams.entries import Burial, Delivery, Entry, dead_letter_item, is_stream_name, output_stream

log = logging.getLogger("newswire.webhooks")

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
RETRIED_KINDS = frozenset({"timeout", "connect", "protocol", "dns", "tls"})
DEADLETTER_MAXLEN = 1_000_000
SIGNATURE_TOLERANCE_S = 300


class WebhookError(ValueError):
    """An invalid webhooks file; the message names the file, the webhook and the reason."""


class Stopped(Exception):  # noqa: N818 - not an error: the process is stopping
    """The process is stopping: the entry stays pending and is delivered after the restart."""


@dataclass(frozen=True, slots=True)
class Webhook:
    name: str
    url: str
    streams: tuple[str, ...]
    secret_env: str
    max_attempts: int = 40  # about 18 minutes of failures at the 30 s cap
    concurrency: int = 4
    rate: float = 20.0  # requests per second
    timeout: float = 10.0

    @property
    def group(self) -> str:
        return f"webhook:{self.name}"


# --- the file ----------------------------------------------------------------------------------

OPTIONAL = {"max_attempts": (int, 1, 1000), "concurrency": (int, 1, 64), "rate": (float, 0.01, 10_000),
            "timeout": (float, 0.5, 120)}  # fmt: skip
KNOWN = {"name", "url", "streams", "secret_env", *OPTIONAL}


def load_webhooks(path: Path) -> tuple[Webhook, ...]:
    """The webhooks of `path`; () when the file does not exist; WebhookError when it is invalid."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WebhookError(f"{path}: cannot read the webhooks file: {exc}") from exc
    raw = data.get("webhook", [])
    if not isinstance(raw, list) or set(data) - {"webhook"}:
        raise WebhookError(f"{path}: expected only [[webhook]] tables")
    hooks = tuple(read_webhook(path, i, item) for i, item in enumerate(raw, 1))
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise WebhookError(f"{path}: two webhooks share a name: {sorted(names)}")
    return hooks


def read_webhook(path: Path, index: int, item: Any) -> Webhook:
    where = f"{path}: webhook #{index}"
    if not isinstance(item, dict) or set(item) - KNOWN:
        unknown = sorted(set(item) - KNOWN) if isinstance(item, dict) else item
        raise WebhookError(f"{where}: unknown keys {unknown}")
    url, streams, secret_env = item.get("url"), item.get("streams"), item.get("secret_env")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise WebhookError(f"{where}: `url` must be an http(s) URL")
    if not isinstance(streams, list) or not streams or not all(isinstance(s, str) for s in streams):
        raise WebhookError(f'{where}: `streams` must be a non-empty list such as ["articles"]')
    bad = [s for s in streams if not is_stream_name(s)]
    if bad:
        raise WebhookError(f"{where}: unknown streams {bad} (articles, duplicates, updates, topic:SLUG)")
    if not isinstance(secret_env, str) or not secret_env or secret_env.startswith("NEWSWIRE_"):
        raise WebhookError(f"{where}: `secret_env` must name a variable (not NEWSWIRE_*) with the secret")
    name = item.get("name") or "h" + hashlib.sha256(url.encode()).hexdigest()[:12]
    if not isinstance(name, str) or not is_stream_name("topic:" + name):
        raise WebhookError(f"{where}: `name` must be lower-case letters, digits and dashes")
    return Webhook(name, url, tuple(dict.fromkeys(streams)), secret_env, **read_optional(where, item))


def read_optional(where: str, item: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (kind, low, high) in OPTIONAL.items():
        if key in item:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise WebhookError(f"{where}: `{key}` must be a number in {low}..{high}")
            out[key] = kind(value)
    return out


# --- decisions ---------------------------------------------------------------------------------


def sign(secret: bytes, body: bytes, stamp: int) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the X-Newswire-Signature header)."""
    digest = hmac.new(secret, str(stamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify(
    secret: bytes, body: bytes, header: str, now: float, tolerance: float = SIGNATURE_TOLERANCE_S
) -> bool:
    """What a receiver checks: the signature matches and its time is within `tolerance` of now."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, stamp).split("v1=", 1)[1]
    return abs(now - stamp) <= tolerance and hmac.compare_digest(expected, parts.get("v1", ""))


def judge_reply(status: int | None, error_kind: str | None) -> str:
    """ "delivered", "retry" or "final" for one attempt's HTTP status or transport error kind."""
    if status is None:
        return "retry" if error_kind in RETRIED_KINDS else "final"
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "final"


def backoff_s(attempt: int, retry_after: str | None = None, jitter: float = 1.0) -> float:
    """Seconds before the attempt after `attempt` (1-based): doubling from 1 s, capped at 30 s;
    a Retry-After in seconds replaces it (capped too). `jitter` in 0.5..1 spreads the retries."""
    if retry_after and retry_after.strip().isdigit():
        return min(BACKOFF_CAP_S, float(retry_after.strip()))
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(attempt - 1, 30)) * jitter


def describe_reply(result: PostResult) -> str:
    snippet = result.body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {result.status}" + (f": {snippet}" if snippet else "")


# --- the rate cap ------------------------------------------------------------------------------


@dataclass
class RateLimit:
    """A token bucket shared by the threads of one webhook: `rate` per second, bursts of `burst`."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    at: float = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.tokens, self.at = self.burst, self.clock()

    def wait(self, stop: threading.Event) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
                self.at = now
                if self.tokens >= 1 - 1e-9:  # (float sums of the refills fall a hair short)
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                pause = max(0.001, (1 - self.tokens) / self.rate)
            if stop.wait(pause):
                raise Stopped


# --- delivery ----------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """What the threads of one webhook share: its settings, secret, caps and stop flag."""

    hook: Webhook
    secret: bytes
    stop: threading.Event
    slots: threading.BoundedSemaphore = field(init=False)
    pace: RateLimit = field(init=False)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.hook.concurrency)
        self.pace = RateLimit(self.hook.rate, max(1.0, float(self.hook.concurrency)))


class WebhookDelivery:
    """Delivers one stream's documents to one webhook, as one consumer of the webhook's group.

    `handle` is the consumer's handler: it returns once the document was delivered or
    dead-lettered (the consumer then acks it) and raises `Stopped` to leave it pending."""

    def __init__(self, client: Any, prefix: str, endpoint: Endpoint, stream_name: str, consumer: str,
                 poster: Poster) -> None:  # fmt: skip
        self.client, self.endpoint, self.poster = client, endpoint, poster
        self.hook = endpoint.hook
        self.stream_name, self.consumer = stream_name, consumer
        self.stream = output_stream(prefix, stream_name)
        self.attempts_key = keys.webhook_attempts(prefix, self.hook.name)
        self.deadletter, self.stats_key = keys.deadletter_stream(prefix), keys.stats(prefix)
        self._bury = lua.register(client, __package__ or "ingest.streams", "deadletter.lua")

    def handle(self, delivery: Delivery) -> None:
        if self.endpoint.stop.is_set():
            raise Stopped
        body = orjson.dumps(delivery.document)
        field_name = f"{self.stream_name} {delivery.entry_id}"
        while True:
            self.hold(delivery.entry_id)
            attempt = int(self.client.hincrby(self.attempts_key, field_name, 1))
            verdict, reason, retry_after = self.attempt(delivery.entry_id, body)
            if verdict == "delivered":
                self.finish(field_name, "webhook:delivered")
                return
            if verdict == "final" or attempt >= self.hook.max_attempts:
                why = reason if verdict == "final" else f"{reason}; gave up after {attempt} attempts"
                self.bury(delivery, attempt, why, field_name)
                return
            self.pause(attempt, retry_after, reason)

    def attempt(self, entry_id: str, body: bytes) -> tuple[str, str, str | None]:
        """One POST: (verdict, reason, Retry-After)."""
        self.endpoint.pace.wait(self.endpoint.stop)
        with self.endpoint.slots:
            headers = self.headers(entry_id, body)
            try:
                result = self.poster.post(self.hook.url, body, headers)
            except FetchError as exc:
                return judge_reply(None, exc.kind), f"{exc.kind}: {exc.reason}", None
        return judge_reply(result.status, None), describe_reply(result), result.headers.get("retry-after")

    def headers(self, entry_id: str, body: bytes) -> dict[str, str]:
        return {
            "content-type": "application/json", "x-newswire-delivery": entry_id,
            "x-newswire-stream": self.stream_name, "x-newswire-webhook": self.hook.name,
            "x-newswire-signature": sign(self.endpoint.secret, body, int(time.time())),
        }  # fmt: skip

    def hold(self, entry_id: str) -> None:
        """Reset the entry's idle time (XCLAIM JUSTID adds no delivery) so that no group-mate
        claims it as abandoned while this consumer is still retrying it."""
        self.client.xclaim(self.stream, self.hook.group, self.consumer, 0, [entry_id], justid=True)

    def pause(self, attempt: int, retry_after: str | None, reason: str) -> None:
        delay = backoff_s(attempt, retry_after, random.uniform(0.5, 1.0))
        log.warning(
            "webhook %s: attempt %d failed (%s); retrying in %.1f s", self.hook.name, attempt, reason, delay,
            extra={"stage": "webhook", "outcome": "retry", "webhook": self.hook.name},
        )  # fmt: skip
        if self.endpoint.stop.wait(delay):
            raise Stopped

    def finish(self, field_name: str, counter: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.attempts_key, field_name)
        pipe.hincrby(self.stats_key, counter, 1)
        pipe.execute()

    def bury(self, delivery: Delivery, attempts: int, reason: str, field_name: str) -> None:
        entry = Entry(delivery.entry_id, None, delivery.deliveries)
        why = f"webhook {self.hook.name} ({self.hook.url}): {reason}"
        item = dead_letter_item(self.stream, self.hook.group, self.consumer, entry,
                                Burial(why, delivery.document), time.time())  # fmt: skip
        item.update(webhook=self.hook.name, url=self.hook.url, attempts=attempts)
        names = [self.stream, self.deadletter, self.stats_key]
        self._bury(
            keys=names, args=[self.hook.group, delivery.entry_id, orjson.dumps(item), DEADLETTER_MAXLEN]
        )
        self.finish(field_name, "webhook:dead_lettered")
        log.error(
            "webhook %s: dead-lettered %s %s: %s", self.hook.name, self.stream, delivery.entry_id, reason,
            extra={"stage": "webhook", "outcome": "dead_lettered", "webhook": self.hook.name},
        )  # fmt: skip
