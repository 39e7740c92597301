"""End to end through the CLI: loopback feeds -> real Celery workers -> Redis Streams -> a consumer group."""

from __future__ import annotations

import orjson
import pytest
import redis

from newswire.demo.server import SiteServer
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

DISTINCT_PAGES = 8  # 9 pages on the test site, one of them a syndicated copy (tests/fixtures/site/README.md)


def last_json_line(stdout: str) -> dict[str, object]:
    return dict(orjson.loads(stdout.strip().splitlines()[-1]))


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def sweep(cli_env: dict[str, str]) -> dict[str, object]:
    result = run_cli(["sweep", "--timeout", "120"], cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    return last_json_line(result.stdout)


def test_sweep_publishes_every_article_once_and_tags_it(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str, site: SiteServer
) -> None:
    summary = sweep(cli_env)
    assert summary["feeds"] == 5
    assert summary["feeds_failed"] == 0  # the broken feed is recovered, the empty one is fine
    assert summary["entries"] == 9
    assert (summary["published"], summary["duplicates"], summary["errors"]) == (DISTINCT_PAGES, 1, 0)

    articles = stream_docs(redis_client, f"{prefix}:articles")
    assert len(articles) == DISTINCT_PAGES
    assert len({a["id"] for a in articles}) == DISTINCT_PAGES
    assert all(a["schema_version"] == 1 and a["extraction"] in {"trafilatura", "feed"} for a in articles)

    talks = stream_docs(redis_client, f"{prefix}:topic:ukraine-ceasefire-talks")
    assert len(talks) == 1  # the syndicated copy is not published again
    assert "ceasefire" in str(talks[0]["title"]).lower() or "truce" in str(talks[0]["title"]).lower()
    match = next(t for t in talks[0]["topics"] if t["slug"] == "ukraine-ceasefire-talks")
    assert match["evidence"]

    titles = {a["title"] for a in articles}
    football = next(t for t in titles if "Kyiv side" in t)
    assert football not in {d["title"] for d in talks}

    duplicates = stream_docs(redis_client, f"{prefix}:duplicates")
    assert len(duplicates) == 1
    assert duplicates[0]["duplicate_of"] == talks[0]["id"] == duplicates[0]["story_id"]


def test_consumer_group_reads_each_story_once(cli_env: dict[str, str]) -> None:
    sweep(cli_env)
    args = ["consume", "--topic", "ukraine-ceasefire-talks", "--group", "desk", "--from-beginning"]
    first = run_cli(args, cli_env)
    assert first.returncode == 0, first.stderr[-2000:]
    docs = [orjson.loads(line) for line in first.stdout.splitlines() if line.strip()]
    assert len(docs) == 1
    assert docs[0]["topics"][0]["slug"] == "ukraine-ceasefire-talks"
    again = run_cli(args, cli_env)
    assert again.stdout.strip() == ""  # acked: nothing is delivered twice to the group
    everything = run_cli(["consume", "--group", "archive", "--from-beginning"], cli_env)
    assert len(everything.stdout.splitlines()) == DISTINCT_PAGES


def test_second_sweep_of_unchanged_feeds_is_conditional_and_publishes_nothing(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str, site: SiteServer
) -> None:
    sweep(cli_env)
    site.requests.clear()
    summary = sweep(cli_env)
    assert (summary["published"], summary["entries"]) == (0, 0)
    feed_requests = [r for r in site.requests if r.path.endswith((".xml", ".json"))]
    assert len(feed_requests) == 5
    assert all("if-none-match" in {k.lower() for k in r.headers} for r in feed_requests)
    assert all(r.status == 304 for r in feed_requests)
    assert redis_client.xlen(f"{prefix}:articles") == DISTINCT_PAGES
