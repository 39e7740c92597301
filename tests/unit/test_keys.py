"""docs/redis-keys.md and ingest/keys.py list the same key families with the same patterns."""

import re
from pathlib import Path

from ingest import keys

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<builder>\w+)` \| `(?P<pattern>[^`]+)`", re.M)


def documented() -> dict[str, str]:
    return {m["builder"]: m["pattern"] for m in ROW.finditer((ROOT / "docs/redis-keys.md").read_text())}


def test_every_key_family_is_documented_with_its_pattern() -> None:
    assert documented() == keys.families()


def test_every_key_starts_with_the_prefix() -> None:
    assert all(pattern.startswith("{prefix}:") for pattern in keys.families().values())


def test_stream_prefix_inverts_the_stream_names() -> None:
    for stream in (keys.articles_stream("nw-eu"), keys.topic_stream("nw-eu", "us-trade-tariffs")):
        assert keys.stream_prefix(stream) == "nw-eu"
