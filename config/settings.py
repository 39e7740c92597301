"""Typed settings, read once from the environment and validated at start-up.

Every variable is optional (CONTRACT §3). A `NEWSWIRE_*` variable that this
module does not know is an error, so a typo fails loudly instead of silently
falling back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

KNOWN = frozenset(
    {
        "NEWSWIRE_REDIS_URL",
        "NEWSWIRE_BROKER_URL",
        "NEWSWIRE_FEEDS",
        "NEWSWIRE_TOPICS",
        "NEWSWIRE_STREAM_PREFIX",
        "NEWSWIRE_ALLOWED_NETWORKS",
        "NEWSWIRE_FLOWER_PORT",
        "NEWSWIRE_METRICS_PORT",
        "NEWSWIRE_CONCURRENCY",
        "NEWSWIRE_IO_CONCURRENCY",
        "NEWSWIRE_DATA_DIR",
        "NEWSWIRE_USER_AGENT",
        "NEWSWIRE_HOST_CONCURRENCY",
        "NEWSWIRE_HOST_SPACING",
        "NEWSWIRE_LOG_LEVEL",
        "NEWSWIRE_TICK_SECONDS",
        "NEWSWIRE_BEAT_LOCK_TTL",
        "NEWSWIRE_NODE_NAME",
        "NEWSWIRE_MAX_BODY_BYTES",
        "NEWSWIRE_FETCH_TIMEOUT",
        "NEWSWIRE_EXTRACT_TIME_LIMIT",
        "NEWSWIRE_MAX_RETRIES",
        "NEWSWIRE_MAX_DELIVERIES",
        "NEWSWIRE_VISIBILITY_TIMEOUT",
        "NEWSWIRE_STREAM_MAXLEN",
        "NEWSWIRE_STREAM_RETENTION_DAYS",
        "NEWSWIRE_DEDUP_WINDOW_DAYS",
        "NEWSWIRE_STORY_WINDOW_HOURS",
        "NEWSWIRE_FLOWER_BASIC_AUTH",
        "NEWSWIRE_TEST_AMQP_URL",
    }
)
DEFAULT_USER_AGENT = "newswire/0.1 (+https://github.com/newswire/newswire)"
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class SettingsError(ValueError):
    """A setting is invalid; the message names the variable and the reason."""


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = None  # None = start the embedded server
    broker_url: str | None = None  # None = the Redis URL
    feeds_path: Path = Path("config/feeds.toml")
    topics_path: Path = Path("config/topics.toml")
    prefix: str = "newswire"
    allowed_networks: tuple[Network, ...] = ()
    flower_port: int = 5555
    flower_basic_auth: str | None = None
    metrics_port: int = 9464  # Prometheus exporter in `newswire up`; 0 = not started
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    io_concurrency: int = 16
    data_dir: Path = Path("var")
    user_agent: str = DEFAULT_USER_AGENT
    host_concurrency: int = 2  # requests in flight per host, across all workers
    host_spacing: float = 1.0  # seconds between the starts of two requests to one host
    log_level: str = "INFO"
    tick_seconds: float = 5.0
    beat_lock_ttl: float = 15.0  # one active beat; a standby takes over within TTL + TTL/3 of its death
    node_name: str | None = None  # the host part of worker names; None = the machine's hostname
    max_body_bytes: int = 5 * 1024 * 1024
    fetch_timeout: float = 20.0
    extract_time_limit: float = 30.0
    max_retries: int = 3
    max_deliveries: int = 3  # a task whose worker died this many times in a row is dead-lettered
    visibility_timeout: int = 3600  # seconds before a dead worker's unacknowledged tasks are redelivered
    stream_maxlen: int = 1_000_000
    stream_retention_days: float = 0.0  # trim entries older than this (0 = by length only)
    dedup_window_days: float = 7.0  # near-duplicate index: bodies are matched this far back
    story_window_hours: float = 48.0  # story clustering: reports this close in time can share a story

    @property
    def effective_broker_url(self) -> str:
        broker = self.broker_url or self.redis_url
        if broker is None:
            raise SettingsError("no Redis URL yet: start the embedded server first")
        return broker

    def with_redis(self, url: str) -> Settings:
        """These settings, pointing at a Redis that was started for them."""
        return replace(self, redis_url=url)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse and validate every NEWSWIRE_* variable; raise SettingsError on the first bad one."""
    env = dict(os.environ if environ is None else environ)
    check_unknown(env)
    get = env.get
    return Settings(
        redis_url=parse_url(get("NEWSWIRE_REDIS_URL"), "NEWSWIRE_REDIS_URL", ("redis", "rediss", "unix")),
        broker_url=parse_url(
            get("NEWSWIRE_BROKER_URL"), "NEWSWIRE_BROKER_URL", ("redis", "rediss", "amqp", "amqps", "unix")
        ),
        feeds_path=Path(get("NEWSWIRE_FEEDS") or "config/feeds.toml"),
        topics_path=Path(get("NEWSWIRE_TOPICS") or "config/topics.toml"),
        prefix=parse_prefix(get("NEWSWIRE_STREAM_PREFIX") or "newswire"),
        allowed_networks=parse_networks(get("NEWSWIRE_ALLOWED_NETWORKS") or ""),
        flower_port=parse_int(get("NEWSWIRE_FLOWER_PORT"), "NEWSWIRE_FLOWER_PORT", 5555, 1, 65535),
        flower_basic_auth=get("NEWSWIRE_FLOWER_BASIC_AUTH") or None,
        metrics_port=parse_int(get("NEWSWIRE_METRICS_PORT"), "NEWSWIRE_METRICS_PORT", 9464, 0, 65535),
        concurrency=parse_int(
            get("NEWSWIRE_CONCURRENCY"), "NEWSWIRE_CONCURRENCY", os.cpu_count() or 1, 1, 512
        ),
        io_concurrency=parse_int(get("NEWSWIRE_IO_CONCURRENCY"), "NEWSWIRE_IO_CONCURRENCY", 16, 1, 1024),
        data_dir=Path(get("NEWSWIRE_DATA_DIR") or "var"),
        user_agent=get("NEWSWIRE_USER_AGENT") or DEFAULT_USER_AGENT,
        host_concurrency=parse_int(get("NEWSWIRE_HOST_CONCURRENCY"), "NEWSWIRE_HOST_CONCURRENCY", 2, 1, 64),
        host_spacing=parse_float(get("NEWSWIRE_HOST_SPACING"), "NEWSWIRE_HOST_SPACING", 1.0, 0.0, 3600),
        log_level=parse_level(get("NEWSWIRE_LOG_LEVEL") or "INFO"),
        tick_seconds=parse_float(get("NEWSWIRE_TICK_SECONDS"), "NEWSWIRE_TICK_SECONDS", 5.0, 0.2, 3600),
        beat_lock_ttl=parse_float(get("NEWSWIRE_BEAT_LOCK_TTL"), "NEWSWIRE_BEAT_LOCK_TTL", 15.0, 1.0, 600),
        node_name=parse_node_name(get("NEWSWIRE_NODE_NAME") or None),
        max_body_bytes=parse_int(
            get("NEWSWIRE_MAX_BODY_BYTES"), "NEWSWIRE_MAX_BODY_BYTES", 5 * 1024 * 1024, 1024, 1 << 31
        ),
        fetch_timeout=parse_float(get("NEWSWIRE_FETCH_TIMEOUT"), "NEWSWIRE_FETCH_TIMEOUT", 20.0, 0.5, 600),
        extract_time_limit=parse_float(
            get("NEWSWIRE_EXTRACT_TIME_LIMIT"), "NEWSWIRE_EXTRACT_TIME_LIMIT", 30.0, 0.5, 600
        ),
        max_retries=parse_int(get("NEWSWIRE_MAX_RETRIES"), "NEWSWIRE_MAX_RETRIES", 3, 0, 100),
        max_deliveries=parse_int(get("NEWSWIRE_MAX_DELIVERIES"), "NEWSWIRE_MAX_DELIVERIES", 3, 1, 100),
        visibility_timeout=parse_int(
            get("NEWSWIRE_VISIBILITY_TIMEOUT"), "NEWSWIRE_VISIBILITY_TIMEOUT", 3600, 5, 7 * 86400
        ),
        stream_maxlen=parse_int(
            get("NEWSWIRE_STREAM_MAXLEN"), "NEWSWIRE_STREAM_MAXLEN", 1_000_000, 1000, 1 << 40
        ),
        stream_retention_days=parse_float(
            get("NEWSWIRE_STREAM_RETENTION_DAYS"), "NEWSWIRE_STREAM_RETENTION_DAYS", 0.0, 0.0, 36500
        ),
        dedup_window_days=parse_float(
            get("NEWSWIRE_DEDUP_WINDOW_DAYS"), "NEWSWIRE_DEDUP_WINDOW_DAYS", 7.0, 0.01, 365
        ),
        story_window_hours=parse_float(
            get("NEWSWIRE_STORY_WINDOW_HOURS"), "NEWSWIRE_STORY_WINDOW_HOURS", 48.0, 1, 720
        ),
    )


def check_unknown(env: Mapping[str, str]) -> None:
    unknown = sorted(k for k in env if k.startswith("NEWSWIRE_") and k not in KNOWN)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]} (known: {', '.join(sorted(KNOWN))})")


def parse_url(value: str | None, name: str, schemes: tuple[str, ...]) -> str | None:
    if not value:
        return None
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        raise SettingsError(f"{name}: scheme {scheme!r} not supported (use {', '.join(schemes)})")
    return value


def parse_prefix(value: str) -> str:
    if not PREFIX_RE.match(value):
        raise SettingsError(f"NEWSWIRE_STREAM_PREFIX: {value!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    return value


def parse_node_name(value: str | None) -> str | None:
    if value is not None and not PREFIX_RE.match(value):
        raise SettingsError(f"NEWSWIRE_NODE_NAME: {value!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    return value


def parse_networks(value: str) -> tuple[Network, ...]:
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise SettingsError(f"NEWSWIRE_ALLOWED_NETWORKS: {part!r} is not a CIDR ({exc})") from exc
    return tuple(networks)


def parse_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {value!r} is not an integer") from exc
    if not low <= number <= high:
        raise SettingsError(f"{name}: {number} is outside {low}..{high}")
    return number


def parse_float(value: str | None, name: str, default: float, low: float, high: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {value!r} is not a number") from exc
    if not low <= number <= high:
        raise SettingsError(f"{name}: {number} is outside {low}..{high}")
    return number


def parse_level(value: str) -> str:
    level = value.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"NEWSWIRE_LOG_LEVEL: {value!r} is not DEBUG, INFO, WARNING or ERROR")
    return level


def mask_url(url: str | None) -> str:
    """The URL with any password replaced by ***, for logs and status output."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


FIELD_ALIASES = {"feeds": "feeds_path", "topics": "topics_path", "stream_prefix": "prefix"}


def settings_env(settings: Settings) -> dict[str, str]:
    """The NEWSWIRE_* variables that reproduce `settings` in a child process (unset values left out)."""
    env = {}
    for name in sorted(KNOWN - {"NEWSWIRE_TEST_AMQP_URL"}):
        key = name.removeprefix("NEWSWIRE_").lower()
        value = getattr(settings, FIELD_ALIASES.get(key, key))
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        env[name] = str(value)
    return env
