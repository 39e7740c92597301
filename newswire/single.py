"""One article at a time, without Redis: `newswire extract` and `newswire topics explain`."""

from __future__ import annotations

import gzip
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from config.settings import Settings
from ingest import charset
from ingest.extract.article import ExtractionError, extract_article
from ingest.fetch.http import Fetcher
from ingest.models import Article, FeedEntry, PageFetch
from ingest.pipeline import build_document, fetch_url
from ingest.tag.match import terms_language
from ingest.tag.topics import explain_article, load_topics
from workers.context import fetch_options


def read_page(settings: Settings, url_or_file: str) -> PageFetch:
    """HTML from a URL (through the same guarded fetcher as the workers) or a saved .html/.html.gz file."""
    path = Path(url_or_file)
    if path.exists():
        data = path.read_bytes()
        if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return PageFetch(charset.decode(data), path.resolve().as_uri())
    if not url_or_file.startswith(("http://", "https://")):
        raise click.ClickException(f"{url_or_file}: no such file, and not an http(s) URL")
    with Fetcher(fetch_options(settings)) as fetcher:
        page = fetch_url(url_or_file, fetcher)
    if page.html is None:
        raise click.ClickException(page.error or f"{url_or_file}: no page")
    return page


def extract_from(page: PageFetch) -> Article:
    try:
        return extract_article(page.html or "", page.final_url or "")
    except ExtractionError as exc:
        raise click.ClickException(f"no article body found: {exc}") from exc


def extract_one(settings: Settings, url_or_file: str) -> dict[str, Any]:
    page = read_page(settings, url_or_file)
    article = extract_from(page)
    entry = FeedEntry(feed_url="", key="", link=page.final_url, title=article.title or "")
    doc = build_document(entry, page, article, load_topics(settings.topics_path), time.time())
    return replace(doc, feed_url=None).to_dict()


def explain_one(settings: Settings, url_or_file: str) -> dict[str, Any]:
    page = read_page(settings, url_or_file)
    article = extract_from(page)
    topics = load_topics(settings.topics_path)
    title, language = article.title or "", article.language
    rows = explain_article(topics, title=title, text=article.text, language=language)
    lists = terms_language(title, article.text, language)  # the text's, when the page declares another
    return {"url": page.final_url, "title": article.title, "language": language, "terms_language": lists,
            "topics": rows}  # fmt: skip
