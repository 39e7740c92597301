"""Scoring topic definitions on labelled items: per-topic precision, recall, F1, and every
error with its evidence (`newswire topics test`, bench/tagging.py, the quality gate).

A labels file is JSON Lines, one item per line: `id`, `title`, `text`, `topics` (the slugs
it is about), and optionally `language` (what it is written in), `declared_language` (what
its page claims, when that is wrong), `kind` and `note`. Items are tagged the way the
pipeline tags a page: with the declared language where one is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.models import Evidence
from ingest.tag.match import explain_article, tag_article
from ingest.tag.topics import TopicSet

Tagger = Callable[["LabelledItem"], set[str]]


class LabelsError(ValueError):
    """An unreadable labels file; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class LabelledItem:
    id: str
    title: str
    text: str
    topics: frozenset[str]
    language: str | None = None  # what the item is written in
    declared_language: str | None = None  # what its page claims, when that is wrong
    kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def seen_language(self) -> str | None:
        """The language the pipeline is given: the page's declaration wins, right or wrong."""
        return self.declared_language or self.language


@dataclass(frozen=True, slots=True)
class TopicScore:
    slug: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug, "positives": self.positives, "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class LabelError:
    """A false positive (tagged, not labelled) or false negative (labelled, not tagged)."""

    kind: str  # "false-positive" | "false-negative"
    slug: str
    item_id: str
    title: str
    reason: str  # why the tagger decided as it did
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "slug": self.slug, "id": self.item_id, "title": self.title,
            "reason": self.reason, "evidence": [e.to_dict() for e in self.evidence],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class LabelReport:
    items: int
    scores: tuple[TopicScore, ...]
    errors: tuple[LabelError, ...]
    undefined: tuple[str, ...]  # slugs in the labels that the topics file does not define

    def score(self, slug: str) -> TopicScore:
        return next(s for s in self.scores if s.slug == slug)

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items, "topics": [s.to_dict() for s in self.scores],
            "errors": [e.to_dict() for e in self.errors], "undefined": list(self.undefined),
        }  # fmt: skip


def read_labels(path: Path) -> list[LabelledItem]:
    """Every item of a labels file; LabelsError on the first bad line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"{path}: cannot read labels: {exc}") from exc
    items = [_read_item(path, n, line) for n, line in enumerate(lines, 1) if line.strip()]
    seen: set[str] = set()
    for n, item in enumerate(items, 1):
        if item.id in seen:
            raise LabelsError(f"{path}: item {n}: duplicate id {item.id!r}")
        seen.add(item.id)
    return items


def _read_item(path: Path, number: int, line: str) -> LabelledItem:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LabelsError(f"{path}:{number}: not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise LabelsError(f"{path}:{number}: each line must be a JSON object")
    for key in ("id", "title", "text"):
        if not isinstance(raw.get(key), str):
            raise LabelsError(f"{path}:{number}: {key!r} must be a string")
    slugs = raw.get("topics")
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise LabelsError(f"{path}:{number}: 'topics' must be a list of slugs (may be empty)")
    known = {"id", "title", "text", "topics", "language", "declared_language", "kind"}
    return LabelledItem(
        raw["id"], raw["title"], raw["text"], frozenset(slugs), _code(raw.get("language")),
        _code(raw.get("declared_language")), str(raw.get("kind") or ""),
        {k: v for k, v in raw.items() if k not in known},
    )  # fmt: skip


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def rule_tagger(topics: TopicSet) -> Tagger:
    """The slugs the pipeline would give each item (cached by id)."""
    cache: dict[str, set[str]] = {}

    def tag(item: LabelledItem) -> set[str]:
        if item.id not in cache:
            found = tag_article(topics, title=item.title, text=item.text, language=item.seen_language)
            cache[item.id] = {m.slug for m in found}
        return cache[item.id]

    return tag


def count(items: Iterable[LabelledItem], slugs: Iterable[str], tagger: Tagger) -> tuple[TopicScore, ...]:
    """Per-topic counts for any tagger (the rules, a baseline, a second signal)."""
    items = list(items)
    scores = []
    for slug in slugs:
        tp = fp = fn = 0
        for item in items:
            got, want = slug in tagger(item), slug in item.topics
            tp, fp, fn = tp + (got and want), fp + (got and not want), fn + (want and not got)
        scores.append(TopicScore(slug, tp, fp, fn))
    return tuple(scores)


def score_labels(topics: TopicSet, items: list[LabelledItem], *, evidence: bool = True) -> LabelReport:
    """Per-topic scores of the topics file on the items, and every error with its evidence."""
    tagger = rule_tagger(topics)
    scores = count(items, topics.slugs, tagger)
    errors = [e for item in items for e in _errors(topics, item, tagger(item), evidence=evidence)]
    undefined = sorted({s for item in items for s in item.topics} - set(topics.slugs))
    return LabelReport(len(items), scores, tuple(errors), tuple(undefined))


def _errors(topics: TopicSet, item: LabelledItem, got: set[str], *, evidence: bool) -> list[LabelError]:
    wrong = (got ^ item.topics) & set(topics.slugs)
    if not wrong:
        return []
    rows = {r["slug"]: r for r in explain_article(
        topics, title=item.title, text=item.text, language=item.seen_language
    )} if evidence else {}  # fmt: skip
    found = []
    for slug in sorted(wrong):
        row = rows.get(slug, {})
        kind = "false-positive" if slug in got else "false-negative"
        reason = row.get("reason") or f"matched, score {row.get('score', 0):g}"
        proof = tuple(Evidence(**e) for e in row.get("evidence", ()))
        found.append(LabelError(kind, slug, item.id, item.title, reason, proof))
    return found
