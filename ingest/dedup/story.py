"""Story clustering: different articles about the same event share one `story_id`.

Pure part: `story_terms` picks up to 32 telling terms of an article: names
(capitalised words inside sentences), figures, and the content words of the
headline, cut to a 6-letter stem so "Ukraine"/"Ukrainian" and "tariff"/"tariffs"
meet. Redis part: the Lua function `st_assign` (`story.lua`), run by the decision
script, weighs each term by how rare it is among the articles of the last 48 hours
(its posting list is a sorted set by time), finds the earlier articles sharing
the rarest terms, and joins the story of the most similar one if the idf-weighted
cosine of the two term sets reaches the threshold; otherwise the article starts
its own story. Looking up and indexing happen in one script, so two workers
publishing two reports of a new event at once still end up in one story.
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import redis

from ingest import keys, lua
from ingest.dedup.identity import article_ref

MAX_TERMS = 64
LEAD_WORDS = 400  # the headline and the body up to here (a feature's event can be in its middle)
STEM = 6
TITLE_BONUS = 2.0
NAME_BONUS = 1.0
MARK_WEIGHT = 1.0  # names and figures weigh as other terms (doubled, places alone merged events)
THRESHOLD = 0.11  # idf-weighted cosine of term sets (tuned on tests/data/stories_independent_dev.jsonl)
COMMON = 400  # a term in this many articles is background ("Ukraine" in a war): lists stop growing
RECENT = 60  # candidates come from the latest articles on each rarer term
PROBE = 8  # ... on the article's 8 rarest terms (more found the same stories at twice the cost)
TOP_CANDIDATES = 12
DEFAULT_WINDOW_S = 48 * 3600
KNEE = 0.25  # reports this share of the window apart are fully comparable; then the similarity fades
FADE = 0.8  # ... to 1 - FADE at the window's edge
FULL_TERMS = 64  # a shorter term list counts sqrt(terms / 64) of its cosine (chance overlaps)
KEEP_WINDOWS = 7  # `all` remembers this many windows back from now, for articles that arrive late

TOKEN_RE = re.compile(r"[^\W_]+(?:[.,'’][^\W_]+)*%?", re.UNICODE)
SENTENCE_END_RE = re.compile(r"[.!?:;\"“”]\s*$|^\W*$")
YEAR_RE = re.compile(r"(19|20)\d\d")
STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor
    not now of off on once only or other our out over own same she should so some such than that the
    their them then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours said says say told tell according
    new one two three four five six seven eight nine ten first second last next week weeks year years
    day days month months time today yesterday tomorrow monday tuesday wednesday thursday friday
    saturday sunday january february march april may june july august september october november
    december mr mrs ms dr per cent percent people officials official government news report reports
    reported statement spokesman spokeswoman spokesperson told added including however still would
    could might must shall us since around across amid among another later earlier early late expected
    saying called made make makes take takes took come came going back well much many least less
    several whose without within also because while"""
STOPWORDS = frozenset(STOPWORD_TEXT.split())


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """Lower-case, accents off, possessive off ("Kyiv's" -> "kyiv"). Cached: news vocabulary repeats."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.replace("’", "'").split("'")[0]


def starts_sentence(field: str, start: int, *, first: bool) -> bool:
    """Whether the token at `start` begins a sentence (where capitals say nothing)."""
    return first or bool(SENTENCE_END_RE.search(field[max(0, start - 3) : start]))


def is_name(token: str, field: str, start: int, *, first: bool) -> bool:
    if len(token) > 1 and token.isupper():
        return True  # EU, NATO, UAE
    return token[:1].isupper() and not starts_sentence(field, start, first=first)


def is_figure(token: str) -> bool:
    """Numbers that identify an event (casualties, rates, sums)."""
    if token.isalpha() or not any(c.isdigit() for c in token):
        return False  # the common case, without a regex (no character is both a letter and a digit)
    digits = re.sub(r"\D", "", token)
    return bool(digits) and (len(digits) >= 2 or "%" in token)


def is_year(token: str) -> bool:
    return len(token) == 4 and bool(YEAR_RE.fullmatch(token))


def is_title_case(title: str) -> bool:
    """Headlines In Title Case: their capitals say nothing about names."""
    words = [w for w in title.split() if len(w) >= 4 and w[:1].isalpha()]
    return len(words) >= 3 and sum(w[:1].isupper() for w in words) >= 0.6 * len(words)


@dataclass(slots=True)
class TermScore:
    weight: float = 0.0
    marked: bool = False  # seen as a name or a figure


@lru_cache(maxsize=65536)
def term_of(token: str) -> tuple[str, bool] | None:
    """The token's term (folded, cut to the stem) and whether it is a figure; None for a token
    that tells nothing (short words, function words, years). Cached: it depends on the token only."""
    word, figure = fold(token), is_figure(token)
    if (len(word) < 4 and not figure) or word in STOPWORDS or is_year(token):
        return None
    return word[:STEM], figure


def score_field(scores: dict[str, TermScore], field: str, bonus: float, *, names: bool) -> None:
    for i, match in enumerate(TOKEN_RE.finditer(field)):
        token = match.group()
        term = term_of(token)
        if term is None:
            continue
        stem, figure = term
        marked = figure or (names and is_name(token, field, match.start(), first=i == 0))
        score = scores.get(stem)
        if score is None:
            score = scores[stem] = TermScore()
        score.weight += 1.0 + bonus + (NAME_BONUS if marked else 0.0)
        score.marked = score.marked or marked


def lead(text: str) -> str:
    """The first LEAD_WORDS words, without splitting the rest of the body."""
    return " ".join(text.split(maxsplit=LEAD_WORDS)[:LEAD_WORDS])


def article_time(published_at: str | None, now: float) -> float:
    """When the article was written, for comparing it with others: its publication time when
    known and not in the future (a feed's clock can be ahead), else now."""
    if not published_at:
        return now
    try:
        stamp = datetime.fromisoformat(published_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now
    return min(stamp, now)


def story_terms(title: str, text: str) -> tuple[str, ...]:
    """Up to 32 terms that tell this event from others, strongest first (ties: first seen).

    Names and figures end in `*`: they weigh double when two articles are compared.
    """
    scores: dict[str, TermScore] = {}
    score_field(scores, title, TITLE_BONUS, names=not is_title_case(title))
    score_field(scores, lead(text), 0.0, names=True)
    ranked = sorted(scores, key=lambda t: -scores[t].weight)[:MAX_TERMS]
    return tuple(t + ("*" if scores[t].marked else "") for t in ranked)


LUA_PACKAGE = "ingest.dedup"
ASSIGN_FILES = ("story.lua", "story_assign.lua")  # the library, then the entry point


def story_prefix(prefix: str) -> str:
    return keys.story_index(prefix)


class RedisStoryIndex:
    """Story assignment on its own (the labelled evaluation uses it; the decision script runs
    the same Lua)."""

    def __init__(
        self, client: redis.Redis, prefix: str, *, window_s: float = DEFAULT_WINDOW_S,
        threshold: float = THRESHOLD,
    ) -> None:  # fmt: skip
        self.client: Any = client
        self.key_prefix = story_prefix(prefix)
        self.window_s = window_s
        self.threshold = threshold
        self._assign = lua.register(client, LUA_PACKAGE, *ASSIGN_FILES)

    def assign(
        self, doc_id: str, title: str, text: str, *, now: float | None = None, published_at: str | None = None
    ) -> str:
        """Index the article and return its story id (one round trip, atomic)."""
        terms = " ".join(story_terms(title, text))
        clock = now or time.time()
        args: list[str | float | bytes] = [
            self.key_prefix, clock, article_time(published_at, clock), self.window_s, self.threshold, terms,
            doc_id, article_ref(doc_id),
        ]  # fmt: skip
        story, _ = self._assign(args=args)
        return str(story.decode() if isinstance(story, bytes) else story)
