"""The `newswire` command line (CONTRACT §2). Commands are thin: parse, call, print."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import click
import orjson
import redis

from config.logs import configure_logging
from config.settings import Settings, SettingsError, load_settings
from ingest.feeds.feedsfile import (
    FeedsFileError,
    add_feeds_to_file,
    load_feeds_file,
    parse_opml,
    remove_feed_from_file,
    render_opml,
)
from ingest.keys import articles_stream, topic_stream
from ingest.models import Feed
from newswire import views
from newswire.service import ensure_redis

T = TypeVar("T")


def load(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@contextlib.contextmanager
def redis_client(settings: Settings) -> Iterator[tuple[Settings, redis.Redis]]:
    """A client for the configured Redis, or the embedded one (started for this command if needed)."""
    settings, server = ensure_redis(settings)
    assert settings.redis_url is not None  # noqa: S101 - ensure_redis set it
    try:
        yield settings, redis.Redis.from_url(settings.redis_url)
    finally:
        if server is not None:
            server.stop()


@click.group()
@click.version_option(package_name="newswire")
@click.pass_context
def main(ctx: click.Context) -> None:
    """newswire: polite feed polling, clean article bodies, dedup, topics, Redis Streams out."""
    try:
        ctx.obj = load_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid setting: {exc}") from exc
    configure_logging(ctx.obj.log_level)


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 512), help="Extraction processes (default: cores).")
@click.option("--no-flower", is_flag=True, help="Do not start Flower.")
@click.pass_context
def up(ctx: click.Context, concurrency: int | None, no_flower: bool) -> None:
    """Run the service: (embedded Redis) + workers + beat + Flower, until Ctrl-C."""
    from newswire.up import run_service  # noqa: PLC0415 - keeps other commands light

    run_service(load(ctx), concurrency=concurrency, flower=not no_flower)


@main.command()
@click.option("--queues", default="feeds,articles,extract", show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Pool size (default: cores).")
@click.option(
    "--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork", show_default=True
)
@click.pass_context
def worker(ctx: click.Context, queues: str, concurrency: int | None, pool: str) -> None:
    """Run one Celery worker for some queues (NEWSWIRE_REDIS_URL must be set)."""
    from newswire.up import run_worker  # noqa: PLC0415

    run_worker(load(ctx), queues=queues, concurrency=concurrency, pool=pool)


@main.command()
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait for all work.")
@click.pass_context
def sweep(ctx: click.Context, timeout: float) -> None:
    """Poll every enabled feed once and wait until all of it is published; print a JSON summary."""
    from newswire.sweep import run_sweep  # noqa: PLC0415

    try:
        result = run_sweep(load(ctx), timeout=timeout)
    except FeedsFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(orjson.dumps(result.summary).decode())
    sys.exit(0 if result.complete else 3)


@main.command()
@click.option("--timeout", type=float, default=300.0, show_default=True)
@click.pass_context
def demo(ctx: click.Context, timeout: float) -> None:
    """Offline showcase: serve a bundled news site on loopback, ingest it, show the tagged stories."""
    from newswire.demo.run import run_demo  # noqa: PLC0415

    sys.exit(run_demo(load(ctx), timeout=timeout))


@main.group()
def feeds() -> None:
    """The feed registry (the feeds file) and each feed's health."""


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per feed.")
@click.pass_context
def feeds_list(ctx: click.Context, as_json: bool) -> None:
    settings = load(ctx)
    registered = read_feeds(settings)
    with redis_client(settings) as (settings, client):
        rows = views.feed_rows(client, settings.prefix, registered)
    views.print_feeds(rows, as_json=as_json)


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="Display name.")
@click.option("--interval", type=click.IntRange(60, None), help="Fixed poll interval in seconds.")
@click.option("--no-robots", is_flag=True, help="Fetch this feed's article pages whatever robots.txt says.")
@click.option("--no-discover", is_flag=True, help="Add URL as given, without fetching it.")
@click.pass_context
def feeds_add(
    ctx: click.Context, url: str, name: str | None, interval: int | None, no_robots: bool, no_discover: bool
) -> None:
    """Add a feed or sitemap; a site's page is resolved to the feed it announces (<link rel=alternate>)
    and its news sitemap (robots.txt, common paths), or its best sitemap when it has no feed."""
    settings = load(ctx)
    found = [(url, "")] if no_discover else discover(settings, url)
    kinds = {u: ("sitemap" if "sitemap" in label else None) for u, label in found}
    wanted = [Feed(u, name, interval, robots=not no_robots, kind=kinds[u]) for u, _ in found]
    added = {f.url for f in edit_feeds(lambda: add_feeds_to_file(settings.feeds_path, wanted))}
    where = settings.feeds_path
    for source, label in found:
        what = f" ({label})" if label else ""
        click.echo(
            f"added {source}{what} to {where}" if source in added else f"{source} is already in {where}"
        )


def discover(settings: Settings, url: str) -> list[tuple[str, str]]:
    """The sources behind `url` as (URL, what it is): itself when it is a feed or sitemap, or when it
    cannot be checked now; else the feed the page announces and the site's news sitemap."""
    from ingest.feeds.discover import DiscoveryError, NotAFeedError, discover_sources  # noqa: PLC0415
    from ingest.fetch.http import Fetcher  # noqa: PLC0415
    from workers.context import fetch_options  # noqa: PLC0415

    with Fetcher(fetch_options(settings)) as fetcher:
        try:
            sources = discover_sources(url, fetcher)
        except NotAFeedError as exc:
            raise click.ClickException(
                f"{exc}, nor lists a sitemap (--no-discover adds the URL as given)"
            ) from exc
        except DiscoveryError as exc:  # offline or the site is down: polling will keep trying it
            click.echo(f"warning: {exc}; added as given", err=True)
            return [(url, "")]
    if sources.feed is not None and not sources.feed.is_direct:
        others = len(sources.feed.candidates) - 1
        click.echo(f"{url} announces {sources.feed.feed_url}" + (f" (and {others} more)" if others else ""))
    for source in sources.found:
        if source.kind != "feed":
            click.echo(f"found {source.url} ({source.kind})")
    return [(s.url, s.kind) for s in sources.chosen]


@feeds.command("remove")
@click.argument("url")
@click.pass_context
def feeds_remove(ctx: click.Context, url: str) -> None:
    settings = load(ctx)
    if not edit_feeds(lambda: remove_feed_from_file(settings.feeds_path, url)):
        raise click.ClickException(f"{url} is not in {settings.feeds_path}")
    click.echo(f"removed {url} from {settings.feeds_path}")


@feeds.command("import")
@click.argument("opml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def feeds_import(ctx: click.Context, opml: Path) -> None:
    settings = load(ctx)
    found = edit_feeds(lambda: parse_opml(opml.read_bytes(), str(opml)))
    added = edit_feeds(lambda: add_feeds_to_file(settings.feeds_path, found))
    click.echo(f"{len(found)} feeds in {opml}; {len(added)} new added to {settings.feeds_path}")


@feeds.command("export")
@click.pass_context
def feeds_export(ctx: click.Context) -> None:
    """Print the registry as OPML 2.0."""
    click.echo(render_opml(read_feeds(load(ctx))), nl=False)


def read_feeds(settings: Settings) -> list[Feed]:
    return edit_feeds(lambda: load_feeds_file(settings.feeds_path))


def edit_feeds(action: Callable[[], T]) -> T:
    try:
        return action()
    except FeedsFileError as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
def topics() -> None:
    """Topic definitions, and why an article gets its topics."""


@topics.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
@click.pass_context
def topics_list(ctx: click.Context, as_json: bool) -> None:
    """The topic definitions in use: slug, name, description."""
    views.print_topics(views.load_topic_set(load(ctx).topics_path), as_json=as_json)


@topics.command("explain")
@click.argument("url_or_file")
@click.pass_context
def topics_explain(ctx: click.Context, url_or_file: str) -> None:
    """Which topics one article gets and why: score, parts, evidence, the reason for each miss."""
    from newswire.single import explain_one  # noqa: PLC0415

    views.print_explanation(explain_one(load(ctx), url_or_file))


@topics.command("retag")
@click.option("--since", "since", default="24h", show_default=True, help="How far back: 90m, 24h, 7d.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
@click.pass_context
def topics_retag(ctx: click.Context, since: str, timeout: float) -> None:
    """Re-tag recent articles with the current topics; publish new matches to their topic streams once."""
    from ingest.tag.retag import parse_duration  # noqa: PLC0415
    from newswire.retag import run_retag  # noqa: PLC0415

    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    report = run_retag(load(ctx), since_s=seconds, timeout=timeout)
    click.echo(orjson.dumps(report).decode())
    sys.exit(0 if report.get("complete") else 3)


TOPICS_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@topics.command("test")
@click.option("--labels", type=TOPICS_FILE, required=True, help="Labelled items, JSON Lines.")
@click.option("--topics", "topics_file", type=TOPICS_FILE, help="Topics file (default: the one in use).")
@click.option("--fail-under", type=click.FloatRange(0, 1), help="Exit 1 if any topic's F1 is below this.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: scores and errors.")
@click.pass_context
def topics_test(
    ctx: click.Context, labels: Path, topics_file: Path | None, fail_under: float | None, as_json: bool
) -> None:
    """Score topic definitions on labelled items: P/R/F1 per topic, every error with its evidence."""
    from newswire.topicedit import print_test, run_test  # noqa: PLC0415

    report = run_test(topics_file or load(ctx).topics_path, labels)
    print_test(report, as_json=as_json)
    if fail_under is not None and any(s.f1 < fail_under for s in report.scores):
        sys.exit(1)


@topics.command("diff")
@click.option("--topics", "draft", type=TOPICS_FILE, required=True, help="The draft topics file.")
@click.option("--since", default="7d", show_default=True, help="How far back: 90m, 24h, 7d.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: per-topic counts and changes.")
@click.pass_context
def topics_diff(ctx: click.Context, draft: Path, since: str, as_json: bool) -> None:
    """Replay a draft over the articles still in the stream: per topic, which would enter or leave."""
    from ingest.tag.retag import parse_duration  # noqa: PLC0415
    from newswire.topicedit import print_diff, run_diff  # noqa: PLC0415

    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    with redis_client(load(ctx)) as (settings, client):
        report = run_diff(settings, client, draft, seconds)
    print_diff(report, as_json=as_json)


@main.command()
@click.argument("url_or_file")
@click.pass_context
def extract(ctx: click.Context, url_or_file: str) -> None:
    """One article through fetch + extract + tag, printed as the article document (no Redis)."""
    from newswire.single import extract_one  # noqa: PLC0415

    click.echo(orjson.dumps(extract_one(load(ctx), url_or_file), option=orjson.OPT_INDENT_2).decode())


@main.command()
@click.option("--topic", help="Read {prefix}:topic:SLUG instead of {prefix}:articles.")
@click.option("--group", default="newswire-cli", show_default=True)
@click.option("--consumer", default="cli", show_default=True)
@click.option(
    "--from-beginning", is_flag=True, help="A new group starts at the oldest entry (default: new ones)."
)
@click.option("--since", metavar="ISO8601", help="A new group starts at the first entry at/after this time.")
@click.option("--count", type=click.IntRange(1, None), help="Stop after N documents.")
@click.option("--follow", is_flag=True, help="Keep waiting for new documents.")
@click.option(
    "--max-deliveries", type=click.IntRange(1, 1000), default=5, show_default=True,
    help="Move an entry delivered this many times without an ack to the dead-letter stream.",
)  # fmt: skip
@click.option(
    "--claim-idle", type=click.FloatRange(0, None), default=60.0, show_default=True,
    help="Seconds after which another consumer's unacked entries are taken over.",
)  # fmt: skip
@click.pass_context
def consume(
    ctx: click.Context, topic: str | None, group: str, consumer: str, from_beginning: bool, since: str | None,
    count: int | None, follow: bool, max_deliveries: int, claim_idle: float,
) -> None:  # fmt: skip
    """Read an output stream through a consumer group: one JSON document per line, acked after writing."""
    from ingest.streams.consume import consume as read_stream  # noqa: PLC0415
    from ingest.streams.consume import ensure_group, group_start  # noqa: PLC0415

    if from_beginning and since:
        raise click.UsageError("--from-beginning and --since exclude each other")
    try:
        start = group_start(from_beginning=from_beginning, since=since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    with redis_client(load(ctx)) as (settings, client):
        stream = topic_stream(settings.prefix, topic) if topic else articles_stream(settings.prefix)
        if not ensure_group(client, stream, group, start=start) and start != "$":
            click.echo(f"group {group!r} exists already: it resumes where it left off", err=True)
        deliveries = read_stream(
            client, stream, group=group, consumer=consumer, since=since, from_beginning=from_beginning,
            follow=follow, count=count, max_deliveries=max_deliveries, claim_idle_ms=int(claim_idle * 1000),
        )  # fmt: skip
        with contextlib.closing(deliveries), contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            for delivery in deliveries:  # acked when the next one is asked for, or at close
                sys.stdout.write(orjson.dumps(delivery.document).decode() + "\n")
                sys.stdout.flush()


MAX_OVERDUE = click.option(
    "--max-overdue", type=click.FloatRange(0), default=900.0, show_default=True,
    help="Seconds past its due time after which a feed counts as overdue for the verdict.",
)  # fmt: skip


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@MAX_OVERDUE
@click.pass_context
def status(ctx: click.Context, as_json: bool, max_overdue: float) -> None:
    """Verdict with reasons, workers, queues, feeds (ok/overdue/failing/disabled), streams and lag."""
    from newswire.health import take_snapshot  # noqa: PLC0415 - keeps other commands light
    from newswire.verdict import read_signals  # noqa: PLC0415

    settings = load(ctx)
    snapshot = take_snapshot(settings)
    report = views.status_report(settings, snapshot, max_overdue, read_signals(settings, snapshot))
    views.print_status(report, as_json=as_json)


@main.command()
@MAX_OVERDUE
@click.option("--worker", help="Only this worker (`extract` = extract@<this host>), for its container.")
@click.pass_context
def health(ctx: click.Context, max_overdue: float, worker: str | None) -> None:
    """Exit 0 when Redis and the broker answer, every queue has a worker and feeds are polled on time."""
    from newswire import health as probes  # noqa: PLC0415

    settings = load(ctx)
    snapshot = probes.take_snapshot(settings)
    own = probes.local_worker_name(worker, settings.node_name) if worker else None
    checks = probes.evaluate(snapshot, max_overdue, own)
    for check in checks:
        click.echo(f"{'ok' if check.ok else 'FAIL':<5} {check.name:<9} {check.detail}")
    sys.exit(0 if all(c.ok for c in checks) else 1)


@main.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), help="Default: NEWSWIRE_METRICS_PORT (9464).")
@click.pass_context
def metrics(ctx: click.Context, address: str, port: int | None) -> None:
    """Serve Prometheus metrics for the whole deployment on http://ADDRESS:PORT/metrics."""
    from newswire.metrics import serve  # noqa: PLC0415

    settings = load(ctx)
    serve(settings, address, port or settings.metrics_port or 9464)


@main.command()
@click.option("--address", help="Listen address (default: NEWSWIRE_HTTP_ADDRESS).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: NEWSWIRE_HTTP_PORT).")
@click.pass_context
def http(ctx: click.Context, address: str | None, port: int | None) -> None:
    """Serve the HTTP service (WebSub callbacks, SSE, look-ups, the desk page) until Ctrl-C."""
    from newswire.http.server import serve  # noqa: PLC0415 - the web stack loads only here

    with redis_client(load(ctx)) as (settings, _client):
        serve(settings, address or settings.http_address, port or settings.http_port or 8480)


@main.command()
@click.pass_context
def webhooks(ctx: click.Context) -> None:
    """Deliver documents to the webhooks of NEWSWIRE_WEBHOOKS (signed POSTs) until Ctrl-C."""
    from ingest.streams.webhook import WebhookError  # noqa: PLC0415
    from newswire.http.webhooks import run_webhooks  # noqa: PLC0415

    with redis_client(load(ctx)) as (settings, _client):
        try:
            code = run_webhooks(settings)
        except WebhookError as exc:
            raise click.ClickException(str(exc)) from exc
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
