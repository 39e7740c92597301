"""Helpers for the gateway tests: `newswire http` as a real process, documents in the streams."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import redis

from newswire.redisd import free_port
from tests.conftest import NEWSWIRE, ROOT


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        return
    raise AssertionError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def http_process(env: dict[str, str], log_path: Path, **extra: str) -> Iterator[str]:
    """`newswire http` on a free port; yields its base URL; SIGTERM at the end."""
    port = free_port()
    env = {**env, "NEWSWIRE_HTTP_PORT": str(port), **extra}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*NEWSWIRE, "http"], env=env, cwd=ROOT, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{base}/healthz")
            yield base
        finally:
            proc.terminate()
            proc.wait(30)


def doc(n: int, **fields: object) -> dict[str, object]:
    return {"id": f"doc{n}", "title": f"Story number {n}", "story_id": f"s{n}", "topics": [], **fields}


def add_docs(client: redis.Redis, stream: str, start: int, count: int) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for n in range(start, start + count):
        pipe.xadd(stream, {"data": orjson.dumps(doc(n))})
    return [i.decode() for i in pipe.execute()]
