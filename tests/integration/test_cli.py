"""The CLI surface (CONTRACT §2) as a user drives it."""

from __future__ import annotations

from pathlib import Path

import orjson

from newswire.demo.server import SiteServer
from tests.conftest import FIXTURE_SITE, run_cli

TALKS_PAGE = "news/ceasefire-envoys-vienna.html"


def test_extract_a_saved_file_needs_no_redis(cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "NEWSWIRE_REDIS_URL"}
    env["NEWSWIRE_DATA_DIR"] = "/nonexistent/should-not-be-created"
    result = run_cli(["extract", str(FIXTURE_SITE / TALKS_PAGE)], env)
    assert result.returncode == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["schema_version"] == 1
    assert doc["title"].startswith("Envoys meet in Vienna")
    assert "ukraine-ceasefire-talks" in [t["slug"] for t in doc["topics"]]
    assert doc["language"] == "en"
    assert doc["extraction"] == "trafilatura"
    assert len(doc["text"].split()) > 100
    assert not Path("/nonexistent/should-not-be-created").exists()


def test_extract_a_url_goes_through_the_guarded_fetcher(cli_env: dict[str, str], site: SiteServer) -> None:
    ok = run_cli(["extract", f"{site.base_url}/{TALKS_PAGE}"], cli_env)
    assert ok.returncode == 0, ok.stderr
    assert orjson.loads(ok.stdout)["id"]
    no_allowance = {**cli_env, "NEWSWIRE_ALLOWED_NETWORKS": ""}
    blocked = run_cli(["extract", f"{site.base_url}/{TALKS_PAGE}"], no_allowance)
    assert blocked.returncode != 0
    assert "blocked_address" in blocked.stderr


def test_topics_list_and_explain(cli_env: dict[str, str]) -> None:
    listed = run_cli(["topics", "list"], cli_env)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()  # a pipe: tab-separated, one topic a line
    assert header == "slug\tname\tdescription"
    slugs = [row.split("\t")[0] for row in rows]
    for slug in ("ukraine-ceasefire-talks", "russia-sanctions", "us-trade-tariffs"):
        assert slug in slugs
    as_json = [
        orjson.loads(line) for line in run_cli(["topics", "list", "--json"], cli_env).stdout.splitlines()
    ]
    assert [t["slug"] for t in as_json] == slugs
    assert all(t["query"] for t in as_json)
    explained = run_cli(["topics", "explain", str(FIXTURE_SITE / "json/kyiv-cup-penalties.html")], cli_env)
    assert explained.returncode == 0, explained.stderr
    report = orjson.loads(explained.stdout)
    talks = next(t for t in report["topics"] if t["slug"] == "ukraine-ceasefire-talks")
    assert talks["matched"] is False


def test_feeds_add_remove_import_export(cli_env: dict[str, str], tmp_path: Path) -> None:
    feeds = tmp_path / "mine.toml"
    env = {**cli_env, "NEWSWIRE_FEEDS": str(feeds)}
    feeds.write_text("# my feeds\n")
    assert run_cli(["feeds", "add", "https://one.test/rss.xml", "--name", "One"], env).returncode == 0
    again = run_cli(["feeds", "add", "https://one.test/rss.xml"], env)
    assert "already" in again.stdout
    exported = run_cli(["feeds", "export"], env)
    assert 'xmlUrl="https://one.test/rss.xml"' in exported.stdout
    opml = tmp_path / "in.opml"
    opml.write_text(exported.stdout.replace("one.test", "two.test").replace("One", "Two"))
    imported = run_cli(["feeds", "import", str(opml)], env)
    assert "1 new added" in imported.stdout, imported.stderr
    assert run_cli(["feeds", "remove", "https://one.test/rss.xml"], env).returncode == 0
    missing = run_cli(["feeds", "remove", "https://one.test/rss.xml"], env)
    assert missing.returncode != 0
    assert "is not in" in missing.stderr
    assert feeds.read_text().startswith("# my feeds")
    assert "two.test" in feeds.read_text()


def test_feed_health_and_status_after_a_sweep(cli_env: dict[str, str], site: SiteServer) -> None:
    site.set_route("/empty/rss.xml", status=500)
    assert run_cli(["sweep", "--timeout", "120"], cli_env).returncode == 0
    listed = run_cli(["feeds", "list", "--json"], cli_env)
    rows = {r["url"].removeprefix(site.base_url): r for r in map(orjson.loads, listed.stdout.splitlines())}
    assert rows["/news/rss.xml"]["health"] == "ok"
    assert rows["/empty/rss.xml"]["health"] == "failing"
    assert "500" in rows["/empty/rss.xml"]["last_error"]
    table = run_cli(["feeds", "list"], cli_env).stdout.splitlines()
    columns = table[0].split("\t")
    by_url = {line.split("\t")[2]: dict(zip(columns, line.split("\t"), strict=True)) for line in table[1:]}
    assert {url.removeprefix(site.base_url) for url in by_url} == set(rows)  # every feed URL, in full
    assert by_url[f"{site.base_url}/empty/rss.xml"]["last_error"] == rows["/empty/rss.xml"]["last_error"]
    status = run_cli(["status", "--json"], cli_env)
    assert status.returncode == 0, status.stderr
    report = orjson.loads(status.stdout.splitlines()[-1])
    assert report["feeds"]["failing"] == 1
    prefix = cli_env["NEWSWIRE_STREAM_PREFIX"]
    assert report["streams"][f"{prefix}:articles"]["length"] == 8


def test_invalid_settings_fail_loudly(cli_env: dict[str, str]) -> None:
    result = run_cli(["status"], {**cli_env, "NEWSWIRE_FLOWER_PORT": "lots"})
    assert result.returncode != 0
    assert "NEWSWIRE_FLOWER_PORT" in result.stderr
