"""Topic tagging: load topic definitions once, tag articles with score and evidence.

Pure functions over text: no I/O except reading the topics file. The query language
lives in `ingest.tag.query`; docs/topics.md describes it for editors.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import threading
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import regex

from ingest.models import Evidence, TopicMatch
from ingest.tag import query as tq

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
LANG_RE = re.compile(r"[a-z]{2}|any")
TOPIC_KEYS = frozenset({"slug", "name", "description", "query", "exclude", "min_score"})
TOP_KEYS = frozenset({"scoring", "aliases", "topic"})
_SENTENCE_END = regex.compile(r"(?<=[.!?…])[\"'»”’)\]]*\s+(?=[^\s\p{Ll}])|\n\s*")
SNIPPET_CHARS = 200
SEP = "\x00"  # between title and text words: no key contains it, so no phrase spans it


class TopicError(ValueError):
    """An invalid topic definition; the message names the file, the line and the reason."""


@dataclass(frozen=True, slots=True)
class Scoring:
    """Weights of one occurrence by where it is; title beats lead beats deep body."""

    title: float = 3.0
    lead: float = 2.0  # the first `lead_words` words of the text
    body: float = 1.0
    deep: float = 0.5  # after `deep_words` words of the text
    lead_words: int = 60
    deep_words: int = 300
    per_term: int = 2  # occurrences of one term that count
    min_score: float = 3.0  # default for topics that set none
    max_evidence: int = 6


@dataclass(frozen=True, slots=True)
class Topic:
    slug: str
    name: str
    description: str
    query: str
    min_score: float
    exclude: str | None = None
    rule: tq.Node = field(repr=False, compare=False, default=tq.Or(()))
    exclude_rule: tq.Node | None = field(repr=False, compare=False, default=None)
    term_ids: frozenset[int] = field(repr=False, compare=False, default=frozenset())
    must: tuple[frozenset[int], ...] = field(repr=False, compare=False, default=())


@dataclass(frozen=True, slots=True)
class TopicSet:
    topics: tuple[Topic, ...]
    scoring: Scoring = Scoring()
    table: tq.TermTable = field(default_factory=tq.TermTable, repr=False, compare=False)
    path: Path | None = None
    by_term: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    def candidates(self, found: dict[int, list[tuple[int, int]]]) -> list[Topic]:
        """The topics that have any term among `found`, in definition order."""
        indexes = {i for term_id in found for i in self.by_term.get(term_id, ())}
        return [self.topics[i] for i in sorted(indexes)]

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(t.slug for t in self.topics)


# --- loading -------------------------------------------------------------------------


def load_topics(path: Path) -> TopicSet:
    """Parse and compile a topics file; raise TopicError on any invalid definition."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopicError(f"{path}: cannot read topics file: {exc}") from exc
    loader = _Loader(Path(path), raw)
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise loader.error(int(line.group(1)) if line else 1, f"invalid TOML: {exc}") from exc
    return loader.build(data)


class _Loader:
    """Validates the parsed TOML, pointing errors at lines of the raw file."""

    def __init__(self, path: Path, raw: str) -> None:
        self.path = path
        self.lines = raw.splitlines()
        self.table = tq.TermTable()
        self.aliases: dict[str, tuple[int, ...]] = {}
        self.scoring = Scoring()

    def error(self, line: int, reason: str) -> TopicError:
        return TopicError(f"{self.path}:{line}: {reason}")

    def find(self, pattern: str, start: int = 1) -> int:
        """The 1-based line of the first match at or after `start`, else `start`."""
        compiled = re.compile(pattern)
        for number in range(max(start, 1), len(self.lines) + 1):
            if compiled.search(self.lines[number - 1]):
                return number
        return start

    def key_error(self, key: str, start: int, reason: str) -> TopicError:
        return self.error(self.find(rf"^\s*{re.escape(key)}\s*=", start), reason)

    def build(self, data: dict[str, Any]) -> TopicSet:
        for key in sorted(data.keys() - TOP_KEYS):
            raise self.key_error(key, 1, f"unknown key {key!r} (use [scoring], [aliases], [[topic]])")
        self.scoring = self.read_scoring(data.get("scoring", {}))
        aliases = data.get("aliases", {})
        if not isinstance(aliases, dict):
            raise self.key_error("aliases", 1, "aliases must be a table")
        for name, lists in aliases.items():
            self.aliases[name] = self.read_alias(name, lists)
        raw_topics = data.get("topic", [])
        if not isinstance(raw_topics, list) or not raw_topics:
            raise self.error(1, "no topics: add at least one [[topic]] table")
        headers = [i + 1 for i, s in enumerate(self.lines) if re.match(r"\s*\[\[\s*topic\s*]]", s)]
        topics = [
            self.read_topic(t, headers[i] if i < len(headers) else 1, i) for i, t in enumerate(raw_topics)
        ]
        for i, topic in enumerate(topics):
            if topic.slug in {t.slug for t in topics[:i]}:
                raise self.key_error("slug", headers[i], f"duplicate slug {topic.slug!r}")
        self.table.compile()
        by_term: dict[int, list[int]] = {}
        for i, topic in enumerate(topics):
            for term_id in topic.term_ids:
                by_term.setdefault(term_id, []).append(i)
        index = {term_id: tuple(ids) for term_id, ids in by_term.items()}
        return TopicSet(tuple(topics), self.scoring, self.table, self.path, index)

    def read_scoring(self, raw: Any) -> Scoring:
        line = self.find(r"^\s*\[scoring]")
        if not isinstance(raw, dict):
            raise self.error(line, "[scoring] must be a table")
        values = {}
        for key, value in raw.items():
            if key not in Scoring.__dataclass_fields__:
                raise self.key_error(key, line, f"unknown scoring key {key!r}")
            if not _is_number(value):
                raise self.key_error(key, line, f"{key} must be a number >= 0")
            values[key] = type(getattr(Scoring(), key))(value)
        return Scoring(**values)

    def read_alias(self, name: str, lists: Any) -> tuple[int, ...]:
        line = self.find(rf"^\s*(\[aliases\.{re.escape(name)}]|{re.escape(name)}\s*=)")
        lists = {"any": lists} if isinstance(lists, list) else lists
        if not re.fullmatch(r"[\w-]+", name) or not isinstance(lists, dict) or not lists:
            raise self.error(line, f"alias {name!r}: give a list of terms or a table of lists")
        langs = frozenset(k for k in lists if k != "any")
        ids = []
        for lang, terms in lists.items():
            if not LANG_RE.fullmatch(lang) or not isinstance(terms, list):
                raise self.error(line, f"alias {name!r}: {lang!r} must be a language code = [terms]")
            for term in terms:
                spec = self.read_term(name, lang, term, line)
                ids.append(self.table.add(replace(spec, alias_langs=langs)))
        return tuple(ids)

    def read_term(self, name: str, lang: str, term: Any, line: int) -> tq.TermSpec:
        if not isinstance(term, str):
            raise self.error(line, f"alias {name!r}: terms must be strings, not {term!r}")
        text, case = term.removeprefix("case:"), term.startswith("case:")
        try:
            return tq.parse_term(text, case=case, lang=None if lang == "any" else lang)
        except tq.QueryError as exc:
            where = self.find(re.escape(json.dumps(term, ensure_ascii=False)), line)
            raise self.error(where, f"alias {name!r}: {exc.reason}") from exc

    def read_topic(self, raw: Any, line: int, index: int) -> Topic:
        if not isinstance(raw, dict):
            raise self.error(line, "each [[topic]] must be a table")
        for key in sorted(raw.keys() - TOPIC_KEYS):
            raise self.key_error(key, line, f"unknown key {key!r} (one of {sorted(TOPIC_KEYS)})")
        for key in ("slug", "name", "description", "query"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise self.error(line, f"topic #{index + 1}: {key!r} is missing or empty")
        slug = raw["slug"]
        if not SLUG_RE.fullmatch(slug):
            raise self.key_error("slug", line, f"bad slug {slug!r}: use a-z, 0-9 and '-'")
        min_score = raw.get("min_score", self.scoring.min_score)
        if not _is_number(min_score):
            raise self.key_error("min_score", line, "min_score must be a number >= 0")
        rule = self.read_query(raw, "query", line)
        exclude = self.read_query(raw, "exclude", line) if "exclude" in raw else None
        ids = tq.leaf_ids(rule) | (tq.leaf_ids(exclude) if exclude else frozenset())
        return Topic(
            slug, raw["name"], raw["description"], raw["query"], float(min_score),
            raw.get("exclude"), rule, exclude, ids, tq.required(rule),
        )  # fmt: skip

    def read_query(self, raw: dict[str, Any], key: str, line: int) -> tq.Node:
        text, slug = raw[key], raw["slug"]
        key_line = self.find(rf"^\s*{key}\s*=", line)
        if not isinstance(text, str):
            raise self.error(key_line, f"topic {slug!r}: {key} must be a string")
        try:
            return tq.parse_query(text, self.aliases, self.table)
        except tq.QueryError as exc:
            # a multi-line string starting right after `"""` begins on the next line
            opens_block = re.search(r"=\s*(\"\"\"|''')\s*$", self.lines[key_line - 1])
            where = key_line + bool(opens_block) + text.count("\n", 0, exc.column)
            near = text[exc.column : exc.column + 20].split("\n")[0].strip()
            at = f" (at {near!r})" if near else ""
            raise self.error(where, f"topic {slug!r}: {key}: {exc.reason}{at}") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


# --- matching ------------------------------------------------------------------------

Occ = tuple[int, int, float]  # first word, end word (exclusive), boost


@dataclass(slots=True)
class _Doc:
    """One article as words (title, SEP, text) and the term hits found in them."""

    title: str
    text: str
    words: list[str]
    folded: list[str]
    hits: tq.Hits
    _spans: list[tuple[int, int]] | None = None
    _bounds: list[int] | None = None
    _places: dict[tuple[int, int], tuple[str, str, float]] = field(default_factory=dict)
    _evidence: dict[tuple[int, int], tuple[tuple[str, int, bool], Evidence]] = field(default_factory=dict)

    def is_title(self, word: int) -> bool:
        return word < self.hits.n_title

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Each word's character offsets in its own field: found again only for evidence."""
        if self._spans is None:
            self._spans = [*_word_spans(self.title), (0, 0), *_word_spans(self.text)]
        return self._spans

    def surface(self, start: int, end: int) -> str:
        source = self.title if self.is_title(start) else self.text
        return source[self.spans[start][0] : self.spans[end - 1][1]]

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
        if self._bounds is None:
            found = (m.end() for m in _SENTENCE_END.finditer(self.text))
            self._bounds = [0, *found, len(self.text)]
        i = bisect.bisect_right(self._bounds, self.spans[word][0]) - 1
        return self._bounds[i], self._bounds[i + 1]

    def evidence(self, span: tuple[int, int]) -> tuple[tuple[str, int, bool], Evidence]:
        """The evidence for a span, keyed by term and sentence to drop repeats (cached)."""
        if span not in self._evidence:
            start, end = span
            term, in_title = self.surface(start, end), self.is_title(start)
            lo, hi = self.sentence(start)
            source = self.title if in_title else self.text
            at = self.spans[start][0]
            snippet = _trim(source[lo:hi].strip(), at - lo, self.spans[end - 1][1] - at)
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
    in_title = tq.WORD_RE.findall(tq.straighten(title))
    words = [*in_title, SEP, *tq.WORD_RE.findall(tq.straighten(text))]
    folded = tq.fold_all(words)
    lang = language.split("-")[0].lower() if language else None
    found = topics.table.find(words, folded, lang)
    return _Doc(title, text, words, folded, tq.Hits(found, len(in_title)))


def _word_spans(field: str) -> list[tuple[int, int]]:
    return [m.span() for m in tq.WORD_RE.finditer(tq.straighten(field))]


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


def _score(
    spans: list[tq.Span], doc: _Doc, scoring: Scoring
) -> tuple[dict[str, float], list[Occ], list[tq.Leaf]]:
    """Every occurrence of each leaf that took part in the match counts by its zone and
    boost; one distinct term counts at most `per_term` times. Also returns the leaves
    with boost 0 (scope terms), for evidence only."""
    leaves = {leaf for _, _, matched in spans for leaf in matched}
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
    return parts, sorted(counted), [leaf for leaf in leaves if leaf.boost == 0]


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
    ok, spans = tq.evaluate(topic.rule, doc.hits)
    if not ok:
        why = "query not satisfied: " + tq.why_not(topic.rule, doc.hits) if explain else None
        return _Verdict(False, 0.0, zero, (), why)
    parts, counted, scope = _score(spans, doc, scoring)
    score = round(sum(parts.values()), 6)
    reason = None
    if topic.exclude_rule is not None and tq.evaluate(topic.exclude_rule, doc.hits)[0]:
        reason = "excluded: " + tq.render(topic.exclude_rule)
    elif score < topic.min_score:
        reason = f"score {score:g} below min_score {topic.min_score:g}"
    if reason is not None and not explain:
        return _Verdict(False, score, parts, (), reason)
    evidence = _evidence(counted, scope, doc, scoring.max_evidence)
    return _Verdict(reason is None, score, parts, evidence, reason)


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


# --- hot reload ----------------------------------------------------------------------


class TopicsFile:
    """A topics file that reloads when it changes; a broken edit keeps the last good set."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._topics: TopicSet | None = None
        self._lock = threading.Lock()

    def get(self) -> TopicSet:
        """The current TopicSet; raises TopicError only if no good version was ever read."""
        stamp = self._stat()
        if stamp != self._stamp or self._topics is None:
            with self._lock:
                if stamp != self._stamp or self._topics is None:
                    self._reload(stamp)
        assert self._topics is not None  # noqa: S101 - _reload sets it or raises
        return self._topics

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        try:
            topics = load_topics(self.path)
        except TopicError as exc:
            if self._topics is None:
                raise
            self._stamp = stamp
            log.error("topics reload failed, keeping the last good set", extra={  # noqa: TRY400
                "stage": "tag", "topics_path": str(self.path), "error": str(exc),
            })  # fmt: skip
            return
        self._topics, self._stamp = topics, stamp
        log.info("topics loaded", extra={
            "stage": "tag", "topics_path": str(self.path), "topics": len(topics.topics),
        })  # fmt: skip
