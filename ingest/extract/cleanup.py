"""Clean-up around trafilatura: tree repairs before it, boilerplate lines after it.

Before: an article body split into sibling containers is joined, embedded tweets are
lifted out of the "social"/"widget" wrappers trafilatura prunes, and lists made only of
links (related stories) are removed. After: the text (one paragraph per line) loses a
repeated headline/byline/dateline and whole boilerplate lines (share and newsletter
prompts, "Read more" links, photo and wire credits, contact lines).

Every rule is a general pattern of news pages, never a rule for one site. Text patterns
are anchored or bounded so that a long line cannot make them backtrack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import pairwise, takewhile

from lxml.etree import XPath
from lxml.html import HtmlElement

from ingest.extract.body import RULES, Rules

WORD = re.compile(r"\w+")

# a whole line, matched against its lower-case words joined by single spaces
EXACT_LINE = re.compile(
    r"advertisement|anzeige|publicité|publicidad|werbung|tags?|share|print|e ?mail|more"
    r"|related(?: articles| stories| posts| content)?|comments?|recommended|trending|next"
    r"|previous|back to top|up next|share (?:this|this article|this story|on \w+)|more stories"
    r"|you (?:may|might) also like|don t miss|read more|see more|tell us what you think"
    r"|what do you think|join the conversation|leggi anche|lesen sie auch|à? ?lire aussi"
    r"|order reprints|print article|most (?:read|popular|viewed)|\d+ (?:comments?|shares?)"
)

# start of a short line
_LEADS = (
    r"(?:read|see|watch|listen|click)(?: (?:more|also|next|here|now|this))?\s*[:|>»-]",
    r"\[?related(?: (?:post|article|story|stories|content|coverage|reading|links?))?\s*[:\]]",
    r"also (?:on|read|see|in)\b",
    r"more (?:from|on|about) [\w .'’-]{1,40}:",
    r"(?:filed|posted) (?:under|in)\s*:",
    r"(?:tags?|categories|category|topics|schlagwörter|themen)\s*:",
    r"(?:reading time|tempo de leitura|temps de lecture|lesezeit)\b",
    r"\d+[- ]min(?:ute)?s? read\b",
    r"\(?(?:additional |writing and )?(?:reporting|editing|writing|compiled|produced) by\b",
    r"[\w ,.'’&-]{0,160}\bcontributed (?:to this (?:report|story|article)|(?:to )?reporting)\b",
    r"(?:contributing|source|sources|quelle|fonte|fuente)\s*:",
    r"(?:photo|image|picture|video|graphic|foto|bild|illustration)s?(?: credit)?\s*(?::|by\b|©)",
    r"\(?(?:photo|image|credit|foto)s?\s*(?:credit)?\s*:",
    r"©|\(c\)|copyright\b",
    r"with (?:post|ap|wire|staff) (?:wires|reports)\s*$",
    r"(?:write|e-?mail|contact|reach) (?:to )?[\w .'’-]{0,60}\bat [\w.+-]+@[\w-]+\.\w",
    r"(?:an error has occurred|this article has been sent to)\b",
    r"most (?:read|popular|viewed|shared)\b",
)
# anywhere in a short line
_PROMPTS = (
    r"\bfollow\b.{0,80}\bon (?:twitter|facebook|instagram|linkedin|youtube|tiktok)\b",
    r"\bshare (?:it|this)(?: \w+)? with\b",
    r"\b(?:sign up|subscribe)\b.{0,120}\b(?:newsletter|inbox|updates)\b",
    r"\b(?:newsletter|inbox)\b.{0,120}\b(?:sign up|subscribe|subscribing)\b",
    r"\bdelivered (?:straight |directly )?to your inbox\b",
    r"\b(?:reach|email|contact) (?:the )?(?:reporter|writer|author|him|her|them)s?\b.{0,40}\bat\b",
    r"\bmay be reached at\b",
)
LEAD_PATTERN = re.compile(r"^\W*(?:" + "|".join(_LEADS) + ")", re.IGNORECASE)
PROMPT_PATTERN = re.compile("|".join(_PROMPTS), re.IGNORECASE)
NEWSLETTER_BOX = re.compile(r"^\W*(?:\w+\W+){0,5}newsletter\W*$", re.IGNORECASE)
ANY_LENGTH = re.compile(r"\bfor your personal,? non-?commercial use\b", re.IGNORECASE)
CONTACT_LINE = re.compile(
    r"^\W*(?:[\w.+-]+@[\w-]+\.[\w.]+|@\w+|(?:https?://)?(?:www\.)?twitter\.com/\S+)\W*$"
)
DATE_OR_TIME = re.compile(
    r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b|\b\d{1,2}:\d{2}\b|\b\d{1,2}\s*[ap]\.?m\b", re.IGNORECASE
)
LIST_ITEM = re.compile(r"^[-•*–]\s")
DATE_WORD = re.compile(
    r"by|and|on|at|[ap]m?|updated|published|posted|gmt|utc|[ecmp][sd]t|cet|bst|ist"
    r"|jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|mon(?:day)?|tue(?:s(?:day)?)?"
    r"|wed(?:nesday)?|thu(?:rs(?:day)?)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?"
)

SHORT = 200  # prompts and credits are short lines; longer ones are prose
LEAD_LINES = 3  # headline, byline and dateline repeats sit in the first lines
MAX_LEAD_LEN = 120
MAX_SUFFIX_WORDS = 6  # "Headline | Site Name" repeats the headline with this many more words


BODY_CLASS = re.compile(
    r"(?:article|story|entry|post)(?:-|_|__)?(?:body|content|text)|articleBody", re.IGNORECASE
)
EMBED_WRAPPER = re.compile(r"social|embed|tweet|twitter|widget", re.IGNORECASE)
# one pass in C over the tree: body-part candidates, embedded tweets, lists whose every
# item links; only these reach the Python checks
REPAIR_TARGETS = XPath(
    ".//*[(self::div or self::section) and (contains(@class, 'ody')"
    " or contains(@class, 'ontent') or contains(@class, 'ext'))"
    " or self::blockquote and contains(@class, 'twitter-tweet')"
    " or (self::ul or self::ol) and li[2] and not(li[not(.//a)])]"
)
TARGET_KIND = {"blockquote": "blockquote", "ul": "ul", "ol": "ul"}
MIN_SPLIT_PART = 400  # characters of paragraph text for a container to count as a body part
LINK_TEXT_SHARE = 0.9  # a list of links whose text is (almost) all link text is a link box


# --- the tree, before trafilatura ------------------------------------------------------


def repair_tree(tree: HtmlElement, rules: Rules = RULES) -> None:
    """In place: join a split body, lift embedded tweets, drop link-only lists."""
    found: dict[str, list[HtmlElement]] = {"div": [], "blockquote": [], "ul": []}
    for element in REPAIR_TARGETS(tree):
        found[TARGET_KIND.get(element.tag, "div")].append(element)
    parts = [e for e in found["div"] if BODY_CLASS.search(e.get("class", ""))]
    if rules.join_split_body:
        merge_split_body(tree, split_body_parts(parts))
    if rules.lift_embedded_posts:
        unwrap_embedded_posts(found["blockquote"])
    if rules.drop_link_lists:
        drop_link_lists(found["ul"])


def merge_split_body(tree: HtmlElement, parts: list[HtmlElement]) -> None:
    """Join an article body cut into same-class containers (ads between the parts).

    Trafilatura takes the first matching container only and would lose the other parts.
    Quotes between the parts (embedded posts) move along, in their place.
    """
    if len(parts) < 2:
        return
    between = quotes_between(tree, parts)
    for part, quotes in zip(parts[1:], between, strict=True):
        parts[0].extend(quotes)
        parts[0].extend(list(part))
        part.drop_tree()


def quotes_between(tree: HtmlElement, parts: list[HtmlElement]) -> list[list[HtmlElement]]:
    """For each gap between consecutive parts, the blockquotes standing in it."""
    order = {element: index for index, element in enumerate(tree.iter())}
    bounds = [order[part] for part in parts]
    quotes = [q for q in tree.iter("blockquote") if not any(a in parts for a in q.iterancestors())]
    return [[q for q in quotes if start < order[q] < end] for start, end in pairwise(bounds)]


def split_body_parts(candidates: list[HtmlElement]) -> list[HtmlElement]:
    """The first class group with several large, distinct, non-nested parts in one article."""
    groups: dict[str, list[HtmlElement]] = {}
    for element in candidates:
        groups.setdefault(element.get("class", ""), []).append(element)
    for members in groups.values():
        parts = large_distinct_parts(members) if len(members) >= 2 else []
        if len(parts) >= 2 and len({id(article_root(part)) for part in parts}) == 1:
            return parts
    return []


def large_distinct_parts(members: list[HtmlElement]) -> list[HtmlElement]:
    parts: list[HtmlElement] = []
    seen: set[str] = set()
    for element in members:
        text = "".join(t for p in element.iter("p") for t in p.itertext()).strip()
        nested = any(other in element.iterancestors() for other in parts)
        if len(text) >= MIN_SPLIT_PART and text not in seen and not nested:
            parts.append(element)
            seen.add(text)
    return parts


def article_root(element: HtmlElement) -> HtmlElement | None:
    return next(element.iterancestors("article", "main"), None)


def unwrap_embedded_posts(tweets: list[HtmlElement]) -> None:
    """Move embedded tweets out of the "social"/"embed"/"widget" boxes trafilatura prunes."""
    for quote in tweets:
        wrappers = list(takewhile(is_embed_wrapper, quote.iterancestors()))
        if wrappers and wrappers[-1].getparent() is not None:
            wrappers[-1].addprevious(quote)
        quote.attrib.pop("class", None)


def is_embed_wrapper(element: HtmlElement) -> bool:
    return bool(EMBED_WRAPPER.search(element.get("class") or ""))


def drop_link_lists(lists: list[HtmlElement]) -> None:
    """Remove lists made only of links (related stories, "more from" boxes)."""
    for lst in lists:
        if is_link_list(lst) and lst.getparent() is not None:
            lst.drop_tree()


def is_link_list(lst: HtmlElement) -> bool:
    """Every item links (checked by the XPath) and links are nearly all of the text."""
    text = len("".join(lst.text_content().split()))
    linked = sum(len("".join(a.text_content().split())) for a in lst.iter("a"))
    return text > 0 and linked >= LINK_TEXT_SHARE * text


# --- the text, after trafilatura -------------------------------------------------------


def words(text: str) -> list[str]:
    return [w.casefold() for w in WORD.findall(text)]


def is_date_word(word: str) -> bool:
    """A lower-case word of a dateline or byline stamp: digits, month, weekday, zone."""
    return word.isdigit() or bool(DATE_WORD.fullmatch(word))


def is_boilerplate(line: str) -> bool:
    """A whole line that is a share/newsletter prompt, a credit, a link header or a contact."""
    key = " ".join(words(line))
    if not key or EXACT_LINE.fullmatch(key):
        return True
    if ANY_LENGTH.search(line):
        return True
    if len(line) > SHORT:
        return False
    return bool(
        LEAD_PATTERN.match(line)
        or CONTACT_LINE.match(line)
        or NEWSLETTER_BOX.match(line)
        or PROMPT_PATTERN.search(line)
    )


def is_same_text(line: str, other: str | None) -> bool:
    """The line repeats `other` (a headline), give or take a short "| Site" suffix."""
    if not other:
        return False
    a, b = words(line), words(other)
    if not a or not b:
        return False
    shorter, longer = sorted((a, b), key=len)
    extra = len(longer) - len(shorter)
    if longer[: len(shorter)] != shorter or extra > MAX_SUFFIX_WORDS:
        return False
    return extra == 0 or len(shorter) >= 3


def is_dateline(line: str) -> bool:
    """A short line that is mostly a date or time stamp."""
    return len(line) <= 80 and len(words(line)) <= 12 and bool(DATE_OR_TIME.search(line))


def is_byline(line: str, authors: Iterable[str]) -> bool:
    """A short "By ..." line, or the author names with little else (dates, "and")."""
    found = words(line)
    if line.casefold().startswith("by ") and len(found) <= 12 and not line.endswith((".", "!", "?")):
        return True
    names = {w for a in authors for w in words(a)}
    rest = [w for w in found if w not in names and not is_date_word(w)]
    return any(w in names for w in found) and len(rest) <= 2


def is_lead_noise(line: str, title: str | None, authors: Iterable[str]) -> bool:
    """Headline, byline or dateline repeated above the body."""
    if is_same_text(line, title):
        return True
    return len(line) <= MAX_LEAD_LEN and (is_dateline(line) or is_byline(line, authors))


def drop_lead(lines: list[str], title: str | None, authors: Iterable[str]) -> list[str]:
    authors = tuple(authors)
    head = [line for line in lines[:LEAD_LINES] if not is_lead_noise(line, title, authors)]
    return head + lines[LEAD_LINES:]


def drop_boilerplate(lines: list[str]) -> list[str]:
    """Boilerplate lines go, and a "Related"/"Read more" header takes its list items along."""
    kept: list[str] = []
    in_list = False
    for line in lines:
        if is_boilerplate(line):
            in_list = True
        elif not (in_list and LIST_ITEM.match(line)):
            in_list = False
            kept.append(line)
    return kept


def clean_text(text: str, title: str | None = None, authors: Iterable[str] = (), rules: Rules = RULES) -> str:
    """The body without a repeated headline/byline/dateline and without boilerplate lines."""
    lines = [stripped for line in text.splitlines() if (stripped := line.strip())]
    if rules.drop_lead:
        lines = drop_lead(lines, title, authors)
    return "\n".join(drop_boilerplate(lines) if rules.drop_boilerplate else lines)
