"""The topic editor's bench: `newswire topics test` (score a topics file on labelled items)
and `newswire topics diff` (what a draft would change on the articles still in the streams).
docs/topics.md, "Changing a topic safely", is the walk-through."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import orjson

from config.settings import Settings
from ingest.keys import articles_stream
from ingest.models import Evidence
from ingest.tag.diff import DiffReport, diff_topics
from ingest.tag.labels import LabelReport, LabelsError, read_labels, score_labels
from ingest.tag.retag import iter_documents
from ingest.tag.topics import TopicError, TopicSet, load_topics
from newswire.tables import print_table


def load_set(path: Path) -> TopicSet:
    try:
        return load_topics(path)
    except TopicError as exc:
        raise click.ClickException(str(exc)) from exc


def run_test(topics_path: Path, labels_path: Path) -> LabelReport:
    topics = load_set(topics_path)
    try:
        items = read_labels(labels_path)
    except LabelsError as exc:
        raise click.ClickException(str(exc)) from exc
    return score_labels(topics, items)


def print_test(report: LabelReport, *, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
        return
    rows = [
        (s.slug, s.positives, s.tp, s.fp, s.fn, f"{s.precision:.2f}", f"{s.recall:.2f}", f"{s.f1:.2f}")
        for s in report.scores
    ]
    print_table(("topic", "labelled", "tp", "fp", "fn", "precision", "recall", "f1"), rows,
                title=f"{report.items} labelled items")  # fmt: skip
    click.echo()
    errors = [
        (e.kind, e.slug, e.item_id, e.title, e.reason, evidence_text(e.evidence)) for e in report.errors
    ]
    print_table(("error", "topic", "id", "title", "why", "evidence"), errors, title=f"{len(errors)} errors")
    if report.undefined:
        click.echo(
            f"\nlabelled with topics this file does not define: {', '.join(report.undefined)}", err=True
        )


def run_diff(settings: Settings, client: Any, draft_path: Path, since_s: int) -> DiffReport:
    current, draft = load_set(settings.topics_path), load_set(draft_path)
    since_ms = int((time.time() - since_s) * 1000)
    documents = iter_documents(client, articles_stream(settings.prefix), since_ms)
    return diff_topics(current, draft, documents)


def print_diff(report: DiffReport, *, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
        return
    rows = [(t.slug, t.status, t.now, t.draft, t.entering, t.leaving) for t in report.topics]
    print_table(("topic", "definition", "now", "draft", "enter", "leave"), rows,
                title=f"{report.articles} articles replayed")  # fmt: skip
    click.echo()
    changes = [
        (c.kind, c.slug, c.article_id, c.title, f"{c.score:g}", c.reason, evidence_text(c.evidence))
        for c in report.changes
    ]
    print_table(("change", "topic", "id", "title", "score", "other side", "evidence"), changes,
                title=f"{len(changes)} changes")  # fmt: skip


def evidence_text(evidence: tuple[Evidence, ...]) -> str:
    """`term (field): snippet` entries joined by ' | '."""
    return " | ".join(f"{e.term} ({e.field}): {e.snippet}" for e in evidence)
