"""Typed settings, read once from the environment and validated at start-up.

One table: each field of `Settings` names its variable, its parser (type and bounds), its
default and a one-line description (`setting(...)`). That one place drives parsing, the check
for unknown variables, the variables that reproduce the settings in a child process
(`settings_env`) and the README's settings table (`markdown_table`, checked by a test;
`python -m config.settings` prints it).

Every variable is optional (CONTRACT §3). A `NEWSWIRE_*` variable that is not in the table is
an error, so a typo fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Parser = Callable[[str, str], Any]  # (raw value, variable name) -> typed value, or SettingsError

DEFAULT_USER_AGENT = "newswire/0.1 (+https://github.com/newswire/newswire)"
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FLAGS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


class SettingsError(ValueError):
    """A setting is invalid; the message names the variable and the reason."""


# --- parsers: each takes the raw value and the variable's name, for the error message -------------


def text(raw: str, name: str) -> str:
    return raw


Bounded = TypeVar("Bounded", int, float)


def bounded(convert: Callable[[str], Bounded], noun: str, low: Bounded, high: Bounded) -> Parser:
    """A parser of numbers of one type (`noun` names it in the error) between `low` and `high`."""

    def parse(raw: str, name: str) -> Bounded:
        try:
            value = convert(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}: {raw!r} is not {noun}") from exc
        if not low <= value <= high:
            raise SettingsError(f"{name}: {value} is outside {low}..{high}")
        return value

    return parse


def integer(low: int, high: int) -> Parser:
    return bounded(int, "an integer", low, high)


def number(low: float, high: float) -> Parser:
    return bounded(float, "a number", low, high)


def url(*schemes: str) -> Parser:
    def parse(raw: str, name: str) -> str:
        scheme = urlsplit(raw).scheme
        if scheme not in schemes:
            raise SettingsError(f"{name}: scheme {scheme!r} not supported (use {', '.join(schemes)})")
        return raw

    return parse


def path(raw: str, name: str) -> Path:
    """Absolute, against the working directory at load time (`~` expanded, symlinks kept)."""
    return Path(os.path.abspath(os.path.expanduser(raw)))


def flag(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in FLAGS:
        raise SettingsError(f"{name}: {raw!r} is not one of {', '.join(FLAGS)}")
    return FLAGS[lowered]


def identifier(raw: str, name: str) -> str:
    if not PREFIX_RE.match(raw):
        raise SettingsError(f"{name}: {raw!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    return raw


def networks(raw: str, name: str) -> tuple[Network, ...]:
    found = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise SettingsError(f"{name}: {part!r} is not a CIDR ({exc})") from exc
    return tuple(found)


def level(raw: str, name: str) -> str:
    if raw.upper() not in LEVELS:
        raise SettingsError(f"{name}: {raw!r} is not DEBUG, INFO, WARNING or ERROR")
    return raw.upper()


# --- the table ---------------------------------------------------------------------------------


def setting(env: str, default: Any, parse: Parser, doc: str, *, shown: str | None = None) -> Any:
    """One row of the table: a `Settings` field read from `env` (`shown`: the README's default)."""
    meta = {"env": env, "parse": parse, "doc": doc, "shown": shown}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def cpu_count() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = setting(
        "NEWSWIRE_REDIS_URL", None, url("redis", "rediss", "unix"),
        "Redis for state and output streams", shown="unset = embedded",
    )  # fmt: skip
    broker_url: str | None = setting(
        "NEWSWIRE_BROKER_URL", None, url("redis", "rediss", "amqp", "amqps", "unix"),
        "Celery broker; `amqp://…` (RabbitMQ) works too", shown="the Redis URL",
    )  # fmt: skip
    feeds_path: Path = setting(
        "NEWSWIRE_FEEDS", Path("config/feeds.toml"), path, "feeds file: TOML or `.opml`"
    )
    topics_path: Path = setting(
        "NEWSWIRE_TOPICS", Path("config/topics.toml"), path, "topic definitions (see `docs/topics.md`)"
    )
    prefix: str = setting(
        "NEWSWIRE_STREAM_PREFIX", "newswire", identifier, "prefix of every Redis key and queue name"
    )
    allowed_networks: tuple[Network, ...] = setting(
        "NEWSWIRE_ALLOWED_NETWORKS", (), networks,
        "CIDRs exempt from the private-address guard, e.g. `127.0.0.0/24` for demos and tests",
        shown="empty",
    )  # fmt: skip
    flower_port: int = setting(
        "NEWSWIRE_FLOWER_PORT", 5555, integer(1, 65535), "Flower's port in `newswire up` (bound to 127.0.0.1)"
    )
    flower_basic_auth: str | None = setting(
        "NEWSWIRE_FLOWER_BASIC_AUTH", None, text, "`user:password` for Flower", shown="unset"
    )
    metrics_port: int = setting(
        "NEWSWIRE_METRICS_PORT", 9464, integer(0, 65535),
        "Prometheus exporter in `newswire up` (127.0.0.1); `0` = off",
    )  # fmt: skip
    concurrency: int = setting(
        "NEWSWIRE_CONCURRENCY", cpu_count, integer(1, 512), "extraction processes", shown="cores"
    )
    io_concurrency: int = setting(
        "NEWSWIRE_IO_CONCURRENCY", 16, integer(1, 1024), "threads fetching feeds and pages"
    )
    fetch_in_flight: int = setting(
        "NEWSWIRE_FETCH_IN_FLIGHT", 128, integer(1, 100_000),
        "page requests in flight at once, across all workers (each host's limits apply within it)",
    )  # fmt: skip
    data_dir: Path = setting("NEWSWIRE_DATA_DIR", Path("var"), path, "embedded Redis data, beat schedule")
    user_agent: str = setting("NEWSWIRE_USER_AGENT", DEFAULT_USER_AGENT, text, "sent with every request")
    host_concurrency: int = setting(
        "NEWSWIRE_HOST_CONCURRENCY", 2, integer(1, 64),
        "requests in flight per host, across all workers and machines (feeds, pages, robots.txt)",
    )  # fmt: skip
    host_spacing: float = setting(
        "NEWSWIRE_HOST_SPACING",
        1.0,
        number(0.0, 3600),
        "seconds between the starts of two requests to one host",
    )
    log_level: str = setting(
        "NEWSWIRE_LOG_LEVEL", "INFO", level, "logs are JSON lines when stderr is not a terminal"
    )
    tick_seconds: float = setting(
        "NEWSWIRE_TICK_SECONDS", 5.0, number(0.2, 3600), "how often beat hands out due feeds"
    )
    beat_lock_ttl: float = setting(
        "NEWSWIRE_BEAT_LOCK_TTL", 15.0, number(1.0, 600),
        "seconds; one beat holds the lock and ticks, a standby takes over after it expires",
    )  # fmt: skip
    node_name: str | None = setting(
        "NEWSWIRE_NODE_NAME", None, identifier,
        "host part of worker names, when two workers for the same queues share a host", shown="hostname",
    )  # fmt: skip
    max_body_bytes: int = setting(
        "NEWSWIRE_MAX_BODY_BYTES", 5 * 1024 * 1024, integer(1024, 1 << 31),
        "cap on a decompressed feed or page", shown="5 MiB",
    )  # fmt: skip
    fetch_timeout: float = setting(
        "NEWSWIRE_FETCH_TIMEOUT", 20.0, number(0.5, 600), "total seconds for one request, body included"
    )
    extract_time_limit: float = setting(
        "NEWSWIRE_EXTRACT_TIME_LIMIT", 30.0, number(0.5, 600),
        "seconds before extraction of one page gives up and the feed's own content is used",
    )  # fmt: skip
    max_retries: int = setting(
        "NEWSWIRE_MAX_RETRIES", 3, integer(0, 100), "retries of a task after a Redis or broker error"
    )
    max_deliveries: int = setting(
        "NEWSWIRE_MAX_DELIVERIES", 3, integer(1, 100),
        "a task whose worker dies this many times in a row goes to `{prefix}:deadletter`",
    )  # fmt: skip
    visibility_timeout: int = setting(
        "NEWSWIRE_VISIBILITY_TIMEOUT", 3600, integer(5, 7 * 86400),
        "seconds before any unacknowledged task is redelivered (Redis broker): the backstop; a dead "
        "worker's tasks come back after `NEWSWIRE_WORKER_TTL`",
    )  # fmt: skip
    worker_ttl: float = setting(
        "NEWSWIRE_WORKER_TTL", 10.0, number(2.0, 600),
        "seconds without a heartbeat before a worker counts as dead: its unacknowledged tasks and "
        "its feed polls are handed out again (`docs/faults.md`)",
    )  # fmt: skip
    stream_maxlen: int = setting(
        "NEWSWIRE_STREAM_MAXLEN", 1_000_000, integer(1000, 1 << 40), "approximate cap on each output stream",
        shown="1,000,000",
    )  # fmt: skip
    stream_retention_days: float = setting(
        "NEWSWIRE_STREAM_RETENTION_DAYS", 0.0, number(0.0, 36500),
        "the beat trims stream entries older than this (`XTRIM MINID ~`); a warning and "
        "`retention:lag_warning` when a consumer group's backlog passes 80% of either limit",
        shown="`0` (off)",
    )  # fmt: skip
    dedup_window_days: float = setting(
        "NEWSWIRE_DEDUP_WINDOW_DAYS", 7.0, number(0.01, 365), "how far back near-copies are matched"
    )
    http_address: str = setting(
        "NEWSWIRE_HTTP_ADDRESS", "127.0.0.1", text,
        "address of the HTTP service (WebSub callbacks, SSE, look-ups, the desk page); anything but "
        "loopback needs `NEWSWIRE_API_TOKENS`",
    )  # fmt: skip
    http_port: int = setting(
        "NEWSWIRE_HTTP_PORT", 8480, integer(0, 65535), "port of the HTTP service in `newswire up`; `0` = off"
    )
    public_url: str | None = setting(
        "NEWSWIRE_PUBLIC_URL", None, url("http", "https"),
        "base URL at which hubs reach the HTTP service; WebSub is off without it", shown="unset",
    )  # fmt: skip
    api_tokens: str | None = setting(
        "NEWSWIRE_API_TOKENS", None, text,
        "comma-separated bearer tokens for the HTTP API (`/v1/…`); never logged", shown="unset",
    )  # fmt: skip
    webhooks_path: Path = setting(
        "NEWSWIRE_WEBHOOKS", Path("config/webhooks.toml"), path, "webhook subscriptions"
    )
    story_window_hours: float = setting(
        "NEWSWIRE_STORY_WINDOW_HOURS",
        48.0,
        number(1, 720),
        "reports this close in time can share a `story_id`",
    )
    sitemap_window_days: float = setting(
        "NEWSWIRE_SITEMAP_WINDOW_DAYS", 2.0, number(0.01, 3650),
        "a sitemap's URLs dated older than this are not fetched (`docs/sources.md`)",
    )  # fmt: skip
    sitemap_max_urls: int = setting(
        "NEWSWIRE_SITEMAP_MAX_URLS", 1000, integer(1, 50_000),
        "new URLs one poll of a source hands on; the rest follow a minute later",
    )  # fmt: skip
    websub_lease_seconds: int = setting(
        "NEWSWIRE_WEBSUB_LEASE_SECONDS", 864000, integer(300, 365 * 86400),
        "`hub.lease_seconds` asked of WebSub hubs (the hub decides; renewed at 80%)",
    )  # fmt: skip

    task_events: bool = setting(
        "NEWSWIRE_TASK_EVENTS", False, flag,
        "workers send task events from their first task, so Flower lists every task with its name and "
        "arguments; `newswire up` turns them on when it starts Flower (they cost ~1.7 ms of CPU per "
        "article, `docs/performance.md`)",
        shown="`0` (off; on under `newswire up` with Flower)",
    )  # fmt: skip

    @property
    def effective_broker_url(self) -> str:
        broker = self.broker_url or self.redis_url
        if broker is None:
            raise SettingsError("no Redis URL yet: start the embedded server first")
        return broker

    def with_redis(self, url: str) -> Settings:
        """These settings, pointing at a Redis that was started for them."""
        return replace(self, redis_url=url)


FIELDS = tuple(dataclasses.fields(Settings))
KNOWN = frozenset(f.metadata["env"] for f in FIELDS)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse and validate every NEWSWIRE_* variable; raise SettingsError on the first bad one."""
    env = dict(os.environ if environ is None else environ)
    check_unknown(env)
    values = {}
    for f in FIELDS:
        raw = env.get(f.metadata["env"])
        if raw:  # unset and empty both mean the default
            values[f.name] = f.metadata["parse"](raw, f.metadata["env"])
        elif f.metadata["parse"] is path:  # a relative default is resolved like a relative value
            values[f.name] = path(str(f.default), f.metadata["env"])
    return Settings(**values)


def check_unknown(env: Mapping[str, str]) -> None:
    unknown = sorted(k for k in env if k.startswith("NEWSWIRE_") and k not in KNOWN)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]} (known: {', '.join(sorted(KNOWN))})")


def settings_env(settings: Settings) -> dict[str, str]:
    """The NEWSWIRE_* variables that reproduce `settings` in a child process (unset values left out)."""
    env = {}
    for f in FIELDS:
        value = getattr(settings, f.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        env[f.metadata["env"]] = str(value)
    return env


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


def shown_default(f: dataclasses.Field[Any]) -> str:
    if f.metadata["shown"]:
        return str(f.metadata["shown"])
    value = f.default
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`" if not isinstance(value, str) or value else "empty"


def markdown_table() -> str:
    """The README's settings table, one row per setting, in the table's order."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{f.metadata['env']}` | {shown_default(f)} | {f.metadata['doc']} |" for f in FIELDS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
