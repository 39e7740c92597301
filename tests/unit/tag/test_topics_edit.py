"""The topic editor's bench: scoring on labelled items (`topics test`) and a draft's diff."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from ingest.tag.diff import diff_topics
from ingest.tag.labels import LabelsError, read_labels, score_labels
from ingest.tag.topics import load_topics
from newswire.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "topics"
LABELS, TOPICS = FIXTURES / "labels.jsonl", FIXTURES / "topics.toml"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["topics", *args])
    return result.exit_code, result.output


def tsv(block: str) -> list[dict[str, str]]:
    """The rows of one table printed for a pipe (its `# title` line skipped)."""
    header, *rows = [line for line in block.strip("\n").split("\n") if not line.startswith("# ")]
    return [dict(zip(header.split("\t"), row.split("\t"), strict=True)) for row in rows]


def test_topics_test_prints_scores_then_every_error_with_evidence() -> None:
    code, out = run("test", "--labels", str(LABELS), "--topics", str(TOPICS))
    assert code == 0, out
    scores, errors = out.split("\n\n")
    assert tsv(scores) == [{
        "topic": "libraries", "labelled": "4", "tp": "3", "fp": "1", "fn": "1",
        "precision": "0.75", "recall": "0.75", "f1": "0.75",
    }]  # fmt: skip
    by_id = {row["id"]: row for row in tsv(errors)}
    assert set(by_id) == {"ed-4", "ed-6"}
    assert by_id["ed-4"]["error"] == "false-positive"
    assert by_id["ed-4"]["why"] == "matched, score 5"
    assert by_id["ed-4"]["evidence"].startswith("library (title): Python library adds faster JSON parser | ")
    assert by_id["ed-6"]["error"] == "false-negative"
    assert by_id["ed-6"]["why"] == "none of the topic's terms found"


def test_topics_test_json_and_fail_under() -> None:
    code, out = run("test", "--labels", str(LABELS), "--topics", str(TOPICS), "--json")
    report = orjson.loads(out)
    assert code == 0
    assert report["items"] == 6
    assert report["topics"][0] | {"f1": 0.75} == report["topics"][0]
    assert [(e["kind"], e["id"]) for e in report["errors"]] == [
        ("false-positive", "ed-4"),
        ("false-negative", "ed-6"),
    ]
    assert report["errors"][0]["evidence"][0] == {
        "term": "library", "field": "title", "snippet": "Python library adds faster JSON parser",
    }  # fmt: skip
    assert run("test", "--labels", str(LABELS), "--topics", str(TOPICS), "--fail-under", "0.8")[0] == 1
    assert run("test", "--labels", str(LABELS), "--topics", str(TOPICS), "--fail-under", "0.75")[0] == 0


def test_a_page_declared_in_the_wrong_language_is_scored_as_the_pipeline_sees_it() -> None:
    [item] = [i for i in read_labels(LABELS) if i.id == "ed-3"]
    assert (item.language, item.declared_language, item.seen_language) == ("de", "en", "en")
    report = score_labels(load_topics(TOPICS), [item])
    assert report.errors == ()  # the German list applies though the page says `en`


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "labels.jsonl:2: not JSON"),
        ('{"id": "x", "title": "t", "text": "b"}', "labels.jsonl:2: 'topics' must be a list"),
        ('{"id": 7, "title": "t", "text": "b", "topics": []}', "labels.jsonl:2: 'id' must be a string"),
        ('{"id": "a", "title": "t", "text": "b", "topics": []}', "duplicate id 'a'"),
    ],
)
def test_a_bad_labels_file_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "a", "title": "t", "text": "b", "topics": []}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=message):
        read_labels(path)
    code, out = run("test", "--labels", str(path), "--topics", str(TOPICS))
    assert code == 1
    assert message in out


def test_labels_naming_a_topic_the_file_lacks_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"id": "a", "title": "t", "text": "b", "topics": ["museums"]}) + "\n")
    assert score_labels(load_topics(TOPICS), read_labels(path)).undefined == ("museums",)


def draft(tmp_path: Path, extra: str, *, min_score: float = 2) -> Path:
    path = tmp_path / "draft.toml"
    body = TOPICS.read_text(encoding="utf-8").replace("min_score = 2", f"min_score = {min_score}")
    path.write_text(body.replace('en = ["library", "libraries"]', extra) if extra else body, encoding="utf-8")
    return path


DOCS = [
    {
        "id": i.id,
        "title": i.title,
        "text": i.text,
        "language": i.seen_language,
        "url": f"https://x.test/{i.id}",
    }
    for i in read_labels(LABELS)
]


def test_diff_lists_entering_articles_with_the_drafts_evidence(tmp_path: Path) -> None:
    current = load_topics(TOPICS)
    wider = load_topics(draft(tmp_path, 'en = ["library", "libraries", "reading rooms"]'))
    report = diff_topics(current, wider, DOCS)
    assert report.articles == 6
    [topic] = report.topics
    assert (topic.status, topic.now, topic.draft, topic.entering, topic.leaving) == ("changed", 4, 5, 1, 0)
    [change] = report.changes
    assert (change.kind, change.article_id, change.url) == ("enter", "ed-6", "https://x.test/ed-6")
    assert change.reason == "none of the topic's terms found"  # why the current file does not give it
    assert (change.evidence[0].term, change.evidence[0].field) == ("Reading rooms", "title")


def test_diff_lists_leaving_articles_and_new_topics(tmp_path: Path) -> None:
    current = load_topics(TOPICS)
    stricter = draft(tmp_path, "", min_score=5.5)
    museum = '\n[[topic]]\nslug = "museums"\nname = "M"\ndescription = "d"\nquery = "museum"\nmin_score = 1\n'
    stricter.write_text(stricter.read_text() + museum)
    report = diff_topics(current, load_topics(stricter), DOCS)
    rows = {t.slug: (t.status, t.now, t.draft, t.entering, t.leaving) for t in report.topics}
    assert rows == {"libraries": ("changed", 4, 0, 0, 4), "museums": ("added", 0, 1, 1, 0)}
    leaving = {c.article_id: c for c in report.changes if c.kind == "leave"}
    assert set(leaving) == {"ed-1", "ed-2", "ed-3", "ed-4"}  # each scores 3 (title) + 2 (lead)
    assert leaving["ed-1"].reason == "score 5 below min_score 5.5"
    assert leaving["ed-1"].score == 5
    assert leaving["ed-1"].evidence[0].term == "Library"  # what the current file matched
    assert [c.slug for c in report.changes if c.kind == "enter"] == ["museums"]


def test_an_unchanged_draft_changes_nothing() -> None:
    report = diff_topics(load_topics(TOPICS), load_topics(TOPICS), DOCS)
    assert [t.status for t in report.topics] == ["unchanged"]
    assert report.changes == ()


def test_topics_list_prints_one_row_per_topic_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_TOPICS", str(TOPICS))
    code, out = run("list")
    assert code == 0, out
    description = "Public libraries opening, closing or being renovated. Not software libraries."
    assert out.splitlines() == ["slug\tname\tdescription", f"libraries\tPublic libraries\t{description}"]
    code, out = run("list", "--json")
    [row] = [orjson.loads(line) for line in out.splitlines()]
    assert (row["slug"], row["query"], row["min_score"]) == ("libraries", "@library", 2.0)


def test_topics_test_scores_the_file_in_use_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_TOPICS", str(TOPICS))
    in_use = run("test", "--labels", str(LABELS))
    assert in_use == run("test", "--labels", str(LABELS), "--topics", str(TOPICS))
    assert in_use[1].startswith("# 6 labelled items\ntopic\tlabelled")  # each table's title, then its header
