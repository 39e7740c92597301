"""A source's own extraction rules (the feeds file's `extract.selector` and `extract.remove`).

`extract.remove` drops the elements its CSS selectors match before anything reads the page;
`extract.selector` names the element(s) holding the body: when it matches, their text is the
article's body instead of trafilatura's (trafilatura still reads the page's metadata); when it
matches nothing (a redesign), trafilatura's body is used and the miss is logged.
Selectors are compiled once (cssselect, through lxml) and checked when the feeds file loads.
"""

from __future__ import annotations

import functools
import logging
import re

from cssselect import SelectorError
from lxml import etree
from lxml.cssselect import CSSSelector
from lxml.html import HtmlElement, HTMLParser, document_fromstring

from ingest.models import ExtractRules

log = logging.getLogger("newswire.extract")

PARSER = HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False, default_doctype=False)
SKIPPED = frozenset({"script", "style", "noscript", "template", "iframe", "svg"})
BLOCKS = frozenset(
    {"p", "div", "section", "article", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr"}
)
MAX_SELECTOR_CHARS = 500
SPACES = re.compile(r"[ \t\r\f\v]+")
LINE_BREAKS = re.compile(r"\s+")


def selector_problem(selector: object) -> str | None:
    """Why `selector` is not a CSS selector we can use, or None when it is."""
    if not isinstance(selector, str) or not selector.strip():
        return "must be a non-empty CSS selector string"
    if len(selector) > MAX_SELECTOR_CHARS:
        return f"is longer than {MAX_SELECTOR_CHARS} characters"
    try:
        compiled(selector)
    except SelectorError as exc:
        return f"is not a valid CSS selector ({exc})"
    return None


@functools.lru_cache(maxsize=512)
def compiled(selector: str) -> CSSSelector:
    return CSSSelector(selector)


def apply_rules(html: str, rules: ExtractRules) -> tuple[str, str | None]:
    """(the page without what `remove` matches, the text of what `selector` matches or None)."""
    try:
        root = document_fromstring(html, parser=PARSER)
    except (etree.LxmlError, ValueError):
        return html, None
    for selector in rules.remove:
        for element in compiled(selector)(root):
            drop(element)
    selected = body_text(compiled(rules.selector)(root)) if rules.selector else None
    if rules.selector and not selected:
        log.info("extract.selector matched nothing: %s", rules.selector, extra={"stage": "extract"})
    cleaned = etree.tostring(root, encoding="unicode", method="html") if rules.remove else html
    return cleaned, selected or None


def drop(element: HtmlElement) -> None:
    """Remove an element but keep the text that follows it (its tail belongs to the parent)."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def body_text(elements: list[HtmlElement]) -> str:
    """The text of the matched elements, a paragraph per block element, whitespace tidied."""
    parts: list[str] = []
    for element in elements:
        collect_text(element, parts)
        parts.append("\n")
    lines = (SPACES.sub(" ", line).strip() for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


def inline(text: str | None) -> str:
    """Text as a browser lays it out inline: any run of whitespace, line breaks included, is a space."""
    return LINE_BREAKS.sub(" ", text) if text else ""


def collect_text(element: HtmlElement, parts: list[str]) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in SKIPPED:
        return
    block = tag in BLOCKS or tag == "br"
    if block:
        parts.append("\n")
    parts.append(inline(element.text))
    for child in element:
        collect_text(child, parts)
        parts.append(inline(child.tail))
    if block:
        parts.append("\n")
