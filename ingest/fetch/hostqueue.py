"""Requests waiting in Redis for their host, handed out only when the host may take them.

Politeness (ingest/fetch/politeness.py) says when a host may get its next request: at most
`max_concurrent` in flight, starts `min_spacing_s` apart, across every worker and machine. Instead
of a worker waiting for that moment, a request that cannot go yet waits here: one list of job ids
per host and kind (`{prefix}:hostq:{kind}:{host}`: feed polls and pages apart, so a worker claims
only what it runs), the jobs themselves in one hash, and per kind a sorted set of hosts by the time
each may be claimed next. A dispatcher claims what is ready (`claim`): each job it gets
holds one of its host's slots (the same keys `acquire.lua` uses, so feed polls and page fetches
share the limits) and a lease. `finish` ends both. A worker that dies holding jobs leaves their
leases to expire; `reap` puts those jobs back at the head of their host's queue, and gives up on a
job whose lease was lost `max_tries` times (it is returned for the dead-letter stream).

A job is queued once per id (the entry's origin for a page, `feed:` + URL for a poll): queueing it
again while it waits or is leased does nothing, and a page job that was fetched leaves a marker for
a day (`{prefix}:fetched:{id}`) so a poll that is redone does not fetch its pages again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from ingest import keys, lua
from ingest.fetch.politeness import HostPolicy

FETCHED_TTL_S = 86400
BUSY_RETRY_MS = 200  # a host with all its slots taken is looked at again after this (or when one frees)
REAP_LIMIT = 500


@dataclass(frozen=True, slots=True)
class HostJob:
    """One request waiting for its host: `kind` says who runs it, `data` what it needs (JSON)."""

    id: str
    host: str
    kind: str  # "page" | "feed"
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "kind": self.kind, "data": self.data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostJob:
        return cls(data["id"], data["host"], data["kind"], data.get("data") or {})

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str) -> HostJob:
        return cls.from_dict(orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: tuple[HostJob, ...]
    wait_s: float | None  # until the next waiting host may be ready (None: no host waits)


class RedisHostQueue:
    """Per-host queues of requests, claimed under the hosts' politeness limits."""

    def __init__(
        self, client: redis.Redis, prefix: str, policy: HostPolicy | None = None, max_leased: int = 64,
        max_pages_waiting: int = 0,
    ) -> None:  # fmt: skip
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.prefix = prefix
        self.policy = policy or HostPolicy()
        self.max_leased = max_leased
        self.max_pages_waiting = max_pages_waiting  # pages claimed only while fewer wait for extraction
        self.jobs, self.leases, self.wake = (
            keys.hostq_jobs(prefix),
            keys.hostq_leases(prefix),
            keys.hostq_wake(prefix),
        )
        self.base, self.tries = keys.hostq(prefix), keys.hostq_tries(prefix)
        self.slots, self.fetched = keys.host_slots(prefix, ""), keys.fetched(prefix, "")
        self._add = lua.register(client, "ingest.fetch", "hostq_add.lua")
        self._claim = lua.register(client, "ingest.fetch", "hostq_claim.lua")
        self._finish = lua.register(client, "ingest.fetch", "hostq_finish.lua")
        self._reap = lua.register(client, "ingest.fetch", "hostq_reap.lua")

    def add(self, jobs: Sequence[HostJob], *, front: bool = False) -> int:
        """Queue jobs (each once); how many were new. `front`: ahead of the host's other jobs."""
        if not jobs:
            return 0
        args: list[Any] = ["1" if front else "0"]
        for job in jobs:
            args += [job.id, job.host, job.kind, job.to_json()]
        return int(self._add(keys=[self.jobs, self.wake, self.base, self.fetched], args=args))

    def claim(self, limit: int, kind: str) -> Claim:
        """Up to `limit` jobs of `kind` whose hosts may take a request now, each holding a slot and
        a lease."""
        policy = self.policy
        args: list[int | str] = [
            limit, policy.max_concurrent, int(policy.min_spacing_s * 1000), int(policy.lease_s * 1000),
            BUSY_RETRY_MS, self.max_leased, kind, self.max_pages_waiting if kind == "page" else 0,
        ]  # fmt: skip
        names = [self.jobs, self.leases, self.base, self.slots, keys.pages_waiting(self.prefix)]
        reply = self._claim(keys=names, args=args)
        wait_ms = int(reply[0])
        return Claim(
            tuple(HostJob.from_json(raw) for raw in reply[1:]), None if wait_ms < 0 else wait_ms / 1000
        )

    def finish(self, ended: Sequence[tuple[HostJob, str]]) -> int:
        """End claimed jobs: `done`, `fetched` (a page handed on: not fetched again for a day) or
        `again` (back to the head of its host's queue). How many leases were still held."""
        if not ended:
            return 0
        args: list[Any] = [FETCHED_TTL_S]
        for job, outcome in ended:
            args += [job.id, job.host, job.kind, outcome]
        names = [self.jobs, self.leases, self.wake, self.base, self.slots, self.fetched, self.tries]
        return int(self._finish(keys=names, args=args))

    def reap(self, max_tries: int) -> tuple[int, list[HostJob]]:
        """Requeue jobs whose lease expired: (how many, the jobs given up on after `max_tries`)."""
        reply = self._reap(keys=[self.jobs, self.leases, self.base, self.tries], args=[max_tries, REAP_LIMIT])
        return int(reply[0]), [HostJob.from_json(raw) for raw in reply[1:]]

    def wait(self, timeout_s: float) -> None:
        """Until a job is queued or finished anywhere, or `timeout_s` passes (at least 10 ms)."""
        self.client.blpop([self.wake], timeout=max(0.01, timeout_s))

    def waiting(self) -> int:
        """Jobs queued or leased."""
        return int(self.client.hlen(self.jobs))

    def leased(self) -> int:
        return int(self.client.zcard(self.leases))
