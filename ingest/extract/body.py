"""Which body to keep: the precision pass, or what a recall pass adds to it (pure decisions).

Trafilatura's precision pass is the first choice: on news pages it leaves related-story
blocks and captions out. On other pages it sometimes settles on one small block of a long
page, or drops the headings, lists and tables between the paragraphs it keeps. The safety
net: when the precision body is a small part of the page's text (or nearly empty), a
recall pass runs; a precision body that is a small part of the recall body gives way to
it, otherwise the lines the recall pass finds *between* the precision body's lines fill
the gaps (what it finds before the first or after the last line stays out: that is where
related links, teasers and footers sit).

`Rules` holds every threshold and switch of the body extraction. Its defaults are the
product; `bench/extraction.py --cv` varies them to choose them on some sites and score
them on others, and to switch a rule off to measure it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lxml.etree import iterwalk, tostring
from lxml.html import HtmlElement


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds and switches of the body extraction (the defaults are the product)."""

    min_body_chars: int = 250  # a precision body shorter than this always gets the recall pass
    page_share: float = 0.8  # ... and so does one under this share of the page's main text
    switch_ratio: float = 0.4  # a precision body under this share of the recall body gives way
    fill_gaps: bool = True  # recall lines between precision lines join the body
    max_page_chars: int = 200_000  # no safety net above this much main text (corpora: <= 73k);
    # such a page is no single article, and a second pass over it takes seconds
    join_split_body: bool = True  # tree repairs (ingest.extract.cleanup.repair_tree)
    lift_embedded_posts: bool = True
    drop_link_lists: bool = False  # off: helps the 181 news pages, hurts the 709 (docs)
    drop_lead: bool = True  # text clean-up (ingest.extract.cleanup.clean_text)
    drop_boilerplate: bool = True
    safety_net: bool = True  # False: the second pass only under min_body_chars
    retry_focus: Literal["recall", "balanced"] = "recall"  # trafilatura's focus for it


RULES = Rules()
# not main text: scripts and styles, links, and the page's own chrome
CHROME = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "a",
        "nav",
        "header",
        "footer",
        "aside",
        "form",
        "select",
        "button",
    }
)


def page_chars(tree: HtmlElement) -> int:
    """Characters of the page's main text: the <body>'s text (whitespace runs count as one)
    without scripts, styles, link text and the page's chrome (nav, header, footer, aside,
    forms). The measure the precision body is held against; ~1 ms, serialised in C."""
    body = tree.find("body")
    if body is None:
        return 0
    total = text_chars(body, with_tail=True)
    walk = iterwalk(body, events=("start",))
    for _, element in walk:
        if element.tag in CHROME:
            total -= text_chars(element, with_tail=False)
            walk.skip_subtree()
    return max(total, 0)


def text_chars(element: HtmlElement, *, with_tail: bool) -> int:
    text = tostring(element, method="text", encoding="unicode", with_tail=with_tail)
    return len(" ".join(text.split()))


def needs_recall(precision: str, page: int, rules: Rules = RULES) -> bool:
    """The precision body is nearly empty, or a small part of the page's text."""
    if len(precision) < rules.min_body_chars:
        return True
    if not rules.safety_net or page > rules.max_page_chars:
        return False
    return len(precision) < rules.page_share * page


def choose_body(precision: str, recall: Callable[[], str], page: int, rules: Rules = RULES) -> str:
    """The precision body, or (when `needs_recall`) the recall body or the gaps filled from it.

    `recall` runs the recall pass; it is only called when the decision needs it."""
    if not needs_recall(precision, page, rules):
        return precision
    other = recall()
    if len(precision) < rules.min_body_chars or len(precision) < rules.switch_ratio * len(other):
        return max(precision, other, key=len)
    return fill_between(precision, other) if rules.fill_gaps and rules.safety_net else precision


def fill_between(precision: str, recall: str) -> str:
    """The precision body's lines, with the recall body's lines that stand between two of
    them added in place; nothing is added before the first line or after the last."""
    kept, found = precision.split("\n"), recall.split("\n")
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(None, kept, found, autojunk=False)
    for tag, start, end, other_start, other_end in matcher.get_opcodes():
        lines.extend(kept[start:end])
        if tag in {"insert", "replace"} and start > 0 and end < len(kept):
            lines.extend(found[other_start:other_end])
    return "\n".join(lines)
