"""The loopback news web: SiteServer's HTTP behaviour and both bundled sites' content."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import httpx
import pytest

from newswire.demo import SITE_ROOT
from newswire.demo.server import Headers, SiteServer, etag_for, resolve_path

REPO = Path(__file__).resolve().parents[3]
TEST_SITE = REPO / "tests" / "fixtures" / "site"
SITES = {"demo": SITE_ROOT, "test": TEST_SITE}
FEED_ITEM_COUNTS = {
    "demo": {
        "/dailyledger/rss.xml": 4,
        "/northstar/atom.xml": 5,
        "/harbourpost/feed.json": 6,
    },
    "test": {
        "/news/rss.xml": 3,
        "/wire/atom.xml": 2,
        "/json/feed.json": 2,
        "/broken/rss.xml": 2,
        "/empty/rss.xml": 0,
    },
}
MIN_WORDS = {"demo": 150, "test": 120}
SYNDICATED = {
    "demo": (
        "/dailyledger/world/ukraine-draft-truce-framework.html",
        "/harbourpost/news/ukraine-truce-plan.html",
        "?utm_source=rss&utm_medium=feed",
    ),
    "test": (
        "/news/ceasefire-envoys-vienna.html",
        "/wire/ukraine-truce-talks-resume.html",
        "?utm_source=x",
    ),
}


@pytest.fixture
def server() -> Iterator[SiteServer]:
    with SiteServer(TEST_SITE) as site:
        yield site


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def raw_get(site: SiteServer, target: str) -> int:
    """GET a request target byte for byte (httpx would normalise away `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=5)
    try:
        conn.request("GET", target)
        return conn.getresponse().status
    finally:
        conn.close()


# -- lifecycle and templating -----------------------------------------------------------


def test_ephemeral_port_and_base_url() -> None:
    site = SiteServer(TEST_SITE)
    with pytest.raises(RuntimeError):
        _ = site.base_url
    site.start()
    try:
        assert site.port > 0
        assert site.base_url == f"http://127.0.0.1:{site.port}"
        assert site.url("news/rss.xml") == f"{site.base_url}/news/rss.xml"
    finally:
        site.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{site.port}/", timeout=2)
    site.stop()  # idempotent


def test_two_servers_get_different_ports_and_fill_in_their_own_base() -> None:
    with SiteServer(TEST_SITE) as one, SiteServer(TEST_SITE) as two:
        assert one.port != two.port
        body_one = httpx.get(one.url("/news/rss.xml"), timeout=5).text
        body_two = httpx.get(two.url("/news/rss.xml"), timeout=5).text
        assert f"{one.base_url}/news/ceasefire-envoys-vienna.html" in body_one
        assert f"{two.base_url}/news/ceasefire-envoys-vienna.html" in body_two
    assert "{{BASE}}" not in body_one + body_two


@pytest.mark.parametrize(
    "path",
    ["/news/rss.xml", "/wire/atom.xml", "/json/feed.json", "/feeds.toml", "/news/us-steel-tariffs.html"],
)
def test_placeholder_replaced_in_text_templates(server: SiteServer, client: httpx.Client, path: str) -> None:
    raw = (TEST_SITE / path.lstrip("/")).read_text(encoding="utf-8")
    assert "{{BASE}}" in raw
    response = client.get(server.url(path))
    assert response.status_code == 200
    assert "{{BASE}}" not in response.text
    assert response.text == raw.replace("{{BASE}}", server.base_url)
    assert int(response.headers["content-length"]) == len(response.content)


def test_non_template_files_are_served_verbatim(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("link: {{BASE}}/x\n")
    with SiteServer(tmp_path) as site:
        assert httpx.get(site.url("/notes.md"), timeout=5).text == "link: {{BASE}}/x\n"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/news/rss.xml", "application/rss+xml"),
        ("/broken/rss.xml", "application/rss+xml"),
        ("/wire/atom.xml", "application/atom+xml"),
        ("/json/feed.json", "application/feed+json"),
        ("/news/city-library-reopens.html", "text/html; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/feeds.toml", "application/toml"),
        ("/README.md", "text/markdown; charset=utf-8"),
    ],
)
def test_content_type_by_extension(
    server: SiteServer, client: httpx.Client, path: str, content_type: str
) -> None:
    assert client.get(server.url(path)).headers["content-type"] == content_type


def test_demo_site_content_types(client: httpx.Client) -> None:
    with SiteServer(SITE_ROOT) as site:
        types = {
            path: client.get(site.url(path)).headers["content-type"]
            for path in ("/dailyledger/rss.xml", "/northstar/atom.xml", "/harbourpost/feed.json")
        }
    assert types == {
        "/dailyledger/rss.xml": "application/rss+xml",
        "/northstar/atom.xml": "application/atom+xml",
        "/harbourpost/feed.json": "application/feed+json",
    }


# -- conditional GET ----------------------------------------------------------------------


def test_etag_is_strong_hash_of_served_bytes_and_last_modified_is_mtime(
    server: SiteServer, client: httpx.Client
) -> None:
    response = client.get(server.url("/news/rss.xml"))
    etag = response.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert etag == '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'
    mtime = int((TEST_SITE / "news" / "rss.xml").stat().st_mtime)
    assert response.headers["last-modified"] == formatdate(mtime, usegmt=True)


def test_if_none_match_answers_304(server: SiteServer, client: httpx.Client) -> None:
    first = client.get(server.url("/wire/atom.xml"))
    etag = first.headers["etag"]
    again = client.get(server.url("/wire/atom.xml"), headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    listed = client.get(server.url("/wire/atom.xml"), headers={"If-None-Match": f'"x", W/{etag}'})
    assert listed.status_code == 304
    stale = client.get(server.url("/wire/atom.xml"), headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == first.content


def test_if_modified_since_answers_304(server: SiteServer, client: httpx.Client) -> None:
    last_modified = client.get(server.url("/news/rss.xml")).headers["last-modified"]
    same = client.get(server.url("/news/rss.xml"), headers={"If-Modified-Since": last_modified})
    assert same.status_code == 304
    older = formatdate(0, usegmt=True)
    assert client.get(server.url("/news/rss.xml"), headers={"If-Modified-Since": older}).status_code == 200
    garbage = {"If-Modified-Since": "not a date"}
    assert client.get(server.url("/news/rss.xml"), headers=garbage).status_code == 200


def test_if_none_match_takes_precedence_over_if_modified_since(
    server: SiteServer, client: httpx.Client
) -> None:
    last_modified = client.get(server.url("/news/rss.xml")).headers["last-modified"]
    headers = {"If-None-Match": '"other"', "If-Modified-Since": last_modified}
    assert client.get(server.url("/news/rss.xml"), headers=headers).status_code == 200


def test_changed_file_gets_new_etag_and_full_answer(tmp_path: Path, client: httpx.Client) -> None:
    feed = tmp_path / "rss.xml"
    feed.write_text("<rss><channel><title>one</title></channel></rss>")
    with SiteServer(tmp_path) as site:
        etag = client.get(site.url("/rss.xml")).headers["etag"]
        feed.write_text("<rss><channel><title>two</title></channel></rss>")
        os.utime(feed, (time.time() + 10, time.time() + 10))
        response = client.get(site.url("/rss.xml"), headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["etag"] != etag
    assert b"two" in response.content


# -- methods, paths, errors ----------------------------------------------------------------


def test_head_has_get_headers_and_no_body(server: SiteServer, client: httpx.Client) -> None:
    get = client.get(server.url("/json/feed.json"))
    head = client.head(server.url("/json/feed.json"))
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified"):
        assert head.headers[name] == get.headers[name]


def test_root_and_directories_serve_index(server: SiteServer, client: httpx.Client) -> None:
    root = client.get(server.url("/"))
    assert root.status_code == 200
    assert "<title>newswire test site</title>" in root.text
    assert client.get(server.base_url + "/").text == root.text


def test_missing_file_is_404(server: SiteServer, client: httpx.Client) -> None:
    assert client.get(server.url("/news/nope.html")).status_code == 404
    assert client.get(server.url("/nope/")).status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "/../README.md",
        "/news/../../pyproject.toml",
        "/news/%2e%2e/%2e%2e/pyproject.toml",
        "/news/..%2f..%2fpyproject.toml",
        "/news/..\\..\\pyproject.toml",
    ],
)
def test_traversal_refused(server: SiteServer, target: str) -> None:
    assert raw_get(server, target) == 403
    assert server.requests[-1].status == 403


def test_symlink_out_of_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    with SiteServer(root) as site:
        assert raw_get(site, "/link.txt") == 403


def test_resolve_path_maps_urls_to_files() -> None:
    assert resolve_path(TEST_SITE, "/news/rss.xml") == TEST_SITE / "news" / "rss.xml"
    assert resolve_path(TEST_SITE, "/") == TEST_SITE / "index.html"
    assert resolve_path(TEST_SITE, "//news//rss.xml") == TEST_SITE / "news" / "rss.xml"
    assert resolve_path(TEST_SITE, "/news/missing.xml") is None
    with pytest.raises(PermissionError):
        resolve_path(TEST_SITE, "/a/%00/b")


def test_other_methods_are_405(server: SiteServer, client: httpx.Client) -> None:
    response = client.post(server.url("/news/rss.xml"), content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_query_string_is_ignored_for_files(server: SiteServer, client: httpx.Client) -> None:
    plain = client.get(server.url("/wire/ukraine-truce-talks-resume.html"))
    tracked = client.get(server.url("/wire/ukraine-truce-talks-resume.html?utm_source=x"))
    assert tracked.status_code == 200
    assert tracked.content == plain.content


# -- overrides ------------------------------------------------------------------------------


def test_route_410_gone(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/news/rss.xml", status=410)
    response = client.get(server.url("/news/rss.xml"))
    assert response.status_code == 410
    assert response.content == b""


def test_route_429_with_retry_after(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/news/rss.xml", status=429, headers={"Retry-After": "120"})
    response = client.get(server.url("/news/rss.xml"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "120"


def test_route_301_redirect(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/old/feed.xml", status=301, headers={"Location": "{{BASE}}/wire/atom.xml"})
    moved = client.get(server.url("/old/feed.xml"))
    assert moved.status_code == 301
    assert moved.headers["location"] == server.url("/wire/atom.xml")
    followed = client.get(server.url("/old/feed.xml"), follow_redirects=True)
    assert followed.status_code == 200
    assert str(followed.url) == server.url("/wire/atom.xml")
    assert [r.status_code for r in followed.history] == [301]


def test_route_custom_body_is_templated_and_typed(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/custom/rss.xml", body=b'<rss version="2.0"><channel>{{BASE}}</channel></rss>')
    response = client.get(server.url("/custom/rss.xml"))
    assert response.status_code == 200
    assert response.text == f'<rss version="2.0"><channel>{server.base_url}</channel></rss>'
    assert response.headers["content-type"] == "application/rss+xml"
    explicit = {"Content-Type": "text/plain"}
    server.set_route("/custom/rss.xml", body=b"plain", headers=explicit)
    assert client.get(server.url("/custom/rss.xml")).headers["content-type"] == "text/plain"


def test_route_200_without_body_adds_headers_to_the_file(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/news/rss.xml", headers={"Cache-Control": "max-age=900"})
    response = client.get(server.url("/news/rss.xml"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=900"
    assert "<rss" in response.text
    etag = response.headers["etag"]
    not_modified = client.get(server.url("/news/rss.xml"), headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["cache-control"] == "max-age=900"


def test_route_headers_replace_the_files_own(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/news/rss.xml", headers={"Content-Type": "text/xml"})
    response = client.get(server.url("/news/rss.xml"))
    assert response.headers.get_list("content-type") == ["text/xml"]


def test_route_204_has_no_body(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/ping", status=204)
    response = client.get(server.url("/ping"))
    assert response.status_code == 204
    assert "content-length" not in response.headers


def test_route_matches_query_first_then_path(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/news/rss.xml?page=2", status=404)
    assert client.get(server.url("/news/rss.xml?page=2")).status_code == 404
    assert client.get(server.url("/news/rss.xml")).status_code == 200
    server.set_route("/news/rss.xml", status=503)
    assert client.get(server.url("/news/rss.xml?anything=1")).status_code == 503


def test_clear_routes_restores_files(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/news/rss.xml", status=410)
    server.set_route("/json/feed.json", status=500)
    server.clear_routes()
    assert client.get(server.url("/news/rss.xml")).status_code == 200
    assert client.get(server.url("/json/feed.json")).status_code == 200


def test_route_delay_lets_clients_time_out(server: SiteServer) -> None:
    server.set_route("/news/rss.xml", delay=0.6)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(server.url("/news/rss.xml"), timeout=0.15)
    server.clear_routes()
    assert httpx.get(server.url("/news/rss.xml"), timeout=5).status_code == 200


# -- request log ------------------------------------------------------------------------------


def test_request_log_records_method_path_headers_status(server: SiteServer, client: httpx.Client) -> None:
    etag = client.get(server.url("/news/rss.xml")).headers["etag"]
    client.get(server.url("/news/rss.xml"), headers={"If-None-Match": etag})
    client.head(server.url("/missing?x=1"), headers={"User-Agent": "newswire-test/1"})
    first, second, third = server.requests
    assert (first.method, first.path, first.status) == ("GET", "/news/rss.xml", 200)
    assert (second.method, second.status) == ("GET", 304)
    assert second.headers["If-None-Match"] == etag
    assert second.headers["if-none-match"] == etag
    method, path, headers, status = third
    assert (method, path, status) == ("HEAD", "/missing?x=1", 404)
    assert headers.get("user-agent") == "newswire-test/1"
    assert "Host" in headers
    assert [r.path for r in server.requests_for("/missing")] == ["/missing?x=1"]
    server.clear_requests()
    assert server.requests == []


def test_request_log_records_routed_answers(server: SiteServer, client: httpx.Client) -> None:
    server.set_route("/news/rss.xml", status=429, headers={"Retry-After": "5"})
    client.get(server.url("/news/rss.xml"))
    assert [(r.path, r.status) for r in server.requests] == [("/news/rss.xml", 429)]


def test_request_log_under_concurrency(server: SiteServer) -> None:
    def fetch(i: int) -> None:
        httpx.get(server.url(f"/news/rss.xml?n={i}"), timeout=5)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.path for r in server.requests) == sorted(f"/news/rss.xml?n={i}" for i in range(24))
    assert {r.status for r in server.requests} == {200}


def test_headers_mapping_is_case_insensitive_and_joins_repeats() -> None:
    headers = Headers([("Accept", "a"), ("X-Thing", "1"), ("x-thing", "2")])
    assert headers["accept"] == "a"
    assert headers["X-THING"] == "1, 2"
    assert list(headers) == ["Accept", "X-Thing"]
    assert dict(headers) == {"Accept": "a", "X-Thing": "1, 2"}


def test_etag_for_depends_on_bytes() -> None:
    assert etag_for(b"a") == etag_for(b"a")
    assert etag_for(b"a") != etag_for(b"b")


def test_no_stderr_noise(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with SiteServer(TEST_SITE) as site:
        httpx.get(site.url("/news/rss.xml"), timeout=5)
        httpx.get(site.url("/missing"), timeout=5)
        raw_get(site, "/../x")
        site.set_route("/slow", delay=0.5)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(site.url("/slow"), timeout=0.1)  # client hangs up mid-answer
        time.sleep(0.6)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_cli_prints_base_url_and_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "newswire.demo.server", str(TEST_SITE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        assert httpx.get(base_url + "/news/rss.xml", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"still running 10 s after SIGINT; stderr: {proc.communicate()[1]!r}")
        assert code == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the two sites' content ---------------------------------------------------------------------


def load_feed_paths(root: Path) -> list[str]:
    text = (root / "feeds.toml").read_text(encoding="utf-8")
    feeds = tomllib.loads(text.replace("{{BASE}}", "http://127.0.0.1:1"))["feed"]
    assert all(set(f) == {"url", "name"} for f in feeds)
    return [urlsplit(f["url"]).path for f in feeds]


def item_links(content: bytes, content_type: str) -> list[str]:
    if content_type == "application/feed+json":
        doc = json.loads(content)
        assert doc["version"] == "https://jsonfeed.org/version/1.1"
        for item in doc["items"]:
            assert item["id"]
            assert item["title"]
            assert item["summary"]
            assert item["date_published"].startswith("2026-11-")
            assert "content_html" in item or "content_text" in item
        return [item["url"] for item in doc["items"]]
    parsed = feedparser.parse(content)
    assert parsed.version in ("rss20", "atom10")
    for entry in parsed.entries:
        assert entry.get("title")
        assert entry.get("id")
        assert entry.get("summary")
        assert entry.get("published_parsed") or entry.get("updated_parsed")
    return [entry.link for entry in parsed.entries]


@pytest.mark.parametrize("site_name", sorted(SITES))
def test_feeds_toml_lists_every_feed(site_name: str) -> None:
    assert load_feed_paths(SITES[site_name]) == list(FEED_ITEM_COUNTS[site_name])


@pytest.mark.parametrize("site_name", sorted(SITES))
def test_every_feed_parses_and_every_item_link_is_a_page(site_name: str) -> None:
    with SiteServer(SITES[site_name]) as site, httpx.Client(timeout=5) as client:
        for feed_path, count in FEED_ITEM_COUNTS[site_name].items():
            response = client.get(site.url(feed_path))
            assert response.status_code == 200, feed_path
            links = item_links(response.content, response.headers["content-type"])
            assert len(links) == count, feed_path
            for link in links:
                assert link.startswith(site.base_url + "/"), link
                page = client.get(link)
                assert page.status_code == 200, link
                assert page.headers["content-type"] == "text/html; charset=utf-8"
                canonical = link.split("?", 1)[0]
                assert f'<link rel="canonical" href="{canonical}">' in page.text, link


def test_broken_feed_is_bozo_but_recoverable() -> None:
    parsed = feedparser.parse((TEST_SITE / "broken" / "rss.xml").read_bytes())
    assert parsed.bozo
    assert [e.title for e in parsed.entries] == [
        "Gaza ceasefire holds & aid deliveries rise",
        "Storm closes harbour for second day as ferries cancelled",
    ]


def article_pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html") if p.name != "index.html")


def paragraphs(page: Path) -> list[str]:
    html = page.read_text(encoding="utf-8")
    article = re.search(r"<article\b.*?</article>", html, re.DOTALL)
    assert article, page
    body = re.sub(r"<header\b.*?</header>", "", article.group(0), flags=re.DOTALL)
    return re.findall(r"<p>(.*?)</p>", body, re.DOTALL)


@pytest.mark.parametrize("site_name", sorted(SITES))
def test_article_pages_are_complete(site_name: str) -> None:
    root = SITES[site_name]
    pages = article_pages(root)
    assert len(pages) == (15 if site_name == "demo" else 9)
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for marker in (
            "<html lang=",
            "<title>",
            '<link rel="canonical" href="{{BASE}}/',
            '<meta property="og:title"',
            '<meta property="og:site_name"',
            '<meta property="article:published_time" content="2026-11-',
            '<meta name="author"',
            "<article",
            "<nav",
            "<footer",
        ):
            assert marker in html, (page, marker)
        paras = paragraphs(page)
        assert len(paras) >= 4, page
        assert sum(len(p.split()) for p in paras) >= MIN_WORDS[site_name], page


@pytest.mark.parametrize("site_name", sorted(SITES))
def test_readme_lists_every_article_page(site_name: str) -> None:
    root = SITES[site_name]
    readme = (root / "README.md").read_text(encoding="utf-8")
    for page in article_pages(root):
        assert f"`{page.relative_to(root).as_posix()}`" in readme, page


@pytest.mark.parametrize("site_name", sorted(SITES))
def test_syndicated_pair_shares_body_not_headline(site_name: str) -> None:
    root = SITES[site_name]
    original, copy, query = SYNDICATED[site_name]
    first, second = (root / original.lstrip("/"), root / copy.lstrip("/"))
    assert paragraphs(first) == paragraphs(second)
    title = re.compile(r"<title>(.*?)</title>")
    assert title.findall(first.read_text()) != title.findall(second.read_text())
    feeds = "".join(p.read_text() for p in root.rglob("*") if p.suffix in (".xml", ".json"))
    assert f"{{{{BASE}}}}{copy}{query}" in feeds.replace("&amp;", "&")
    assert f"{{{{BASE}}}}{original}<" in feeds or f'{{{{BASE}}}}{original}"' in feeds


def test_demo_has_a_german_article() -> None:
    german = [p for p in article_pages(SITE_ROOT) if '<html lang="de">' in p.read_text()]
    assert len(german) == 1
    assert "Waffenstillstand" in german[0].read_text()
