"""A generated news site for the fault scenarios: N feeds of M distinct articles, written to a directory.

Every article has its own body of seeded pseudo-words (no two are near-duplicates of each other), so
the expected result of a sweep is exactly one published document per article page. One article in
ten also reports on ceasefire talks, so the topic streams are checked too. Served by `SiteServer`
(`{{BASE}}` becomes its URL).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import formatdate
from html import escape
from pathlib import Path
from typing import ClassVar

from ingest.dedup.identity import article_id, canonical_url
from newswire.demo.server import SiteServer
from tests.conftest import SpreadSite

SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "an", "el", "or", "us", "in", "pe", "gra")
TALKS = (
    "Ukraine and Russia resumed ceasefire talks in Geneva on Tuesday, and envoys from both sides "
    "discussed a truce along the front line and an exchange of prisoners."
)


@dataclass(frozen=True, slots=True)
class ArticleSpec:
    feed: str  # path of its feed on the site
    path: str  # path of its page on the site
    title: str
    on_topic: bool

    def url(self, site: SiteServer) -> str:
        return site.url(self.path)

    def doc_id(self, site: SiteServer) -> str:
        """The `id` the pipeline gives this page (it declares itself canonical)."""
        return article_id(canonical_url(self.url(site)))


class DeskSite(SpreadSite):
    """The generated news site with each desk (`desk0` ... `desk9`) on a loopback address of its
    own (127.0.1.1 ...), as separate sites are: the workers run with the default politeness (two
    requests at a time and a second apart per host), so ten desks crawl in parallel."""

    OUTLETS: ClassVar[dict[str, str]] = {f"desk{n}": f"127.0.1.{n + 1}" for n in range(10)}


DESK_NETWORKS = "127.0.0.1/32,127.0.1.0/24"  # allowed for a DeskSite; 127.0.0.2 stays blocked


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def paragraph(rng: random.Random, words: int = 60) -> str:
    text = " ".join(word(rng) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def page_html(spec: ArticleSpec, paragraphs: list[str]) -> str:
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(spec.title)}</title>
<link rel="canonical" href="{{{{BASE}}}}{spec.path}">
<meta property="og:title" content="{escape(spec.title)}"></head>
<body><header><a href="{{{{BASE}}}}/">Fault Gazette</a></header>
<main><article><h1>{escape(spec.title)}</h1>
{body}
</article></main><footer><p>Fault Gazette, all rights reserved.</p></footer></body></html>
"""


def feed_xml(name: str, specs: list[ArticleSpec], summaries: dict[str, str]) -> str:
    items = "\n".join(
        f"""<item><title>{escape(s.title)}</title><link>{{{{BASE}}}}{s.path}</link>
  <guid isPermaLink="false">{s.path}</guid>
  <pubDate>{formatdate(1_790_000_000 + i * 600, usegmt=True)}</pubDate>
  <description>{escape(summaries[s.path])}</description></item>"""
        for i, s in enumerate(specs)
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{escape(name)}</title><link>{{{{BASE}}}}/</link>
{items}
</channel></rss>
"""


def write_news_site(
    root: Path, feeds: int, per_feed: int, seed: int = 8, *, first: int = 0, paragraphs: int = 5
) -> list[ArticleSpec]:
    """Write `feeds` RSS feeds of `per_feed` articles each under `root` (desks `first`, `first + 1`,
    ...; articles of `paragraphs` paragraphs); returns every article."""
    rng = random.Random(seed + first)
    every: list[ArticleSpec] = []
    for f in range(first, first + feeds):
        folder = root / f"desk{f}"
        folder.mkdir(parents=True, exist_ok=True)
        specs, summaries = [], {}
        for a in range(per_feed):
            n = f * per_feed + a
            spec = ArticleSpec(
                f"/desk{f}/rss.xml", f"/desk{f}/story-{a}.html", f"Story {n}: {word(rng)}", n % 10 == 3
            )
            body = [paragraph(rng) for _ in range(paragraphs)]
            if spec.on_topic:
                body.insert(1, TALKS)
            (folder / f"story-{a}.html").write_text(page_html(spec, body))
            summaries[spec.path] = body[0][:160]
            specs.append(spec)
        (folder / "rss.xml").write_text(feed_xml(f"Desk {f}", specs, summaries))
        every += specs
    return every


def write_feeds_toml(path: Path, urls: list[str]) -> Path:
    path.write_text("".join(f'[[feed]]\nurl = "{url}"\n\n' for url in urls))
    return path
