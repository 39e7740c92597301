"""Sites that publish sitemaps instead of (or beside) feeds, generated for the tests and benchmarks.

Article pages come from the fault site's generator (`tests/faults/sites.py`: seeded pseudo-word
bodies, no two alike); the sitemaps are written here, dated relative to now so the window
applies: a plain urlset, a Google News sitemap (title, publication date, language), a sitemap
index of dated children, and gzipped copies.
"""

from __future__ import annotations

import gzip
import random
import time
from html import escape
from pathlib import Path

from ingest.models import iso_utc
from tests.faults.sites import ArticleSpec, page_html, paragraph, word

NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def write_pages(root: Path, section: str, count: int, seed: int = 3) -> list[ArticleSpec]:
    """`count` article pages under `root/section/`, each with its own body."""
    rng = random.Random(seed)
    folder = root / section
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for n in range(count):
        spec = ArticleSpec(
            f"/{section}/", f"/{section}/story-{n}.html", f"{section.title()} {n}: {word(rng)}", False
        )
        (folder / f"story-{n}.html").write_text(page_html(spec, [paragraph(rng) for _ in range(5)]))
        specs.append(spec)
    return specs


def urlset(base: str, specs: list[ArticleSpec], ages_s: list[float], *, news: bool = False) -> str:
    """A urlset of the pages, `ages_s[i]` seconds old; with `news`, a Google News sitemap."""
    now = time.time()
    items = []
    for spec, age in zip(specs, ages_s, strict=True):
        when = iso_utc(now - age)
        extra = (
            "<news:news><news:publication><news:name>Sitemap Times</news:name>"
            f"<news:language>en</news:language></news:publication><news:publication_date>{when}</news:publication_date>"
            f"<news:title>{escape(spec.title)}</news:title></news:news>"
            if news
            else f"<lastmod>{when}</lastmod>"
        )
        items.append(f"<url><loc>{base}{spec.path}</loc>{extra}</url>")
    ns = f' xmlns:news="{NEWS_NS}"' if news else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}"{ns}>\n'
        + "\n".join(items)
        + "\n</urlset>\n"
    )


def index(children: list[tuple[str, float]]) -> str:
    """A sitemapindex of (absolute URL, age in seconds of its lastmod)."""
    now = time.time()
    items = "".join(
        f"<sitemap><loc>{loc}</loc><lastmod>{iso_utc(now - age)}</lastmod></sitemap>" for loc, age in children
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="{SITEMAP_NS}">{items}</sitemapindex>'


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)
