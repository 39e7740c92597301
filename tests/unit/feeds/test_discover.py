"""Feed discovery from a site's page, and `newswire feeds add SITE_URL` using it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ingest.feeds.discover import (
    DiscoveryError,
    NotAFeedError,
    discover_feed,
    discover_sources,
    feed_links,
    sitemap_lines,
)
from ingest.feeds.feedsfile import load_feeds_file
from ingest.fetch.http import Fetcher, FetchOptions, parse_allowed_networks
from newswire.demo.server import SiteServer
from tests.conftest import run_cli

HOME = b"""<!doctype html><html><head><title>Blog</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/7">
<link rel="alternate" type="application/rss+xml" title="Blog &raquo; Comments Feed" href="/comments/feed/">
<link rel="alternate" type="application/rss+xml" title="Blog &raquo; Feed" href="feed.xml">
<link rel="Alternate" type="application/atom+xml" href="https://blog.test/atom.xml">
</head><body><p>Hello</p></body></html>"""
FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>
<item><guid>p1</guid><title>First post</title><link>{{BASE}}/blog/p1.html</link></item></channel></rss>"""


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.0/8"))) as client:
        yield client


def serve_blog(site: SiteServer) -> None:
    site.set_route("/blog/", body=HOME, headers={"Content-Type": "text/html; charset=utf-8"})
    site.set_route("/blog/feed.xml", body=FEED, headers={"Content-Type": "application/rss+xml"})


def test_feed_links_are_absolute_in_page_order_and_never_the_json_api() -> None:
    links = feed_links(HOME.decode(), "https://blog.test/home/")
    assert [(link.url, link.type) for link in links] == [
        ("https://blog.test/comments/feed/", "application/rss+xml"),
        ("https://blog.test/home/feed.xml", "application/rss+xml"),
        ("https://blog.test/atom.xml", "application/atom+xml"),
    ]
    based = feed_links(
        '<base href="/b/"><link rel="alternate" type="application/feed+json" href="f.json">',
        "https://x.test/a/",
    )
    assert [link.url for link in based] == ["https://x.test/b/f.json"]


def test_a_page_leads_to_its_main_feed_and_a_feed_to_itself(site: SiteServer, fetcher: Fetcher) -> None:
    serve_blog(site)
    found = discover_feed(site.url("/blog/"), fetcher)
    assert (found.feed_url, found.is_direct, len(found.candidates)) == (site.url("/blog/feed.xml"), False, 3)
    assert found.title == "Blog » Feed"  # the comments feed gives way
    direct = discover_feed(site.url("/json/feed.json"), fetcher)
    assert (direct.feed_url, direct.is_direct, direct.title) == (
        site.url("/json/feed.json"),
        True,
        "Test JSON",
    )


def test_pages_without_feeds_and_errors_say_so(site: SiteServer, fetcher: Fetcher) -> None:
    assert discover_feed(site.url("/news/city-library-reopens.html"), fetcher).feed_url == site.url(
        "/news/rss.xml"
    )
    with pytest.raises(NotAFeedError, match="announces none"):
        discover_feed(site.url("/"), fetcher)
    with pytest.raises(DiscoveryError, match="HTTP 404"):
        discover_feed(site.url("/nowhere/"), fetcher)


def test_feeds_add_discovers_the_feed_of_a_site(cli_env: dict[str, str], site: SiteServer) -> None:
    serve_blog(site)
    result = run_cli(["feeds", "add", site.url("/blog/"), "--name", "Blog", "--no-robots"], cli_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"announces {site.url('/blog/feed.xml')}" in result.stdout
    feeds = load_feeds_file(Path(cli_env["NEWSWIRE_FEEDS"]))
    assert (feeds[-1].url, feeds[-1].name, feeds[-1].robots) == (site.url("/blog/feed.xml"), "Blog", False)

    refused = run_cli(["feeds", "add", site.url("/")], cli_env)
    assert refused.returncode != 0
    assert "--no-discover" in refused.stderr
    as_given = run_cli(["feeds", "add", "https://offline.test/rss", "--no-discover"], cli_env)
    assert as_given.returncode == 0, as_given.stderr[-2000:]
    unreachable = run_cli(["feeds", "add", site.url("/down/rss.xml")], cli_env)  # cannot be checked: added
    assert unreachable.returncode == 0, unreachable.stderr[-2000:]
    assert "HTTP 404" in unreachable.stderr

    listed = run_cli(["feeds", "list", "--json"], cli_env)
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert {
        "last_status",
        "last_success",
        "consecutive_errors",
        "next_poll",
        "interval_s",
        "items_per_day",
    } <= set(rows[0])
    assert [r["url"] for r in rows[-2:]] == ["https://offline.test/rss", site.url("/down/rss.xml")]


NEWS_SITEMAP = b"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url><loc>{{BASE}}/blog/p1.html</loc>
<news:news><news:publication><news:name>Blog</news:name><news:language>en</news:language></news:publication>
<news:publication_date>2026-09-01T10:00:00Z</news:publication_date><news:title>First post</news:title>
</news:news></url></urlset>"""
PLAIN_SITEMAP = b"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>{{BASE}}/blog/p1.html</loc></url></urlset>"""


def test_a_site_leads_to_its_feed_and_its_news_sitemap_at_a_common_path(
    site: SiteServer, fetcher: Fetcher
) -> None:
    serve_blog(site)
    site.set_route("/sitemap.xml", body=PLAIN_SITEMAP)
    site.set_route("/news-sitemap.xml", body=NEWS_SITEMAP)
    found = discover_sources(site.url("/blog/"), fetcher)
    assert [(s.url, s.kind) for s in found.found] == [
        (site.url("/blog/feed.xml"), "feed"),
        (site.url("/news-sitemap.xml"), "news sitemap"),
        (site.url("/sitemap.xml"), "sitemap"),
    ]
    assert [s.url for s in found.chosen] == [site.url("/blog/feed.xml"), site.url("/news-sitemap.xml")]
    direct = discover_sources(site.url("/sitemap.xml"), fetcher)
    assert [(s.url, s.kind) for s in direct.chosen] == [(site.url("/sitemap.xml"), "sitemap")]


def test_robots_txt_sitemap_lines_come_first_and_without_a_feed_the_best_sitemap_is_chosen(
    site: SiteServer, fetcher: Fetcher
) -> None:
    robots = b"User-agent: *\nDisallow: /private\nSitemap: {{BASE}}/maps/plain.xml # all pages\n"
    robots += b"sitemap: /maps/news.xml\n"
    site.set_route("/robots.txt", body=robots, headers={"Content-Type": "text/plain"})
    site.set_route("/maps/plain.xml", body=PLAIN_SITEMAP)
    site.set_route("/maps/news.xml", body=NEWS_SITEMAP)
    site.set_route("/news-sitemap.xml", body=NEWS_SITEMAP)  # not looked at: robots.txt lists sitemaps
    found = discover_sources(site.url("/"), fetcher)
    assert [s.kind for s in found.found] == ["sitemap", "news sitemap"]
    assert [s.url for s in found.chosen] == [site.url("/maps/news.xml")]
    assert site.requests_for("/news-sitemap.xml") == []
    assert sitemap_lines(
        "Sitemap: /a.xml\nSITEMAP:https://x.test/b.xml\nsitemap: /a.xml", "https://x.test/r"
    ) == [
        "https://x.test/a.xml",
        "https://x.test/b.xml",
    ]
    site.clear_routes()
    with pytest.raises(NotAFeedError):
        discover_sources(site.url("/"), fetcher)
