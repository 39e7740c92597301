import sys
import unicodedata

import pytest

from ingest.dedup.identity import (
    MARK_RE,
    article_id,
    article_ref,
    canonical_url,
    content_hash,
    normalize_text,
    same_site,
    strip_combining,
    url_key,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://News.Example.COM:443/world/story/", "https://news.example.com/world/story"),
        ("http://example.com:80/a?utm_source=rss&utm_medium=feed&id=7", "http://example.com/a?id=7"),
        ("https://example.com/a?b=2&a=1#comments", "https://example.com/a?a=1&b=2"),
        ("https://example.com/a?fbclid=x&gclid=y&mc_cid=z&ocid=w", "https://example.com/a"),
        ("https://example.com/world/story/amp", "https://example.com/world/story"),
        ("https://example.com/world/story.amp.html", "https://example.com/world/story.html"),
        ("https://example.com//double//slash", "https://example.com/double/slash"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
    ],
)
def test_canonical_url_removes_what_never_changes_the_article(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


def test_identity_ignores_scheme_www_mobile_and_amp_hosts() -> None:
    variants = [
        "https://www.example.com/world/story",
        "http://example.com/world/story/",
        "https://m.example.com/world/story?utm_campaign=x",
        "https://amp.example.com/world/story/amp",
    ]
    assert len({url_key(v) for v in variants}) == 1
    assert len({article_id(v) for v in variants}) == 1


def test_different_articles_keep_different_ids() -> None:
    assert article_id("https://example.com/world/story-1") != article_id("https://example.com/world/story-2")
    assert article_id("https://example.com/a?id=1") != article_id("https://example.com/a?id=2")
    assert article_id("https://example.com/a") != article_id("https://example.org/a")


def test_same_site() -> None:
    assert same_site("https://www.example.com/a", "https://example.com/b")
    assert not same_site("https://example.com/a", "https://other.example/b")


def test_content_hash_ignores_case_accents_punctuation_and_spacing() -> None:
    a = "Talks resumed in Genève on Monday — officials said."
    b = "talks resumed in geneve on monday, officials said"
    assert normalize_text(a) == normalize_text(b)
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash("Talks collapsed in Geneva on Monday.")


def test_every_combining_character_is_a_mark() -> None:
    """strip_combining only looks at marks: true for this Python's whole Unicode table."""
    combining = (chr(c) for c in range(sys.maxunicode + 1) if unicodedata.combining(chr(c)))
    assert all(MARK_RE.fullmatch(c) for c in combining)


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii, nothing to drop",
        "Genève, Zürich, Łódź and São Paulo — “quoted”",
        "Tiếng Việt có nhiều dấu",
        "がっこうへ いきました、ガンダム",  # NFKD splits the voicing marks off
        "नई दिल्ली में बैठक",  # vowel signs: marks that are not all combining
        "שָׁלוֹם and مَرْحَبًا",
        "x\u0301\u0301\u0327 y\u20dd",
    ],
)
def test_strip_combining_drops_exactly_the_combining_characters(text: str) -> None:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    expected = "".join(c for c in decomposed if not unicodedata.combining(c))
    assert strip_combining(decomposed) == expected


def test_a_body_is_normalised_once_for_its_hash_and_its_signature() -> None:
    body = "Ministers met in Brussels on Friday to weigh the grain deal. " * 20
    assert normalize_text(body) is normalize_text(body)
    assert normalize_text("A different body.") == "a different body"


def test_article_ref_is_eight_stable_bytes() -> None:
    ref = article_ref("6a04fa6630321a84b0f47895")
    assert len(ref) == 8
    assert ref == article_ref("6a04fa6630321a84b0f47895")
    assert ref != article_ref("6a04fa6630321a84b0f47896")
