"""What a draft topics file would change: per topic, the articles that would enter or leave.

`newswire topics diff --topics DRAFT.toml` replays the draft and the topics file in use over
the article documents still in `{prefix}:articles` and compares them article by article;
nothing is written. `newswire topics retag` then applies a draft that was put in place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ingest.models import Evidence, TopicMatch
from ingest.tag.match import explain_article, tag_article
from ingest.tag.terms import TermSpec
from ingest.tag.topics import Topic, TopicSet


@dataclass(frozen=True, slots=True)
class Change:
    """One article entering (the draft gives the topic) or leaving (only the current file does)."""

    kind: str  # "enter" | "leave"
    slug: str
    article_id: str
    title: str
    url: str
    score: float  # the draft's score when entering, the current one when leaving
    reason: str  # why the other side does not give it
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "slug": self.slug, "id": self.article_id, "title": self.title,
            "url": self.url, "score": round(self.score, 3), "reason": self.reason,
            "evidence": [e.to_dict() for e in self.evidence],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class TopicDiff:
    slug: str
    status: str  # "added" | "removed" | "changed" | "unchanged" (definitions)
    now: int  # articles the current file gives the topic
    draft: int  # articles the draft gives it
    entering: int
    leaving: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug, "status": self.status, "now": self.now, "draft": self.draft,
            "enter": self.entering, "leave": self.leaving,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class DiffReport:
    articles: int
    topics: tuple[TopicDiff, ...]
    changes: tuple[Change, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "articles": self.articles, "topics": [t.to_dict() for t in self.topics],
            "changes": [c.to_dict() for c in self.changes],
        }  # fmt: skip


def diff_topics(current: TopicSet, draft: TopicSet, documents: Iterable[dict[str, Any]]) -> DiffReport:
    """Tag every document with both sets; list the articles each topic gains or loses."""
    slugs = list(dict.fromkeys([*current.slugs, *draft.slugs]))
    now, then = Counter[str](), Counter[str]()
    changes: list[Change] = []
    seen = 0
    for doc in documents:
        seen += 1
        before, after = _matches(current, doc), _matches(draft, doc)
        now.update(before.keys())
        then.update(after.keys())
        changes.extend(_changes(current, draft, doc, before, after))
    changes.sort(key=lambda c: (slugs.index(c.slug), c.kind, -c.score, c.article_id))
    topics = tuple(_topic(slug, current, draft, now, then, changes) for slug in slugs)
    return DiffReport(seen, topics, tuple(changes))


def _matches(topics: TopicSet, doc: dict[str, Any]) -> dict[str, TopicMatch]:
    found = tag_article(topics, title=_title(doc), text=doc.get("text") or "", language=doc.get("language"))
    return {m.slug: m for m in found}


def _title(doc: dict[str, Any]) -> str:
    return str(doc.get("title") or "")


def _changes(
    current: TopicSet, draft: TopicSet, doc: dict[str, Any],
    before: dict[str, TopicMatch], after: dict[str, TopicMatch],
) -> list[Change]:  # fmt: skip
    """Entering and leaving topics, each with the evidence of the side that gives it and the
    reason the other side does not (explained only for the few documents that differ)."""
    found = []
    for slug in sorted(before.keys() ^ after.keys()):
        gets = slug in after
        match, other = (after[slug], current) if gets else (before[slug], draft)
        kind = "enter" if gets else "leave"
        found.append(Change(
            kind, slug, str(doc.get("id", "")), _title(doc), str(doc.get("url") or ""), match.score,
            _reason(other, doc, slug), match.evidence,
        ))  # fmt: skip
    return found


def _reason(topics: TopicSet, doc: dict[str, Any], slug: str) -> str:
    if slug not in topics.slugs:
        return "not in this file"
    rows = explain_article(
        topics, title=_title(doc), text=doc.get("text") or "", language=doc.get("language")
    )
    return next(str(r["reason"]) for r in rows if r["slug"] == slug)


def _topic(
    slug: str, current: TopicSet, draft: TopicSet, now: Counter[str], then: Counter[str],
    changes: list[Change],
) -> TopicDiff:  # fmt: skip
    mine = [c for c in changes if c.slug == slug]
    enter, leave = sum(c.kind == "enter" for c in mine), sum(c.kind == "leave" for c in mine)
    return TopicDiff(slug, _status(slug, current, draft), now[slug], then[slug], enter, leave)


def _status(slug: str, current: TopicSet, draft: TopicSet) -> str:
    """Whether the definition changed: its query, exclusion, threshold, scoring or any of its terms."""
    old = next((t for t in current.topics if t.slug == slug), None)
    new = next((t for t in draft.topics if t.slug == slug), None)
    if old is None:
        return "added"
    if new is None:
        return "removed"
    same = (old.query, old.exclude, old.min_score, current.scoring) == (
        new.query, new.exclude, new.min_score, draft.scoring,
    )  # fmt: skip
    return "unchanged" if same and _terms(current, old) == _terms(draft, new) else "changed"


def _terms(topics: TopicSet, topic: Topic) -> set[TermSpec]:
    return {topics.table.specs[i] for i in topic.term_ids}
