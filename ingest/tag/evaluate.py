"""Evaluating a query tree against one article's term hits: Boolean logic, NEAR, why not."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from itertools import accumulate, chain

from ingest.tag.query import And, Leaf, Near, Node, Not, Or, render

_FIELD_GAP = 1_000_000  # words between title and text, for NEAR

Span = tuple[int, int, tuple[Leaf, ...]]  # words start..end, the leaves that matched there


@dataclass(frozen=True, slots=True)
class Hits:
    """The term hits of one article: word spans per term id; title words come first."""

    spans: dict[int, list[tuple[int, int]]]
    n_title: int
    _by_leaf: dict[tuple[int, str | None], list[tuple[int, int]]] = field(default_factory=dict)
    memo: dict[int, tuple[bool, list[Span]]] = field(default_factory=dict)
    memo_leaf: dict[Leaf, list[Span]] = field(default_factory=dict)
    memo_places: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict)

    def of_leaf(self, leaf: Leaf) -> list[tuple[int, int]]:
        """The leaf's spans in its field; cached, as topics share aliases."""
        key = (id(leaf.ids), leaf.field)
        if key not in self._by_leaf:
            found = sorted(chain.from_iterable(self.spans[i] for i in self.spans.keys() & leaf.ids))
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
    """
    starts, ends = _places(others, hits)
    distance = min(distance, _FIELD_GAP // 2)
    found = []
    for span in spans:
        offset = _FIELD_GAP * (span[0] > hits.n_title)
        hi = bisect.bisect_right(starts, span[1] + offset + distance)
        if hi and ends[hi - 1] >= span[0] + offset - distance:
            found.append(span)
    return found


def _places(spans: list[Span], hits: Hits) -> tuple[list[int], list[int]]:
    """Starts of the spans and the running max of their ends, text positions shifted far
    from title positions so that no pair crosses fields (cached per span list: topics that
    differ only in distances share them)."""
    key = id(spans)  # the lists live in the memos as long as `hits` does
    if key not in hits.memo_places:
        n_title = hits.n_title
        starts = [s + _FIELD_GAP * (s > n_title) for s, _, _ in spans]
        ends = list(accumulate((e + _FIELD_GAP * (s > n_title) for s, e, _ in spans), max))
        hits.memo_places[key] = (starts, ends)
    return hits.memo_places[key]


def why_not(node: Node, hits: Hits) -> str:
    """The failing parts of a query that does not hold."""
    if isinstance(node, And):
        return "; ".join(why_not(c, hits) for c in node.children if not evaluate(c, hits)[0])
    if isinstance(node, Not):
        return f"found {render(node.child)}"
    return f"no {render(node)}"
