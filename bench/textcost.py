"""Per-article CPU of the text work around extraction: body hash, story terms, tagging.

    .venv/bin/python bench/textcost.py [--dialects 12] [--rounds 7]

The article bodies are the extraction corpus' pages run through `extract_article` once,
each then written in `--dialects` dialects the way bench/pipeline.py's web writes them
(so the word caches see the vocabulary a sweep sees: 181 pages x 12 = 2,172 articles).
For each function the frozen copy of the implementation before issue 10's tuning (below,
"before") and the current one run alternately over all articles; the figure is the best
round's mean, in CPU ms per article. Every output of the current code is compared with the
copy's, also on the project's labelled wire items (tests/data: many of them match topics,
so evidence is compared too) and a few awkward strings written here; the script exits 1 on
any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus_web import CORPUS, load_corpus, vary_text  # noqa: E402
from ingest.dedup import identity as dedup  # noqa: E402
from ingest.dedup import story  # noqa: E402
from ingest.extract.article import ExtractionError, extract_article  # noqa: E402
from ingest.tag import evaluate as te  # noqa: E402
from ingest.tag import match as tag  # noqa: E402
from ingest.tag import terms as tq  # noqa: E402
from ingest.tag import topics as tagdefs  # noqa: E402

TOPICS = ROOT / "config" / "topics.toml"
LABELLED = [ROOT / "tests" / "data" / f for f in ("topics_labelled.jsonl", "stories_labelled.jsonl")]
AWKWARD = [  # (title, text, language): accents, marks, ligatures, apostrophes, odd digits
    ("Café Noël", "Ünïcödé Straße: the café’s crème brûlée, rated ². Kyivʼs mayor met İlhan.", "en"),
    ("Die Größe", "Über 2½ Maß Bier für 30% der Gäste; ①② und ³⁄₄ — nicht schlecht.", "de"),
    ("がくせい", "がくせいがぎんこうへいきました。パンダ、ガンダム。ｶﾞｯｺｳ 第２版。", "ja"),
    ("हिन्दी समाचार", "नई दिल्ली में बैठक हुई। प्रधानमंत्री ने कहा।", "hi"),
    ("Ligatures", "ﬁnal ﬂight ﷺ and ǅemal, ŉ, ﬀ, Ⅻ Ⅷ, x² in 1990s' ‘quotes’.", None),
    ("", "", None),
    ("Only a title", "   ", "en"),
]


@dataclass(frozen=True, slots=True)
class Sample:
    title: str
    text: str
    language: str | None


# --- before: frozen copies of the implementations as they were -------------------------

OLD_WORD_RE = re.compile(r"\w+")


def old_normalize_text(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(OLD_WORD_RE.findall(stripped))


def old_content_hash(text: str) -> str:
    return hashlib.sha256(old_normalize_text(text).encode()).hexdigest()[:32]


@lru_cache(maxsize=65536)
def old_fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.replace("’", "'").split("'")[0]


def old_tokens_with_starts(text: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for match in story.TOKEN_RE.finditer(text):
        before = text[max(0, match.start() - 3) : match.start()]
        out.append((match.group(), not out or bool(story.SENTENCE_END_RE.search(before))))
    return out


def old_is_name(token: str, starts_sentence: bool) -> bool:
    if len(token) > 1 and token.isupper():
        return True
    return token[:1].isupper() and not starts_sentence


def old_is_figure(token: str) -> bool:
    if not any(c.isdigit() for c in token):
        return False
    digits = re.sub(r"\D", "", token)
    return bool(digits) and (len(digits) >= 2 or "%" in token)


def old_is_year(token: str) -> bool:
    return len(token) == 4 and bool(story.YEAR_RE.fullmatch(token))


def old_score_field(scores: dict[str, Any], field: str, bonus: float, *, names: bool) -> None:
    for token, starts in old_tokens_with_starts(field):
        word = old_fold(token)
        if (len(word) < 4 and not old_is_figure(token)) or word in story.STOPWORDS or old_is_year(token):
            continue
        marked = (names and old_is_name(token, starts)) or old_is_figure(token)
        score = scores.setdefault(word[: story.STEM], [0.0, False])
        score[0] += 1.0 + bonus + (story.NAME_BONUS if marked else 0.0)
        score[1] = score[1] or marked


def old_story_terms(title: str, text: str) -> tuple[str, ...]:
    scores: dict[str, Any] = {}
    old_score_field(scores, title, story.TITLE_BONUS, names=not story.is_title_case(title))
    old_score_field(scores, " ".join(text.split()[: story.LEAD_WORDS]), 0.0, names=True)
    ranked = sorted(scores, key=lambda t: -scores[t][0])[: story.MAX_TERMS]
    return tuple(t + ("*" if scores[t][1] else "") for t in ranked)


def old_find(
    table: tq.TermTable, words: Sequence[str], folded: Sequence[str], language: str | None
) -> dict[int, list[tuple[int, int]]]:
    starts = accumulate((len(w) + 1 for w in folded[:-1]), initial=0)
    index = dict(zip(starts, range(len(folded)), strict=True))
    found: dict[int, list[tuple[int, int]]] = {}
    for end, (length, entries) in table.automaton.iter(" " + " ".join(folded) + " "):
        start = index[end - length + 1]
        for spec_id, n_words, simple in entries:
            stop, spec = start + n_words, table.specs[spec_id]
            if stop > len(words) or not spec.is_active(language):
                continue
            if simple or spec.is_match(folded[start:stop], words[start:stop]):
                found.setdefault(spec_id, []).append((start, stop))
    return found


def old_read_doc(topics: tagdefs.TopicSet, title: str, text: str, language: str | None) -> Any:
    in_title = list(tq.WORD_RE.finditer(title.translate(tq.APOSTROPHES)))
    in_text = list(tq.WORD_RE.finditer(text.translate(tq.APOSTROPHES)))
    words = [m.group() for m in in_title] + [tag.SEP] + [m.group() for m in in_text]
    spans = [m.span() for m in in_title] + [(0, 0)] + [m.span() for m in in_text]
    folded = [tq.fold(w) for w in words]
    lang = language.split("-")[0].lower() if language else None
    found = old_find(topics.table, words, folded, lang)
    return tag._Doc(title, text, words, folded, te.Hits(found, len(in_title)), spans)


def old_tag_article(topics: tagdefs.TopicSet, *, title: str, text: str, language: str | None = None) -> Any:
    doc = old_read_doc(topics, title, text, language)
    matches = []
    for topic in topics.candidates(doc.hits.spans):
        verdict = tag._judge(topic, doc, topics.scoring)
        if verdict.matched:
            matches.append(tag.TopicMatch(topic.slug, verdict.score, verdict.evidence))
    return tuple(sorted(matches, key=lambda m: -m.score))


# --- the articles ------------------------------------------------------------------------


def load_samples(corpus: Path, dialects: int) -> list[Sample]:
    """The corpus' extracted articles, each in `dialects` dialects (dialect 0 is the page as is)."""
    extracted = []
    for page in load_corpus(corpus):
        try:
            article = extract_article(page.html, f"https://bench.example/{page.id}")
        except ExtractionError:
            continue
        extracted.append(Sample(article.title or page.title, article.text, article.language))
    return [
        Sample(vary_text(s.title, d), vary_text(s.text, d), s.language) if d else s
        for d in range(dialects)
        for s in extracted
    ]


def labelled_samples() -> list[Sample]:
    """The project's own labelled wire items: most of them match topics, so they check evidence."""
    rows = [json.loads(line) for path in LABELLED for line in path.read_text(encoding="utf-8").splitlines()]
    return [Sample(r["title"], r["text"], r.get("language")) for r in rows]


# --- measuring ---------------------------------------------------------------------------

Job = Callable[[Sample], object]


def pipeline_dedup(hash_fn: Callable[[str], str], normalize: Callable[[str], str]) -> Job:
    """What one article costs the dedup stage's text work: the body hash in build_document,
    then neardup.signature normalising the same body again."""
    return lambda s: (hash_fn(s.text), normalize(s.text))


DEDUP = "content_hash, then normalize_text again (MinHash)"
TAG = "tag_article (config/topics.toml)"
PER_ARTICLE = (DEDUP, "story_terms", TAG)  # what one article pays: all three


def jobs(topics: tagdefs.TopicSet) -> dict[str, tuple[Job, Job]]:
    """Name -> (before, now)."""
    return {
        "normalize_text": (lambda s: old_normalize_text(s.text), lambda s: dedup.normalize_text(s.text)),
        "content_hash": (lambda s: old_content_hash(s.text), lambda s: dedup.content_hash(s.text)),
        DEDUP: (
            pipeline_dedup(old_content_hash, old_normalize_text),
            pipeline_dedup(dedup.content_hash, dedup.normalize_text),
        ),
        "story_terms": (
            lambda s: old_story_terms(s.title, s.text),
            lambda s: story.story_terms(s.title, s.text),
        ),
        TAG: (
            lambda s: old_tag_article(topics, title=s.title, text=s.text, language=s.language),
            lambda s: tag.tag_article(topics, title=s.title, text=s.text, language=s.language),
        ),
    }


def outcome(job: Job, sample: Sample) -> object:
    """The result, or the kind of error: both must be the same before and after."""
    try:
        return job(sample)
    except Exception as exc:  # noqa: BLE001 - a raised error is an outcome to compare
        return ("raised", type(exc).__name__)


def differences(before: Job, now: Job, samples: list[Sample]) -> int:
    return sum(outcome(before, s) != outcome(now, s) for s in samples)


def run_once(job: Job, samples: list[Sample]) -> float:
    """CPU ms per article (process time: other people's load on the machine barely moves it)."""
    start = time.process_time()
    for sample in samples:
        job(sample)
    return (time.process_time() - start) * 1000 / len(samples)


def best_of(before: Job, now: Job, samples: list[Sample], rounds: int) -> tuple[float, float]:
    """Best round of each, the two alternating so both see the same load."""
    old, new = float("inf"), float("inf")
    for _ in range(rounds):
        old = min(old, run_once(before, samples))
        new = min(new, run_once(now, samples))
    return old, new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--dialects", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    samples = load_samples(args.corpus, args.dialects)
    checked = samples + labelled_samples() + [Sample(*row) for row in AWKWARD]
    topics = tagdefs.load_topics(TOPICS)
    words = sum(len(s.text.split()) for s in samples) / len(samples)
    print(f"{len(samples)} articles (~{words:.0f} words), best of {args.rounds} rounds, CPU ms per article\n")
    print("| function | before | now | now/before | outputs differing |")
    print("|---|---:|---:|---:|---:|")
    failed, total_old, total_new = 0, 0.0, 0.0
    for name, (before, now) in jobs(topics).items():
        differing = differences(before, now, checked)
        old, new = best_of(before, now, samples, args.rounds)
        print(f"| {name} | {old:.3f} | {new:.3f} | {new / old:.2f} | {differing} of {len(checked)} |")
        failed += differing
        if name in PER_ARTICLE:
            total_old, total_new = total_old + old, total_new + new
    print(f"| **per article: the last three** | {total_old:.3f} | {total_new:.3f} "
          f"| {total_new / total_old:.2f} | |")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
