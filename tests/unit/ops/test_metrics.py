"""Metrics kept in Redis, what each finished task adds, the exporter's output, and the deploy files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config.settings import load_settings
from ingest.ops.metrics import (
    COUNTERS,
    HISTOGRAMS,
    Count,
    Observe,
    RedisMetrics,
    bucket_of,
    decode_series,
    encode_series,
    labels_of,
)
from newswire.metrics import NewswireCollector
from workers import signals

ROOT = Path(__file__).resolve().parents[3]
GAUGES = {
    "newswire_redis_up", "newswire_broker_up", "newswire_queue_depth", "newswire_queue_workers",
    "newswire_feeds", "newswire_feeds_overdue", "newswire_schedule_lateness_seconds",
    "newswire_stream_length", "newswire_stream_group_lag", "newswire_stream_group_pending",
}  # fmt: skip


def test_series_fields_round_trip_and_cannot_be_forged_by_label_values() -> None:
    labels = labels_of(outcome="http_500", kind="feed")
    assert decode_series(encode_series("newswire_x", labels)) == ("newswire_x", labels)
    forged = encode_series("newswire_x", labels_of(outcome="a|b=c#d"))
    assert decode_series(forged) == ("newswire_x", (("outcome", "a_b_c_d"),))


@pytest.mark.parametrize(
    ("value", "bucket"), [(0.0, "0.5"), (0.5, "0.5"), (0.51, "1.0"), (3.0, "5.0"), (99.0, "+Inf")]
)
def test_an_observation_lands_in_the_smallest_bucket_it_fits(value: float, bucket: str) -> None:
    assert bucket_of(value, (0.5, 1.0, 5.0)) == bucket


def test_counts_and_histograms_read_back_cumulative(redis_client: redis.Redis, prefix: str) -> None:
    metrics = RedisMetrics(redis_client, prefix)
    metrics.record([Count("newswire_articles", labels_of(outcome="published"), 2)])
    metrics.record([Count("newswire_articles", labels_of(outcome="published"))])
    for seconds in (0.3, 4.0, 7200.0):
        metrics.record([Observe("newswire_end_to_end_seconds", seconds)])
    assert metrics.counters()["newswire_articles"] == {(("outcome", "published"),): 3}
    [latency] = metrics.histograms()
    buckets = dict(latency.buckets)
    assert (buckets["0.5"], buckets["5.0"], buckets["3600.0"], buckets["+Inf"]) == (1, 2, 2, 3)
    assert latency.count == 3
    assert latency.sum == pytest.approx(7204.3)


def test_a_finished_poll_counts_its_outcome_and_its_fetch_time() -> None:
    updates = signals.task_updates(signals.POLL, {"outcome": "not_modified"}, {}, 0.2, 0.0, False)
    assert updates == [
        Count("newswire_feed_polls", (("outcome", "not_modified"),)),
        Observe("newswire_fetch_seconds", 0.2, (("kind", "feed"),)),
    ]
    deferred = signals.task_updates(signals.POLL, {"outcome": "deferred"}, {}, 0.001, 0.0, False)
    assert deferred == [Count("newswire_feed_polls", (("outcome", "deferred"),))]  # no request was sent


def test_a_page_not_requested_has_no_fetch_time() -> None:
    for outcome in ("known", "deferred"):
        updates = signals.task_updates(signals.FETCH, {"outcome": outcome}, {}, 9.0, 0.0, False)
        assert updates == [Count("newswire_page_fetches", (("outcome", outcome),))]
    fetched = signals.task_updates(signals.FETCH, {"outcome": "error"}, {}, 9.0, 0.0, False)
    assert Observe("newswire_fetch_seconds", 9.0, (("kind", "page"),)) in fetched


def test_a_published_article_counts_topics_and_latency_from_first_seen() -> None:
    result = {
        "outcome": "published", "extraction": "feed", "topics": ["russia-sanctions", "us-trade-tariffs"],
        "published_at": "2026-11-27T09:00:00Z",
    }  # fmt: skip
    published = signals.parse_time("2026-11-27T09:00:00Z")
    assert published is not None
    updates = signals.task_updates(
        signals.EXTRACT, result, {"first_seen": published + 50}, 0.8, published + 60, True
    )
    assert Count("newswire_extractions", (("method", "feed"),)) in updates
    assert Count("newswire_topic_published", (("topic", "russia-sanctions"),)) in updates
    assert Observe("newswire_end_to_end_seconds", 10.0) in updates
    assert Observe("newswire_publication_delay_seconds", 60.0) in updates
    assert Observe("newswire_extract_seconds", 0.8) in updates


def test_a_duplicate_or_redelivery_adds_no_topic_or_latency() -> None:
    for outcome in ("duplicate", "already"):
        result = {"outcome": outcome, "extraction": "trafilatura", "topics": ["russia-sanctions"]}
        updates = signals.task_updates(signals.EXTRACT, result, {"first_seen": 1.0}, 0.1, 2.0, True)
        names = {u.name for u in updates}
        assert "newswire_topic_published" not in names
        assert "newswire_end_to_end_seconds" not in names
        assert Count("newswire_articles", (("outcome", outcome),)) in updates
        assert ("newswire_extractions" in names) == (outcome == "duplicate")  # a redelivery counted once


def test_a_page_not_fetched_is_not_an_extraction_fallback() -> None:
    result = {"outcome": "published", "extraction": "feed", "topics": []}
    updates = signals.task_updates(signals.EXTRACT, result, {}, 0.1, 2.0, False)
    assert "newswire_extractions" not in {u.name for u in updates}


def test_giving_up_counts_a_dead_letter_in_the_stage_it_belongs_to() -> None:
    dead = (("outcome", "dead_lettered"),)
    assert Count("newswire_articles", dead) in signals.failure_updates(signals.FETCH)
    assert Count("newswire_feed_polls", dead) in signals.failure_updates(signals.POLL)
    assert signals.failure_updates("ingest.tick") == [
        Count("newswire_dead_letters", labels_of(task="ingest.tick"))
    ]


def test_flower_shows_the_article_urls_not_the_entries() -> None:
    link = "https://example.org/a.html"
    entries = [{"link": link, "summary": "x" * 5000}, {"link": None}]
    assert signals.fetches_argsrepr(entries) == f"(['{link}', None],)"
    pages = [
        {"entry": entries[0], "page_key": "p:1", "error": None},
        {"entry": entries[1], "error": "http_404"},
    ]
    assert signals.extractions_argsrepr(pages) == f"([('{link}', None), (None, 'http_404')],)"


def test_a_batch_counts_each_of_its_articles() -> None:
    articles = [
        {"outcome": "published", "extraction": "trafilatura", "topics": ["russia-sanctions"], "page": True},
        {"outcome": "duplicate", "extraction": "feed", "topics": [], "page": False},
    ]
    updates = signals.task_updates(
        signals.EXTRACT, {"outcome": "batch", "articles": articles}, {}, 0.2, 2.0, False
    )
    assert Count("newswire_articles", (("outcome", "published"),)) in updates
    assert Count("newswire_articles", (("outcome", "duplicate"),)) in updates
    assert [u for u in updates if u.name == "newswire_extractions"] == [
        Count("newswire_extractions", (("method", "trafilatura"),))
    ]  # the page that was not fetched is no extraction fallback
    pages = {"outcome": "batch", "pages": [{"outcome": "ok"}, {"outcome": "known"}, {"outcome": "error"}]}
    fetched = signals.task_updates(signals.FETCH, pages, {}, 0.3, 2.0, False)
    assert sum(u.name == "newswire_page_fetches" for u in fetched) == 3
    assert sum(u.name == "newswire_fetch_seconds" for u in fetched) == 2  # a known page sent no request
    assert Count("newswire_dead_letters", labels_of(task=signals.EXTRACT), 3) in signals.failure_updates(
        signals.EXTRACT, 3
    )


def test_the_exporter_serves_every_catalogued_series(redis_server: object, prefix: str) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    client = redis.Redis.from_url(url)
    RedisMetrics(client, prefix).record(
        [Count("newswire_feed_polls", labels_of(outcome="ok"), 3), Observe("newswire_fetch_seconds", 0.2,
         labels_of(kind="page"))]
    )  # fmt: skip
    client.xadd(f"{prefix}:articles", {"data": "{}"})
    client.xgroup_create(f"{prefix}:articles", "desk", id="0")
    registry = CollectorRegistry(auto_describe=False)
    settings = load_settings({"NEWSWIRE_REDIS_URL": url, "NEWSWIRE_STREAM_PREFIX": prefix})
    registry.register(NewswireCollector(settings))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("newswire_feed_polls_total", (("outcome", "ok"),))] == 3
    assert samples[("newswire_fetch_seconds_count", (("kind", "page"),))] == 1
    assert samples[("newswire_fetch_seconds_bucket", (("kind", "page"), ("le", "0.25")))] == 1
    assert samples[("newswire_stream_group_lag", (("group", "desk"), ("stream", f"{prefix}:articles")))] == 1
    assert samples[("newswire_queue_depth", (("queue", f"{prefix}.extract"),))] == 0
    assert samples[("newswire_redis_up", ())] == 1


def yaml_module() -> object:
    return pytest.importorskip("yaml", reason="PyYAML (a dev dependency) parses the compose files")


def exported_names() -> set[str]:
    names = {f"{n}_total" for n in COUNTERS} | GAUGES
    for name in HISTOGRAMS:
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_the_grafana_dashboard_queries_only_series_the_exporter_serves() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/newswire.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {name for expr in exprs for name in re.findall(r"\bnewswire_[a-z_]+", expr)}
    assert used - exported_names() == set()
    assert {"newswire_end_to_end_seconds_bucket", "newswire_stream_group_lag", "newswire_feeds"} <= used


def test_compose_monitoring_profile_wires_prometheus_grafana_and_healthchecks() -> None:
    yaml = yaml_module()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[attr-defined]
    services = compose["services"]
    for name in ("worker-io", "worker-extract", "beat", "flower", "metrics"):
        assert "healthcheck" in services[name], name
    assert "newswire" in str(services["metrics"]["command"])
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    mounted = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("./deploy/prometheus.yml", "./deploy/grafana/provisioning", "./deploy/grafana/dashboards"):
        assert path in mounted
        assert (ROOT / path).exists(), path
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())  # type: ignore[attr-defined]
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert "metrics:9464" in targets


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    yaml = yaml_module()
    base = ROOT / "deploy/grafana/provisioning"
    sources = yaml.safe_load((base / "datasources/prometheus.yml").read_text())  # type: ignore[attr-defined]
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    boards = yaml.safe_load((base / "dashboards/newswire.yml").read_text())  # type: ignore[attr-defined]
    assert boards["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def test_alert_rules_use_exported_series_and_the_dashboard_uses_the_provisioned_source() -> None:
    yaml = yaml_module()
    rules = yaml.safe_load((ROOT / "deploy/alerts.yml").read_text())  # type: ignore[attr-defined]
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bnewswire_[a-z_]+", expr)}
    assert used
    assert used - exported_names() == set()
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/newswire.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"prometheus"}


def test_the_exporter_port_is_a_setting_and_zero_turns_it_off() -> None:
    assert load_settings({}).metrics_port == 9464
    assert load_settings({"NEWSWIRE_METRICS_PORT": "0"}).metrics_port == 0
