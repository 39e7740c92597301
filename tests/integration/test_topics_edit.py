"""`newswire topics diff`: a draft replayed over the articles in a real Redis stream, nothing written."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import redis

from tests.conftest import ROOT, run_cli

TALKS = "Ukraine's president said Kyiv was ready for talks with Russia. The Kremlin did not respond."
ARTICLES = [  # (id, title, text, language)
    (
        "a1",
        "City library reopens after renovation",
        "The library reopened on Saturday with a new wing.",
        "en",
    ),
    ("a2", "Zelensky says Ukraine ready for ceasefire talks", TALKS, "en"),
    (
        "a3",
        "Stadtbücherei wieder geöffnet",
        "Die Stadtbücherei hat nach dem Umbau am Montag wieder geöffnet.",
        "en",
    ),
    (
        "a4",
        "Late penalty gives visitors first away win",
        "A stoppage-time penalty gave the visitors a win.",
        "en",
    ),
]


LIBRARIES = """

[aliases.library]
en = ["library", "libraries"]
de = ["Bücherei*", "Stadtbücherei*"]

[[topic]]
slug = "libraries"
name = "Public libraries"
description = "Public libraries opening, closing or being renovated."
query = "@library"
min_score = 2
"""


def publish(client: redis.Redis, prefix: str) -> None:
    """An article from two days ago, then the four above, as the pipeline writes them."""
    old = {
        "id": "a0",
        "title": "Library closes for good",
        "text": "The old library closed.",
        "language": "en",
    }
    two_days_ago = int((time.time() - 2 * 86400) * 1000)
    client.xadd(f"{prefix}:articles", {"data": orjson.dumps(old)}, id=f"{two_days_ago}-0")
    for article_id, title, text, language in ARTICLES:
        doc = {"id": article_id, "url": f"https://news.test/{article_id}", "title": title, "text": text,
               "language": language, "topics": []}  # fmt: skip
        client.xadd(f"{prefix}:articles", {"data": orjson.dumps(doc)})


def keys_and_lengths(client: redis.Redis, prefix: str) -> dict[bytes, object]:
    found: dict[bytes, object] = {}
    for key in client.scan_iter(f"{prefix}:*"):
        found[key] = client.xlen(key) if client.type(key) == b"stream" else client.type(key)
    return found


def test_diff_lists_what_a_draft_adds_and_removes_and_writes_nothing(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    publish(redis_client, prefix)
    before = keys_and_lengths(redis_client, prefix)
    draft = tmp_path / "draft.toml"
    defaults = (ROOT / "config" / "topics.toml").read_text(encoding="utf-8")
    no_talks = defaults.replace(
        'slug = "ukraine-ceasefire-talks"', 'slug = "ukraine-ceasefire-talks"\nmin_score = 20'
    )
    draft.write_text(no_talks + LIBRARIES, encoding="utf-8")

    shown = run_cli(["topics", "diff", "--topics", str(draft), "--since", "1h"], cli_env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    summary, changes = shown.stdout.strip("\n").split("\n\n")
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in summary.splitlines()}
    assert rows["topic"] == ["definition", "now", "draft", "enter", "leave"]
    assert rows["libraries"] == ["added", "0", "2", "2", "0"]
    assert rows["ukraine-ceasefire-talks"] == ["changed", "1", "0", "0", "1"]
    assert rows["russia-sanctions"] == ["unchanged", "0", "0", "0", "0"]
    header, *lines = [line for line in changes.splitlines() if not line.startswith("# ")]  # its title
    assert header.split("\t") == ["change", "topic", "id", "title", "score", "other side", "evidence"]
    listed = [line.split("\t") for line in lines]
    assert [(r[0], r[1], r[2]) for r in listed] == [  # in file order, then new topics
        ("leave", "ukraine-ceasefire-talks", "a2"),
        ("enter", "libraries", "a1"),
        ("enter", "libraries", "a3"),
    ]
    assert "below min_score 20" in listed[0][5]
    assert listed[2][6].startswith("Stadtbücherei (title): ")  # German text under `en`: the de list applies
    assert keys_and_lengths(redis_client, prefix) == before  # a diff changes nothing

    as_json = run_cli(["topics", "diff", "--topics", str(draft), "--json"], cli_env)  # --since 7d
    report = orjson.loads(as_json.stdout)
    assert report["articles"] == 5
    assert [c["id"] for c in report["changes"] if c["kind"] == "enter"] == ["a0", "a1", "a3"]
    entering = report["changes"][2]
    assert (entering["id"], entering["url"]) == ("a1", "https://news.test/a1")
    assert entering["evidence"][0] == {"term": "library", "field": "title", "snippet": ARTICLES[0][1]}


def test_diff_rejects_a_broken_draft_with_its_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    draft = tmp_path / "draft.toml"
    draft.write_text('[[topic]]\nslug = "x"\nname = "X"\ndescription = "d"\nquery = "(truce"\n')
    shown = run_cli(["topics", "diff", "--topics", str(draft)], cli_env)
    assert shown.returncode == 1
    assert f"{draft}:5: topic 'x': query: unbalanced '('" in shown.stderr
