"""Sources beyond RSS end to end, through `newswire feeds add` and `newswire sweep` with real workers:
a site that has only a gzipped news sitemap, a site with a feed and a sitemap index listing the same
articles, and a site that answers only with its fetch profile, reached through HTTP and SOCKS5 proxies."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from pathlib import Path

import jsonschema
import orjson
import pytest
import redis

from newswire.demo.server import Reply, SiteServer
from tests.conftest import ROOT, run_cli
from tests.faults.sites import paragraph
from tests.proxies import HttpProxy, Socks5Proxy
from tests.sitemap_site import gz, index, urlset, write_pages

pytestmark = pytest.mark.slow
SCHEMA = json.loads((ROOT / "docs" / "article.schema.json").read_text())
DAY = 86400.0


def sweep(env: dict[str, str]) -> dict[str, object]:
    result = run_cli(["sweep", "--timeout", "180"], env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(orjson.loads(result.stdout.strip().splitlines()[-1]))


def docs(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(stream)]


def test_a_news_sitemap_site_and_a_feed_plus_index_site_in_one_sweep(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a_root.mkdir()
    b_root.mkdir()
    Path(cli_env["NEWSWIRE_FEEDS"]).write_text("")
    with SiteServer(a_root) as a, SiteServer(b_root) as b:
        only_sitemap = write_pages(a_root, "news", 12, seed=21)
        (a_root / "index.html").write_text(
            "<html><head><title>Sitemap Times</title></head><body>Hi</body></html>"
        )
        robots = f"User-agent: *\nAllow: /\nSitemap: {a.url('/news-sitemap.xml.gz')}\n"
        a.set_route("/robots.txt", body=robots.encode(), headers={"Content-Type": "text/plain"})
        news = urlset(a.base_url, only_sitemap, [900.0 * (n + 1) for n in range(12)], news=True)
        a.set_route("/news-sitemap.xml.gz", body=gz(news), headers={"Content-Type": "application/x-gzip"})

        fresh, old = write_pages(b_root, "desk", 5, seed=22), write_pages(b_root, "archive", 3, seed=23)
        b.set_route("/sm-today.xml", body=urlset(b.base_url, fresh, [60.0, 120, 180, 240, 300]).encode())
        b.set_route("/sm-2019.xml", body=urlset(b.base_url, old, [900 * DAY] * 3).encode())
        b.set_route(
            "/sitemap_index.xml",
            body=index([(b.url("/sm-today.xml"), 60), (b.url("/sm-2019.xml"), 900 * DAY)]).encode(),
        )
        items = "".join(
            f"<item><title>Desk {n}</title><link>{b.base_url}{s.path}</link><guid>{s.path}</guid></item>"
            for n, s in enumerate(fresh[:3])
        )
        rss = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title>{items}</channel></rss>'
        b.set_route("/rss.xml", body=rss.encode(), headers={"Content-Type": "application/rss+xml"})

        added = run_cli(["feeds", "add", a.url("/")], cli_env)
        assert added.returncode == 0, added.stderr
        assert f"added {a.url('/news-sitemap.xml.gz')} (news sitemap)" in added.stdout
        for url in (b.url("/rss.xml"), b.url("/sitemap_index.xml")):
            assert run_cli(["feeds", "add", url], cli_env).returncode == 0

        summary = sweep(cli_env)
        assert summary["feeds"] == 3
        assert summary["feeds_failed"] == 0
        assert summary["errors"] == 0
        articles = docs(redis_client, f"{prefix}:articles")
        urls = sorted(str(d["url"]) for d in articles)
        expected = sorted([a.base_url + s.path for s in only_sitemap] + [b.base_url + s.path for s in fresh])
        assert urls == expected  # every article once: the whole news sitemap, feed and index overlap once
        assert summary["published"] == 17
        assert not any("/archive/" in r.path for r in b.requests)  # outside the window: never fetched
        assert b.requests_for("/sm-2019.xml") == []
        news_doc = next(d for d in articles if "/news/" in str(d["url"]))
        assert news_doc["source"]
        assert news_doc["published_at"]

        listed = run_cli(["feeds", "list", "--json"], cli_env)
        kinds = {row["url"]: row["kind"] for row in map(orjson.loads, listed.stdout.splitlines())}
        assert kinds[a.url("/news-sitemap.xml.gz")] == "news sitemap"
        assert kinds[b.url("/sitemap_index.xml")] == "sitemap index (2)"
        assert kinds[b.url("/rss.xml")] == "feed"

        again = sweep(cli_env)  # nothing new: conditional GETs, no article fetched again
        assert (again["published"], again["entries"]) == (0, 0)


UA, KEY, COOKIE = "GatedReader/1.0", "key-4d9f", "pass-7c1e"


class GatedSite(SiteServer):
    """Answers 403 unless the request carries the profile's user agent, header and cookie."""

    def answer(self, target: str, request_headers: Mapping[str, str]) -> Reply:
        ok = (
            request_headers.get("User-Agent") == UA
            and request_headers.get("X-Api-Key") == KEY
            and f"member={COOKIE}" in request_headers.get("Cookie", "")
        )
        if not ok:
            return Reply(403, (("Content-Type", "text/plain"), ("Content-Length", "9")), b"forbidden")
        return super().answer(target, request_headers)


def gated_page(title: str, rng: random.Random) -> str:
    body, other = paragraph(rng), paragraph(rng)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><nav><a href="/">Home</a> Subscribe to our newsletter for daily updates from the gated desk</nav>
<main><h1>{title}</h1><div class="story"><p>{body}</p>
<div class="promo">PROMO-LINE buy the print edition now</div><p>{other}</p></div>
<aside class="more">MORE-LINE other stories you may like</aside></main></body></html>"""


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[GatedSite]:
    rng = random.Random(31)
    for section in ("http", "socks"):
        folder = tmp_path / "gated" / section
        folder.mkdir(parents=True)
        items = []
        for n in range(2):
            (folder / f"s{n}.html").write_text(gated_page(f"{section.upper()} story {n}", rng))
            enclosure = f'url="{{{{BASE}}}}/audio/{section}{n}.mp3" type="audio/mpeg" length="{1000 + n}"'
            items.append(
                f"<item><title>{section} {n}</title><link>{{{{BASE}}}}/gated/{section}/s{n}.html</link>"
                f"<guid>{section}{n}</guid><enclosure {enclosure}/></item>"
            )
        channel = f"<channel><title>Gated {section}</title>{''.join(items)}</channel>"
        (folder / "rss.xml").write_text(f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>')
    (tmp_path / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    with GatedSite(tmp_path) as site:
        yield site


def test_every_profile_key_end_to_end_through_proxies(
    cli_env: dict[str, str], redis_client: redis.Redis, prefix: str, gated: GatedSite
) -> None:
    with (
        HttpProxy(credentials=("ops", "proxy-pw-1")) as http_proxy,
        Socks5Proxy(credentials=("ops", "proxy-pw-2")) as socks,
    ):
        profile = f"""user_agent = "{UA}"
headers = {{ X-Api-Key = "{KEY}" }}
cookies = {{ member = "{COOKIE}" }}
extract.selector = "div.story"
extract.remove = [".promo"]
"""
        http_feed, socks_feed = gated.url("/gated/http/rss.xml"), gated.url("/gated/socks/rss.xml")
        Path(cli_env["NEWSWIRE_FEEDS"]).write_text(
            f'[[feed]]\nurl = "{http_feed}"\nproxy = "http://ops:proxy-pw-1@127.0.0.1:{http_proxy.port}"\n{profile}\n'
            f'[[feed]]\nurl = "{socks_feed}"\nproxy = "socks5://ops:proxy-pw-2@127.0.0.1:{socks.port}"\n{profile}'
        )
        result = run_cli(["sweep", "--timeout", "180"], cli_env, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        summary = orjson.loads(result.stdout.strip().splitlines()[-1])
        assert (summary["feeds_failed"], summary["published"], summary["errors"]) == (0, 4, 0)
        assert all(r.status in (200, 304) for r in gated.requests)  # every request carried the profile
        assert {r.path for r in gated.requests} >= {
            "/robots.txt",
            "/gated/http/s0.html",
            "/gated/socks/s1.html",
        }
        assert any("/gated/http/" in t for t in http_proxy.targets)  # through the HTTP proxy
        assert len(socks.targets) >= 3  # the socks feed, its two pages (and robots.txt)

        for doc in docs(redis_client, f"{prefix}:articles"):
            jsonschema.validate(doc, SCHEMA)
            assert "PROMO-LINE" not in str(doc["text"])  # extract.remove
            assert "MORE-LINE" not in str(doc["text"])  # outside extract.selector
            assert "newsletter" not in str(doc["text"])
            assert doc["extraction"] == "trafilatura"
            (enclosure,) = doc["enclosures"]  # type: ignore[misc]
            assert enclosure["type"] == "audio/mpeg"
            assert str(enclosure["url"]).endswith(".mp3")

        listed = run_cli(["feeds", "list", "--json"], cli_env)
        status = run_cli(["status", "--json"], cli_env)
        profile_shown = orjson.loads(listed.stdout.splitlines()[0])["profile"]
        assert profile_shown["cookies"] == {"member": "***"}
        assert profile_shown["proxy"] == f"http://ops:***@127.0.0.1:{http_proxy.port}"
        for text in (
            result.stdout,
            result.stderr,
            listed.stdout,
            listed.stderr,
            status.stdout,
            status.stderr,
        ):
            assert COOKIE not in text
            assert "proxy-pw-1" not in text
            assert "proxy-pw-2" not in text
