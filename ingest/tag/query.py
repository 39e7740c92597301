"""The topic query language: text folding, the parser, and the compiled term table.

A query is parsed into a small tree (`Leaf`, `And`, `Or`, `Not`, `Near`). Every leaf
names one or more `TermSpec`s (a word, a phrase, a `prefix*`, or each entry of an
alias); all term specs of all topics go into one `TermTable`, compiled into a single
Aho-Corasick automaton over folded, space-joined words. See docs/topics.md.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any, TypeVar

import ahocorasick
import regex

WORD_RE = regex.compile(r"\w+")
APOSTROPHES = str.maketrans({"\u02bc": "'", "\u2019": "'"})  # same length: offsets hold
FIELDS = ("title", "text")
_EXTRA_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae"})
_FOLD_CACHE: dict[str, str] = {}
_FOLD_CACHE_MAX = 200_000
_MIN_STEM = 3
_FIELD_GAP = 1_000_000  # words between title and text, for NEAR

_LEXER = regex.compile(
    r"""(?P<ws>\s+)
    |(?P<lparen>\()|(?P<rparen>\))
    |(?P<near>NEAR(?:/(?P<dist>\d*))?(?![\w/]))
    |(?P<phrase>"[^"]*"?)
    |(?P<alias>@[\w-]*)
    |(?P<field>[A-Za-z]+:)
    |(?P<boost>\^[\d.]*)
    |(?P<word>[\w'’ʼ.*-]+)
    |(?P<bad>.)""",
    regex.VERBOSE,
)


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


@dataclass(frozen=True, slots=True, eq=False)  # identity hashing: leaves are keys per article
class Leaf:
    label: str  # as written: `@ukraine`, `"peace talks"`, `negotiat*`
    ids: tuple[int, ...]  # TermTable ids
    field: str | None = None  # "title" | "text" | None = both
    boost: float = 1.0


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Near:
    left: Node
    right: Node
    distance: int  # at most this many words between the two matches


Node = Leaf | And | Or | Not | Near
NodeT = TypeVar("NodeT", Leaf, And, Or, Not, Near)


def render(node: Node) -> str:
    """The node back as query text, for explanations."""
    if isinstance(node, Leaf):
        text = f"{node.field}:{node.label}" if node.field else node.label
        return text if node.boost == 1.0 else f"{text}^{node.boost:g}"
    if isinstance(node, Not):
        return f"NOT {render(node.child)}"
    if isinstance(node, Near):
        return f"{render(node.left)} NEAR/{node.distance} {render(node.right)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(render(c) for c in node.children) + ")"


def has_positive(node: Node) -> bool:
    """False when the node could match an article that has none of its terms."""
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(has_positive(c) for c in node.children)
    if isinstance(node, Or):
        return all(has_positive(c) for c in node.children)
    return True


def is_positional(node: Node) -> bool:
    """Nodes with word positions: the only allowed operands of NEAR."""
    if isinstance(node, Or):
        return all(is_positional(c) for c in node.children)
    return isinstance(node, Leaf | Near)


def leaf_ids(node: Node) -> frozenset[int]:
    if isinstance(node, Leaf):
        return frozenset(node.ids)
    if isinstance(node, Not):
        return leaf_ids(node.child)
    if isinstance(node, Near):
        return leaf_ids(node.left) | leaf_ids(node.right)
    return frozenset().union(*(leaf_ids(c) for c in node.children))


def _node_key(node: Node) -> tuple[Any, ...]:
    if isinstance(node, Leaf):
        return ("leaf", node.label, node.ids, node.field, node.boost)
    if isinstance(node, Not):
        return ("not", id(node.child))
    if isinstance(node, Near):
        return ("near", id(node.left), id(node.right), node.distance)
    return (type(node).__name__, *map(id, node.children))


def required(node: Node) -> tuple[frozenset[int], ...]:
    """Groups of term ids of which each must have a hit for the node to hold: a cheap,
    necessary (not sufficient) test that skips most topics for an article."""
    if isinstance(node, Leaf):
        return (frozenset(node.ids),)
    if isinstance(node, Not):
        return ()
    if isinstance(node, Near):
        return required(node.left) + required(node.right)
    groups = [required(c) for c in node.children]
    if isinstance(node, And):
        return tuple(g for child in groups for g in child)
    if not all(groups):
        return ()
    return (frozenset().union(*(child[0] for child in groups)),)


@dataclass
class TermTable:
    """Every term spec of a topics file, de-duplicated, compiled into one automaton."""

    specs: list[TermSpec] = field(default_factory=list)
    automaton: Any = None
    _index: dict[TermSpec, int] = field(default_factory=dict)
    _nodes: dict[tuple[Any, ...], Node] = field(default_factory=dict)

    def intern(self, node: NodeT) -> NodeT:
        """One object per distinct sub-query, so topics share per-article evaluations."""
        return self._nodes.setdefault(_node_key(node), node)  # type: ignore[return-value]

    def add(self, spec: TermSpec) -> int:
        if spec not in self._index:
            self._index[spec] = len(self.specs)
            self.specs.append(spec)
        return self._index[spec]

    def compile(self) -> None:
        """Build the automaton: key -> (key length, ((spec id, word count, is simple), ...))."""
        by_key: dict[str, list[int]] = {}
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
        before = list(accumulate(map(len, folded), initial=0))  # letters before each word
        found: dict[int, list[tuple[int, int]]] = {}
        for end, (length, entries) in self.automaton.iter(" " + " ".join(folded) + " "):
            start = _word_at(before, end - length + 1)
            for spec_id, n_words, simple in entries:
                stop, spec = start + n_words, self.specs[spec_id]
                if stop > len(words) or not spec.is_active(language):
                    continue
                if simple or spec.is_match(folded[start:stop], words[start:stop]):
                    found.setdefault(spec_id, []).append((start, stop))
        return found


def _word_at(before: list[int], at: int) -> int:
    """The word whose ' w' begins at character `at` of ' w0 w1 … ': word k's begins at
    before[k] + k. KeyError if none (a key matched inside a folded word that holds a space,
    as the NFKD form of some ligatures does)."""
    words = range(len(before) - 1)
    k = bisect.bisect_left(words, at, key=lambda i: before[i] + i)
    if k == len(words) or before[k] + k != at:
        raise KeyError(at)
    return k


# --- evaluation ----------------------------------------------------------------------

Span = tuple[int, int, tuple[Leaf, ...]]  # words start..end, the leaves that matched there


@dataclass(frozen=True, slots=True)
class Hits:
    """The term hits of one article: word spans per term id; title words come first."""

    spans: dict[int, list[tuple[int, int]]]
    n_title: int
    _by_leaf: dict[tuple[int, str | None], list[tuple[int, int]]] = field(default_factory=dict)
    memo: dict[int, tuple[bool, list[Span]]] = field(default_factory=dict)
    memo_leaf: dict[Leaf, list[Span]] = field(default_factory=dict)

    def of_leaf(self, leaf: Leaf) -> list[tuple[int, int]]:
        """The leaf's spans in its field; cached, as topics share aliases."""
        key = (id(leaf.ids), leaf.field)
        if key not in self._by_leaf:
            found = sorted(span for i in leaf.ids for span in self.spans.get(i, ()))
            if leaf.field is not None:
                found = [s for s in found if (leaf.field == "title") == (s[0] < self.n_title)]
            self._by_leaf[key] = found
        return self._by_leaf[key]


def evaluate(node: Node, hits: Hits) -> tuple[bool, list[Span]]:
    """Whether the node holds, and the spans of the leaves that made it hold (memoised
    per article: interned sub-queries are shared between topics)."""
    if isinstance(node, Leaf):
        spans = leaf_spans(node, hits)
        return bool(spans), spans
    result = hits.memo.get(id(node))
    if result is None:
        result = hits.memo[id(node)] = _evaluate(node, hits)
    return result


def _evaluate(node: And | Or | Not | Near, hits: Hits) -> tuple[bool, list[Span]]:
    if isinstance(node, Not):
        return not evaluate(node.child, hits)[0], []
    if isinstance(node, Near):
        spans = _near_spans(node, hits)
        return bool(spans), spans
    found: list[Span] = []
    holds = isinstance(node, And)
    for child in node.children:
        ok, spans = evaluate(child, hits)
        if ok:
            holds = True
            found.extend(spans)
        elif isinstance(node, And):
            return False, []
    if isinstance(node, Or):
        found.sort(key=_start)  # positional results stay sorted by start, for NEAR
    return holds, found


def leaf_spans(leaf: Leaf, hits: Hits) -> list[Span]:
    spans = hits.memo_leaf.get(leaf)
    if spans is None:
        spans = hits.memo_leaf[leaf] = [(start, end, (leaf,)) for start, end in hits.of_leaf(leaf)]
    return spans


def _near_spans(node: Near, hits: Hits) -> list[Span]:
    """The spans of either side that have a span of the other side close by."""
    left, right = evaluate(node.left, hits)[1], evaluate(node.right, hits)[1]
    if not left or not right:
        return []
    found = _close(left, right, node.distance, hits) + _close(right, left, node.distance, hits)
    return sorted(found, key=_start)


def _start(span: Span) -> int:
    return span[0]


def _close(spans: list[Span], others: list[Span], distance: int, hits: Hits) -> list[Span]:
    """Spans with one of `others` (sorted) at most `distance` words away, in the same field.

    A partner is close iff it starts by end + distance and ends after start - distance:
    with partners sorted by start, one bisect and a running max of their ends decide.
    Text positions are shifted far from title positions so no pair crosses fields.
    """
    shift = hits.n_title + distance + _FIELD_GAP
    starts = [s + shift * (s > hits.n_title) for s, _, _ in others]
    ends = list(accumulate((e + shift * (s > hits.n_title) for s, e, _ in others), max))
    found = []
    for span in spans:
        offset = shift * (span[0] > hits.n_title)
        hi = bisect.bisect_right(starts, span[1] + offset + distance)
        if hi and ends[hi - 1] >= span[0] + offset - distance:
            found.append(span)
    return found


def why_not(node: Node, hits: Hits) -> str:
    """The failing parts of a query that does not hold."""
    if isinstance(node, And):
        return "; ".join(why_not(c, hits) for c in node.children if not evaluate(c, hits)[0])
    if isinstance(node, Not):
        return f"found {render(node.child)}"
    return f"no {render(node)}"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    column: int


def _lex(query: str) -> list[_Token]:
    tokens = []
    for m in _LEXER.finditer(query):
        kind = m.lastgroup or "bad"
        if kind == "word" and m.group() in ("AND", "OR", "NOT"):
            kind = m.group()
        if kind != "ws":
            tokens.append(_Token(kind, m.group(), m.start()))
    return tokens


@dataclass(frozen=True, slots=True)
class _Scope:
    field: str | None = None  # set by `title:` / `text:`
    case: bool = False  # set by `case:`


class _Parser:
    """Recursive descent: OR < AND < NOT < NEAR < primary (modifiers, groups, terms)."""

    def __init__(self, query: str, aliases: Mapping[str, tuple[int, ...]], table: TermTable):
        self.tokens = _lex(query)
        self.pos = 0
        self.aliases = aliases
        self.table = table
        self.end = len(query)

    def peek(self, kind: str) -> _Token | None:
        """The next token if it is of `kind`."""
        if self.pos < len(self.tokens) and self.tokens[self.pos].kind == kind:
            return self.tokens[self.pos]
        return None

    def take(self) -> _Token:
        if self.pos >= len(self.tokens):
            raise QueryError("query ends too early: a term or ')' is missing", self.end)
        self.pos += 1
        return self.tokens[self.pos - 1]

    def parse(self) -> Node:
        if not self.tokens:
            raise QueryError("empty query")
        node = self.parse_or(_Scope())
        if self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            if token.kind == "rparen":
                raise QueryError("unbalanced ')'", token.column)
            raise QueryError(f"missing AND/OR before {token.text!r}", token.column)
        return node

    def parse_or(self, scope: _Scope) -> Node:
        children = [self.parse_and(scope)]
        while self.peek("OR"):
            self.take()
            children.append(self.parse_and(scope))
        return children[0] if len(children) == 1 else self.table.intern(Or(tuple(children)))

    def parse_and(self, scope: _Scope) -> Node:
        children = [self.parse_not(scope)]
        while self.peek("AND"):
            self.take()
            children.append(self.parse_not(scope))
        return children[0] if len(children) == 1 else self.table.intern(And(tuple(children)))

    def parse_not(self, scope: _Scope) -> Node:
        if self.peek("NOT"):
            self.take()
            return self.table.intern(Not(self.parse_not(scope)))
        return self.parse_near(scope)

    def parse_near(self, scope: _Scope) -> Node:
        node = self.parse_primary(scope)
        while token := self.peek("near"):
            self.take()
            distance = token.text.partition("/")[2]
            if not distance:
                raise QueryError("NEAR needs a distance, e.g. NEAR/10", token.column)
            right = self.parse_primary(scope)
            if not (is_positional(node) and is_positional(right)):
                reason = "NEAR needs terms, phrases, aliases or OR-groups of them on both sides"
                raise QueryError(reason, token.column)
            node = self.table.intern(Near(node, right, int(distance)))
        return node

    def parse_primary(self, scope: _Scope) -> Node:
        token = self.take()
        if token.kind == "field":
            return self.parse_primary(self.scoped(token, scope))
        if token.kind == "lparen":
            node = self.parse_group(token, scope)
        elif token.kind in ("word", "phrase", "alias"):
            node = self.parse_leaf(token, scope)
        else:
            raise QueryError(f"expected a term, phrase, @alias or '(' at {token.text!r}", token.column)
        return self.parse_boost(node)

    def scoped(self, token: _Token, scope: _Scope) -> _Scope:
        name = token.text[:-1]
        if name == "case":
            return replace(scope, case=True)
        if name not in FIELDS:
            raise QueryError(f"unknown field {name!r} (use title:, text: or case:)", token.column)
        return replace(scope, field=name)

    def parse_group(self, token: _Token, scope: _Scope) -> Node:
        node = self.parse_or(scope)
        if not self.peek("rparen"):
            raise QueryError("unbalanced '(': missing ')'", token.column)
        self.take()
        return node

    def parse_leaf(self, token: _Token, scope: _Scope) -> Leaf:
        if token.kind == "alias":
            ids = self.aliases.get(token.text[1:])
            if ids is None:
                raise QueryError(f"unknown alias {token.text!r}", token.column)
            return self.table.intern(Leaf(token.text, ids, scope.field))
        text = token.text
        if token.kind == "phrase":
            if len(text) < 2 or not text.endswith('"'):
                raise QueryError("unterminated quote", token.column)
            text = text[1:-1]
        try:
            spec = parse_term(text, case=scope.case)
        except QueryError as exc:
            raise QueryError(exc.reason, token.column) from None
        label = f"case:{token.text}" if scope.case else token.text
        return self.table.intern(Leaf(label, (self.table.add(spec),), scope.field))

    def parse_boost(self, node: Node) -> Node:
        token = self.peek("boost")
        if token is None:
            return node
        self.take()
        try:
            factor = float(token.text[1:])
        except ValueError:
            raise QueryError(f"bad boost {token.text!r}: use ^2 or ^0.5", token.column) from None
        return with_boost(node, factor, self.table)


def with_boost(node: Node, factor: float, table: TermTable) -> Node:
    if isinstance(node, Leaf):
        return table.intern(replace(node, boost=node.boost * factor))
    if isinstance(node, Not):
        return node
    if isinstance(node, Near):
        left, right = with_boost(node.left, factor, table), with_boost(node.right, factor, table)
        return table.intern(Near(left, right, node.distance))
    children = tuple(with_boost(c, factor, table) for c in node.children)
    return table.intern(And(children)) if isinstance(node, And) else table.intern(Or(children))


def parse_query(query: str, aliases: Mapping[str, tuple[int, ...]], table: TermTable) -> Node:
    """Parse one query; raise QueryError (with a column) when it is invalid."""
    node = _Parser(query, aliases, table).parse()
    if not has_positive(node):
        raise QueryError("query can match without any of its terms: add a positive term")
    return node
