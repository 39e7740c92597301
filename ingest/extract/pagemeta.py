"""What a page declares about itself: meta tags, JSON-LD, canonical link, language.

Pure readers over the lxml tree that `ingest.extract.article` parsed once. Structured data
(JSON-LD, OpenGraph, article:* meta, microdata) comes first; `ingest.extract.article` falls
back to trafilatura's heuristics only for what is missing here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html import unescape
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import py3langid
from lxml.etree import XPath
from lxml.html import HtmlElement

from ingest.extract.cleanup import is_date_word, words

ARTICLE_TYPES = ("article", "posting", "report")
AUTHOR_META = ("author", "article:author", "byl", "parsely-author", "sailthru.author", "dc.creator")
AUTHOR_SPLIT = re.compile(r"\s*(?:[;,|&]|\s(?:and|AND|And|und|et|y)\s)\s*")
AUTHOR_PREFIX = re.compile(r"^(?:by|von|par|por|di)\s+|^[^,;]{0,30}?\sby\s+", re.IGNORECASE)
JOB_TITLE = re.compile(r"\b(?:writer|editor|correspondent|contributor|columnist)\b", re.I)
CREDENTIAL = re.compile(r"[A-Z]{2,4}|Ph\.?D\.?|M\.?D\.?|[JS]r\.?")
AUTHOR_TAIL_WORDS = frozenset({"commented", "said", "wrote", "published", "updated"})
PUBLISHED_META = (
    "article:published_time",
    "og:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "publish-date",
    "parsely-pub-date",
    "sailthru.date",
    "dc.date.issued",
    "dcterms.issued",
    "dc.date",
    "date",
)
LANGUAGE_META = ("og:locale", "language", "dc.language", "content-language", "inlanguage")
MICRODATA_DATE = XPath(".//*[@itemprop='datePublished']")
HTTP_EQUIV_LANGUAGE = XPath(
    "string(head/meta[translate(@http-equiv, 'CONTENTLAGU', 'contentlagu')='content-language']/@content)"
)
LANG_CODE = re.compile(r"^\s*([a-zA-Z]{2})(?:[-_][a-zA-Z0-9]+)*\s*$")
TITLE_SEPARATOR = re.compile(r"\s+[|–—:-]+\s+")
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

MAX_AUTHOR_LEN = 60
LANGID_CHARS = 2000  # language detection reads this much of the body
MIN_LANGID_CHARS = 20
MIN_OVERRIDE_CHARS = 400  # a declared language is only second-guessed on this much text
# log-score gap per sqrt(byte) between the best language and the declared one; wrongly
# declared pages score 45-60 on the benchmark, correctly declared ones 0
OVERRIDE_MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class PageMeta:
    """Meta tags (first value per lower-case key) and the page's JSON-LD article node."""

    tags: dict[str, str]
    node: dict[str, Any]
    dates: list[str]

    def first(self, *keys: str) -> str | None:
        return next((self.tags[k] for k in keys if self.tags.get(k)), None)


def read_meta(tree: HtmlElement) -> PageMeta:
    tags: dict[str, str] = {}
    for meta in tree.iterfind(".//meta[@content]"):
        key = meta.get("property") or meta.get("name") or meta.get("itemprop") or ""
        content = " ".join((meta.get("content") or "").split())
        if key and content:
            tags.setdefault(key.lower(), content)
    scripts = tree.iterfind(".//script[@type='application/ld+json']")
    nodes = [node for script in scripts for node in jsonld_nodes(script.text)]
    articles = [n for n in nodes if is_article_node(n)] or [n for n in nodes if "datePublished" in n]
    dates = [d for n in articles + nodes if isinstance(d := n.get("datePublished"), str)]
    return PageMeta(tags, articles[0] if articles else {}, dates)


def is_article_node(node: dict[str, Any]) -> bool:
    kinds = " ".join(str(kind) for kind in as_list(node.get("@type"))).lower()
    return any(kind in kinds for kind in ARTICLE_TYPES)


def jsonld_nodes(raw: str | None) -> list[dict[str, Any]]:
    """Every JSON object in a JSON-LD script (top level, lists and @graph)."""
    try:
        data = orjson.loads(raw or "")
    except orjson.JSONDecodeError:
        return []
    nodes: list[dict[str, Any]] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            nodes.append(item)
            stack.extend(reversed(as_list(item.get("@graph"))))
    return nodes


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def name_of(value: Any) -> str | None:
    """A JSON-LD string or {"name": ...} object as clean text (entities decoded)."""
    name = value.get("name") if isinstance(value, dict) else value
    if not isinstance(name, str):
        return None
    return " ".join(unescape(name).split()) or None


def find_title(tree: HtmlElement, meta: PageMeta, url: str) -> str | None:
    """Headline from JSON-LD or OpenGraph, else the first <h1>, else <title>."""
    title = name_of(meta.node.get("headline")) or meta.first("og:title", "twitter:title")
    if not title:
        h1 = tree.find(".//h1")
        title = " ".join(h1.text_content().split()) if h1 is not None else None
    title = title or " ".join((tree.findtext(".//title") or "").split())
    return strip_site_suffix(title, find_site_name(meta), url) or None


def strip_site_suffix(title: str, site_name: str | None, url: str) -> str:
    """ "Headline | Site" -> "Headline", when the suffix names the site or its host."""
    parts = TITLE_SEPARATOR.split(title)
    if len(parts) < 2:
        return title
    suffix = "".join(words(parts[-1]))
    host = (urlsplit(url).hostname or "").removeprefix("www.").split(".")[0]
    names = {"".join(words(site_name or "")), host}
    return title[: title.rfind(parts[-1])].rstrip(" |–—:-") if suffix in names else title


def find_authors(meta: PageMeta) -> tuple[str, ...]:
    """Person names from JSON-LD, else from the first author meta tag that has names."""
    names = [name for author in as_list(meta.node.get("author")) if (name := name_of(author))]
    candidates = [names] + [[meta.tags[key]] for key in AUTHOR_META if key in meta.tags]
    found = (split_authors(candidate) for candidate in candidates)
    return next((authors for authors in found if authors), ())


def split_authors(names: Iterable[str]) -> tuple[str, ...]:
    """ "By Ann Lee and Bo Kim" -> ("Ann Lee", "Bo Kim"), without credentials ("Ann Lee,
    MD") and job titles ("AP Sports Writer")."""
    parts = [AUTHOR_SPLIT.split(name) for name in names]
    kept = (p for split in parts for i, p in enumerate(split) if is_name_part(p.strip(), i))
    return clean_authors(kept)


def is_name_part(part: str, position: int) -> bool:
    if position and CREDENTIAL.fullmatch(part):
        return False
    return not JOB_TITLE.search(part)


def clean_authors(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(clean for name in names if (clean := clean_author(name))))


def clean_author(name: str) -> str | None:
    """A person or desk name: no "By", no trailing date words, no URL or e-mail."""
    tokens = AUTHOR_PREFIX.sub("", name.strip(" \t\n,;|-.")).split()
    while tokens and is_tail_word(tokens[-1].casefold().strip(",.")):
        tokens.pop()
    clean = " ".join(tokens)
    if not clean or len(clean) > MAX_AUTHOR_LEN or "@" in clean or "/" in clean:
        return None
    return clean if any(c.isalpha() for c in clean) else None


def is_tail_word(word: str) -> bool:
    return word in AUTHOR_TAIL_WORDS or is_date_word(word)


def find_site_name(meta: PageMeta) -> str | None:
    publisher = name_of(meta.node.get("publisher"))
    name = meta.first("og:site_name") or publisher or meta.first("application-name")
    return name.lstrip("@") or None if name else None


def find_image(meta: PageMeta, url: str) -> str | None:
    """og:image or twitter:image, else the JSON-LD image (a URL or an ImageObject)."""
    image = meta.first("og:image", "og:image:url", "twitter:image", "twitter:image:src")
    for item in as_list(meta.node.get("image")):
        found = item.get("url") or item.get("contentUrl") if isinstance(item, dict) else item
        image = image or (found if isinstance(found, str) else None)
    return absolute_url(image, url)


def find_description(meta: PageMeta) -> str | None:
    found = meta.first("og:description", "description", "twitter:description")
    return found or name_of(meta.node.get("description"))


def find_canonical(tree: HtmlElement, meta: PageMeta, url: str) -> str | None:
    """`<link rel=canonical>`, else og:url, made absolute against the page URL."""
    for link in tree.iterfind(".//link[@href]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            return absolute_url(link.get("href"), url)
    return absolute_url(meta.first("og:url"), url)


def absolute_url(href: str | None, base: str) -> str | None:
    if not href or not href.strip():
        return None
    absolute = urljoin(base, href.strip())
    return absolute if urlsplit(absolute).scheme in {"http", "https"} else None


def find_published(tree: HtmlElement, meta: PageMeta) -> str | None:
    """Publication time from JSON-LD, then meta tags, then microdata, as ISO 8601 UTC."""
    declared = [*meta.dates, *(meta.tags[key] for key in PUBLISHED_META if key in meta.tags)]
    found = next((iso for value in declared if (iso := to_utc_iso(value))), None)
    if found:
        return found
    stamps = (n.get("datetime") or n.get("content") or n.text_content() for n in MICRODATA_DATE(tree))
    return next((iso for value in stamps if (iso := to_utc_iso(value))), None)


def to_utc_iso(value: str | None) -> str | None:
    """Parse an ISO 8601 or RFC 2822 timestamp; naive times are taken as UTC."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if not 1990 <= moment.year <= 2100:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def date_only_iso(date: str | None) -> str | None:
    """A day-precision date (YYYY-MM-DD...) as midnight UTC."""
    return to_utc_iso(date[:10]) if date and len(date) >= 10 else None


def find_language(tree: HtmlElement, meta: PageMeta) -> str | None:
    """The language the page declares: <html lang>, Content-Language or og:locale."""
    declared = (
        tree.get("lang"),
        tree.get(XML_LANG),
        HTTP_EQUIV_LANGUAGE(tree),
        meta.first(*LANGUAGE_META),
    )
    codes = (LANG_CODE.match(value) for value in declared if isinstance(value, str))
    return next((match.group(1).lower() for match in codes if match), None)


def detect_language(text: str, declared: str | None = None) -> str | None:
    """ISO 639-1 code of the text (py3langid); a declared language stands unless the text is
    long enough and clearly in another language (template `lang` attributes are often wrong)."""
    sample = text.strip()[:LANGID_CHARS]
    if len(sample) < MIN_LANGID_CHARS:
        return declared
    scores = dict(py3langid.rank(sample))
    best = max(scores, key=scores.__getitem__)
    if declared is None or declared not in scores or len(sample) < MIN_OVERRIDE_CHARS:
        return declared or str(best)
    margin = (scores[best] - scores[declared]) / math.sqrt(len(sample.encode()))
    return str(best) if margin > OVERRIDE_MARGIN else declared
