"""Shingle-based precision/recall/F1 for article bodies (the AEB metric, reimplemented).

Tokens are `\\w+` runs (case kept, punctuation dropped); each text becomes a multiset of
overlapping 4-token shingles. Every page weighs the same: precision and recall are
per-page ratios averaged over pages, and F1 is the harmonic mean of the two means.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

TOKEN = re.compile(r"\w+")
SHINGLE = 4


@dataclass(frozen=True, slots=True)
class Score:
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def shingles(text: str) -> Counter[tuple[str, ...]]:
    """Multiset of overlapping 4-token shingles; a shorter text is one shingle of itself."""
    tokens = TOKEN.findall(text or "")
    if 0 < len(tokens) < SHINGLE:
        return Counter([tuple(tokens)])
    return Counter(tuple(tokens[i : i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1))


def score_page(predicted: str, expected: str) -> tuple[float, float]:
    """Per-page (precision, recall); an empty side against an empty side scores 1."""
    pred, gold = shingles(predicted), shingles(expected)
    tp = sum((pred & gold).values())
    n_pred, n_gold = sum(pred.values()), sum(gold.values())
    precision = tp / n_pred if n_pred else float(not n_gold)
    recall = tp / n_gold if n_gold else 1.0
    return precision, recall


def score_corpus(pairs: Iterable[tuple[str, str]]) -> Score:
    """Mean per-page precision and recall over (predicted, expected) pairs."""
    scores = [score_page(pred, gold) for pred, gold in pairs]
    if not scores:
        return Score(0.0, 0.0)
    n = len(scores)
    return Score(sum(p for p, _ in scores) / n, sum(r for _, r in scores) / n)
