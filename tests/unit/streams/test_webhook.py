"""Webhook decisions: the signature (and the receiver in docs/consumers.md), verdicts, backoff, the file."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path

import pytest

from config.settings import Settings
from ingest.streams.webhook import (
    BACKOFF_CAP_S,
    RateLimit,
    Webhook,
    WebhookError,
    backoff_s,
    judge_reply,
    load_webhooks,
    sign,
    verify,
)
from newswire.http.webhooks import secrets_of, webhooks_children

ROOT = Path(__file__).resolve().parents[3]


def test_the_signature_is_an_hmac_of_time_dot_body() -> None:
    header = sign(b"k", b'{"id":"a"}', 1_800_000_000)
    expected = hmac.new(b"k", b'1800000000.{"id":"a"}', hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={expected}"


def test_verify_accepts_the_right_secret_within_the_tolerance_only() -> None:
    body, now = b'{"id":"a"}', 1_800_000_000
    header = sign(b"k", body, now)
    assert verify(b"k", body, header, now + 10)
    assert not verify(b"other", body, header, now)
    assert not verify(b"k", body + b" ", header, now)
    assert not verify(b"k", body, header, now + 3600)  # a replay an hour later
    assert not verify(b"k", body, "v1=abc", now)


def test_the_ten_line_receiver_in_the_docs_verifies_our_signature() -> None:
    text = (ROOT / "docs/consumers.md").read_text()
    block = text.split("<!-- receiver -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 10
    scope: dict[str, object] = {}
    exec(block, scope)  # noqa: S102 - the documented code itself is under test
    check = scope["is_genuine"]
    body, now = b'{"id": "x", "title": "T"}', int(time.time())
    assert check(b"secret", body, sign(b"secret", body, now))  # type: ignore[operator]
    assert not check(b"secret", body, sign(b"wrong", body, now))  # type: ignore[operator]
    assert not check(b"secret", body, sign(b"secret", body, now - 3600))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("status", "kind", "verdict"),
    [
        (200, None, "delivered"), (204, None, "delivered"), (500, None, "retry"), (503, None, "retry"),
        (408, None, "retry"), (429, None, "retry"), (400, None, "final"), (404, None, "final"),
        (410, None, "final"), (301, None, "final"), (None, "timeout", "retry"), (None, "connect", "retry"),
        (None, "blocked_address", "final"), (None, "bad_scheme", "final"),
    ],
)  # fmt: skip
def test_which_replies_are_retried(status: int | None, kind: str | None, verdict: str) -> None:
    assert judge_reply(status, kind) == verdict


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(30) == BACKOFF_CAP_S
    assert backoff_s(1, "7") == 7.0
    assert backoff_s(1, "86400") == BACKOFF_CAP_S
    assert backoff_s(3, "Wed, 21 Oct 2026 07:28:00 GMT") == 4.0
    assert backoff_s(4, jitter=0.5) == 4.0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "webhooks.toml"
    path.write_text(text)
    return path


def test_the_example_file_is_empty_and_a_missing_file_means_none(tmp_path: Path) -> None:
    assert load_webhooks(ROOT / "config/webhooks.toml") == ()
    assert load_webhooks(tmp_path / "absent.toml") == ()
    assert webhooks_children(Settings(webhooks_path=ROOT / "config/webhooks.toml")) == []


def test_a_webhook_with_its_defaults_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_table = (
        'url = "https://h.example/x"\nstreams = ["articles", "topic:russia-sanctions"]\nsecret_env = "H"'
    )
    second_table = 'name = "alerts"\nurl = "http://a.example/"\nstreams = ["updates"]\nsecret_env = "A"\n'
    path = write(
        tmp_path, f"[[webhook]]\n{first_table}\n[[webhook]]\n{second_table}concurrency = 2\nrate = 0.5\n"
    )
    first, second = load_webhooks(path)
    assert first.streams == ("articles", "topic:russia-sanctions")
    assert first.name.startswith("h")
    assert first.group == f"webhook:{first.name}"
    assert (second.name, second.concurrency, second.rate, second.max_attempts) == ("alerts", 2, 0.5, 40)
    with pytest.raises(SystemExit, match="set A, H"):  # newswire up names the missing secrets
        webhooks_children(Settings(webhooks_path=path))
    monkeypatch.setenv("H", "k")
    monkeypatch.setenv("A", "k")
    assert [c.name for c in webhooks_children(Settings(webhooks_path=path))] == ["webhooks"]


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ('url = "ftp://x"\nstreams = ["articles"]\nsecret_env = "S"', "http(s) URL"),
        ('url = "https://x"\nstreams = []\nsecret_env = "S"', "non-empty list"),
        ('url = "https://x"\nstreams = ["everything"]\nsecret_env = "S"', "unknown streams"),
        ('url = "https://x"\nstreams = ["articles"]', "secret_env"),
        ('url = "https://x"\nstreams = ["articles"]\nsecret_env = "NEWSWIRE_SECRET"', "not NEWSWIRE_"),
        ('url = "https://x"\nstreams = ["articles"]\nsecret_env = "S"\nconcurrency = 0', "concurrency"),
        ('url = "https://x"\nstreams = ["articles"]\nsecret_env = "S"\nretries = 3', "unknown keys"),
        ('url = "https://x"\nstreams = ["articles"]\nsecret_env = "S"\nname = "Bad Name"', "name"),
    ],
)  # fmt: skip
def test_an_invalid_webhook_is_a_clear_error(tmp_path: Path, table: str, reason: str) -> None:
    with pytest.raises(WebhookError, match=re.escape(reason)):
        load_webhooks(write(tmp_path, "[[webhook]]\n" + table + "\n"))


def test_a_missing_secret_is_named() -> None:
    hook = Webhook("a", "https://x", ("articles",), "A_SECRET")
    with pytest.raises(WebhookError, match="A_SECRET"):
        secrets_of((hook,), {})
    assert secrets_of((hook,), {"A_SECRET": "k"}) == {"a": b"k"}


class VirtualTime:
    """A clock that only the rate limit's waits move (the limit waits on its stop flag)."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, 0.0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        self.slept += seconds
        return False


def test_the_rate_cap_spaces_requests_after_a_burst() -> None:
    virtual = VirtualTime()
    limit = RateLimit(rate=5.0, burst=2.0, clock=virtual.clock)
    for _ in range(12):
        limit.wait(virtual)  # type: ignore[arg-type]
    assert virtual.slept == pytest.approx(10 / 5.0)  # two at once, then one every 0.2 s
