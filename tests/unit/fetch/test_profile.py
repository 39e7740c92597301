"""Per-source fetch profiles: checked when the feeds file loads, masked wherever shown, and applied to
real requests on loopback (headers, user agent, cookies, an HTTP and a SOCKS5 proxy, the guard on
a proxy's targets); extract.selector and extract.remove on real pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import pipeline
from ingest.extract.profile import apply_rules
from ingest.feeds.feedsfile import FeedsFileError, parse_feeds_toml
from ingest.feeds.registry import decode_feed, encode_feed
from ingest.fetch.http import Fetcher, FetchError, FetchOptions, parse_allowed_networks
from ingest.models import ExtractRules, FetchProfile, PageFetch
from newswire.demo.server import SiteServer
from tests.proxies import HttpProxy, Socks5Proxy

FULL = """
[[feed]]
url = "https://paper.test/rss"
kind = "sitemap"
user_agent = "PaperBot/2 (+https://ops.test)"
proxy = "socks5://ops:hunter2@127.0.0.1:1080"
headers = { "X-Api-Key" = "k-123", Accept-Language = "de" }
cookies = { session = "s3cr3t-cookie", consent = "yes" }
extract.selector = "article .body"
extract.remove = [".ad", "aside.related"]
"""
PAGE = """<html><head><title>Dock strike ends</title></head><body><nav>Home | World</nav>
<article><h1>Dock strike ends</h1><div class="body"><p>Dockers voted on Tuesday to end the strike that
had closed the harbour for nine days.</p><div class="ad">Buy a boat today</div>
<p>Ships began unloading within the hour, the port authority said.</p></div>
<aside class="related">Related: cranes</aside></article><footer>(c) Paper</footer></body></html>"""
LOOPBACK = parse_allowed_networks("127.0.0.0/8")


def bad(key_line: str) -> str:
    with pytest.raises(FeedsFileError) as caught:
        parse_feeds_toml(f'[[feed]]\nurl = "https://paper.test/rss"\n{key_line}\n', "feeds.toml")
    return str(caught.value)


def test_every_profile_key_is_read_and_survives_the_registry() -> None:
    (feed,) = parse_feeds_toml(FULL)
    assert feed.kind == "sitemap"
    assert feed.fetch == FetchProfile(
        headers=(("X-Api-Key", "k-123"), ("Accept-Language", "de")), user_agent="PaperBot/2 (+https://ops.test)",
        cookies=(("session", "s3cr3t-cookie"), ("consent", "yes")), proxy="socks5://ops:hunter2@127.0.0.1:1080",
    )  # fmt: skip
    assert feed.extract == ExtractRules("article .body", (".ad", "aside.related"))
    assert decode_feed(feed.url, encode_feed(feed)) == feed


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('kind = "podcast"', "kind: must be one of"),
        ("headers = 5", "headers: must be a table"),
        ('headers = { "Bad Name" = "x" }', "headers.Bad Name: is not a valid header name"),
        ('headers = { Host = "evil.test" }', "headers.Host: cannot be set here"),
        ('headers = { Cookie = "a=b" }', "has its own key: cookies"),
        ('headers = { X-Two = "a\\nb" }', "headers.X-Two: must be on one line"),
        ("headers = { X-Num = 5 }", "headers.X-Num: must be a string"),
        ('user_agent = ""', "user_agent: must be a non-empty string"),
        ('cookies = { session = "a;b" }', "cookies.session: has characters"),
        ('proxy = "ftp://127.0.0.1:21"', "proxy: scheme must be one of"),
        ('proxy = "http://127.0.0.1"', "proxy: needs a host and a port"),
        ('proxy = "http://u:p@127.0.0.1:99999"', "proxy: is not a valid URL"),
        ('extract.selector = "div[["', "extract.selector: is not a valid CSS selector"),
        ('extract.remove = [".ok", "p::nope("]', "extract.remove[2]: is not a valid CSS selector"),
        ('extract.xpath = "//p"', "extract: unknown key(s) ['xpath']"),
    ],
)
def test_a_bad_key_is_refused_naming_the_feed_and_the_key(line: str, message: str) -> None:
    error = bad(line)
    assert error.startswith("feeds.toml: feed #1 (https://paper.test/rss): ")
    assert message in error
    assert "p@127" not in error  # a proxy's password is never repeated


def test_cookie_values_and_proxy_passwords_are_masked() -> None:
    (feed,) = parse_feeds_toml(FULL)
    for shown in (repr(feed), repr(feed.fetch), str(feed.fetch.masked())):
        assert "s3cr3t-cookie" not in shown
        assert "hunter2" not in shown
        assert "ops:***@127.0.0.1:1080" in shown
        assert "session" in shown


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SiteServer]:
    (tmp_path / "page.html").write_text(PAGE)
    with SiteServer(tmp_path) as server:
        yield server


def test_headers_user_agent_and_cookies_reach_the_site_and_stop_at_another_origin(site: SiteServer) -> None:
    (feed,) = parse_feeds_toml(FULL.replace('proxy = "socks5://ops:hunter2@127.0.0.1:1080"\n', ""))
    with SiteServer(site.root) as other, Fetcher(FetchOptions(allowed_networks=LOOPBACK)) as fetcher:
        site.set_route("/moved", status=302, headers={"Location": other.url("/page.html")})
        result = fetcher.get(site.url("/moved"), profile=feed.fetch, headers={"If-None-Match": '"x"'})
        assert result.status == 200
        sent = site.requests_for("/moved")[0].headers
        assert sent["User-Agent"] == "PaperBot/2 (+https://ops.test)"
        assert sent["X-Api-Key"] == "k-123"
        assert sent["Accept-Language"] == "de"
        assert sent["Cookie"] == "session=s3cr3t-cookie; consent=yes"
        assert sent["If-None-Match"] == '"x"'
        elsewhere = other.requests_for("/page.html")[0].headers
        assert "Cookie" not in elsewhere
        assert "X-Api-Key" not in elsewhere  # the source's own headers may be keys: not sent elsewhere
        assert elsewhere["User-Agent"] == "PaperBot/2 (+https://ops.test)"
        plain = fetcher.get(site.url("/page.html"))  # the next request without a profile has none of it
        assert plain.status == 200
        assert "Cookie" not in site.requests_for("/page.html")[-1].headers


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_a_proxy_with_credentials_carries_the_requests(site: SiteServer, kind: str) -> None:
    proxy_class = HttpProxy if kind == "http" else Socks5Proxy
    with (
        proxy_class(credentials=("ops", "hunter2")) as proxy,
        Fetcher(FetchOptions(allowed_networks=LOOPBACK)) as fetcher,
    ):
        profile = FetchProfile(proxy=f"{kind}://ops:hunter2@127.0.0.1:{proxy.port}")
        result = fetcher.get(site.url("/page.html"), profile=profile)
        assert result.status == 200
        assert b"Dock strike ends" in result.body
        assert len(proxy.targets) == 1
        assert f"127.0.0.1:{site.port}" in proxy.targets[0]
        wrong = FetchProfile(proxy=f"{kind}://ops:wrong-pass@127.0.0.1:{proxy.port}")
        if kind == "socks5":
            with pytest.raises(FetchError) as caught:
                fetcher.get(site.url("/page.html"), profile=wrong)
            assert "wrong-pass" not in str(caught.value)
        else:
            assert fetcher.get(site.url("/page.html"), profile=wrong).status == 407
        assert proxy.refused


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_the_address_guard_applies_to_a_proxys_targets(tmp_path: Path, kind: str) -> None:
    (tmp_path / "page.html").write_text(PAGE)
    proxy_class = HttpProxy if kind == "http" else Socks5Proxy
    only_proxy_host = parse_allowed_networks("127.0.0.1/32")
    with (
        SiteServer(tmp_path, host="127.0.0.2") as inner,
        proxy_class() as proxy,
        Fetcher(FetchOptions(allowed_networks=only_proxy_host)) as fetcher,
    ):
        profile = FetchProfile(proxy=f"{kind}://127.0.0.1:{proxy.port}")
        with pytest.raises(FetchError) as caught:
            fetcher.get(inner.url("/page.html"), profile=profile)
        assert caught.value.kind == "blocked_address"
        assert proxy.targets == []  # refused before the proxy was asked
        assert inner.requests == []


def test_extract_remove_drops_elements_and_selector_gives_the_body() -> None:
    html, selected = apply_rules(PAGE, ExtractRules(selector="article .body", remove=(".ad",)))
    assert "Buy a boat" not in html
    assert selected == (
        "Dockers voted on Tuesday to end the strike that had closed the harbour for nine days.\n"
        "Ships began unloading within the hour, the port authority said."
    )
    article = pipeline.extract_page(
        PageFetch(PAGE, "https://paper.test/dock"), ExtractRules("article .body", (".ad",))
    )
    assert article is not None
    assert article.text == selected
    assert article.title == "Dock strike ends"  # metadata still from the page
    missed = pipeline.extract_page(
        PageFetch(PAGE, "https://paper.test/dock"), ExtractRules("main.nothing", ("aside",))
    )
    assert missed is not None
    assert "Related: cranes" not in missed.text  # removed first; the selector missed: trafilatura's body
    assert "Dockers voted" in missed.text
