"""Queue depths over time, so a one-shot `newswire status` can tell a growing backlog from a burst.

Whoever reads the queues (`newswire health`, `status`, the exporter's scrapes, the summary line of
`newswire up`) adds one sample; samples older than `KEEP_S` are dropped at each write. One sample is
a small JSON object in a sorted set scored by its time: a scrape every 15 s keeps ~240 of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis

from ingest import keys

KEEP_S = 3600.0


@dataclass(frozen=True, slots=True)
class DepthSample:
    at: float  # Unix time of the reading
    depths: dict[str, int]  # queue name -> messages waiting


class RedisQueueHistory:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's reply types are too loose to check usefully
        self.key = keys.queue_depths(prefix)

    def record(self, at: float, depths: dict[str, int]) -> None:
        member = orjson.dumps({"at": round(at, 3), "depths": depths})
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.key, {member: at})
        pipe.zremrangebyscore(self.key, "-inf", f"({at - KEEP_S}")
        pipe.execute()

    def since(self, start: float) -> list[DepthSample]:
        """Samples taken at or after `start`, oldest first."""
        raw = self.client.zrangebyscore(self.key, start, "+inf")
        return [sample_of(orjson.loads(member)) for member in raw]


def sample_of(data: dict[str, Any]) -> DepthSample:
    return DepthSample(float(data["at"]), {str(q): int(n) for q, n in data["depths"].items()})
