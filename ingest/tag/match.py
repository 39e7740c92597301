"""Tagging one article: its words and term hits, each topic's verdict, score and evidence.

Pure functions over text. The topic definitions come from `ingest.tag.topics`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import regex

from ingest.models import Evidence, TopicMatch
from ingest.tag import evaluate as te
from ingest.tag import query as tq
from ingest.tag import terms
from ingest.tag.language import effective_language

if TYPE_CHECKING:
    from ingest.tag.topics import Scoring, Topic, TopicSet

_SENTENCE_END = regex.compile(r"(?<=[.!?…])[\"'»”’)\]]*\s+(?=[^\s\p{Ll}])|\n\s*")
SNIPPET_CHARS = 200
SEP = "\x00"  # between title and text words: no key contains it, so no phrase spans it

Occ = tuple[int, int, float]  # first word, end word (exclusive), boost
_Scored = tuple[dict[str, float], list[Occ], list[tq.Leaf]]  # zone parts, counted, scope leaves


@dataclass(slots=True)
class _Doc:
    """One article as words (title, SEP, text) and the term hits found in them."""

    title: str
    text: str
    words: list[str]
    folded: list[str]
    hits: te.Hits
    _spans: list[tuple[int, int]] | None = None  # word offsets, found as far as evidence needs
    _bounds: list[int] | None = None  # sentence starts in the text, as far as evidence needs
    _places: dict[tuple[int, int], tuple[str, str, float]] = field(default_factory=dict)
    _evidence: dict[tuple[int, int], tuple[tuple[str, int, bool], Evidence]] = field(default_factory=dict)
    language: str | None = None  # whose term lists applied (None: every language's)
    _scored: dict[frozenset[tq.Leaf], _Scored] = field(default_factory=dict)
    _proof: dict[frozenset[tq.Leaf], tuple[Evidence, ...]] = field(default_factory=dict)
    _parts: list[str] | None = None  # the text split into separators and words, alternating
    _ends_left: Iterator[regex.Match[str]] | None = None

    def is_title(self, word: int) -> bool:
        return word < self.hits.n_title

    def span(self, word: int) -> tuple[int, int]:
        """A word's character offsets in its own field, found again only for evidence: from
        the lengths of the text's separators and words (most articles match no topic)."""
        if self._spans is None:
            title = _word_spans(self.title)
            parts = self._parts or terms.WORD_SPLIT_RE.split(terms.straighten(self.text))
            offsets = list(accumulate(map(len, parts), initial=0))
            self._spans = [*title, (0, 0), *zip(offsets[1::2], offsets[2::2], strict=False)]
        return self._spans[word]

    def surface(self, start: int, end: int) -> str:
        source = self.title if self.is_title(start) else self.text
        return source[self.span(start)[0] : self.span(end - 1)[1]]

    def places(self, scoring: Scoring) -> dict[tuple[int, int], tuple[str, str, float]]:
        """For every hit span: the folded term, its zone and the zone's weight."""
        if not self._places:
            n_title = self.hits.n_title
            for spans in self.hits.spans.values():
                for start, end in spans:
                    zone = _zone(start, n_title, scoring)
                    term = " ".join(self.folded[start:end])
                    self._places[start, end] = (term, zone, getattr(scoring, zone))
        return self._places

    def sentence(self, word: int) -> tuple[int, int]:
        """Character bounds of the sentence holding `word` in its field."""
        if self.is_title(word):
            return 0, len(self.title)
        at = self.span(word)[0]
        if self._bounds is None:
            self._bounds, self._ends_left = [0], _SENTENCE_END.finditer(self.text)
        while self._bounds[-1] <= at and self._ends_left is not None:
            end = next(self._ends_left, None)
            self._bounds.append(len(self.text) if end is None else end.end())
            self._ends_left = None if end is None else self._ends_left
        if self._bounds[-1] <= at:
            self._bounds.append(len(self.text))
        i = bisect.bisect_right(self._bounds, at) - 1
        return self._bounds[i], self._bounds[i + 1]

    def evidence(self, span: tuple[int, int]) -> tuple[tuple[str, int, bool], Evidence]:
        """The evidence for a span, keyed by term and sentence to drop repeats (cached)."""
        if span not in self._evidence:
            start, end = span
            term, in_title = self.surface(start, end), self.is_title(start)
            lo, hi = self.sentence(start)
            source = self.title if in_title else self.text
            at = self.span(start)[0]
            snippet = _trim(source[lo:hi].strip(), at - lo, self.span(end - 1)[1] - at)
            item = Evidence(term, "title" if in_title else "text", snippet)
            self._evidence[span] = ((term.casefold(), lo, in_title), item)
        return self._evidence[span]


def _trim(sentence: str, at: int, length: int) -> str:
    if len(sentence) <= SNIPPET_CHARS:
        return sentence
    lo = max(0, min(at - (SNIPPET_CHARS - length) // 2, len(sentence) - SNIPPET_CHARS))
    hi = lo + SNIPPET_CHARS
    return ("…" if lo else "") + sentence[lo:hi].strip() + ("…" if hi < len(sentence) else "")


def _read_doc(topics: TopicSet, title: str, text: str, language: str | None) -> _Doc:
    """The article's words and term hits; word offsets wait until evidence needs them (most
    articles match no topic)."""
    in_title = terms.WORD_RE.findall(terms.straighten(title))
    parts = terms.WORD_SPLIT_RE.split(terms.straighten(text))
    words = [*in_title, SEP, *parts[1::2]]
    folded = terms.fold_all(words)
    lang = effective_language(language, folded)
    found = topics.table.find(words, folded, lang)
    hits = te.Hits(found, len(in_title))
    return _Doc(title, text, words, folded, hits, language=lang, _parts=parts)


def _word_spans(field: str) -> list[tuple[int, int]]:
    return [m.span() for m in terms.WORD_RE.finditer(terms.straighten(field))]


# --- scoring and explanations --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verdict:
    matched: bool
    score: float
    parts: dict[str, float]
    evidence: tuple[Evidence, ...]
    reason: str | None


def _zone(word: int, n_title: int, scoring: Scoring) -> str:
    if word < n_title:
        return "title"
    position = word - n_title - 1
    if position < scoring.lead_words:
        return "lead"
    return "body" if position < scoring.deep_words else "deep"


def _score(leaves: frozenset[tq.Leaf], doc: _Doc, scoring: Scoring) -> _Scored:
    """Every occurrence of each leaf that took part in the match counts by its zone and
    boost; one distinct term counts at most `per_term` times. Also returns the leaves
    with boost 0 (scope terms), for evidence only. Cached per article by leaves: topics
    that differ only in distances or thresholds share it."""
    if leaves in doc._scored:
        return doc._scored[leaves]
    best: dict[tuple[int, int], float] = {}
    for leaf in leaves:
        for span in doc.hits.of_leaf(leaf) if leaf.boost > 0 else ():
            if best.get(span, 0.0) < leaf.boost:
                best[span] = leaf.boost
    by_term: dict[str, list[tuple[float, str, Occ]]] = {}
    places = doc.places(scoring)
    for span, boost in _outermost(best):
        term, zone, weight = places[span]
        by_term.setdefault(term, []).append((weight * boost, zone, (*span, boost)))
    parts = dict.fromkeys(("title", "lead", "body", "deep"), 0.0)
    counted: list[Occ] = []
    for entries in by_term.values():
        if len(entries) > scoring.per_term:
            entries = sorted(entries, reverse=True)[: scoring.per_term]  # noqa: PLW2901
        for weight, zone, occ in entries:
            parts[zone] += weight
            counted.append(occ)
    scored = doc._scored[leaves] = (parts, sorted(counted), [leaf for leaf in leaves if leaf.boost == 0])
    return scored


def _outermost(spans: dict[tuple[int, int], float]) -> list[tuple[tuple[int, int], float]]:
    """The spans not inside a longer one: `talks` within `peace talks` counts once."""
    kept: list[tuple[tuple[int, int], float]] = []
    reach = -1
    for span in sorted(spans, key=lambda s: (s[0], -s[1])):
        if span[1] > reach:
            kept.append((span, spans[span]))
            reach = span[1]
    return kept


def _evidence(counted: list[Occ], scope: list[tq.Leaf], doc: _Doc, limit: int) -> tuple[Evidence, ...]:
    """One entry per distinct term and sentence: scoring terms in reading order, then
    scope terms (boost 0) while there is room."""
    found: list[Evidence] = []
    seen: set[tuple[str, int, bool]] = set()
    spans = [occ[:2] for occ in counted]
    if len(spans) < limit:
        spans += sorted({span for leaf in scope for span in doc.hits.of_leaf(leaf)})
    for span in spans:
        key, item = doc.evidence(span)
        if key not in seen:
            seen.add(key)
            found.append(item)
            if len(found) == limit:
                break
    return tuple(found)


def _judge(topic: Topic, doc: _Doc, scoring: Scoring, *, explain: bool = False) -> _Verdict:
    """Whether the topic matches; evidence and reasons for misses only when explaining."""
    zero = dict.fromkeys(("title", "lead", "body", "deep"), 0.0)
    if topic.term_ids.isdisjoint(doc.hits.spans):
        return _Verdict(False, 0.0, zero, (), "none of the topic's terms found")
    if not explain and any(group.isdisjoint(doc.hits.spans) for group in topic.must):
        return _Verdict(False, 0.0, zero, (), None)
    ok, spans = te.evaluate(topic.rule, doc.hits)
    if not ok:
        why = "query not satisfied: " + te.why_not(topic.rule, doc.hits) if explain else None
        return _Verdict(False, 0.0, zero, (), why)
    leaves = frozenset(leaf for _, _, matched in spans for leaf in matched)
    parts, counted, scope = _score(leaves, doc, scoring)
    score = round(sum(parts.values()), 6)
    reason = None
    if topic.exclude_rule is not None and te.evaluate(topic.exclude_rule, doc.hits)[0]:
        reason = "excluded: " + tq.render(topic.exclude_rule)
    elif score < topic.min_score:
        reason = f"score {score:g} below min_score {topic.min_score:g}"
    if reason is not None and not explain:
        return _Verdict(False, score, parts, (), reason)
    if leaves not in doc._proof:
        doc._proof[leaves] = _evidence(counted, scope, doc, scoring.max_evidence)
    return _Verdict(reason is None, score, dict(parts), doc._proof[leaves], reason)


def tag_article(
    topics: TopicSet, *, title: str, text: str, language: str | None = None
) -> tuple[TopicMatch, ...]:
    """The topics whose query holds and whose score reaches min_score, best first."""
    doc = _read_doc(topics, title, text, language)
    matches = []
    for topic in topics.candidates(doc.hits.spans):
        verdict = _judge(topic, doc, topics.scoring)
        if verdict.matched:
            matches.append(TopicMatch(topic.slug, verdict.score, verdict.evidence))
    return tuple(sorted(matches, key=lambda m: -m.score))


def explain_article(
    topics: TopicSet, *, title: str, text: str, language: str | None = None
) -> list[dict[str, Any]]:
    """One dict per topic: whether it matched, the score and its parts, evidence, why not."""
    doc = _read_doc(topics, title, text, language)
    rows = []
    for topic in topics.topics:
        verdict = _judge(topic, doc, topics.scoring, explain=True)
        rows.append({
            "slug": topic.slug,
            "name": topic.name,
            "matched": verdict.matched,
            "score": verdict.score,
            "min_score": topic.min_score,
            "parts": verdict.parts,
            "evidence": [e.to_dict() for e in verdict.evidence],
            "reason": verdict.reason,
        })  # fmt: skip
    return rows


def terms_language(title: str, text: str, declared: str | None) -> str | None:
    """The language whose term lists `tag_article` applies (None: every language's)."""
    words = [*terms.WORD_RE.findall(terms.straighten(title)), *terms.WORD_RE.findall(terms.straighten(text))]
    return effective_language(declared, terms.fold_all(words))
