"""Look-ups, the OpenAPI document and the bearer tokens on a real `newswire http` process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis

from ingest.streams.publish import RedisStreamSink
from newswire.http.openapi import PATHS
from tests.integration.gateway import http_process
from tests.unit.streams.test_publish import NOW, body, make_doc

TOKEN = "gateway-token-7f3a"  # noqa: S105 - the test's own token


@pytest.fixture
def base(cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with http_process(cli_env, tmp_path / "http.log") as url:
        yield url


def test_an_article_its_latest_revision_and_its_story(
    base: str, redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    first = sink.publish(make_doc("lk1", title="First take"), origin="o1", now=NOW)
    other = " ".join(["the home side scored twice late in the derby as rain fell on the stadium"] * 12)
    sink.publish(make_doc("lk2", other, title="Other story", topics=()), origin="o2", now=NOW)
    article = httpx.get(f"{base}/v1/articles/lk1").json()
    assert (article["id"], article["title"], article["story_id"]) == ("lk1", "First take", first.story_id)

    changed = replace(make_doc("lk1", body(999), title="Second take"))
    assert sink.publish(changed, origin="o1", now=NOW + 60).status == "updated"
    latest = httpx.get(f"{base}/v1/articles/lk1").json()
    assert (latest["title"], latest["revision"]) == ("Second take", 2)

    story = httpx.get(f"{base}/v1/stories/{first.story_id}").json()
    assert story["story_id"] == first.story_id
    assert story["count"] == 1
    assert story["sources"] == ["X"]
    assert story["articles"][0]["document"]["title"] == "Second take"
    assert story["first_seen"].endswith("Z")

    recent = httpx.get(f"{base}/v1/stories", params={"limit": 10}).json()
    assert {s["story_id"] for s in recent["stories"]} >= {first.story_id}
    assert "text" not in recent["stories"][0]["articles"][0]["document"]
    assert recent["last_event_id"] == redis_client.xrevrange(f"{prefix}:articles", count=1)[0][0].decode()
    assert httpx.get(f"{base}/v1/articles/nope").status_code == 404
    assert httpx.get(f"{base}/v1/stories/nope").status_code == 404
    assert httpx.get(f"{base}/v1/stories", params={"limit": 0}).status_code == 400


def test_a_story_lists_its_articles_oldest_first_with_their_sources(
    base: str, redis_client: redis.Redis, prefix: str
) -> None:
    sink = RedisStreamSink(redis_client, prefix)
    lead = sink.publish(make_doc("st1", body(7)), origin="a", now=NOW)
    # another outlet's report on the same talks an hour later: one story, two articles
    follow = replace(make_doc("st2", body(8)), source="Y")
    outcome = sink.publish(follow, origin="b", now=NOW + 3600)
    assert (outcome.status, outcome.story_id) == ("published", lead.story_id)
    story = httpx.get(f"{base}/v1/stories/{lead.story_id}").json()
    assert [a["document"]["id"] for a in story["articles"]] == ["st1", "st2"]
    assert story["sources"] == ["X", "Y"]
    assert story["articles"][0]["first_seen"] <= story["articles"][1]["first_seen"]


def test_topics_and_the_openapi_document(base: str) -> None:
    topics = httpx.get(f"{base}/v1/topics").json()["topics"]
    slugs = {t["slug"] for t in topics}
    assert {"ukraine-ceasefire-talks", "russia-sanctions", "us-trade-tariffs"} <= slugs
    assert all(t["stream"] == f"topic:{t['slug']}" for t in topics)
    spec = httpx.get(f"{base}/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == set(PATHS)


def test_every_api_route_asks_for_a_token_and_the_desk_page_does_not(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "http.log"
    with http_process(cli_env, log, NEWSWIRE_API_TOKENS=f"{TOKEN},second") as base:
        paths = ["/v1/streams/articles", "/v1/articles/x", "/v1/stories", "/v1/stories/x", "/v1/topics",
                 "/v1/openapi.json"]  # fmt: skip
        for path in paths:
            assert httpx.get(base + path, headers={"Accept": "text/event-stream"}).status_code == 401, path
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/v1/topics", headers=auth).status_code == 200
        with httpx.stream(
            "GET", f"{base}/v1/streams/articles", headers={**auth, "Accept": "text/event-stream"}
        ) as r:
            assert r.status_code == 200
        desk = httpx.get(f"{base}/")
        assert desk.status_code == 200
        assert "newswire desk" in desk.text
        assert httpx.get(f"{base}/desk.js").headers["content-type"].startswith("text/javascript")
    assert TOKEN not in log.read_text()
