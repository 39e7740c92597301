"""Streams benchmark: idempotent publish and consume+ack throughput, on a private server.

    .venv/bin/python bench/streams.py [--docs N] [--procs 1,2,4] [--batches 100,500]
                                      [--parts publish,consume]

Starts its own Valkey (newswire.redisd, no persistence) on a free loopback port.

Publish: ~2 KB article documents with distinct ids and bodies, each tagged with one
topic (so every publish checks the identity keys and XADDs to two streams), through
`ingest.streams.publish.RedisStreamSink.publish` — the Lua script with the idempotency
check — from 1..P client processes. Baseline: a plain XADD per document (no check).

Consume: a stream of the same documents (written with pipelined XADDs) read
through `ingest.streams.consume` by a new group from the beginning (`for delivery in
consume(...)` and `run(handler)`), acked in batches, from 1..P processes of one
group; then checks that nothing is left pending or unread.

Prints documents/s and ratios (to the 20,000/s targets of issue 7 and to the
baseline); no pass/fail.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import orjson
import redis

from ingest.dedup.decide import PublishOutcome, Submission
from ingest.keys import articles_stream
from ingest.models import Document, TopicMatch
from ingest.streams.consume import consume, run
from ingest.streams.publish import RedisStreamSink, encode_document
from newswire import redisd

TARGET = 20_000
BODY_CHARS = 1_250  # with the other fields and the topic, ~2 KB of JSON
WORDS = ("ceasefire", "tariff", "minister", "talks", "market", "harbour", "council", "envoy", "report")


def make_doc(n: int) -> Document:
    """A distinct ~2 KB document: its own id, URL, body and content hash."""
    body = " ".join(f"{WORDS[(n + j) % len(WORDS)]}{n}-{j}" for j in range(150))[:BODY_CHARS]
    doc_id = f"{n:024x}"
    return Document(
        id=doc_id, url=f"https://bench.test/{n}", canonical_url=f"https://bench.test/{n}",
        feed_url="https://bench.test/rss.xml", source="Bench", title=f"Bench story {n}", text=body,
        summary=body[:250], authors=("A. Writer",), published_at="2026-11-27T08:00:00Z",
        fetched_at="2026-11-27T09:00:00Z", language="en",
        topics=(TopicMatch("us-trade-tariffs", 5.0),), story_id=doc_id, duplicate_of=None,
        content_hash=f"{n:032x}", extraction="trafilatura",
    )  # fmt: skip


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def publish_share(
    url: str, prefix: str, start: int, count: int, mode: str, batch: int, barrier: Barrier
) -> None:
    """One client process: `count` documents through one of the publish paths (see `PATHS`)."""
    sink = RedisStreamSink(redis.Redis.from_url(url), prefix)
    items = [Submission(make_doc(n), f"{n:024x}") for n in range(start, start + count)]
    decided: list[tuple[Document, PublishOutcome]] = []
    if mode in ("write", "rewrite"):  # the decisions are made before the clock starts
        for part in chunks(items, batch):
            decided += zip((i.doc for i in part), sink.decide_many(part), strict=True)
    if mode == "rewrite":
        sink.write_many(decided)
    barrier.wait()
    if mode == "single":
        statuses = [sink.publish(i.doc, origin=i.origin).status for i in items]
    elif mode == "many":
        statuses = [o.status for part in chunks(items, batch) for o in sink.publish_many(part)]
    else:
        written = sum(sink.write_many(part) for part in chunks(decided, batch))
        statuses = ["published"] * written if mode == "write" else ["already"] * (count - written)
    if statuses.count("published" if mode != "rewrite" else "already") != count:
        raise SystemExit(f"{mode}: {count - statuses.count('published')} documents were not published once")


def raw_share(url: str, prefix: str, start: int, count: int, mode: str, batch: int, barrier: Barrier) -> None:
    client = redis.Redis.from_url(url)
    stream = f"{prefix}:raw"
    payloads = [encode_document(make_doc(n).to_dict()) for n in range(start, start + count)]
    barrier.wait()
    for part in chunks(payloads, batch if mode == "pipelined" else 1):
        pipe = client.pipeline(transaction=False)
        for payload in part:
            pipe.xadd(stream, {"data": payload}, maxlen=1_000_000, approximate=True)
        pipe.execute()


def consume_share(url: str, stream: str, group: str, batch: int, style: str, barrier: Barrier) -> None:
    client = redis.Redis.from_url(url)
    name = mp.current_process().name
    barrier.wait()
    if style == "run":
        handled = run(client, stream, lambda d: None, group=group, consumer=name, batch=batch)["delivered"]
    else:
        handled = sum(1 for _ in consume(client, stream, group=group, consumer=name, batch=batch))
    if handled == 0:
        raise SystemExit("consumer got nothing")


def timed_processes(
    procs: int, target: Callable[..., None], args: Callable[[int], tuple[object, ...]]
) -> float:
    """Wall seconds from the moment all `procs` processes are ready until the last one ends."""
    barrier = mp.Barrier(procs + 1)
    workers = [mp.Process(target=target, args=(*args(i), barrier)) for i in range(procs)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if any(w.exitcode for w in workers):
        raise SystemExit(f"a benchmark process failed: {[w.exitcode for w in workers]}")
    return elapsed


def bench_publish(
    url: str, docs: int, procs: int, target: Callable[..., None], prefix: str, mode: str, batch: int
) -> float:
    share = docs // procs
    elapsed = timed_processes(procs, target, lambda i: (url, prefix, i * share, share, mode, batch))
    return share * procs / elapsed


def bench_consume(url: str, stream: str, procs: int, batch: int, style: str) -> float:
    client = redis.Redis.from_url(url)
    group = f"g-{style}-{batch}-{procs}"
    client.xgroup_create(stream, group, id="0")
    elapsed = timed_processes(procs, consume_share, lambda i: (url, stream, group, batch, style))
    info = client.xinfo_groups(stream)
    mine = next(g for g in info if g["name"].decode() == group)
    if mine["pending"] or mine.get("lag"):
        raise SystemExit(f"group {group}: {mine['pending']} pending, lag {mine.get('lag')}")
    return int(client.xlen(stream)) / elapsed


def row(label: str, rate: float, baseline: float | None = None) -> None:
    extra = f"  {rate / baseline:5.2f}x baseline" if baseline else ""
    print(f"  {label:<58} {rate:>9,.0f}/s  {rate / TARGET:5.2f}x target{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--procs", default="1,2,4", help="client process counts to try")
    parser.add_argument("--batches", default="100,500", help="consumer batch sizes to try")
    parser.add_argument("--parts", default="publish,consume", help="which parts to run")
    parser.add_argument("--publish-batch", type=int, default=100, help="documents per publish pipeline")
    args = parser.parse_args()
    procs = [int(p) for p in args.procs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        server = redisd.start(Path(tmp), persistent=False)
        try:
            client = redis.Redis.from_url(server.url)
            describe(client, args.docs)
            if "publish" in args.parts:
                bench_publishing(server.url, args.docs, procs, args.publish_batch)
            if "consume" in args.parts:
                bench_consuming(server.url, args.docs, procs, [int(b) for b in args.batches.split(",")])
        finally:
            server.stop()


def describe(client: redis.Redis, docs: int) -> None:
    size = len(encode_document(make_doc(0).to_dict()))
    info = client.info("server")
    version = info.get("valkey_version") or info["redis_version"]
    print(f"server: valkey/redis {version} (private, no persistence); {mp.cpu_count()} cores")
    print(f"documents: {docs:,} per run, {size:,} bytes of JSON each, one topic each")


PATHS = (  # label, target, mode
    ("plain XADD, one per round trip (no check)", raw_share, "single"),
    ("plain XADD, pipelined (no check)", raw_share, "pipelined"),
    ("publish: idempotent write, pipelined", publish_share, "write"),
    ("  the same again (every write a no-op)", publish_share, "rewrite"),
    ("decide (dedup, story) + write, pipelined", publish_share, "many"),
    ("decide + write, one article per call", publish_share, "single"),
)


def bench_publishing(url: str, docs: int, procs: list[int], batch: int) -> None:
    client = redis.Redis.from_url(url)
    print(f"publish (ingest.streams.publish.RedisStreamSink; pipelines of {batch} documents)")
    for n in procs:
        baseline = None
        for k, (label, target, mode) in enumerate(PATHS):
            client.flushall()
            count = docs if mode != "single" or target is raw_share else min(docs, 4_000)
            rate = bench_publish(url, count, n, target, f"p{n}-{k}", mode, batch)
            row(f"{n} process(es), {label}", rate, baseline if target is publish_share else None)
            baseline = rate if mode == "pipelined" else baseline


def fill(client: redis.Redis, stream: str, docs: int) -> None:
    """The stream to read back, written with pipelined XADDs (consuming does not care how)."""
    for start in range(0, docs, 1000):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(docs, start + 1000)):
            pipe.xadd(stream, {"data": encode_document(make_doc(n).to_dict())})
        pipe.execute()


def bench_consuming(url: str, docs: int, procs: list[int], batches: list[int]) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    stream = articles_stream("c")
    fill(client, stream, docs)
    print(f"consume + ack (ingest.streams.consume, {client.xlen(stream):,} entries, new group from start)")
    for batch in batches:
        for n in procs:
            for style in ("iter", "run"):
                api = "for d in consume()" if style == "iter" else "run(handler)"
                row(f"{n} process(es), batch {batch}, {api}", bench_consume(url, stream, n, batch, style))
    sample = orjson.loads(client.xrange(stream, count=1)[0][1][b"data"])
    print(f"sample document keys: {', '.join(sample)}")


if __name__ == "__main__":
    main()
