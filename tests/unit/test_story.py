"""Story clustering: the terms (pure), the shared index (real Redis), and a quality gate.

The gate replays tests/data/stories_labelled.jsonl, short articles of our own writing, in time
order through the real Lua and scores every pair. Split "tune" (49 articles, 26 stories, with
hard negatives: two Ukraine-Russia events, two central-bank decisions, two trade disputes, the
same places in unrelated news) chose the threshold; split "holdout" (17 articles, 10 stories)
was written afterwards and never tuned on. Lowering a floor is a deliberate change.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

import pytest
import redis

from ingest.dedup import story

LABELLED = Path(__file__).resolve().parents[1] / "data" / "stories_labelled.jsonl"
FLOORS = {  # split: (precision, recall); measured 1.00 and 1.00 on both at threshold 0.22
    "tune": (0.95, 0.95),  # P = R = 1.00 for thresholds 0.18 to 0.34
    "holdout": (0.95, 0.95),  # P = R = 1.00 for 0.22 to 0.30; a false merge at 0.18
}
NOW = 1_800_000_000.0


def load_labelled(split: str) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]
    return sorted((r for r in rows if r["split"] == split), key=lambda r: r["published_at"])


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def pair_scores(truth: dict[str, str], predicted: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall: a pair counts when both articles share a story."""
    tp = fp = fn = 0
    for a, b in itertools.combinations(sorted(truth), 2):
        same_truth, same_predicted = truth[a] == truth[b], predicted[a] == predicted[b]
        tp += same_truth and same_predicted
        fp += same_predicted and not same_truth
        fn += same_truth and not same_predicted
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


# --- terms ---------------------------------------------------------------------------------


def test_terms_mark_names_and_figures_and_drop_function_words() -> None:
    terms = story.story_terms(
        "Envoys meet in Vienna to revive truce talks",
        "Envoys from Ukraine and Russia met on Tuesday, and Kyiv's delegation wants 210 monitors in 2026.",
    )
    assert {"vienna*", "ukrain*", "russia*", "kyiv*", "210*", "truce", "envoys"} <= set(terms)
    assert not {"the", "tuesda", "tuesda*", "2026", "2026*", "from"} & set(
        terms
    )  # days and years say nothing
    assert len(terms) <= story.MAX_TERMS


def test_title_case_headlines_do_not_make_every_word_a_name() -> None:
    terms = story.story_terms("Storm Closes Harbour For Second Day", "Gales closed the port again.")
    assert "storm" in terms
    assert "storm*" not in terms


def test_stems_let_word_forms_meet() -> None:
    a = story.story_terms("Ukrainian envoys", "Tariffs rise.")
    b = story.story_terms("Ukraine envoy", "A tariff rises.")
    assert {t.rstrip("*") for t in a} & {t.rstrip("*") for t in b} >= {"ukrain", "tariff"}


def test_capitals_after_a_sentence_end_are_not_names() -> None:
    terms = story.story_terms("", "Harbour workers struck. Harbour pilots joined them, said Marlowe.")
    assert "harbou" in terms
    assert "marlow*" in terms
    assert story.story_terms("", "_Harbour pilots went on strike.")[0] == "harbou"  # the first token


@pytest.mark.parametrize(
    ("token", "expected"),
    [("Kyiv", False), ("41", True), ("7", False), ("7%", True), ("3,200", True), ("x²", False), ("²", False)],
)
def test_figures(token: str, expected: bool) -> None:
    assert story.is_figure(token) is expected


def test_only_the_lead_counts() -> None:
    body = "Grain ships left Odesa. " + "Crews waited there. " * 60 + "Later, Marlowe spoke."
    terms = story.story_terms("", body)
    assert "odesa*" in terms
    assert not {"marlow", "marlow*"} & set(terms)


# --- the shared index ---------------------------------------------------------------------


def test_reports_of_one_event_join_one_story_and_others_do_not(
    redis_client: redis.Redis, prefix: str
) -> None:
    index = story.RedisStoryIndex(redis_client, prefix)
    first = index.assign(
        "a1", "Magnitude 6.4 earthquake strikes southern Peru",
        "A magnitude 6.4 earthquake struck the Arequipa region of Peru near Camana, killing two.", now=NOW,
    )  # fmt: skip
    second = index.assign(
        "a2", "Two dead as quake shakes Arequipa",
        "Two people died when an earthquake of magnitude 6.4 shook Arequipa; the epicentre was off Camana.",
        now=NOW + 3600,
    )  # fmt: skip
    other = index.assign(
        "a3", "Lufthansa pilots strike",
        "Lufthansa cancelled 800 flights at Frankfurt and Munich as pilots walked out.", now=NOW + 3700,
    )  # fmt: skip
    assert (first, second, other) == ("a1", "a1", "a3")


def test_stories_close_after_the_window(redis_client: redis.Redis, prefix: str) -> None:
    index = story.RedisStoryIndex(redis_client, prefix, window_s=3600)
    text = "Lufthansa cancelled 800 flights at Frankfurt and Munich as pilots walked out over pensions."
    assert index.assign("b1", "Lufthansa pilots strike", text, now=NOW) == "b1"
    assert index.assign("b2", "Lufthansa pilots strike again", text, now=NOW + 7200) == "b2"
    assert all(redis_client.ttl(k) > 0 for k in redis_client.scan_iter(f"{prefix}:story:*"))


@pytest.mark.parametrize("split", sorted(FLOORS))
def test_story_quality_gate(redis_client: redis.Redis, prefix: str, split: str) -> None:
    articles = load_labelled(split)
    assert len(articles) >= 15
    index = story.RedisStoryIndex(redis_client, prefix)
    predicted = {
        a["id"]: index.assign(a["id"], a["title"], a["text"], now=unix(a["published_at"])) for a in articles
    }
    precision, recall = pair_scores({a["id"]: a["story"] for a in articles}, predicted)
    print(f"story clustering, {split} ({len(articles)} articles): P {precision:.3f} R {recall:.3f}")
    assert precision >= FLOORS[split][0]
    assert recall >= FLOORS[split][1]


def test_pair_scores() -> None:
    truth = {"a": "s1", "b": "s1", "c": "s2"}
    assert pair_scores(truth, {"a": "x", "b": "x", "c": "y"}) == (1.0, 1.0)
    assert pair_scores(truth, {"a": "x", "b": "x", "c": "x"}) == (1 / 3, 1.0)
    assert pair_scores(truth, {"a": "x", "b": "y", "c": "z"}) == (0.0, 0.0)
