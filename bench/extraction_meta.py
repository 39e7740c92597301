"""Metadata checks for bench/extraction.py: the corpora carry no true title, authors, date or
language (ground-truth.json has the body and the URL only), so what can be checked is checked
against the page and the reference body:

- title: present, and consistent with what the page shows as its headline (its first <h1>
  or og:title: the same words, or one inside the other);
- language: the same as py3langid on the ground-truth body (a reference newswire never saw);
- date: on pages whose URL carries a date (/2019/11/18/ or 2019-11-18), published_at on the
  same day or the day before/after (time zones);
- authors: how many pages get any (nothing to check them against).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from lxml.html import HTMLParser, document_fromstring

from ingest import charset
from ingest.extract import pagemeta
from ingest.extract.cleanup import words

URL_DATE = re.compile(r"/((?:19|20)\d\d)[/-](0[1-9]|1[0-2])[/-](0[1-9]|[12]\d|3[01])(?:/|-|\b)")
PARSER = HTMLParser(remove_comments=True, collect_ids=False)
SHOWN = 5  # disagreements listed per check


def page_facts(html: bytes, article: Any) -> dict[str, Any]:
    """What the checks need from one page and newswire's article (None: no article)."""
    facts: dict[str, Any] = {"h1": None, "og_title": None}
    try:
        tree = document_fromstring(charset.decode(html), parser=PARSER)
    except (ValueError, TypeError):
        tree = None
    if tree is not None:
        h1 = tree.find(".//h1")
        facts["h1"] = " ".join(h1.text_content().split()) if h1 is not None else None
        og = tree.find(".//meta[@property='og:title']")
        facts["og_title"] = og.get("content") if og is not None else None
    if article is not None:
        facts |= {
            "title": article.title,
            "language": article.language,
            "published_at": article.published_at,
            "authors": list(article.authors),
        }
    return facts


def is_same_headline(title: str | None, shown: str | None) -> bool:
    a, b = " ".join(words(title or "")), " ".join(words(shown or ""))
    return bool(a and b) and (a in b or b in a)


def url_date(url: str) -> date | None:
    found = URL_DATE.search(url)
    if not found:
        return None
    try:
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None


def is_near_day(published: str | None, day: date) -> bool:
    if not published:
        return False
    got = date.fromisoformat(published[:10])
    return abs(got - day) <= timedelta(days=1)


def print_checks(results: list[Any], truth: dict[str, dict[str, str]]) -> None:
    extracted = [r for r in results if "title" in r.meta]
    print(f"metadata ({len(extracted)} pages with an article):")
    print_title(extracted)
    print_language(extracted, truth)
    print_dates(extracted)
    with_authors = sum(bool(r.meta["authors"]) for r in extracted)
    print(f"  authors: {with_authors}/{len(extracted)} pages have any (no reference to check)")


def print_title(results: list[Any]) -> None:
    titled = [r for r in results if r.meta["title"]]
    comparable = [r for r in titled if r.meta["h1"] or r.meta["og_title"]]
    agree = [r for r in comparable if agrees_with_page(r.meta)]
    print(
        f"  title: {len(titled)}/{len(results)} present; {len(agree)}/{len(comparable)} agree"
        " with the page's <h1> or og:title"
    )
    for r in [r for r in comparable if not agrees_with_page(r.meta)][:SHOWN]:
        print(f"    {r.ref.id}: {r.meta['title'][:60]!r} vs h1 {str(r.meta['h1'])[:60]!r}")


def agrees_with_page(meta: dict[str, Any]) -> bool:
    return is_same_headline(meta["title"], meta["h1"]) or is_same_headline(meta["title"], meta["og_title"])


def print_language(results: list[Any], truth: dict[str, dict[str, str]]) -> None:
    wrong = []
    for r in results:
        reference = pagemeta.detect_language(truth[r.ref.id]["articleBody"])
        if reference and r.meta["language"] != reference:
            wrong.append((r, reference))
    agree = len(results) - len(wrong)
    print(f"  language: {agree}/{len(results)} agree with py3langid on the reference body")
    for r, reference in wrong[:SHOWN]:
        print(f"    {r.ref.id}: {r.meta['language']} vs {reference}  {r.ref.url[:70]}")


def print_dates(results: list[Any]) -> None:
    dated = [(r, day) for r in results if (day := url_date(r.ref.url))]
    near = [(r, day) for r, day in dated if is_near_day(r.meta["published_at"], day)]
    print(f"  published_at: {len(near)}/{len(dated)} within a day of the date in the URL")
    for r, day in [pair for pair in dated if pair not in near][:SHOWN]:
        print(f"    {r.ref.id}: {r.meta['published_at']} vs {day}  {r.ref.url[:70]}")
