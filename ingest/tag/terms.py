"""Words and terms: text folding, one matchable term (`TermSpec`), and the table that
compiles every term of a topics file into one Aho-Corasick automaton over folded words.

The query tree that names these terms is in `ingest.tag.query`; see docs/topics.md.
"""

from __future__ import annotations

import bisect
import operator
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import ahocorasick
import regex

WORD_RE = regex.compile(r"\w+")
WORD_SPLIT_RE = regex.compile(r"(\w+)")  # separators and words, alternating: offsets by adding lengths
APOSTROPHES = str.maketrans({"\u02bc": "'", "\u2019": "'"})  # same length: offsets hold
_EXTRA_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae"})
_FOLD_CACHE: dict[str, str] = {}
_FOLD_CACHE_MAX = 200_000
_MIN_STEM = 3


class QueryError(ValueError):
    """An invalid query or term; `column` is the 0-based offset in the query text."""

    def __init__(self, reason: str, column: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


def straighten(text: str) -> str:
    """Typographic apostrophes as "'" (what APOSTROPHES does; two replaces are far quicker)."""
    return text.replace("\u02bc", "'").replace("\u2019", "'")


def fold_all(words: list[str]) -> list[str]:
    """`fold` of each word: cached words straight from the cache, the others through `fold`."""
    folded: list[str | None] = list(map(_FOLD_CACHE.get, words))
    if None in folded:
        return [fold(w) if f is None else f for w, f in zip(words, folded, strict=True)]
    return folded  # type: ignore[return-value]


def fold(word: str) -> str:
    """Casefold and strip diacritics (Ünïcödé -> unicode, Straße -> strasse)."""
    cached = _FOLD_CACHE.get(word)
    if cached is not None:
        return cached
    folded = word.casefold()
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c))
        folded = folded.translate(_EXTRA_FOLD)
    if len(_FOLD_CACHE) >= _FOLD_CACHE_MAX:
        _FOLD_CACHE.clear()
    _FOLD_CACHE[word] = folded
    return folded


@dataclass(frozen=True, slots=True)
class TermSpec:
    """One matchable term: folded words (each maybe a `prefix*`), maybe case or language bound."""

    words: tuple[str, ...]
    wild: tuple[bool, ...]  # per word: True = prefix match (`negotiat*`)
    case: tuple[str, ...] | None = None  # the words as written, when case-sensitive
    lang: str | None = None  # the alias language list it came from; None = any
    alias_langs: frozenset[str] = frozenset()  # the languages its alias has lists for

    @property
    def key(self) -> str:
        """The automaton key: the words up to the first wildcard, space-delimited."""
        head = self.words[: self.wild.index(True) + 1] if True in self.wild else self.words
        return " " + " ".join(head) + ("" if len(head) < len(self.words) or self.wild[-1] else " ")

    @property
    def is_simple(self) -> bool:
        """True when a hit on the automaton key is a full match (no later wildcard, no case)."""
        return self.case is None and True not in self.wild[:-1]

    def is_active(self, language: str | None) -> bool:
        """Language lists apply to their language; other lists only when it has none."""
        if self.lang is None or language is None or self.lang == language:
            return True
        return language not in self.alias_langs

    def is_match(self, folded: Sequence[str], surface: Sequence[str]) -> bool:
        """Whether the words after the automaton key, and the case if bound, match too."""
        expected = zip(self.words, self.wild, folded, strict=True)
        if not all(got == word or (wild and got.startswith(word)) for word, wild, got in expected):
            return False
        if self.case is None:
            return True
        written = zip(self.case, self.wild, surface, strict=True)
        return all(got == word or (wild and got.startswith(word)) for word, wild, got in written)


def parse_term(text: str, *, case: bool = False, lang: str | None = None) -> TermSpec:
    """A word or phrase as written in a definition (`negotiat*`, `peace talks`, `штучн* інтелект*`)."""
    parts = text.translate(APOSTROPHES).split()
    words: list[str] = []
    wild: list[bool] = []
    for part in parts:
        found = WORD_RE.findall(part.removesuffix("*"))
        if "*" in part.removesuffix("*") or (part.endswith("*") and not part[-2:-1].isalnum()):
            raise QueryError(f"wildcard '*' must end a word: {text!r}")
        if part.endswith("*") and len(fold(found[-1])) < _MIN_STEM:
            raise QueryError(f"wildcard stem too short (at least {_MIN_STEM} letters): {text!r}")
        words.extend(found)
        wild.extend([False] * (len(found) - 1) + [part.endswith("*")] if found else [])
    if not words:
        raise QueryError(f"empty term: {text!r}")
    original = tuple(words) if case else None
    return TermSpec(tuple(fold(w) for w in words), tuple(wild), original, lang)


@dataclass
class TermTable:
    """Every term spec of a topics file, de-duplicated, compiled into one automaton."""

    specs: list[TermSpec] = field(default_factory=list)
    automaton: Any = None
    _index: dict[TermSpec, int] = field(default_factory=dict)
    nodes: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # interned query nodes
    _active: dict[str | None, tuple[bool, ...]] = field(default_factory=dict)

    def add(self, spec: TermSpec) -> int:
        if spec not in self._index:
            self._index[spec] = len(self.specs)
            self.specs.append(spec)
        return self._index[spec]

    def compile(self) -> None:
        """Build the automaton: key -> (key length, ((spec id, word count, is simple), ...))."""
        by_key: dict[str, list[int]] = {}
        self._active.clear()
        for i, spec in enumerate(self.specs):
            by_key.setdefault(spec.key, []).append(i)
        self.automaton = ahocorasick.Automaton()
        for key, ids in by_key.items():
            entries = tuple((i, len(self.specs[i].words), self.specs[i].is_simple) for i in ids)
            self.automaton.add_word(key, (len(key), entries))
        if by_key:
            self.automaton.make_automaton()

    def find(
        self, words: Sequence[str], folded: Sequence[str], language: str | None
    ) -> dict[int, list[tuple[int, int]]]:
        """Term id -> word spans, running the automaton over ' w1 w2 … ' once."""
        before = accumulate(map(len, folded), initial=0)  # letters before each word
        starts = list(map(operator.add, before, range(len(folded) + 1)))  # where each ' w' begins
        active, n = self.active(language), len(words)
        found: dict[int, list[tuple[int, int]]] = {}
        for end, (length, entries) in self.automaton.iter(" " + " ".join(folded) + " "):
            at = end - length + 1
            start = bisect.bisect_left(starts, at)
            if start >= n or starts[start] != at:
                continue  # a key inside a folded word that holds a space (NFKD of some ligatures)
            for spec_id, n_words, simple in entries:
                stop = start + n_words
                if stop > n or not active[spec_id]:
                    continue
                if simple or self.specs[spec_id].is_match(folded[start:stop], words[start:stop]):
                    found.setdefault(spec_id, []).append((start, stop))
        return found

    def active(self, language: str | None) -> tuple[bool, ...]:
        """Per term id, whether its list applies to articles in `language` (cached)."""
        flags = self._active.get(language)
        if flags is None:
            flags = self._active[language] = tuple(spec.is_active(language) for spec in self.specs)
        return flags
