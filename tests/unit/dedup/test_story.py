"""Story clustering: the terms (pure), the shared index (real Redis), and quality gates.

The gates replay labelled sets through the real Lua and score every pair of articles. The
independent sets were written from docs/stories-guidelines.md by two writers who never saw the
code: tests/data/stories_independent_dev.jsonl (writer c; the thresholds were chosen on it) and
tests/data/stories_independent_heldout.jsonl (writer d; never tuned on), 36 events each, 2-4
reports per event in different styles, sibling events sharing places and people. They arrive in
shuffled orders (five seeds; the worst counts), each at its own publication time. The older set
tests/data/stories_labelled.jsonl (short articles of our own writing) replays in time order.
Lowering a floor is a deliberate change.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import datetime
from pathlib import Path

import pytest
import redis

from ingest.dedup import story

DATA = Path(__file__).resolve().parents[2] / "data"
LABELLED = DATA / "stories_labelled.jsonl"
FLOORS = {  # split: (precision, recall); measured with the defaults (threshold 0.11)
    "tune": (0.90, 0.95),  # P 0.909 R 1.000 (was 1.000 / 1.000 with 32 lead terms at 0.22)
    "holdout": (0.88, 0.95),  # P 0.889 R 1.000 (was 1.000 / 1.000)
}
INDEPENDENT_FLOORS = {  # set: worst (precision, recall) over these five shuffled orders
    "dev": (0.95, 0.75),  # P 1.000 R 0.789: chose the threshold (worst P falls under 1 below 0.11)
    "heldout": (0.95, 0.80),  # P 1.000 R 0.857 (R 0.827 worst over ten other orders); target R 0.90
}
SEEDS = range(5)
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


def test_only_the_first_words_count() -> None:
    body = "Grain ships left Odesa. " + "Crews waited there. " * 140 + "Later, Marlowe spoke."
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


def shuffled_scores(client: redis.Redis, rows: list[dict[str, str]], seed: int) -> tuple[float, float]:
    """One arrival order: each report at its own publication time (an hour after it, as polled)."""
    order = sorted(rows, key=lambda r: r["id"])
    random.Random(seed).shuffle(order)
    index = story.RedisStoryIndex(client, f"s{seed}{random.Random().getrandbits(40):x}")
    predicted = {
        r["id"]: index.assign(r["id"], r["title"], r["text"], now=unix(r["published_at"]) + 3600,
                              published_at=r["published_at"])
        for r in order
    }  # fmt: skip
    return pair_scores({r["id"]: r["story"] for r in rows}, predicted)


@pytest.mark.parametrize("name", sorted(INDEPENDENT_FLOORS))
def test_story_quality_on_independent_sets_in_shuffled_orders(redis_client: redis.Redis, name: str) -> None:
    rows = [
        json.loads(line) for line in (DATA / f"stories_independent_{name}.jsonl").read_text().splitlines()
    ]
    assert len({r["story"] for r in rows}) >= 36
    scores = [shuffled_scores(redis_client, rows, seed) for seed in SEEDS]
    worst_p, worst_r = min(p for p, _ in scores), min(r for _, r in scores)
    print(
        f"stories, independent {name}: worst P {worst_p:.3f} worst R {worst_r:.3f} over {len(scores)} orders"
    )
    assert worst_p >= INDEPENDENT_FLOORS[name][0]
    assert worst_r >= INDEPENDENT_FLOORS[name][1]


def test_a_late_report_meets_its_event_and_not_a_later_sibling(
    redis_client: redis.Redis, prefix: str
) -> None:
    """Arrival order does not matter: a report of day 1 arriving after a sibling event of day 5
    joins day 1's story, since candidates come from around its own publication time."""
    index = story.RedisStoryIndex(redis_client, prefix)
    day1 = "2026-11-02T09:00:00Z"
    day5 = "2026-11-06T09:00:00Z"
    text = (
        "Dockworkers at Port Ardent walked out for 24 hours over pay, halting container traffic; "
        "the Harbour Workers Union said 1,200 members joined the strike called by Lena Sorvik."
    )
    first = index.assign("d1", "Port Ardent dockworkers strike over pay", text, now=NOW, published_at=day1)
    sibling = index.assign("d5", "Second Port Ardent strike: crane operators walk out", text.replace(
        "24 hours", "48 hours"), now=NOW + 5 * 86400, published_at=day5)  # fmt: skip
    late = index.assign("d1b", "Port Ardent strike halts container traffic", text, now=NOW + 6 * 86400,
                        published_at="2026-11-02T15:00:00Z")  # fmt: skip
    assert (first, sibling, late) == ("d1", "d5", "d1")


def test_pair_scores() -> None:
    truth = {"a": "s1", "b": "s1", "c": "s2"}
    assert pair_scores(truth, {"a": "x", "b": "x", "c": "y"}) == (1.0, 1.0)
    assert pair_scores(truth, {"a": "x", "b": "x", "c": "x"}) == (1 / 3, 1.0)
    assert pair_scores(truth, {"a": "x", "b": "y", "c": "z"}) == (0.0, 0.0)
