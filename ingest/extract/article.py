"""Extraction stage: article body and metadata from one HTML page.

The page is decoded and parsed once with lxml. The same tree serves the metadata the
page declares (`ingest.extract.pagemeta`), the tree repairs of `ingest.extract.cleanup`, and trafilatura,
which extracts the body in precision mode; a recall pass runs when that body is nearly
empty or a small part of the page, and `ingest.extract.body` decides what to keep.
Trafilatura's and htmldate's heuristics fill in authors and dates the page does not
declare. Their shapes stop here: callers only see `Article`.

`article_from_feed` and `choose_article` are the fallback to the feed's own content.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

from htmldate import find_date
from lxml import etree
from lxml.html import HtmlElement, HTMLParser, document_fromstring, fragment_fromstring
from trafilatura import bare_extraction
from trafilatura.metadata import extract_author
from trafilatura.settings import Document

from ingest import charset
from ingest.extract import pagemeta
from ingest.extract.body import RULES, Rules, choose_body, page_chars
from ingest.extract.cleanup import clean_text, repair_tree
from ingest.models import Article, FeedEntry

PARSER = HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False, default_doctype=False)
XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
HTML_TAG = re.compile(r"<(?:!doctype|html|head|body|meta|title|div|p|article|main)\b", re.I)
JUNK_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
WORD = re.compile(r"\w+")
FEED_BLOCKS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr")
PAYWALL = re.compile(
    r"subscribe (?:now )?to (?:continue|keep) reading|to continue reading"
    r"|continue reading (?:with|for)|already (?:a )?(?:subscriber|registered|have an account)"
    r"|(?:subscribers?|members?)[- ]only|for (?:our )?(?:subscribers|members)"
    r"|premium (?:content|article)|unlock (?:this|the full)|(?:sign|log) ?in to (?:read|continue)"
    r"|register to (?:read|continue)|jetzt abonnieren|weiterlesen mit|nur für abonnenten"
    r"|réservé aux abonnés|abonnez-vous|solo para suscriptores|riservato agli abbonati",
    re.IGNORECASE,
)
TEASER_ENDINGS = ("…", "...", "[…]", "[...]")
# what a parser or extractor bug on hostile markup raises; a worker's time limit or
# shutdown (not subclasses of these) still propagates untouched
LIBRARY_FAILURES = (
    etree.LxmlError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
    RecursionError,
)

MIN_BODY_WORDS = 8  # fewer words (and under MIN_BODY_CHARS) is no usable body
MIN_BODY_CHARS = 60  # scripts without spaces between words (CJK) count by characters
MAX_HTML_SIZE = 10_000_000  # bigger pages are not articles, and would take seconds
HEAD_CHARS = 5000  # what the binary-junk test reads
MAX_JUNK_SHARE = 0.1  # more control/replacement characters than this: not a text document
STUB_WORDS = 150  # a paywalled or teaser page is shorter than this
MUCH_SHORTER = 0.5  # page text under half of the feed's own content: use the feed's


class ExtractionError(Exception):
    """Nothing usable on the page."""


def warm_up() -> None:
    """Load the lazily loaded models (language identifier, date parser) ahead of the first
    page, e.g. from a worker's process-init hook; otherwise the first page pays ~0.5 s."""
    pagemeta.detect_language("Warming up the language identifier before the first page.")
    find_date("<html><body><p>Published 2026-01-02</p></body></html>", extensive_search=False)


def extract_article(html: str | bytes, url: str, rules: Rules = RULES) -> Article:
    """Body + metadata from one page. Raises ExtractionError when no usable body.
    (`rules` other than the defaults are for the benchmark's ablations.)"""
    tree = parse_html(html)
    try:
        return build_article(tree, url, rules)
    except LIBRARY_FAILURES as err:  # lxml/trafilatura failing on hostile markup
        raise ExtractionError(f"extraction failed: {err!r}") from err


def build_article(tree: HtmlElement, url: str, rules: Rules = RULES) -> Article:
    meta = pagemeta.read_meta(tree)
    title = pagemeta.find_title(tree, meta, url)
    authors = pagemeta.find_authors(meta) or guess_authors(tree)
    published = pagemeta.find_published(tree, meta) or guess_published(tree, url)
    text = extract_text(tree, url, title, authors, rules)
    return Article(
        text=text,
        title=title,
        authors=authors,
        published_at=published,
        language=pagemeta.detect_language(text, pagemeta.find_language(tree, meta)),
        site_name=pagemeta.find_site_name(meta),
        image=pagemeta.find_image(meta, url),
        canonical_url=pagemeta.find_canonical(tree, meta, url),
        description=pagemeta.find_description(meta),
    )


def extract_text(
    tree: HtmlElement, url: str, title: str | None, authors: tuple[str, ...], rules: Rules = RULES
) -> str:
    """Precision pass, cleaned; the recall safety net of `ingest.extract.body` decides."""
    repair_tree(tree, rules)
    passes = Passes(tree, url, title, authors, rules)
    text = choose_body(passes.text("precision"), passes.second, page_chars(tree), rules)
    if not is_usable_text(text):
        raise ExtractionError("no usable body")
    return text


@dataclasses.dataclass(slots=True)
class Passes:
    """Trafilatura passes over one (repaired) tree, each run at most once, cleaned on demand.
    (`raw` may be shared by several `Passes` of one tree: the benchmark's rule variants.)"""

    tree: HtmlElement
    url: str
    title: str | None
    authors: tuple[str, ...]
    rules: Rules = RULES
    raw: dict[str, str] = dataclasses.field(default_factory=dict)

    def text(self, focus: str) -> str:
        if focus not in self.raw:
            self.raw[focus] = run_trafilatura(self.tree, self.url, focus)
        return clean_text(self.raw[focus], self.title, self.authors, self.rules)

    def second(self) -> str:
        return self.text(self.rules.retry_focus)


def run_trafilatura(tree: HtmlElement, url: str, focus: str) -> str:
    """One trafilatura pass ("precision", "balanced" or "recall") over (a copy of) the tree,
    reader comments excluded."""
    doc = bare_extraction(
        tree,
        url=url,
        favor_precision=focus == "precision",
        favor_recall=focus == "recall",
        include_comments=False,
    )
    return (doc.text or "") if isinstance(doc, Document) else ""


def guess_authors(tree: HtmlElement) -> tuple[str, ...]:
    """Trafilatura's byline heuristics, for pages that declare no author."""
    return pagemeta.split_authors((extract_author(tree) or "").split(";"))


def guess_published(tree: HtmlElement, url: str) -> str | None:
    """htmldate's day-precision guess, for pages that declare no publication time."""
    found = find_date(tree, extensive_search=False, original_date=True, url=url)
    return pagemeta.date_only_iso(found)


def is_usable_text(text: str) -> bool:
    return len(WORD.findall(text)) >= MIN_BODY_WORDS or len(text) >= MIN_BODY_CHARS


# --- decoding and parsing ----------------------------------------------------------------


def parse_html(html: str | bytes) -> HtmlElement:
    """Decode (bytes) and parse once; junk and empty documents raise ExtractionError."""
    if len(html) > MAX_HTML_SIZE:
        raise ExtractionError(f"page too large ({len(html)} > {MAX_HTML_SIZE})")
    text = charset.decode(html) if isinstance(html, bytes) else str(html)
    text = XML_DECLARATION.sub("", text.lstrip("\ufeff"))
    if not looks_like_html(text):
        raise ExtractionError("not an HTML document")
    try:
        tree = document_fromstring(CONTROL_CHARS.sub("", text), parser=PARSER)
    except (etree.LxmlError, ValueError) as err:
        raise ExtractionError(f"unparsable HTML: {err}") from err
    if tree is None or tree.find("body") is None:
        raise ExtractionError("no <body> in the document")
    return tree


def looks_like_html(text: str) -> bool:
    """Real markup near the top, and few control or replacement characters."""
    if not HTML_TAG.search(text, 0, 4 * HEAD_CHARS):
        return False
    head = text[:HEAD_CHARS]
    return len(JUNK_CHARS.findall(head)) <= MAX_JUNK_SHARE * len(head)


# --- the feed's own content, and the choice ---------------------------------------------


def article_from_feed(entry: FeedEntry) -> Article:
    """Fallback: the feed's own content (content_html, else summary) as clean text."""
    text = html_to_text(entry.content_html) or html_to_text(entry.summary)
    return Article(
        text=text,
        title=entry.title or None,
        authors=entry.authors,
        published_at=entry.published_at,
        language=pagemeta.detect_language(text),
        extraction="feed",
    )


def html_to_text(fragment: str) -> str:
    """Plain paragraphs from a feed's HTML fragment (scripts and styles dropped)."""
    if not fragment or not fragment.strip():
        return ""
    try:
        root = fragment_fromstring(CONTROL_CHARS.sub("", fragment), create_parent="div")
    except (etree.LxmlError, ValueError):
        return ""
    etree.strip_elements(root, "script", "style", "noscript", with_tail=False)
    for block in root.iter(*FEED_BLOCKS):
        block.tail = "\n" + (block.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


def choose_article(page: Article | None, entry: FeedEntry) -> Article:
    """Pure decision: the page's article, or the feed's content when the page failed, is a
    paywall/teaser stub, or is much shorter than the feed's own content. Fills missing
    metadata (title, authors, published_at) from the entry."""
    if page is None:
        return article_from_feed(entry)
    if may_be_worse_than_feed(page.text, entry):  # else the feed's HTML need not be parsed at all
        feed_text = html_to_text(entry.content_html) or html_to_text(entry.summary)
        if feed_text and is_worse_than_feed(page.text, feed_text):
            language = page.language or pagemeta.detect_language(feed_text)
            page = dataclasses.replace(page, text=feed_text, extraction="feed", language=language)
    return dataclasses.replace(
        page,
        title=page.title or entry.title or None,
        authors=page.authors or entry.authors,
        published_at=page.published_at or entry.published_at,
    )


def may_be_worse_than_feed(page_text: str, entry: FeedEntry) -> bool:
    """False when the page text is no stub and longer than the feed's HTML could make it worse
    (text taken from an HTML fragment is never longer than the fragment)."""
    longest = max(len(entry.content_html or ""), len(entry.summary or ""))
    return is_stub(page_text) or len(page_text) < MUCH_SHORTER * longest


def is_worse_than_feed(page_text: str, feed_text: str) -> bool:
    return is_stub(page_text) or len(page_text) < MUCH_SHORTER * len(feed_text)


def is_stub(text: str) -> bool:
    """A paywall or teaser page: short, with a subscription prompt or a cut-off end."""
    if sum(1 for _ in itertools.islice(WORD.finditer(text), STUB_WORDS)) >= STUB_WORDS:
        return False  # (counts no further than it needs: most bodies are far longer)
    return bool(PAYWALL.search(text)) or text.rstrip().endswith(TEASER_ENDINGS)
