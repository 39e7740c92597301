"""`newswire http`: the HTTP service on loopback, its bearer tokens, and where it refuses to listen."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from newswire.redisd import free_port
from tests.conftest import NEWSWIRE, ROOT, run_cli


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


@pytest.fixture
def http_service(cli_env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {**cli_env, "NEWSWIRE_HTTP_PORT": str(port), "NEWSWIRE_API_TOKENS": "alpha-token,beta-token"}
    proc = subprocess.Popen([*NEWSWIRE, "http"], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz")
        yield base, env
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
        assert b"alpha-token" not in stderr, "a token reached the log"


def test_healthz_answers_without_a_token(http_service: tuple[str, dict[str, str]]) -> None:
    base, _ = http_service
    reply = httpx.get(f"{base}/healthz", timeout=5)
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "redis": True}


def test_the_api_asks_for_one_of_the_tokens(http_service: tuple[str, dict[str, str]]) -> None:
    base, _ = http_service
    assert httpx.get(f"{base}/v1/anything", timeout=5).status_code == 401
    wrong = httpx.get(f"{base}/v1/anything", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    right = httpx.get(f"{base}/v1/anything", headers={"Authorization": "Bearer beta-token"}, timeout=5)
    assert right.status_code == 404  # past the guard: no such route


def test_without_tokens_it_refuses_to_listen_beyond_loopback(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "NEWSWIRE_HTTP_ADDRESS": "0.0.0.0", "NEWSWIRE_HTTP_PORT": str(free_port())}
    result = run_cli(["http"], env, timeout=60)
    assert result.returncode != 0
    assert "without NEWSWIRE_API_TOKENS" in result.stderr
