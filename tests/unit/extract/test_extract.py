"""Extraction stage: golden pages, hostile input, charsets, and the feed fallback."""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ingest.extract.article import (
    ExtractionError,
    article_from_feed,
    choose_article,
    extract_article,
    is_stub,
    parse_html,
)
from ingest.extract.body import RULES, choose_body, fill_between, needs_recall, page_chars
from ingest.extract.cleanup import clean_text, is_boilerplate, is_byline
from ingest.extract.pagemeta import split_authors, strip_site_suffix, to_utc_iso
from ingest.models import Article, FeedEntry

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "extract"
PAGES = sorted(path.stem for path in GOLDEN.glob("*.html"))
BODY = " ".join(
    [
        "The regional library will stay open until ten in the evening from next month.",
        "Staff said the longer hours follow a survey in which students asked for quiet",
        "space to work after their lectures, and the city agreed to pay for two more posts.",
    ]
)


def golden(name: str) -> tuple[bytes, dict[str, Any]]:
    html = (GOLDEN / f"{name}.html").read_bytes()
    return html, json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def page_html(body: str, head: str = "") -> str:
    paragraphs = "".join(f"<p>{BODY} {body}</p>" for _ in range(3))
    return f"<html><head>{head}</head><body><article>{paragraphs}</article></body></html>"


def entry(**fields: Any) -> FeedEntry:
    values: dict[str, Any] = {
        "feed_url": "https://news.example/rss",
        "key": "k-1",
        "link": "https://news.example/a",
        "title": "Library opens late",
    }
    return FeedEntry(**(values | fields))


# --- golden pages ------------------------------------------------------------------------


def test_there_are_golden_pages() -> None:
    assert len(PAGES) >= 4


@pytest.mark.parametrize("name", PAGES)
def test_golden_metadata(name: str) -> None:
    html, expected = golden(name)
    article = extract_article(html, expected["url"])
    for field, value in expected["expected"].items():
        got = list(article.authors) if field == "authors" else getattr(article, field)
        assert got == value, field


@pytest.mark.parametrize("name", PAGES)
def test_golden_text(name: str) -> None:
    html, expected = golden(name)
    text = extract_article(html, expected["url"]).text
    for sentence in expected["text_contains"]:
        assert sentence in text
    for boilerplate in expected["text_excludes"]:
        assert boilerplate not in text


@pytest.mark.parametrize("name", PAGES)
def test_golden_page_as_str_matches_bytes(name: str) -> None:
    html, expected = golden(name)
    assert extract_article(html.decode("utf-8"), expected["url"]) == extract_article(html, expected["url"])


def test_paywall_stub_falls_back_to_the_feed() -> None:
    html, expected = golden("paywall_stub")
    page = extract_article(html, expected["url"])
    assert is_stub(page.text)
    chosen = choose_article(page, FeedEntry.from_dict(expected["feed_entry"]))
    want = expected["chosen"]
    for field in ("extraction", "title", "published_at", "canonical_url", "site_name"):
        assert getattr(chosen, field) == want[field], field
    assert list(chosen.authors) == want["authors"]
    for sentence in want["text_contains"]:
        assert sentence in chosen.text
    for junk in want["text_excludes"]:
        assert junk not in chosen.text


# --- hostile input -----------------------------------------------------------------------

JUNK = [
    b"",
    "",
    "   \n\t ",
    b"\x00" * 512,
    random.Random(7).randbytes(8192),
    b"\x89PNG\r\n\x1a\n" + random.Random(8).randbytes(4096),
    "%PDF-1.7\n" + "1 0 obj << /Type /Catalog >> endobj\n" * 50,
    "just a sentence of plain text with no markup at all, repeated. " * 20,
    "<html></html>",
    "<html><head><title>Empty</title></head><body></body></html>",
    "<html><body><script>var a = 1;</script><style>p {}</style></body></html>",
    "<" * 20_000,
    "<div>" * 5000,
]


@pytest.mark.parametrize("junk", JUNK, ids=range(len(JUNK)))
def test_junk_raises_extraction_error(junk: str | bytes) -> None:
    with pytest.raises(ExtractionError):
        extract_article(junk, "https://example.org/x")


def test_mangled_pages_never_raise_anything_else() -> None:
    rng = random.Random(11)
    html, expected = golden("news_article")
    for _ in range(40):
        data = bytearray(html[: rng.randrange(len(html))])
        for _ in range(rng.randrange(1, 200)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(ExtractionError):  # anything else fails the test
            extract_article(bytes(data), expected["url"])


def test_xml_declaration_and_bom_are_accepted() -> None:
    html = '\ufeff<?xml version="1.0" encoding="utf-8"?>' + page_html("Extra words here.")
    assert "regional library" in extract_article(html, "https://e.org/").text
    data = b"\xef\xbb\xbf" + page_html("Caf\u00e9 au lait.").encode("utf-8")
    assert "Café au lait." in extract_article(data, "https://e.org/").text


# --- charsets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "codec", "sentence"),
    [
        ('<meta charset="iso-8859-1">', "cp1252", "Le café du théâtre rouvre à Noël."),
        (
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
            "cp1252",
            "Die Grüße aus München kamen „pünktlich“ an.",
        ),
        ('<meta charset="windows-1251">', "cp1251", "Новый мост через реку откроют весной."),
        ('<meta charset="shift_jis">', "shift_jis", "新しい図書館は来月開館します。"),
    ],
)
def test_bytes_use_the_declared_charset(head: str, codec: str, sentence: str) -> None:
    data = page_html(sentence, head).encode(codec)
    article = extract_article(data, "https://e.org/")
    assert sentence in article.text


def test_undeclared_utf8_bytes_are_utf8() -> None:
    data = page_html("Zoë and Bjørn met in Kraków.").encode("utf-8")
    assert "Zoë and Bjørn met in Kraków." in extract_article(data, "https://e.org/").text


# --- the feed's own content, and the choice ----------------------------------------------


def test_article_from_feed_prefers_content_html() -> None:
    feed = entry(
        content_html=f"<p>{BODY}</p><p>Second <b>paragraph</b> here.</p><script>x()</script>",
        summary="<p>Short summary.</p>",
        authors=("Noor Haddad",),
        published_at="2026-11-26T08:00:00Z",
    )
    article = article_from_feed(feed)
    assert article.text == f"{BODY}\nSecond paragraph here."
    assert article.extraction == "feed"
    assert (article.title, article.authors) == ("Library opens late", ("Noor Haddad",))
    assert article.published_at == "2026-11-26T08:00:00Z"
    assert article.language == "en"


def test_article_from_feed_falls_back_to_summary() -> None:
    article = article_from_feed(entry(summary="The museum reopens on <em>Friday</em>."))
    assert article.text == "The museum reopens on Friday."
    assert article_from_feed(entry()).text == ""


def test_choose_without_a_page_takes_the_feed() -> None:
    chosen = choose_article(None, entry(summary=BODY))
    assert (chosen.extraction, chosen.text) == ("feed", BODY)


def test_choose_keeps_a_good_page_and_fills_metadata() -> None:
    page = Article(text=BODY * 3, canonical_url="https://news.example/a", language="en")
    feed = entry(summary=BODY, authors=("Ines Moreau",), published_at="2026-11-25T10:00:00Z")
    chosen = choose_article(page, feed)
    assert chosen.text == page.text
    assert chosen.extraction == "trafilatura"
    assert chosen.title == "Library opens late"
    assert chosen.authors == ("Ines Moreau",)
    assert chosen.published_at == "2026-11-25T10:00:00Z"
    assert chosen.canonical_url == "https://news.example/a"


def test_choose_prefers_page_metadata_over_the_entry() -> None:
    page = Article(text=BODY, title="Page title", authors=("A. Writer",), published_at="x")
    chosen = choose_article(page, entry(summary="short", authors=("Other",)))
    assert (chosen.title, chosen.authors, chosen.published_at) == ("Page title", ("A. Writer",), "x")


def test_choose_takes_the_feed_when_the_page_is_much_shorter() -> None:
    page = Article(text=BODY, title="Page title", site_name="News")
    chosen = choose_article(page, entry(content_html=f"<p>{BODY}</p>" * 4))
    assert chosen.extraction == "feed"
    assert chosen.text.count("regional library") == 4
    assert (chosen.title, chosen.site_name) == ("Page title", "News")


def test_choose_takes_the_feed_for_a_teaser() -> None:
    teaser = replace(Article(text="The council met on Monday to discuss the budget and …"))
    chosen = choose_article(teaser, entry(summary="The council met on Monday to discuss it."))
    assert chosen.extraction == "feed"


def test_choose_keeps_a_stub_when_the_feed_has_nothing() -> None:
    stub = Article(text="Subscribe to continue reading.")
    assert choose_article(stub, entry()).text == "Subscribe to continue reading."


# --- clean-up rules and metadata helpers ---------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Read more: Bus fares to rise in March",
        "RELATED: The ten best cycle routes",
        "Sign up for our daily newsletter to get the news in your inbox.",
        "Follow us on Twitter and Facebook.",
        "(Reporting by Ana Lima; Editing by Tom Berg)",
        "Photo: Jan Novak / Daily Times",
        "© 2026 Daily Times. All rights reserved.",
        "12 comments",
        "Advertisement",
        "* * *",
        "reporter@daily.example",
    ],
)
def test_boilerplate_lines(line: str) -> None:
    assert is_boilerplate(line)


@pytest.mark.parametrize(
    "line",
    [
        "The minister said she would read more reports before deciding.",
        "Readers who subscribe to the print edition will see no change, the company said.",
        "He followed the debate on television.",
    ],
)
def test_prose_is_not_boilerplate(line: str) -> None:
    assert not is_boilerplate(line)


def test_clean_text_drops_headline_and_byline_repeats() -> None:
    text = "Library opens late | Daily Times\nBy Ana Lima\n" + BODY
    assert clean_text(text, "Library opens late", ("Ana Lima",)) == BODY


def test_clean_text_keeps_prose_that_looks_like_a_byline_or_credit() -> None:
    text = "\n".join(
        [
            "By the end of the week, the council had approved the plan.",
            "Three agencies contributed to the report, which was published on Monday.",
            BODY,
        ]
    )
    assert clean_text(text, "Library opens late", ("Ana Lima",)) == text


def test_declared_language_stands_unless_the_text_clearly_differs() -> None:
    extra = "The reading rooms on the second floor get new lamps and more power sockets."
    english = page_html(extra).replace("</article>", f"<p>{extra} {BODY}</p></article>")
    assert extract_article(english.replace("<html>", '<html lang="en">'), "https://e.org/").language == "en"
    assert extract_article(english.replace("<html>", '<html lang="de">'), "https://e.org/").language == "en"
    short = "<html lang='de'><body><p>The library opens late tonight, and the rooms get new lamps.</p>"
    assert extract_article(short, "https://e.org/").language == "de"


@pytest.mark.parametrize(
    ("byline", "authors"),
    [
        ("By Ann Lee and Bo Kim", ("Ann Lee", "Bo Kim")),
        ("Bruce Y. Lee", ("Bruce Y. Lee",)),
        ("Rachael Link, MS, RD", ("Rachael Link",)),
        ("Analysis by Kim Ode, CNN Editor-at-large", ("Kim Ode",)),
        ("Jean Dupont et Marie Curie", ("Jean Dupont", "Marie Curie")),
        ("https://facebook.com/someone", ()),
    ],
)
def test_author_names_are_split_and_cleaned(byline: str, authors: tuple[str, ...]) -> None:
    assert split_authors([byline]) == authors


def test_clean_text_is_fast_on_long_unspaced_lines() -> None:
    line = "図書館" * 3000 + "\n" + "a" * 20_000 + "\n" + "!" * 20_000
    start = time.perf_counter()
    clean_text(line)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2026-11-25T21:40:00-05:00", "2026-11-26T02:40:00Z"),
        ("2026-11-25T21:40:00Z", "2026-11-25T21:40:00Z"),
        ("2026-11-25 21:40:00", "2026-11-25T21:40:00Z"),
        ("2026-11-25", "2026-11-25T00:00:00Z"),
        ("Wed, 25 Nov 2026 10:15:00 +0100", "2026-11-25T09:15:00Z"),
        ("yesterday", None),
        ("", None),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_to_utc_iso(value: str, iso: str | None) -> None:
    assert to_utc_iso(value) == iso


def test_strip_site_suffix() -> None:
    url = "https://www.dailytimes.example/a"
    assert strip_site_suffix("Library opens late | Daily Times", "Daily Times", url) == ("Library opens late")
    assert strip_site_suffix("Library opens late - DailyTimes", None, url) == "Library opens late"
    assert strip_site_suffix("Rome: a city of water", "Daily Times", url) == ("Rome: a city of water")


# --- the recall safety net ----------------------------------------------------------------

LONG = "A long paragraph of the body that the precision pass kept, with enough words in it. " * 4


def never_called() -> str:
    raise AssertionError("the recall pass ran although the precision body was enough")


def test_recall_pass_does_not_run_when_the_precision_body_covers_the_page() -> None:
    assert choose_body(LONG, never_called, page=len(LONG)) == LONG
    assert not needs_recall(LONG, len(LONG))


def test_recall_pass_runs_for_a_small_part_of_the_page() -> None:
    assert needs_recall(LONG, page=round(len(LONG) / RULES.page_share) + 10)
    assert needs_recall("short body", page=0)  # nearly empty: always


def test_no_safety_net_on_a_page_too_long_to_be_one_article() -> None:
    assert not needs_recall(LONG, page=RULES.max_page_chars + 1)
    assert needs_recall("short body", page=RULES.max_page_chars + 1)


def test_a_small_precision_body_gives_way_to_the_recall_body() -> None:
    recall = "\n".join([LONG] * 4)
    assert choose_body(LONG, lambda: recall, page=len(recall)) == recall


def test_a_short_body_takes_the_longer_pass() -> None:
    assert choose_body("Tiny.", lambda: "", page=100) == "Tiny."
    assert choose_body("Tiny.", lambda: "Tiny. And more.", page=100) == "Tiny. And more."


def test_gaps_are_filled_between_the_first_and_last_line_only() -> None:
    precision = "First paragraph.\nThird paragraph.\nFifth paragraph."
    recall = "Menu\nFirst paragraph.\nA heading\nThird paragraph.\nFourth.\nFifth paragraph.\nRelated story"
    expected = "First paragraph.\nA heading\nThird paragraph.\nFourth.\nFifth paragraph."
    assert fill_between(precision, recall) == expected


def test_gap_filling_keeps_precision_lines_the_recall_pass_lacks() -> None:
    precision = "One.\nOnly in precision.\nThree."
    assert fill_between(precision, "One.\nTwo.\nThree.") == "One.\nOnly in precision.\nTwo.\nThree."
    assert fill_between(precision, "Something else entirely.") == precision


def test_page_chars_counts_main_text_only() -> None:
    html = (
        "<html><body><nav>Home News Sport</nav><header>Daily Times</header>"
        "<p>Twenty characters..<a href='/x'>linked words</a></p><script>var x = 1;</script>"
        "<style>p { color: red }</style><aside>Most read</aside><footer>Imprint</footer></body></html>"
    )
    assert page_chars(parse_html(html)) == len("Twenty characters..")


def test_a_heading_with_few_words_is_no_byline() -> None:
    assert not is_byline("Poles and geometry", ("Maren Holt",))
    assert is_byline("Maren Holt and Ana Lima", ("Maren Holt", "Ana Lima"))
