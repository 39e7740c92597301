"""Helpers for the gateway tests: `newswire http` as a real process, documents in the streams."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


class Receiver:
    """A webhook endpoint on loopback: records each POST; `answer(doc_id, attempt)` picks the status.

    `stop()` closes its socket (the endpoint is down: connections are refused) and `start()`
    listens again on the same port."""

    def __init__(self, answer: Callable[[str, int], int] | None = None) -> None:
        self.answer = answer or (lambda _doc_id, _attempt: 200)
        self.port = free_port()
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                doc_id = orjson.loads(body)["id"]
                with receiver.lock:
                    attempt = 1 + sum(1 for p in receiver.posts if p["doc_id"] == doc_id)
                    status = receiver.answer(doc_id, attempt)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.posts.append(
                        {"doc_id": doc_id, "body": body, "status": status, "headers": headers}
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def delivered(self) -> dict[str, dict[str, Any]]:
        """The accepted POSTs by X-Newswire-Delivery."""
        with self.lock:
            return {p["headers"]["x-newswire-delivery"]: p for p in self.posts if p["status"] < 300}


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
