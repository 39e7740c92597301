"""Delivery end to end on the suite's real Redis: exactly once into the streams, at least once out.

Real Celery worker for redelivered tasks, real `newswire consume` processes killed with SIGKILL,
real consumer processes that crash on a poison entry, and the article schema checked against
what a real sweep publishes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import orjson
import pytest
import redis

from config.settings import load_settings
from ingest.keys import articles_stream, deadletter_stream
from ingest.models import Document, FeedEntry, TopicMatch
from ingest.ops.progress import RedisStats
from ingest.streams.consume import consume
from ingest.streams.publish import RedisStreamSink
from newswire.demo.server import SiteServer
from newswire.service import worker_argv
from tests.conftest import FIXTURE_SITE, NEWSWIRE, ROOT, run_cli, worker_process
from workers.app import create_app, queue_name

SCHEMA = json.loads((ROOT / "docs" / "article.schema.json").read_text())
CRASHING_CONSUMER = """
import os, sys, redis
from ingest.streams.consume import run
url, stream, out = sys.argv[1:4]
def handle(delivery):
    if delivery.document.get("poison"):
        os._exit(17)  # the consumer process dies on this entry, without a chance to ack anything
    with open(out, "a") as f:
        f.write(delivery.document["id"] + "\\n")
run(redis.Redis.from_url(url), stream, handle, group="g", consumer="worker", from_beginning=True,
    max_deliveries=3)
"""


def make_doc(i: int, words: int = 280) -> Document:
    """A ~2 KB article document of its own."""
    text = " ".join(f"w{i}x{j}" for j in range(words))
    doc_id = f"{i:024x}"
    return Document(
        id=doc_id, url=f"https://news.test/{i}", canonical_url=f"https://news.test/{i}", feed_url=None,
        source="Test", title=f"Story {i}", text=text, summary=text[:200], authors=(), published_at=None,
        fetched_at="2026-11-27T09:00:00Z", language="en", topics=(TopicMatch("us-trade-tariffs", 4.0),),
        story_id=doc_id, duplicate_of=None, content_hash=f"{i:032x}", extraction="feed",
    )  # fmt: skip


def publish(client: redis.Redis, prefix: str, n: int, start: int = 0) -> list[str]:
    """`n` distinct documents through the real (idempotent) publish script; their ids."""
    sink = RedisStreamSink(client, prefix)
    docs = [make_doc(i) for i in range(start, start + n)]
    assert {sink.publish(d, origin=f"e{d.id}").status for d in docs} == {"published"}
    return [d.id for d in docs]


def lines_of(stdout: str) -> list[str]:
    return [orjson.loads(line)["id"] for line in stdout.splitlines() if line.strip()]


def stream_docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def extract_worker(cli_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real extraction worker (prefork, one child), started like `newswire up` starts it."""
    argv = worker_argv("extract-test", queue_name(cli_env["NEWSWIRE_STREAM_PREFIX"], "extract"), "prefork", 1)
    with worker_process(argv, cli_env, tmp_path / "worker.log") as proc:
        yield proc


@pytest.mark.slow
def test_an_extract_task_redelivered_after_its_publish_step_adds_nothing(
    cli_env: dict[str, str], site: SiteServer, extract_worker: subprocess.Popen[bytes],
    redis_client: redis.Redis, prefix: str,
) -> None:  # fmt: skip
    link = f"{site.base_url}/news/ceasefire-envoys-vienna.html"
    page = FIXTURE_SITE / "news" / "ceasefire-envoys-vienna.html"
    html = page.read_text().replace("{{BASE}}", site.base_url)
    entry = FeedEntry(feed_url=f"{site.base_url}/news/rss.xml", key="vienna", link=link, title="Envoys")
    app = create_app(load_settings(cli_env))
    for _ in range(2):  # the same message twice: what the broker does after a worker is lost
        app.send_task("ingest.extract_article", args=[entry.to_dict(), html, link, None])
    stats = RedisStats(redis_client, prefix)
    assert wait_for(lambda: sum(v for k, v in stats.all().items() if k.startswith("article:")) >= 2, 90), (
        stats.all()
    )
    assert (stats.all().get("article:published"), stats.all().get("article:already")) == (1, 1)
    assert redis_client.xlen(articles_stream(prefix)) == 1
    assert redis_client.xlen(f"{prefix}:topic:ukraine-ceasefire-talks") == 1
    assert not redis_client.exists(f"{prefix}:duplicates")  # a redelivery is not a copy


@pytest.mark.slow
def test_a_batch_publishes_its_good_pages_and_dead_letters_only_the_broken_one(
    cli_env: dict[str, str], site: SiteServer, extract_worker: subprocess.Popen[bytes],
    redis_client: redis.Redis, prefix: str,
) -> None:  # fmt: skip
    pages = []
    for name in ("ceasefire-envoys-vienna", "us-steel-tariffs"):
        link = f"{site.base_url}/news/{name}.html"
        html = (FIXTURE_SITE / "news" / f"{name}.html").read_text().replace("{{BASE}}", site.base_url)
        entry = FeedEntry(feed_url=f"{site.base_url}/news/rss.xml", key=name, link=link, title=name)
        pages.append(
            {"entry": entry.to_dict(), "item": f"a:{name}", "html": html, "final_url": link, "error": None}
        )
    broken = {"entry": {"not": "a feed entry"}, "item": "a:broken", "final_url": None, "error": None}
    app = create_app(load_settings(cli_env))
    app.send_task("ingest.extract_articles", args=[[pages[0], broken, pages[1]]])
    stats = RedisStats(redis_client, prefix)
    assert wait_for(lambda: stats.all().get("article:published", 0) >= 2, 90), stats.all()
    assert redis_client.xlen(articles_stream(prefix)) == 2
    [dead] = [orjson.loads(f[b"data"]) for _, f in redis_client.xrange(deadletter_stream(prefix))]
    assert dead["task"] == "ingest.extract_articles"
    assert dead["args"] == [[broken]]  # replayable alone, as a batch of one
    assert stats.all().get("ingest.extract_articles:dead_lettered") == 1


def test_a_consumer_killed_mid_batch_loses_nothing_and_a_group_mate_takes_over(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    published = publish(redis_client, prefix, 250)
    victim = subprocess.Popen(
        [*NEWSWIRE, "consume", "--group", "desk", "--consumer", "victim", "--from-beginning", "--follow"],
        env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=(tmp_path / "victim.log").open("wb"),
    )  # fmt: skip
    assert victim.stdout is not None
    seen = [orjson.loads(victim.stdout.readline())["id"] for _ in range(150)]  # the first batch is acked
    victim.send_signal(signal.SIGKILL)  # mid-batch: its pipe is full, the second batch half written
    victim.wait(10)
    seen += lines_of(victim.stdout.read().decode())
    in_hand = {
        orjson.loads(f[b"data"])["id"]
        for p in redis_client.xpending_range(articles_stream(prefix), "desk", "-", "+", 1000)
        for _, f in redis_client.xrange(articles_stream(prefix), p["message_id"], p["message_id"])
    }
    assert in_hand  # delivered to the victim, never acked
    survivor = run_cli(["consume", "--group", "desk", "--consumer", "survivor", "--claim-idle", "0"], cli_env)
    assert survivor.returncode == 0, survivor.stderr[-2000:]
    taken_over = lines_of(survivor.stdout)
    assert set(seen) | set(taken_over) == set(published)  # nothing lost
    assert in_hand <= set(taken_over)  # every unacked entry was delivered again
    assert set(seen) & set(taken_over) <= in_hand  # only unacked entries are seen twice
    assert redis_client.xpending(articles_stream(prefix), "desk")["pending"] == 0


def test_a_poison_entry_that_kills_its_consumer_is_dead_lettered_after_n_deliveries(
    redis_server: object, redis_client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    stream = articles_stream(prefix)
    published = publish(redis_client, prefix, 30)
    redis_client.xadd(stream, {"data": orjson.dumps({"id": "bad", "poison": True})})
    published += publish(redis_client, prefix, 10, start=30)
    out = tmp_path / "handled.txt"
    argv = [sys.executable, "-c", CRASHING_CONSUMER, redis_server.url, stream, str(out)]  # type: ignore[attr-defined]
    exits = [subprocess.run(argv, cwd=ROOT, timeout=60, check=False).returncode for _ in range(5)]
    assert exits == [17, 17, 17, 0, 0]  # three deliveries crash it; the fourth is dead-lettered instead
    assert set(out.read_text().split()) == set(published)
    (letter,) = stream_docs(redis_client, deadletter_stream(prefix))
    assert letter["document"] == {"id": "bad", "poison": True}
    assert (letter["stream"], letter["group"], letter["deliveries"]) == (stream, "g", 4)
    assert "delivered 4 times without an ack" in str(letter["reason"])
    assert redis_client.xpending(stream, "g")["pending"] == 0


def test_an_entry_that_is_not_json_is_dead_lettered_and_the_cli_carries_on(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str
) -> None:
    stream = articles_stream(prefix)
    first = publish(redis_client, prefix, 2)
    redis_client.xadd(stream, {"data": b"<html>not json</html>"})
    result = run_cli(["consume", "--group", "desk", "--from-beginning"], cli_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert lines_of(result.stdout) == first
    (letter,) = stream_docs(redis_client, deadletter_stream(prefix))
    assert letter["data"] == "<html>not json</html>"
    assert str(letter["reason"]).startswith("undecodable")
    replay = run_cli(["consume", "--group", "desk"], cli_env)
    assert replay.stdout.strip() == ""


def test_a_consumer_started_after_1000_stories_replays_them_from_the_beginning(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str
) -> None:
    published = publish(redis_client, prefix, 1000)
    replay = run_cli(["consume", "--group", "latecomer", "--from-beginning"], cli_env)
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert lines_of(replay.stdout) == published  # all of them, in publishing order
    assert run_cli(["consume", "--group", "latecomer"], cli_env).stdout.strip() == ""
    assert run_cli(["consume", "--group", "newcomer"], cli_env).stdout.strip() == ""  # new entries only

    entry_ids = [eid.decode() for eid, _ in redis_client.xrange(articles_stream(prefix))]
    middle_ms = int(entry_ids[600].split("-")[0])
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle_ms // 1000)) + f".{middle_ms % 1000:03d}Z"
    expected = [p for p, e in zip(published, entry_ids, strict=True) if int(e.split("-")[0]) >= middle_ms]
    partial = run_cli(["consume", "--group", "since", "--since", since], cli_env)
    assert lines_of(partial.stdout) == expected
    assert 400 <= len(expected) < 1000  # the entries of that millisecond and every later one


def test_entries_trimmed_while_pending_do_not_crash_the_consumer(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str
) -> None:
    stream = articles_stream(prefix)
    publish(redis_client, prefix, 20)
    for name in ("a", "b"):  # two consumers die holding ten entries each
        dead = consume(redis_client, stream, group="desk", consumer=name, from_beginning=True, batch=10)
        next(dead)
        dead.close()
    redis_client.xtrim(stream, maxlen=0, approximate=False)
    later = publish(redis_client, prefix, 3, start=100)
    result = run_cli(["consume", "--group", "desk", "--consumer", "a", "--claim-idle", "0"], cli_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert lines_of(result.stdout) == later
    assert redis_client.xpending(stream, "desk")["pending"] == 0
    assert int(redis_client.hget(f"{prefix}:stats", "consume:trimmed") or 0) == 20


@pytest.mark.slow
def test_what_a_real_sweep_publishes_matches_the_article_schema(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str
) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    result = run_cli(["sweep", "--timeout", "120"], cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    streams = [k.decode() for k in redis_client.scan_iter(f"{prefix}:*", _type="stream")]
    docs = [doc for s in streams if not s.endswith(":deadletter") for doc in stream_docs(redis_client, s)]
    assert len(docs) >= 10  # articles, topic streams and the duplicates stream
    for doc in docs:
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], (doc["url"], errors)
    assert any(d["duplicate_of"] for d in docs)
    assert any(t["evidence"] for d in docs for t in d["topics"])  # type: ignore[attr-defined]
    broken = dict(docs[0], topics=[{"slug": "Not A Slug", "score": -1}])
    assert len(list(validator.iter_errors(broken))) == 3
