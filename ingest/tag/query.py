"""The topic query language: the query tree and its parser.

A query is parsed into a small tree (`Leaf`, `And`, `Or`, `Not`, `Near`). Every leaf
names one or more `TermSpec`s (a word, a phrase, a `prefix*`, or each entry of an
alias); all term specs of all topics go into one `TermTable` (`ingest.tag.terms`),
compiled into a single Aho-Corasick automaton over folded, space-joined words.
Evaluation against an article's hits is in `ingest.tag.evaluate`. See docs/topics.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import regex

from ingest.tag.terms import QueryError, TermTable, parse_term

FIELDS = ("title", "text")
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


def intern(table: TermTable, node: NodeT) -> NodeT:
    """One object per distinct sub-query, so topics share per-article evaluations."""
    return table.nodes.setdefault(_node_key(node), node)  # type: ignore[no-any-return]


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
        return children[0] if len(children) == 1 else intern(self.table, Or(tuple(children)))

    def parse_and(self, scope: _Scope) -> Node:
        children = [self.parse_not(scope)]
        while self.peek("AND"):
            self.take()
            children.append(self.parse_not(scope))
        return children[0] if len(children) == 1 else intern(self.table, And(tuple(children)))

    def parse_not(self, scope: _Scope) -> Node:
        if self.peek("NOT"):
            self.take()
            return intern(self.table, Not(self.parse_not(scope)))
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
            node = intern(self.table, Near(node, right, int(distance)))
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
            return intern(self.table, Leaf(token.text, ids, scope.field))
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
        return intern(self.table, Leaf(label, (self.table.add(spec),), scope.field))

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
        return intern(table, replace(node, boost=node.boost * factor))
    if isinstance(node, Not):
        return node
    if isinstance(node, Near):
        left, right = with_boost(node.left, factor, table), with_boost(node.right, factor, table)
        return intern(table, Near(left, right, node.distance))
    children = tuple(with_boost(c, factor, table) for c in node.children)
    return intern(table, And(children)) if isinstance(node, And) else intern(table, Or(children))


def parse_query(query: str, aliases: Mapping[str, tuple[int, ...]], table: TermTable) -> Node:
    """Parse one query; raise QueryError (with a column) when it is invalid."""
    node = _Parser(query, aliases, table).parse()
    if not has_positive(node):
        raise QueryError("query can match without any of its terms: add a positive term")
    return node
