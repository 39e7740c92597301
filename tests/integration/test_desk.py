"""The desk page in a real browser (headless Chromium driven by Playwright), behind a token:
after a sweep of the demo site it lists the stories with their topics and evidence, filters by
topic, fits a phone, and shows an article published later without a reload."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Page, expect, sync_playwright

from ingest.streams.publish import RedisStreamSink
from newswire.demo.server import SiteServer
from tests.conftest import ROOT, run_cli
from tests.integration.gateway import http_process
from tests.unit.streams.test_publish import make_doc

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip
DEMO = ROOT / "newswire" / "demo" / "site"
TOKEN = "desk-token-5d1e"  # noqa: S105 - the test's own token


@pytest.fixture
def desk(cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The HTTP service over the streams of a sweep of the demo site."""
    with SiteServer(DEMO) as site:
        feeds = tmp_path / "demo-feeds.toml"
        feeds.write_text((DEMO / "feeds.toml").read_text().replace("{{BASE}}", site.base_url))
        env = {**cli_env, "NEWSWIRE_FEEDS": str(feeds)}
        result = run_cli(["sweep", "--timeout", "150"], env, timeout=200)
        assert result.returncode == 0, result.stderr[-3000:]
    with http_process(env, tmp_path / "http.log", NEWSWIRE_API_TOKENS=TOKEN) as base:
        yield base


@pytest.fixture
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):  # CI installs it (.ci/run)
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium to run the browser test")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1100, "height": 900})
        finally:
            browser.close()


def test_the_desk_shows_stories_as_they_form_and_updates_live(
    desk: str, page: Page, redis_client: redis.Redis, prefix: str
) -> None:
    page.goto(desk + "/")
    expect(page.locator("#login")).to_be_visible(timeout=20_000)  # the API asked for a token
    page.fill("#token", TOKEN)
    page.click("#login button")
    stories = page.locator("li.story")
    expect(stories.first).to_be_visible(timeout=20_000)
    expect(page.locator("#status")).to_have_text("live", timeout=20_000)
    talks = page.locator("li.story[data-topics~='ukraine-ceasefire-talks']")
    expect(talks.first).to_be_visible()
    assert page.locator("li.story[data-topics~='russia-sanctions']").count() >= 1
    biggest = max(int(n.get_attribute("data-count") or 0) for n in stories.all())
    assert biggest >= 2  # reports from several sources grouped in one story

    tag = talks.first.locator("details.tag", has_text="ukraine-ceasefire-talks")
    tag.locator("summary").click()
    expect(tag.locator("li").first).to_be_visible()  # an evidence snippet

    before = stories.count()
    page.select_option("#topic", "russia-sanctions")
    assert 0 < stories.count() < before
    assert all("russia-sanctions" in (s.get_attribute("data-topics") or "") for s in stories.all())
    page.select_option("#topic", "")

    late = replace(make_doc("late-desk-article", title="Tariff truce talks open in Brussels",
                            topics=("us-trade-tariffs",)), source="The Harbour Post")  # fmt: skip
    RedisStreamSink(redis_client, prefix).publish(late, origin="desk-test")
    fresh = page.locator("li.story", has_text="Tariff truce talks open in Brussels")
    expect(fresh).to_be_visible(timeout=20_000)  # no reload: it came over the event stream
    assert fresh.get_attribute("data-topics") == "us-trade-tariffs"
    assert stories.count() == before + 1

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if os.environ.get("DESK_SCREENSHOT"):  # DESK_SCREENSHOT=docs/img/desk.png: the README's picture
        page.set_viewport_size({"width": 1000, "height": 760})
        page.screenshot(path=os.environ["DESK_SCREENSHOT"])
