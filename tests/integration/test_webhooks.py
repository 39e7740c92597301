"""`newswire webhooks` as a real process: signed POSTs to a loopback receiver, retries, dead letters,
a receiver down for a minute and a crash of the delivering process in between."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from ingest.streams.webhook import verify
from tests.conftest import NEWSWIRE, ROOT
from tests.integration.gateway import Receiver, add_docs, wait_for

pytestmark = pytest.mark.slow
SECRET = "s3cret-for-tests"  # noqa: S105 - the test's own signing secret


def webhook_env(cli_env: dict[str, str], tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    hooks = tmp_path / "webhooks.toml"
    lines = [f"{k} = {v}" for k, v in extra.items()]
    table = ["[[webhook]]", 'name = "desk-alerts"', f'url = "{url}"', 'streams = ["articles"]']
    hooks.write_text("\n".join([*table, 'secret_env = "DESK_ALERTS_SECRET"', *lines]))
    return {**cli_env, "NEWSWIRE_WEBHOOKS": str(hooks), "DESK_ALERTS_SECRET": SECRET}


@contextlib.contextmanager
def webhooks(
    env: dict[str, str], log_path: Path, client: redis.Redis, prefix: str
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen([*NEWSWIRE, "webhooks"], env=env, cwd=ROOT, stdout=log, stderr=log)
        try:
            assert wait_for(lambda: has_group(client, f"{prefix}:articles"), 30), log_path.read_text()
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


def has_group(client: redis.Redis, stream: str) -> bool:
    with contextlib.suppress(redis.ResponseError):
        return any(g["name"] == b"webhook:desk-alerts" for g in client.xinfo_groups(stream))
    return False


def dead_letters(client: redis.Redis, prefix: str) -> list[dict[str, object]]:
    return [orjson.loads(f[b"data"]) for _, f in client.xrange(f"{prefix}:deadletter")]


def test_each_document_is_posted_once_signed_with_its_entry_id(
    cli_env: dict[str, str], tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    receiver = Receiver().start()
    env = webhook_env(cli_env, tmp_path, receiver.url)
    try:
        with webhooks(env, tmp_path / "webhooks.log", redis_client, prefix):
            ids = add_docs(redis_client, f"{prefix}:articles", 0, 40)
            assert wait_for(lambda: len(receiver.delivered()) == 40, 60)
    finally:
        receiver.stop()
    assert sorted(receiver.delivered()) == sorted(ids)
    assert len(receiver.posts) == 40  # once each
    for post in receiver.posts:
        assert verify(SECRET.encode(), post["body"], post["headers"]["x-newswire-signature"], time.time())
        assert post["headers"]["content-type"] == "application/json"
        assert post["headers"]["x-newswire-stream"] == "articles"
    assert not verify(b"another secret", post["body"], post["headers"]["x-newswire-signature"], time.time())
    assert SECRET not in (tmp_path / "webhooks.log").read_text()


def test_5xx_and_429_are_retried_and_a_4xx_is_final_and_dead_lettered(
    cli_env: dict[str, str], tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    def answer(doc_id: str, attempt: int) -> int:
        if doc_id == "doc3":
            return 404
        return {1: 503, 2: 429}.get(attempt, 200) if doc_id in ("doc1", "doc2") else 200

    receiver = Receiver(answer).start()
    env = webhook_env(cli_env, tmp_path, receiver.url)
    try:
        with webhooks(env, tmp_path / "webhooks.log", redis_client, prefix):
            ids = add_docs(redis_client, f"{prefix}:articles", 0, 5)
            assert wait_for(lambda: len(receiver.delivered()) == 4 and dead_letters(redis_client, prefix), 60)
    finally:
        receiver.stop()
    assert sorted(receiver.delivered()) == sorted(ids[:3] + ids[4:])
    attempts = {d: sum(1 for p in receiver.posts if p["doc_id"] == d) for d in ("doc1", "doc3", "doc4")}
    assert attempts == {"doc1": 3, "doc3": 1, "doc4": 1}
    (dead,) = dead_letters(redis_client, prefix)
    assert dead["entry_id"] == ids[3]
    assert dead["webhook"] == "desk-alerts"
    assert "HTTP 404" in str(dead["reason"])
    assert dead["document"]["id"] == "doc3"  # type: ignore[index]
    assert redis_client.xpending(f"{prefix}:articles", "webhook:desk-alerts")["pending"] == 0


def test_the_address_guard_applies_to_webhook_targets(
    cli_env: dict[str, str], tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    receiver = Receiver().start()
    env = {**webhook_env(cli_env, tmp_path, receiver.url), "NEWSWIRE_ALLOWED_NETWORKS": ""}
    try:
        with webhooks(env, tmp_path / "webhooks.log", redis_client, prefix):
            add_docs(redis_client, f"{prefix}:articles", 0, 1)
            assert wait_for(lambda: bool(dead_letters(redis_client, prefix)), 60)
    finally:
        receiver.stop()
    assert receiver.posts == []
    assert "blocked_address" in str(dead_letters(redis_client, prefix)[0]["reason"])


def test_a_receiver_down_for_a_minute_and_a_crash_lose_nothing(
    cli_env: dict[str, str], tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    receiver = Receiver()  # not listening yet: connections are refused
    env = webhook_env(cli_env, tmp_path, receiver.url)
    log_path, stream = tmp_path / "webhooks.log", f"{prefix}:articles"
    down_since = time.monotonic()
    with webhooks(env, log_path, redis_client, prefix) as first:
        written = add_docs(redis_client, stream, 0, 30)
        time.sleep(15)  # retrying with backoff
        first.send_signal(signal.SIGKILL)  # a crash: the entries in hand stay pending
        first.wait(10)
    with webhooks(env, log_path, redis_client, prefix):
        written += add_docs(redis_client, stream, 30, 30)
        time.sleep(max(0.0, 60 - (time.monotonic() - down_since)))
        receiver.start()
        try:
            assert wait_for(lambda: len(receiver.delivered()) == len(written), 120), log_path.read_text()[
                -3000:
            ]
        finally:
            receiver.stop()
    assert sorted(receiver.delivered()) == sorted(written)
    assert dead_letters(redis_client, prefix) == []
    assert redis_client.hlen(f"{prefix}:webhook:desk-alerts:attempts") == 0
