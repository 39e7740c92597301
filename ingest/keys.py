"""Every Redis key name newswire writes, in one place (docs/redis-keys.md maps them).

Each function builds one key family from the deployment's prefix (`NEWSWIRE_STREAM_PREFIX`)
and the family's own parts. `families()` calls each builder with its parameter names as
placeholders, which gives the pattern that docs/redis-keys.md lists (a test checks the two
against each other). Families whose members a Lua script derives itself (the near-duplicate
and story indexes) have a builder for the part the script is given, ending in `:`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

# --- output streams (CONTRACT §4) -------------------------------------------------------------


def articles_stream(prefix: str) -> str:
    return f"{prefix}:articles"


def topic_stream(prefix: str, slug: str) -> str:
    return f"{prefix}:topic:{slug}"


def duplicates_stream(prefix: str) -> str:
    return f"{prefix}:duplicates"


def updates_stream(prefix: str) -> str:
    return f"{prefix}:updates"


def deadletter_stream(prefix: str) -> str:
    return f"{prefix}:deadletter"


def stream_prefix(stream: str) -> str:
    """`newswire` of `newswire:articles` and `newswire:topic:slug` (a prefix never has a colon)."""
    return stream.split(":", 1)[0]


# --- identity and dedup ----------------------------------------------------------------------


def seen_id(prefix: str, article_id: str) -> str:
    return f"{prefix}:seen:id:{article_id}"


def seen_hash(prefix: str, content_hash: str) -> str:
    return f"{prefix}:seen:hash:{content_hash}"


def seen_guid(prefix: str, guid_digest: str) -> str:
    return f"{prefix}:seen:guid:{guid_digest}"


def once(prefix: str, marker: str) -> str:
    return f"{prefix}:once:{marker}"


def neardup_index(prefix: str) -> str:
    """The near-duplicate index's part; the script adds `{generation}:{bucket}`, `:s` and `:m`.
    (`nd2`: anchors over 3-word shingles; the `nd:` keys of the 5-word index expire by themselves.)"""
    return f"{prefix}:nd2:"


def story_index(prefix: str) -> str:
    """The story index's part; the script adds `t:{term}`, `all` and `d:{ref}`."""
    return f"{prefix}:story:"


# --- look-ups (the HTTP gateway; written with each stream write by streams/write.lua) -------


def article_ref(prefix: str, article_id: str) -> str:
    """Where an article's document lives: `articles` and `updates` entry ids, its `story`."""
    return f"{prefix}:ref:{article_id}"


def story_members(prefix: str, story_id: str) -> str:
    return f"{prefix}:members:{story_id}"


def recent_stories(prefix: str) -> str:
    return f"{prefix}:stories"


# --- webhooks --------------------------------------------------------------------------------


def webhook_attempts(prefix: str, webhook: str) -> str:
    return f"{prefix}:webhook:{webhook}:attempts"


# --- feeds and the schedule ------------------------------------------------------------------


def feeds(prefix: str) -> str:
    return f"{prefix}:feeds"


def feed_state(prefix: str, feed_hash: str) -> str:
    return f"{prefix}:feed:{feed_hash}"


def feed_seen(prefix: str, feed_hash: str) -> str:
    return f"{prefix}:seen:{feed_hash}"


def feed_moves(prefix: str) -> str:
    return f"{prefix}:moved"


def feeds_file(prefix: str) -> str:
    return f"{prefix}:feeds_file"


def schedule(prefix: str) -> str:
    return f"{prefix}:schedule"


def inflight(prefix: str) -> str:
    return f"{prefix}:inflight"


# --- fetching --------------------------------------------------------------------------------


def host_slots(prefix: str, host: str) -> str:
    return f"{prefix}:host:{host}"


def host_next(prefix: str, host: str) -> str:
    return f"{prefix}:host:{host}:next"


def hostq(prefix: str) -> str:
    """The part the host-queue scripts are given: `…{kind}:{host}` lists, `…ready:{kind}` sorted sets."""
    return f"{prefix}:hostq:"


def hostq_jobs(prefix: str) -> str:
    return f"{prefix}:hostq:jobs"


def hostq_leases(prefix: str) -> str:
    return f"{prefix}:hostq:leases"


def hostq_tries(prefix: str) -> str:
    return f"{prefix}:hostq:tries"


def hostq_wake(prefix: str) -> str:
    return f"{prefix}:hostq:wake"


def fetched(prefix: str, job_id: str) -> str:
    return f"{prefix}:fetched:{job_id}"


def robots(prefix: str, origin: str) -> str:
    return f"{prefix}:robots:{origin}"


def page(prefix: str, origin: str) -> str:
    return f"{prefix}:page:{origin}"


def pages_waiting(prefix: str) -> str:
    return f"{prefix}:pages"


# --- operations ------------------------------------------------------------------------------


def stats(prefix: str) -> str:
    return f"{prefix}:stats"


def metric_counters(prefix: str) -> str:
    return f"{prefix}:metrics:counters"


def metric_histograms(prefix: str) -> str:
    return f"{prefix}:metrics:histograms"


def queue_depths(prefix: str) -> str:
    return f"{prefix}:queue_depths"


def sweep_pending(prefix: str, sweep_id: str) -> str:
    return f"{prefix}:sweep:{sweep_id}:pending"


def sweep_outcomes(prefix: str, sweep_id: str) -> str:
    return f"{prefix}:sweep:{sweep_id}:outcomes"


def retag_report(prefix: str, sweep_id: str) -> str:
    return f"{prefix}:retag:{sweep_id}"


def retention_streams(prefix: str) -> str:
    return f"{prefix}:retention:streams"


def retention_discovered(prefix: str) -> str:
    return f"{prefix}:retention:discovered"


def retention_checked(prefix: str) -> str:
    return f"{prefix}:retention:checked"


def beat_lock(prefix: str) -> str:
    return f"{prefix}:beat:lock"


def deliveries(prefix: str, task_id: str) -> str:
    return f"{prefix}:deliveries:{task_id}"


# --- WebSub (ingest/feeds/websub.py) ----------------------------------------------------------


def websub_sub(prefix: str, sub_id: str) -> str:
    return f"{prefix}:websub:sub:{sub_id}"


def websub_feeds(prefix: str) -> str:
    return f"{prefix}:websub:feeds"


def websub_hubs(prefix: str) -> str:
    return f"{prefix}:websub:hubs"


def websub_due(prefix: str) -> str:
    return f"{prefix}:websub:due"


def websub_todo(prefix: str) -> str:
    return f"{prefix}:websub:todo"


def push_body(prefix: str, push_id: str) -> str:
    return f"{prefix}:push:{push_id}"


# --- liveness: who holds what, until when (workers/liveness.py, docs/faults.md) ----------------------


def workers(prefix: str) -> str:
    """In the state Redis: worker process -> heartbeat expiry (ms); feed polls are tied to it."""
    return f"{prefix}:workers"


def pollers(prefix: str) -> str:
    return f"{prefix}:pollers"


def broker_workers(prefix: str) -> str:
    """In the broker's Redis: broker channel of a worker -> heartbeat expiry (ms)."""
    return f"{prefix}:broker:workers"


def broker_owners(prefix: str) -> str:
    return f"{prefix}:broker:owners"


def broker_held(prefix: str, holder: str) -> str:
    return f"{prefix}:broker:held:{holder}"


def broker_taking(prefix: str, holder: str) -> str:
    """In the broker's Redis: a message one channel took off its queue and has not recorded yet."""
    return f"{prefix}:broker:taking:{holder}"


NOT_BUILDERS = frozenset({"stream_prefix", "families"})
BUILDERS: tuple[Callable[..., str], ...] = tuple(
    value
    for name, value in sorted(globals().items())
    if inspect.isfunction(value) and value.__module__ == __name__ and name not in NOT_BUILDERS
)


def families() -> dict[str, str]:
    """Builder name -> key pattern, e.g. `seen_id` -> `{prefix}:seen:id:{article_id}`."""
    out = {}
    for build in BUILDERS:
        params = inspect.signature(build).parameters
        out[build.__name__] = build(*(f"{{{p}}}" for p in params))
    return out
