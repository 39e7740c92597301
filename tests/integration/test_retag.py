"""`newswire topics retag`: after a topic definition changes, recent articles reach the new topic once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

LIBRARY_TOPIC = """

[[topic]]
slug = "libraries"
name = "Public libraries"
description = "Libraries opening, closing or being renovated."
query = "library OR libraries"
min_score = 2
"""


def test_retag_publishes_newly_matching_articles_once(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    assert run_cli(["sweep", "--timeout", "120"], cli_env).returncode == 0
    assert not redis_client.exists(f"{prefix}:topic:libraries")

    topics = tmp_path / "topics.toml"
    topics.write_text((ROOT / "config" / "topics.toml").read_text() + LIBRARY_TOPIC)
    env = {**cli_env, "NEWSWIRE_TOPICS": str(topics)}
    listed = run_cli(["topics", "list"], env)
    assert "libraries" in listed.stdout, listed.stderr

    first = run_cli(["topics", "retag", "--since", "1h"], env)
    assert first.returncode == 0, first.stderr[-2000:]
    report = orjson.loads(first.stdout.splitlines()[-1])
    assert report["articles"] == 8
    assert report["added"] == {"libraries": 1}
    docs = [orjson.loads(f[b"data"]) for _, f in redis_client.xrange(f"{prefix}:topic:libraries")]
    assert [d["title"] for d in docs] == ["City library reopens after two-year renovation"]
    assert "libraries" in [t["slug"] for t in docs[0]["topics"]]

    second = run_cli(["topics", "retag", "--since", "1h"], env)
    assert orjson.loads(second.stdout.splitlines()[-1])["added"] == {}
    assert redis_client.xlen(f"{prefix}:topic:libraries") == 1
