"""Sitemaps as sources: parsing (urlset, news, index, gzip, text), the window, the lazy index walk,
and polling one against a loopback site and a real Redis (conditional GET, the cap, the guard)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ingest.feeds import sitemap
from ingest.feeds.poll import PollOptions, commit_poll, poll_feed
from ingest.feeds.registry import RedisFeedRegistry
from ingest.feeds.schedule import BACKLOG_S, RedisSchedule
from ingest.fetch.http import Fetcher, FetchError, FetchOptions, parse_allowed_networks
from ingest.models import Feed
from newswire.demo.server import SiteServer
from tests.sitemap_site import gz, index, urlset, write_pages

DAY = 86400.0
NOW = 1_790_000_000.0
NEWS = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://paper.test/a</loc>
    <news:news><news:publication><news:name>The Paper</news:name><news:language>pt-BR</news:language>
    </news:publication><news:publication_date>2026-09-21T08:00:00+02:00</news:publication_date>
    <news:title>Harbour  cranes
      return</news:title></news:news></url>
  <url><loc>https://paper.test/b</loc><lastmod>2026-09-20</lastmod></url>
  <url><loc>ftp://paper.test/c</loc></url>
</urlset>"""


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))) as client:
        yield client


def test_a_news_sitemap_gives_title_date_language_and_publication() -> None:
    assert sitemap.is_sitemap(NEWS)
    parsed = sitemap.parse_sitemap(NEWS, "https://paper.test/news.xml")
    assert parsed.is_news
    assert parsed.kind == "news sitemap"
    first, second = parsed.urls  # the ftp URL is not a page
    assert (first.loc, first.news_title, first.news_language, first.news_name) == (
        "https://paper.test/a",
        "Harbour cranes return",
        "pt",
        "The Paper",
    )
    assert first.news_date == sitemap.parse_w3c_date("2026-09-21T06:00:00Z")
    assert second.news_date is None
    assert second.lastmod == sitemap.parse_w3c_date("2026-09-20T00:00:00Z")


def test_w3c_dates_in_every_precision() -> None:
    parse = sitemap.parse_w3c_date
    assert parse("2026") == parse("2026-01-01T00:00:00Z")
    assert parse("2026-09") == parse("2026-09-01")
    assert parse("2026-09-21T10:30+01:00") == parse("2026-09-21T09:30:00Z")
    assert parse("2026-09-21T09:30:00.25Z") == parse("2026-09-21T09:30:00Z") + 0.25
    assert parse("yesterday") is None
    assert parse("") is None


def test_an_index_a_text_sitemap_and_what_is_not_a_sitemap() -> None:
    body = index([("https://paper.test/s1.xml", 60), ("https://paper.test/s2.xml", 3 * DAY)]).encode()
    parsed = sitemap.parse_sitemap(body, "https://paper.test/index.xml")
    assert parsed.kind == "sitemap index"
    assert [c.loc for c in parsed.children] == ["https://paper.test/s1.xml", "https://paper.test/s2.xml"]
    text = sitemap.parse_sitemap(b"https://paper.test/x\n\nnot a url\nhttp://paper.test/y\n", "u")
    assert [u.loc for u in text.urls] == ["https://paper.test/x", "http://paper.test/y"]
    assert not sitemap.is_sitemap(b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>')
    with pytest.raises(sitemap.SitemapError, match="no urlset"):
        sitemap.parse_sitemap(b"<html><body>hello</body></html>", "u")
    bomb = b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaaaaaaaa">]><urlset><url><loc>&a;</loc></url>'
    bomb += b"</urlset>"
    with pytest.raises(sitemap.SitemapError, match="entities"):
        sitemap.parse_sitemap(bomb, "u")


def test_only_urls_inside_the_window_newest_first_and_undated_ones_after_the_first_poll() -> None:
    urls = [
        sitemap.SitemapUrl("https://p.test/old", lastmod=NOW - 3 * DAY),
        sitemap.SitemapUrl("https://p.test/new", lastmod=NOW - 60),
        sitemap.SitemapUrl("https://p.test/mid", news_date=NOW - DAY),
        sitemap.SitemapUrl("https://p.test/undated"),
        sitemap.SitemapUrl("https://p.test/new", lastmod=NOW - 60),  # listed twice
    ]
    first = sitemap.select_urls(urls, "https://p.test/sm.xml", NOW, 2 * DAY, first_poll=True)
    assert [e.link for e in first.entries] == ["https://p.test/new", "https://p.test/mid"]
    assert len(first.quiet_keys) == 1  # the undated URL is remembered, not fetched
    later = sitemap.select_urls(urls, "https://p.test/sm.xml", NOW, 2 * DAY, first_poll=False)
    assert [e.link for e in later.entries] == [
        "https://p.test/new",
        "https://p.test/mid",
        "https://p.test/undated",
    ]
    assert later.seen_keys[2] == first.quiet_keys[0]  # so an undated URL seen on the first poll stays old
    relisted = sitemap.select_urls(
        [sitemap.SitemapUrl("https://p.test/new", lastmod=NOW - 30)],
        "https://p.test/sm.xml",
        NOW,
        2 * DAY,
        False,
    )
    assert relisted.entries[0].key == first.entries[0].key  # the same item to the publish step
    assert relisted.seen_keys[0] != first.seen_keys[0]  # but new to the poll: its date changed


def test_an_index_is_walked_lazily_by_lastmod() -> None:
    children = (
        sitemap.SitemapChild("https://p.test/today.xml", NOW - 300),
        sitemap.SitemapChild("https://p.test/archive-2019.xml", NOW - 900 * DAY),
        sitemap.SitemapChild("https://p.test/yesterday.xml", NOW - DAY),
        sitemap.SitemapChild("https://p.test/undated.xml"),
    )
    first = sitemap.children_to_walk(children, None, NOW, 2 * DAY)
    assert [c.loc for c in first] == [
        "https://p.test/today.xml",
        "https://p.test/yesterday.xml",
        "https://p.test/undated.xml",
    ]
    later = sitemap.children_to_walk(children, NOW - 300, NOW, 2 * DAY)
    assert [c.loc for c in later] == [
        "https://p.test/undated.xml"
    ]  # nothing dated changed since the last walk

    fetched: list[str] = []

    def fetch(url: str) -> sitemap.Sitemap:
        fetched.append(url)
        if "yesterday" in url:
            raise sitemap.SitemapError("HTTP 500")
        return sitemap.Sitemap(urls=(sitemap.SitemapUrl(url + "#a", lastmod=NOW),))

    urls, mark, failed = sitemap.walk_index(sitemap.Sitemap(children=children), fetch, None, NOW, 2 * DAY)
    assert failed == 1
    assert mark is None
    assert [u.loc for u in urls] == ["https://p.test/today.xml#a", "https://p.test/undated.xml#a"]
    urls, mark, failed = sitemap.walk_index(sitemap.Sitemap(children=children[:2]), fetch, None, NOW, 2 * DAY)
    assert (mark, failed) == (NOW - 300, 0)


def serve_news_site(site: SiteServer, root: Path, count: int, *, gzipped: bool) -> list[str]:
    specs = write_pages(root, "news", count)
    body = urlset(site.base_url, specs, [600.0 * (n + 1) for n in range(count)], news=True)
    if gzipped:
        site.set_route("/news-sitemap.xml.gz", body=gz(body), headers={"Content-Type": "application/x-gzip"})
    else:
        site.set_route("/news-sitemap.xml", body=body.encode())
    return [site.base_url + s.path for s in specs]


def test_polling_a_gzipped_news_sitemap_like_a_feed(
    tmp_path: Path, fetcher: Fetcher, redis_client: redis.Redis, prefix: str
) -> None:
    registry, schedule = RedisFeedRegistry(redis_client, prefix), RedisSchedule(redis_client, prefix)
    with SiteServer(tmp_path) as site:
        links = serve_news_site(site, tmp_path, 5, gzipped=True)
        feed = Feed(site.url("/news-sitemap.xml.gz"))
        registry.sync([feed])
        report = poll_feed(feed, fetcher, registry)
        assert report.outcome == "ok", report.error
        assert [e.link for e in report.new_entries] == links  # newest first, every one
        assert report.new_entries[0].title.startswith("News 0")
        assert report.new_entries[0].language == "en"
        commit_poll(report, registry, schedule)
        state = registry.state(feed.url)
        assert state["sm_kind"] == "news sitemap"
        assert poll_feed(feed, fetcher, registry).new_entries == ()  # all seen: nothing new


def test_a_cap_leaves_the_rest_for_a_poll_a_minute_later(
    tmp_path: Path, fetcher: Fetcher, redis_client: redis.Redis, prefix: str
) -> None:
    registry, schedule = RedisFeedRegistry(redis_client, prefix), RedisSchedule(redis_client, prefix)
    with SiteServer(tmp_path) as site:
        links = serve_news_site(site, tmp_path, 7, gzipped=False)
        feed = Feed(site.url("/news-sitemap.xml"))
        registry.sync([feed])
        options = PollOptions(max_new=3)
        seen: list[str] = []
        for _ in range(3):
            report = poll_feed(feed, fetcher, registry, options=options)
            seen += [e.link or "" for e in report.new_entries]
            if report.left_over:
                assert report.next_poll_s <= BACKLOG_S * 1.1
            commit_poll(report, registry, schedule)
            site.clear_requests()
        assert seen == links  # 3 + 3 + 1, none twice, none lost


def test_a_sitemap_index_site_reads_only_changed_children(
    tmp_path: Path, fetcher: Fetcher, redis_client: redis.Redis, prefix: str
) -> None:
    registry, schedule = RedisFeedRegistry(redis_client, prefix), RedisSchedule(redis_client, prefix)
    with SiteServer(tmp_path) as site:
        today, old = write_pages(tmp_path, "today", 3), write_pages(tmp_path, "old", 2, seed=9)
        site.set_route("/sm-today.xml.gz", body=gz(urlset(site.base_url, today, [60, 120, 180])))
        site.set_route("/sm-old.xml", body=urlset(site.base_url, old, [10 * DAY, 11 * DAY]).encode())
        site.set_route(
            "/sitemap.xml",
            body=index([(site.url("/sm-today.xml.gz"), 60), (site.url("/sm-old.xml"), 10 * DAY)]).encode(),
        )
        feed = Feed(site.url("/sitemap.xml"), kind="sitemap")
        registry.sync([feed])
        report = poll_feed(feed, fetcher, registry)
        assert [e.link for e in report.new_entries] == [site.base_url + s.path for s in today]
        assert site.requests_for("/sm-old.xml") == []  # its lastmod is outside the window
        commit_poll(report, registry, schedule, now=time.time())
        assert registry.state(feed.url)["sm_kind"] == "sitemap index (2)"
        site.clear_requests()
        site.set_route(
            "/sitemap.xml",
            body=index([(site.url("/sm-today.xml.gz"), 60), (site.url("/sm-old.xml"), 10 * DAY)]).encode()
            + b" ",
        )
        again = poll_feed(feed, fetcher, registry)  # the index changed, no child did
        assert again.outcome == "ok"
        assert again.new_entries == ()
        assert site.requests_for("/sm-today.xml.gz") == []


def test_a_gzip_bomb_sitemap_stops_at_the_body_cap(tmp_path: Path) -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * (8 * 1024 * 1024) + b"</urlset>")
    with (
        SiteServer(tmp_path) as site,
        Fetcher(
            FetchOptions(max_bytes=1024 * 1024, allowed_networks=parse_allowed_networks("127.0.0.0/8"))
        ) as small,
    ):
        site.set_route("/bomb.xml.gz", body=bomb, headers={"Content-Type": "application/x-gzip"})
        with pytest.raises(FetchError) as caught:
            small.get(site.url("/bomb.xml.gz"), unzip=True)
        assert caught.value.kind == "too_large"
        assert len(small.get(site.url("/bomb.xml.gz")).body) == len(bomb)  # not unzipped unless asked


def test_the_address_guard_applies_to_sitemaps_and_their_children(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    registry = RedisFeedRegistry(redis_client, prefix)
    with SiteServer(tmp_path) as site, Fetcher(FetchOptions()) as guarded:  # no loopback allowed
        site.set_route("/sitemap.xml", body=index([(site.url("/child.xml"), 60)]).encode())
        feed = Feed(site.url("/sitemap.xml"))
        registry.sync([feed])
        report = poll_feed(feed, guarded, registry)
        assert report.outcome == "blocked_address"
        assert site.requests == []
